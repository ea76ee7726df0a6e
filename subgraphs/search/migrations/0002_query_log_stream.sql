-- Searches reach the query log through a Redis stream (subgraphs/search/cache.py), drained by the worker and by
-- searchInsights, possibly both at once: the stream entry's id makes a second copy of an entry a no-op.
-- NULL for searches logged straight into the table.
ALTER TABLE {schema}.query_log ADD COLUMN stream_entry text UNIQUE;

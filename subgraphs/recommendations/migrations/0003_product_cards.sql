-- What a list of recommendations shows of each product (slug, name, price and currency next to the brand and
-- price it had already), from the same catalog snapshots: recommendations answers these `Product` fields itself
-- on its own lists (`@provides`), so a list needs no catalog call. A row from before this migration has no card
-- until its product's next snapshot or `nexuscart reindex`; until then it is not recommended.
ALTER TABLE {schema}.products
    ADD COLUMN slug     text,
    ADD COLUMN name     text,
    ADD COLUMN currency text;

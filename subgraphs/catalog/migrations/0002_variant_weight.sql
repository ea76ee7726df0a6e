-- A variant's shipping weight in grams (shipping prices by weight; it learns weights from product events).
-- Existing variants get the default of 500 g; sellers set the real weight with updateProduct.
ALTER TABLE {schema}.product_variants ADD COLUMN weight_grams integer NOT NULL DEFAULT 500;
ALTER TABLE {schema}.product_variants ADD CONSTRAINT variant_weight_range
    CHECK (weight_grams BETWEEN 0 AND 1000000);

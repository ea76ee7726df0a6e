"""Events of the catalog domain.

Emitted via the outbox (kernel.outbox.add_event) in the same transaction as the change, keyed by the
product id so one product's events stay ordered on one partition. Ids are strings (64-bit snowflakes),
prices are decimal strings with 2 places (never floats).

`product.created` and `product.updated` carry the full snapshot; a consumer can rebuild its projection
(cart prices, search index, inventory's variant list) from the latest event alone:
    {product_id, slug, name, brand, description, tags, category_id, seller_id, min_price, currency,
     created_at, updated_at,
     variants: [{variant_id, sku, price, currency, attributes}]}
  After `product.updated`, a variant id absent from `variants` was removed from the product.

`product.deleted` (soft delete; the product no longer appears in reads):
    {product_id, variant_ids}

Consumed: none.
"""
EMITTED = ("product.created", "product.updated", "product.deleted")

"""SQL for the catalog domain."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypedDict

from sqlalchemy import ColumnElement, and_, delete, exists, func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.db import any_of
from subgraphs.catalog.models import CategoryRow, ProductRow, VariantRow

# ---- categories -------------------------------------------------------------------------------------------


async def all_categories(session: AsyncSession) -> list[CategoryRow]:
    return list((await session.execute(select(CategoryRow).order_by(CategoryRow.path))).scalars())


async def get_category(session: AsyncSession, category_id: int) -> CategoryRow | None:
    return await session.get(CategoryRow, category_id)


async def insert_category_if_slug_free(session: AsyncSession, row: dict[str, Any]) -> CategoryRow | None:
    stmt = insert(CategoryRow).values(**row).on_conflict_do_nothing(index_elements=["slug"]).returning(CategoryRow)
    return (await session.execute(stmt)).scalar_one_or_none()


async def category_lineage(session: AsyncSession, category_id: int) -> list[tuple[str, str]]:
    """(slug, name) of the category and each ancestor, nearest first (`path` holds the slugs from the root)."""
    category = await session.get(CategoryRow, category_id)
    if category is None:
        return []
    slugs = category.path.split("/")
    stmt = select(CategoryRow.slug, CategoryRow.name).where(any_of(CategoryRow.slug, slugs))
    rows = (await session.execute(stmt)).all()
    names = {slug: name for slug, name in rows}
    return [(slug, names[slug]) for slug in reversed(slugs) if slug in names]


async def live_product_ids_after(session: AsyncSession, after: int, limit: int) -> list[int]:
    """Ids of live products above `after`, ascending: a full scan in pages (search's reindex)."""
    stmt = (select(ProductRow.id).where(ProductRow.deleted_at.is_(None), ProductRow.id > after)
            .order_by(ProductRow.id).limit(limit))
    return list((await session.execute(stmt)).scalars())


async def live_product_counts_by_category(session: AsyncSession) -> dict[int, int]:
    stmt = (select(ProductRow.category_id, func.count()).where(ProductRow.deleted_at.is_(None))
            .group_by(ProductRow.category_id))
    return {category_id: count for category_id, count in (await session.execute(stmt)).all()}


# ---- product documents (the read model that is cached in Redis) ---------------------------------------------

# One statement for any number of products: the variants ride along as a jsonb array.
# text(): a correlated jsonb_agg(... ORDER BY ...) subquery reads plainly as SQL; Core would bury it in func calls.
_DOCUMENTS_SQL = text("""
SELECT p.id, p.slug, p.name, p.description, p.brand, p.category_id, p.seller_id, p.tags, p.images,
       p.specifications, p.min_price::text AS min_price, p.currency, p.created_at, p.updated_at, p.deleted_at,
       COALESCE((SELECT jsonb_agg(jsonb_build_object(
                     'id', v.id, 'sku', v.sku, 'price', v.price::text, 'currency', v.currency,
                     'attributes', v.attributes, 'position', v.position,
                     'weight_grams', v.weight_grams) ORDER BY v.position, v.id)
                 FROM catalog.product_variants v WHERE v.product_id = p.id), '[]'::jsonb) AS variants
FROM catalog.products p
WHERE p.id = ANY(:ids)
""")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def product_documents(session: AsyncSession, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Product id -> document (product fields, category id and its variants); soft-deleted ones included."""
    if not ids:
        return {}
    docs: dict[int, dict[str, Any]] = {}
    for r in (await session.execute(_DOCUMENTS_SQL, {"ids": list(ids)})).mappings():
        docs[r["id"]] = {
            "id": r["id"], "slug": r["slug"], "name": r["name"], "description": r["description"],
            "brand": r["brand"], "category_id": r["category_id"], "seller_id": r["seller_id"],
            "tags": list(r["tags"] or []), "images": r["images"], "specifications": r["specifications"],
            "min_price": r["min_price"], "currency": r["currency"], "created_at": _iso(r["created_at"]),
            "updated_at": _iso(r["updated_at"]), "deleted": r["deleted_at"] is not None,
            "variants": r["variants"],
        }
    return docs


async def product_ids_by_variant_ids(session: AsyncSession, variant_ids: Sequence[int]) -> dict[int, int]:
    stmt = select(VariantRow.id, VariantRow.product_id).where(any_of(VariantRow.id, variant_ids))
    return {variant_id: product_id for variant_id, product_id in (await session.execute(stmt)).all()}


async def product_id_by_slug(session: AsyncSession, slug: str) -> int | None:
    return (await session.execute(select(ProductRow.id).where(ProductRow.slug == slug))).scalar_one_or_none()


# ---- product writes ---------------------------------------------------------------------------------------

async def get_product_for_update(session: AsyncSession, product_id: int) -> ProductRow | None:
    stmt = select(ProductRow).where(ProductRow.id == product_id).with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def variants_of(session: AsyncSession, product_id: int) -> list[VariantRow]:
    stmt = select(VariantRow).where(VariantRow.product_id == product_id).order_by(VariantRow.position, VariantRow.id)
    return list((await session.execute(stmt)).scalars())


async def taken_skus(session: AsyncSession, skus: Sequence[str], *, except_product_id: int | None = None) -> list[str]:
    stmt = select(VariantRow.sku).where(any_of(VariantRow.sku, skus))
    if except_product_id is not None:
        stmt = stmt.where(VariantRow.product_id != except_product_id)
    return list((await session.execute(stmt)).scalars())


async def slug_taken(session: AsyncSession, slug: str) -> bool:
    return (await session.execute(select(exists().where(ProductRow.slug == slug)))).scalar_one()


async def insert_product_if_slug_free(session: AsyncSession, row: dict[str, Any]) -> bool:
    stmt = insert(ProductRow).values(**row).on_conflict_do_nothing(index_elements=["slug"]).returning(ProductRow.id)
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def insert_variants_if_skus_free(session: AsyncSession, rows: list[dict[str, Any]]) -> list[str]:
    """Insert what it can and return the SKUs that were inserted; a shortfall means a concurrent writer won.

    ON CONFLICT keeps the transaction usable (no IntegrityError to recover from); the caller raises and the
    request's rollback discards the partial insert.
    """
    if not rows:
        return []
    # Sorted: two writers inserting overlapping SKUs take the row locks in one order, so they queue
    # behind each other instead of deadlocking (a deadlock would surface as an internal error).
    rows = sorted(rows, key=lambda row: row["sku"])
    stmt = insert(VariantRow).on_conflict_do_nothing(index_elements=["sku"]).returning(VariantRow.sku)
    return list((await session.execute(stmt, rows)).scalars())


async def delete_variants(session: AsyncSession, variant_ids: Sequence[int]) -> None:
    if variant_ids:
        await session.execute(delete(VariantRow).where(any_of(VariantRow.id, variant_ids)))


async def update_variant(session: AsyncSession, variant_id: int, values: dict[str, Any]) -> None:
    await session.execute(update(VariantRow).where(VariantRow.id == variant_id)
                          .values(**values, updated_at=func.now()))


async def update_product(session: AsyncSession, product_id: int, values: dict[str, Any]) -> None:
    await session.execute(update(ProductRow).where(ProductRow.id == product_id)
                          .values(**values, updated_at=func.now()))


async def soft_delete_product(session: AsyncSession, product_id: int) -> None:
    await session.execute(update(ProductRow).where(ProductRow.id == product_id)
                          .values(deleted_at=func.now(), updated_at=func.now()))


# ---- browsing -----------------------------------------------------------------------------------------------

# sort name -> (key column, ascending?)
SORT_KEYS: dict[str, tuple[Any, bool]] = {
    "NEWEST": (ProductRow.created_at, False),
    "PRICE_ASC": (ProductRow.min_price, True),
    "PRICE_DESC": (ProductRow.min_price, False),
    "NAME": (ProductRow.name, True),
}


class ProductFilters(TypedDict):
    """The listing filters product_page and count_products share, passed as `**filters`."""
    category_ids: Sequence[int] | None
    brand: str | None
    price_min: Decimal | None
    price_max: Decimal | None


def _filters(*, category_ids: Sequence[int] | None, brand: str | None, price_min: Decimal | None,
             price_max: Decimal | None) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = [ProductRow.deleted_at.is_(None)]
    if category_ids is not None:
        clauses.append(any_of(ProductRow.category_id, category_ids))
    if brand is not None:
        clauses.append(func.lower(ProductRow.brand) == brand.lower())
    if price_min is not None or price_max is not None:
        # A product matches when ANY of its variants is priced inside the range.
        conditions = [VariantRow.product_id == ProductRow.id]
        if price_min is not None:
            conditions.append(VariantRow.price >= price_min)
        if price_max is not None:
            conditions.append(VariantRow.price <= price_max)
        clauses.append(exists().where(and_(*conditions)))
    return clauses


async def product_page(session: AsyncSession, *, sort: str, first: int, after: tuple[Any, int] | None,
                       category_ids: Sequence[int] | None, brand: str | None, price_min: Decimal | None,
                       price_max: Decimal | None) -> list[tuple[int, Any]]:
    """Up to first+1 (id, sort key) rows after the keyset position `after` = (sort key, id)."""
    key, ascending = SORT_KEYS[sort]
    clauses = _filters(category_ids=category_ids, brand=brand, price_min=price_min, price_max=price_max)
    if after is not None:
        position = tuple_(key, ProductRow.id)
        clauses.append(position > tuple_(*after) if ascending else position < tuple_(*after))
    order = (key.asc(), ProductRow.id.asc()) if ascending else (key.desc(), ProductRow.id.desc())
    stmt = select(ProductRow.id, key).where(*clauses).order_by(*order).limit(first + 1)
    return [(row[0], row[1]) for row in (await session.execute(stmt)).all()]


async def count_products(session: AsyncSession, *, category_ids: Sequence[int] | None, brand: str | None,
                         price_min: Decimal | None, price_max: Decimal | None) -> int:
    clauses = _filters(category_ids=category_ids, brand=brand, price_min=price_min, price_max=price_max)
    return (await session.execute(select(func.count()).select_from(ProductRow).where(*clauses))).scalar_one()


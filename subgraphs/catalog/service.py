"""Business rules of the catalog domain: categories, products, variants, browsing with cache-aside.

Write functions take the session first and only flush; the caller (GraphQL edge or a worker) owns the
transaction. Each write queues its `cache.invalidate(redis, ids)` to run once that transaction has committed
(kernel.uow.after_commit; cache.py explains why not before).
Read functions take a session *source* (an async callable returning the session) so that a request fully
served from Redis never opens one.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
import secrets
import unicodedata
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, overload

import orjson
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kernel.auth import Principal
from kernel.errors import BadUserInput, Forbidden
from kernel.ids import is_valid_id, next_id
from kernel.money import MAX_PRICE, check_currency, format_money, parse_amount
from kernel.outbox import add_event
from kernel.pubsub import listen
from kernel.settings import Settings
from kernel.uow import after_commit, unit_of_work
from subgraphs.catalog import cache, repository
from subgraphs.catalog.errors import (
    CategoryNotFound,
    CategorySlugTaken,
    DuplicateSku,
    InvalidCursor,
    ProductNotFound,
    SkuTaken,
)
from subgraphs.catalog.events import ProductCreated, ProductDeleted, ProductUpdated, VariantSnapshot
from subgraphs.catalog.models import SCHEMA, ProductRow

SessionSource = Callable[[], Awaitable[AsyncSession]]
Doc = dict[str, Any]

SORTS = tuple(repository.SORT_KEYS)
MAX_PAGE_SIZE = 100
MAX_VARIANTS = 100
_SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class _Keep:
    """Marks an update field the caller did not send (as opposed to sending null)."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()


@dataclasses.dataclass(frozen=True)
class ImageIn:
    url: str
    alt: str | None = None


@dataclasses.dataclass(frozen=True)
class VariantIn:
    sku: str
    price: str
    currency: str = "USD"
    attributes: Any = None
    weight_grams: int | None = None  # shipping weight; None: DEFAULT_WEIGHT_GRAMS (new) or unchanged (kept SKU)


@dataclasses.dataclass(frozen=True)
class ProductIn:
    name: str
    category_id: int
    variants: Sequence[VariantIn]
    description: str | None = None
    brand: str | None = None
    tags: Sequence[str] | None = None
    images: Sequence[ImageIn] | None = None
    specifications: Any = None


@dataclasses.dataclass(frozen=True)
class ProductChanges:
    """Each field is KEEP unless the caller sent it; `variants` replaces the list, matching by SKU."""
    name: Any = KEEP
    description: Any = KEEP
    brand: Any = KEEP
    category_id: Any = KEEP
    tags: Any = KEEP
    images: Any = KEEP
    specifications: Any = KEEP
    variants: Any = KEEP


@dataclasses.dataclass(frozen=True)
class CategoryIn:
    name: str
    slug: str | None = None
    parent_id: int | None = None


@dataclasses.dataclass(frozen=True)
class ProductFilterIn:
    category_slug: str | None = None
    brand: str | None = None
    price_min: str | None = None
    price_max: str | None = None


@dataclasses.dataclass(frozen=True)
class Page:
    ids: list[int]
    cursors: list[str]
    total_count: int
    has_next_page: bool


# ---- categories -------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class CategoryRecord:
    id: int
    parent_id: int | None
    slug: str
    name: str
    path: str


class CategoryTree:
    """Every category in memory (a catalog has hundreds, not millions): lookups, children, descendants."""

    def __init__(self, records: Sequence[CategoryRecord]) -> None:
        self.records = list(records)
        self.by_id = {r.id: r for r in self.records}
        self.by_slug = {r.slug: r for r in self.records}
        self.children: dict[int | None, list[CategoryRecord]] = {}
        for r in self.records:  # records come ordered by path, so children are too
            self.children.setdefault(r.parent_id, []).append(r)

    @classmethod
    def from_dicts(cls, items: Sequence[dict[str, Any]]) -> CategoryTree:
        return cls([CategoryRecord(**item) for item in items])

    def to_dicts(self) -> list[dict[str, Any]]:
        return [dataclasses.asdict(r) for r in self.records]

    def subtree_ids(self, category_id: int) -> list[int]:
        ids, stack = [], [category_id]
        while stack:
            current = stack.pop()
            ids.append(current)
            stack.extend(child.id for child in self.children.get(current, ()))
        return ids


# The tree of the current generation, shared by the requests of this process. Safe because it is only
# used when its generation equals the one just read from Redis (see cache.py on generations).
_tree_l1: tuple[int, CategoryTree] | None = None


async def category_tree(sessions: SessionSource, redis: Redis, settings: Settings, *,
                        generation: int) -> CategoryTree:
    global _tree_l1
    if _tree_l1 is not None and _tree_l1[0] == generation:
        return _tree_l1[1]
    key = cache.categories_key(generation)
    items = await cache.get_json(redis, key)
    if items is None:
        rows = await repository.all_categories(await sessions())
        items = [{"id": r.id, "parent_id": r.parent_id, "slug": r.slug, "name": r.name, "path": r.path}
                 for r in rows]
        await cache.set_json(redis, key, items, settings.catalog_cache_ttl_seconds)
    tree = CategoryTree.from_dicts(items)
    _tree_l1 = (generation, tree)
    return tree


def slugify(text: str, *, max_length: int = 80) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:max_length].rstrip("-")


async def create_category(session: AsyncSession, redis: Redis, *, caller: Principal,
                          category_in: CategoryIn) -> CategoryRecord:
    caller.require_role("ADMIN")
    name = _clean_text(category_in.name, "name", max_length=100, required=True)
    if category_in.slug is not None:
        slug = category_in.slug.strip()
        if not _SLUG.match(slug) or len(slug) > 80:
            raise BadUserInput("'slug' must be lowercase letters, digits and single hyphens", field="slug")
    else:
        slug = slugify(name)
        if not slug:
            raise BadUserInput("Cannot derive a slug from this name; pass 'slug'", field="slug")
    path = slug
    if category_in.parent_id is not None:
        parent = await repository.get_category(session, category_in.parent_id)
        if parent is None:
            raise CategoryNotFound(field="parentId")
        path = f"{parent.path}/{slug}"
    row = await repository.insert_category_if_slug_free(session, {
        "id": next_id(), "parent_id": category_in.parent_id, "slug": slug, "name": name, "path": path})
    if row is None:
        raise CategorySlugTaken(slug)
    await session.flush()
    _invalidate_after_commit(session, redis)
    return CategoryRecord(id=row.id, parent_id=row.parent_id, slug=row.slug, name=row.name, path=row.path)


async def product_counts(sessions: SessionSource) -> dict[int, int]:
    return await repository.live_product_counts_by_category(await sessions())


# ---- validation -------------------------------------------------------------------------------------------

def parse_price(value: str, *, field: str = "price", allow_zero: bool = False) -> Decimal:
    """A decimal string with at most 2 decimal places, > 0 (or >= 0 for filters), at most MAX_PRICE. Never a
    float. The kernel's amount rule with the catalog's bound; anything else is BAD_USER_INPUT naming `field`."""
    return parse_amount(value, field=field, maximum=MAX_PRICE, allow_zero=allow_zero)


@overload
def _clean_text(value: Any, field: str, *, max_length: int, required: Literal[True]) -> str: ...
@overload
def _clean_text(value: Any, field: str, *, max_length: int, required: bool = False) -> str | None: ...
def _clean_text(value: Any, field: str, *, max_length: int, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise BadUserInput(f"'{field}' is required", field=field)
        return None
    cleaned = str(value).strip()
    if not cleaned:
        if required:
            raise BadUserInput(f"'{field}' must not be empty", field=field)
        return None
    if len(cleaned) > max_length:
        raise BadUserInput(f"'{field}' is longer than {max_length} characters", field=field)
    return cleaned


def _clean_tags(tags: Sequence[str] | None) -> list[str]:
    cleaned: list[str] = []
    for tag in tags or ():
        tag = _clean_text(tag, "tags", max_length=50) or ""
        if tag and tag not in cleaned:
            cleaned.append(tag)
    if len(cleaned) > 50:
        raise BadUserInput("At most 50 tags", field="tags")
    return cleaned


def _clean_images(images: Sequence[ImageIn] | None) -> list[dict[str, Any]]:
    if images is not None and len(images) > 20:
        raise BadUserInput("At most 20 images", field="images")
    return [{"url": _clean_text(i.url, "images.url", max_length=2048, required=True),
             "alt": _clean_text(i.alt, "images.alt", max_length=300)} for i in images or ()]


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return value != value or value in (float("inf"), float("-inf"))
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    return False


def _clean_object(value: Any, field: str, *, max_bytes: int = 64 * 1024) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadUserInput(f"'{field}' must be a JSON object", field=field)
    try:
        encoded = orjson.dumps(value)  # also what jsonb will store: refuses >64-bit ints, deep nesting
    except (orjson.JSONEncodeError, TypeError):
        raise BadUserInput(f"'{field}' holds a value JSON storage cannot keep", field=field) from None
    if _has_non_finite(value):  # orjson would silently store them as null
        raise BadUserInput(f"'{field}' must not hold Infinity or NaN", field=field)
    if len(encoded) > max_bytes:
        raise BadUserInput(f"'{field}' is larger than {max_bytes // 1024} KiB", field=field)
    return value


@dataclasses.dataclass(frozen=True)
class _CleanVariant:
    sku: str
    price: Decimal
    currency: str
    attributes: dict[str, Any]
    weight_grams: int | None = None


# A variant's shipping weight when none is given (the column's default too: migrations/0002_variant_weight.sql).
DEFAULT_WEIGHT_GRAMS = 500
MAX_WEIGHT_GRAMS = 1_000_000


def _clean_weight(value: int | None) -> int | None:
    if value is not None and not 0 <= value <= MAX_WEIGHT_GRAMS:
        raise BadUserInput(f"'weightGrams' must be 0..{MAX_WEIGHT_GRAMS}", field="weightGrams")
    return value


def _clean_variants(variants: Sequence[VariantIn] | None) -> list[_CleanVariant]:
    if not variants:
        raise BadUserInput("A product needs at least one variant", field="variants")
    if len(variants) > MAX_VARIANTS:
        raise BadUserInput(f"At most {MAX_VARIANTS} variants", field="variants")
    cleaned = []
    for v in variants:
        sku = _clean_text(v.sku, "sku", max_length=64, required=True)
        if any(c.isspace() for c in sku):
            raise BadUserInput("'sku' must not contain whitespace", field="sku")
        currency = check_currency(v.currency)
        cleaned.append(_CleanVariant(sku=sku, price=parse_price(v.price), currency=currency,
                                     attributes=_clean_object(v.attributes, "attributes", max_bytes=4096),
                                     weight_grams=_clean_weight(v.weight_grams)))
    duplicates = [sku for sku, n in Counter(v.sku for v in cleaned).items() if n > 1]
    if duplicates:
        raise DuplicateSku(sorted(duplicates))
    if len({v.currency for v in cleaned}) > 1:
        # One currency per product: price sorting and "from" prices compare amounts of one currency.
        raise BadUserInput("All variants of a product must use the same currency", field="currency")
    return cleaned


def _authorize_owner(caller: Principal, product: ProductRow) -> None:
    if caller.has_role("ADMIN"):
        return
    if caller.has_role("SELLER") and product.seller_id == caller.user_id:
        return
    raise Forbidden("Only an admin or the seller who owns this product can change it")


# ---- product writes ---------------------------------------------------------------------------------------

def _invalidate_after_commit(session: AsyncSession, redis: Redis, product_ids: Sequence[int] = ()) -> None:
    """Once this write commits: bump the catalog generation and drop the products' documents (cache.py
    explains the race this order avoids). Dropped with the transaction if it rolls back, so a mutation that
    fails later in the same request invalidates nothing."""
    ids = list(product_ids)
    after_commit(session, lambda: cache.invalidate(redis, ids))


def snapshot(doc: Doc, event: type[ProductCreated] | type[ProductUpdated],
             lineage: Sequence[tuple[str, str]] = ()) -> ProductCreated | ProductUpdated:
    """The event other domains (cart, inventory, search) build their projections from: the whole product, and
    its category's (slug, name) lineage, nearest first."""
    return event(
        category_slugs=[slug for slug, _ in lineage], category_names=[name for _, name in lineage],
        product_id=doc["id"], slug=doc["slug"], name=doc["name"], brand=doc["brand"],
        description=doc["description"], tags=doc["tags"], category_id=doc["category_id"],
        seller_id=doc["seller_id"], min_price=Decimal(doc["min_price"]), currency=doc["currency"],
        created_at=datetime.fromisoformat(doc["created_at"]), updated_at=datetime.fromisoformat(doc["updated_at"]),
        variants=[VariantSnapshot(variant_id=v["id"], sku=v["sku"], price=Decimal(v["price"]),
                                  currency=v["currency"], attributes=v["attributes"],
                                  weight_grams=v.get("weight_grams", DEFAULT_WEIGHT_GRAMS))
                  for v in doc["variants"]])


async def _unique_slug(session: AsyncSession, name: str, product_id: int) -> str:
    base = slugify(name) or "product"
    if not await repository.slug_taken(session, base):
        return base
    return f"{base}-{_base36(product_id)[-6:]}"


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while number:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
    return out or "0"


def _variant_rows(product_id: int, variants: Sequence[_CleanVariant], start: int = 0) -> list[dict[str, Any]]:
    return [{"id": next_id(), "product_id": product_id, "sku": v.sku, "price": v.price, "currency": v.currency,
             "attributes": v.attributes, "position": start + i,
             "weight_grams": DEFAULT_WEIGHT_GRAMS if v.weight_grams is None else v.weight_grams}
            for i, v in enumerate(variants)]


async def _document(session: AsyncSession, product_id: int) -> Doc:
    return (await repository.product_documents(session, [product_id]))[product_id]


async def create_product(session: AsyncSession, redis: Redis, *, caller: Principal, product_in: ProductIn) -> Doc:
    if not caller.has_role("ADMIN", "SELLER"):
        raise Forbidden("Only sellers and admins can create products")
    name = _clean_text(product_in.name, "name", max_length=200, required=True)
    variants = _clean_variants(product_in.variants)
    values: dict[str, Any] = {
        "name": name,
        "description": _clean_text(product_in.description, "description", max_length=20_000),
        "brand": _clean_text(product_in.brand, "brand", max_length=100),
        "tags": _clean_tags(product_in.tags),
        "images": _clean_images(product_in.images),
        "specifications": _clean_object(product_in.specifications, "specifications"),
    }
    if await repository.get_category(session, product_in.category_id) is None:
        raise CategoryNotFound()
    taken = await repository.taken_skus(session, [v.sku for v in variants])
    if taken:
        raise SkuTaken(taken)

    product_id = next_id()
    values.update(id=product_id, category_id=product_in.category_id, seller_id=caller.user_id,
                  min_price=min(v.price for v in variants), currency=variants[0].currency)
    slug = await _unique_slug(session, name, product_id)
    for _ in range(5):  # a concurrent writer may take the slug between the check and the insert
        if await repository.insert_product_if_slug_free(session, {**values, "slug": slug}):
            break
        slug = f"{slugify(name) or 'product'}-{secrets.token_hex(3)}"
    else:
        raise RuntimeError("could not allocate a product slug")
    inserted = await repository.insert_variants_if_skus_free(session, _variant_rows(product_id, variants))
    if len(inserted) != len(variants):
        raise SkuTaken(sorted({v.sku for v in variants} - set(inserted)))
    await session.flush()
    doc = await _document(session, product_id)
    lineage = await repository.category_lineage(session, doc["category_id"])
    await add_event(session, SCHEMA, snapshot(doc, ProductCreated, lineage), key=product_id)
    _invalidate_after_commit(session, redis, [product_id])
    return doc


async def update_product(session: AsyncSession, redis: Redis, *, caller: Principal, product_id: int,
                         changes: ProductChanges) -> Doc:
    product = await repository.get_product_for_update(session, product_id)
    if product is None or product.deleted_at is not None:
        raise ProductNotFound()
    _authorize_owner(caller, product)

    values: dict[str, Any] = {}
    if changes.name is not KEEP:
        values["name"] = _clean_text(changes.name, "name", max_length=200, required=True)
    if changes.description is not KEEP:
        values["description"] = _clean_text(changes.description, "description", max_length=20_000)
    if changes.brand is not KEEP:
        values["brand"] = _clean_text(changes.brand, "brand", max_length=100)
    if changes.tags is not KEEP:
        values["tags"] = _clean_tags(changes.tags)
    if changes.images is not KEEP:
        values["images"] = _clean_images(changes.images)
    if changes.specifications is not KEEP:
        values["specifications"] = _clean_object(changes.specifications, "specifications")
    variants = _clean_variants(changes.variants) if changes.variants is not KEEP else None
    if changes.category_id is not KEEP:
        if changes.category_id is None:
            raise BadUserInput("'categoryId' cannot be null", field="categoryId")
        if await repository.get_category(session, changes.category_id) is None:
            raise CategoryNotFound()
        values["category_id"] = changes.category_id

    if variants is not None:
        # Replace the variant list, matching by SKU: a kept SKU keeps its variant id (carts, stock and
        # orders refer to it), a new SKU gets a new variant, a missing SKU's variant is removed.
        existing = {v.sku: v for v in await repository.variants_of(session, product_id)}
        new = [v for v in variants if v.sku not in existing]
        taken = await repository.taken_skus(session, [v.sku for v in new], except_product_id=product_id)
        if taken:
            raise SkuTaken(taken)
        wanted = {v.sku for v in variants}
        await repository.delete_variants(session, [v.id for sku, v in existing.items() if sku not in wanted])
        rows = []
        for position, v in enumerate(variants):
            if v.sku in existing:
                await repository.update_variant(session, existing[v.sku].id, {
                    "price": v.price, "currency": v.currency, "attributes": v.attributes, "position": position,
                    **({"weight_grams": v.weight_grams} if v.weight_grams is not None else {})})
            else:
                rows.extend(_variant_rows(product_id, [v], start=position))
        inserted = await repository.insert_variants_if_skus_free(session, rows)
        if len(inserted) != len(rows):
            raise SkuTaken(sorted({r["sku"] for r in rows} - set(inserted)))
        values["min_price"] = min(v.price for v in variants)
        values["currency"] = variants[0].currency

    await repository.update_product(session, product_id, values)
    await session.flush()
    doc = await _document(session, product_id)
    lineage = await repository.category_lineage(session, doc["category_id"])
    await add_event(session, SCHEMA, snapshot(doc, ProductUpdated, lineage), key=product_id)
    _invalidate_after_commit(session, redis, [product_id])
    return doc


async def delete_product(session: AsyncSession, redis: Redis, *, caller: Principal, product_id: int) -> bool:
    """Soft delete: the row stays for orders and history; reads treat it as gone."""
    product = await repository.get_product_for_update(session, product_id)
    if product is None or product.deleted_at is not None:
        raise ProductNotFound()
    _authorize_owner(caller, product)
    variant_ids = [v.id for v in await repository.variants_of(session, product_id)]
    await repository.soft_delete_product(session, product_id)
    await add_event(session, SCHEMA, ProductDeleted(product_id=product_id, variant_ids=variant_ids), key=product_id)
    await session.flush()
    _invalidate_after_commit(session, redis, [product_id])
    return True


# ---- product reads (cache-aside) --------------------------------------------------------------------------

async def product_documents(sessions: SessionSource, redis: Redis, settings: Settings,
                            ids: Sequence[int]) -> list[Doc | None]:
    """Live product documents in `ids` order (None for unknown or deleted): one MGET, one SQL for misses."""
    if not ids:
        return []
    generation, raw = await cache.mget_with_generation(redis, [cache.product_key(i) for i in ids])
    found: dict[int, Doc] = {}
    missing: list[int] = []
    for product_id, blob in zip(ids, raw, strict=True):
        if blob is None:
            missing.append(product_id)
        else:
            found[product_id] = orjson.loads(blob)
    if missing:
        loaded = await repository.product_documents(await sessions(), missing)
        found.update(loaded)
        await cache.store_if_generation(redis, generation, {
            cache.product_key(pid): orjson.dumps(doc) for pid, doc in loaded.items()},
            settings.catalog_cache_ttl_seconds)
    out: list[Doc | None] = []
    for product_id in ids:
        doc = found.get(product_id)
        out.append(doc if doc is not None and not doc["deleted"] else None)
    return out


async def product_ids_for_variants(sessions: SessionSource, redis: Redis, settings: Settings,
                                   variant_ids: Sequence[int]) -> list[int | None]:
    cached = await cache.mget_ints(redis, [cache.variant_key(v) for v in variant_ids])
    missing = [v for v, p in zip(variant_ids, cached, strict=True) if p is None]
    loaded: dict[int, int] = {}
    if missing:
        loaded = await repository.product_ids_by_variant_ids(await sessions(), missing)
        await cache.set_ints(redis, {cache.variant_key(v): p for v, p in loaded.items()},
                             settings.catalog_cache_ttl_seconds)
    return [p if p is not None else loaded.get(v) for v, p in zip(variant_ids, cached, strict=True)]


async def product_id_for_slug(sessions: SessionSource, redis: Redis, settings: Settings, slug: str) -> int | None:
    key = cache.slug_key(slug)
    cached = await redis.get(key)
    if cached is not None:
        return int(cached)
    product_id = await repository.product_id_by_slug(await sessions(), slug)
    if product_id is not None:
        await redis.set(key, product_id, ex=settings.catalog_cache_ttl_seconds)
    return product_id


def _session_source(session: AsyncSession) -> SessionSource:
    async def source() -> AsyncSession:
        return session

    return source


async def product_change_stream(session_factory: async_sessionmaker[AsyncSession], redis: Redis, settings: Settings,
                                product_id: int) -> AsyncGenerator[tuple[Doc, CategoryTree], None]:
    """The product again (its document, and the category tree to show it with) after every committed change;
    ends when the product is deleted. NOT_FOUND for an unknown or deleted product. Each read is a short
    transaction of its own, so no database connection is held while waiting for the next change."""
    async with unit_of_work(session_factory) as session:
        if not (await product_documents(_session_source(session), redis, settings, [product_id]))[0]:
            raise ProductNotFound()
    async with listen(redis, cache.product_changed_channel(product_id)) as changes:
        async for _ in changes:  # every message (MAYBE_MISSED included) means: read the product again
            async with unit_of_work(session_factory) as session:
                sessions = _session_source(session)
                doc = (await product_documents(sessions, redis, settings, [product_id]))[0]
                tree = await category_tree(sessions, redis, settings, generation=await cache.generation(redis))
            if doc is None:
                return
            yield doc, tree


# ---- browsing ---------------------------------------------------------------------------------------------

def _encode_cursor(sort: str, key: Any, product_id: int) -> str:
    if isinstance(key, datetime):
        key = key.isoformat()
    elif isinstance(key, Decimal):
        key = format_money(key)
    return base64.urlsafe_b64encode(orjson.dumps([sort, key, product_id])).decode().rstrip("=")


def decode_cursor(sort: str, cursor: str) -> tuple[Any, int]:
    """The keyset position (sort key, id) of an opaque cursor; anything malformed is BAD_USER_INPUT."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        cursor_sort, key, product_id = orjson.loads(raw)
        # Cursors are opaque but client-held: every part is checked before it can reach SQL.
        if (cursor_sort != sort or not is_valid_id(product_id)
                or not isinstance(key, str) or "\x00" in key or len(key) > 512):
            raise ValueError("not a cursor of this sort")
        if sort == "NEWEST":
            parsed: Any = datetime.fromisoformat(key)
            if parsed.tzinfo is None:
                raise ValueError("naive timestamp")
            parsed = parsed.astimezone(UTC)  # out-of-range offsets fail here, not in the driver
        elif sort in ("PRICE_ASC", "PRICE_DESC"):
            parsed = Decimal(key)
            if not parsed.is_finite() or abs(parsed) > MAX_PRICE:
                raise ValueError("not a price")
        else:
            parsed = key
        return parsed, product_id
    except (ValueError, TypeError, OverflowError, InvalidOperation, orjson.JSONDecodeError):
        raise InvalidCursor() from None


async def product_page(sessions: SessionSource, redis: Redis, settings: Settings, *, generation: int,
                       tree: CategoryTree, filter_in: ProductFilterIn | None, sort: str, first: int,
                       after: str | None) -> Page:
    """One page of live product ids in keyset order, cached per catalog generation."""
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise BadUserInput(f"'first' must be between 1 and {MAX_PAGE_SIZE}", field="first")
    if sort not in SORTS:
        raise BadUserInput(f"Unknown sort {sort!r}", field="sort")
    position = decode_cursor(sort, after) if after is not None else None
    filter_in = filter_in or ProductFilterIn()
    category_ids = None
    if filter_in.category_slug is not None:
        category = tree.by_slug.get(filter_in.category_slug)
        if category is None:
            raise CategoryNotFound(field="categorySlug")
        category_ids = tree.subtree_ids(category.id)
    brand = _clean_text(filter_in.brand, "brand", max_length=100)
    price_min = parse_price(filter_in.price_min, field="priceMin", allow_zero=True) \
        if filter_in.price_min is not None else None
    price_max = parse_price(filter_in.price_max, field="priceMax", allow_zero=True) \
        if filter_in.price_max is not None else None
    if price_min is not None and price_max is not None and price_min > price_max:
        raise BadUserInput("'priceMin' is greater than 'priceMax'", field="priceMin")

    identity = orjson.dumps([sort, first, after, category_ids, brand and brand.lower(),
                             price_min and str(price_min), price_max and str(price_max)])
    key = cache.page_key(generation, hashlib.blake2b(identity, digest_size=16).hexdigest())
    cached = await cache.get_json(redis, key)
    if cached is not None:
        return Page(ids=cached["ids"], cursors=cached["cursors"], total_count=cached["total"],
                    has_next_page=cached["next"])

    session = await sessions()
    filters: repository.ProductFilters = {"category_ids": category_ids, "brand": brand, "price_min": price_min,
                                          "price_max": price_max}
    rows = await repository.product_page(session, sort=sort, first=first, after=position, **filters)
    total = await repository.count_products(session, **filters)
    has_next = len(rows) > first
    rows = rows[:first]
    page = Page(ids=[r[0] for r in rows], cursors=[_encode_cursor(sort, r[1], r[0]) for r in rows],
                total_count=total, has_next_page=has_next)
    await cache.set_json(redis, key, {"ids": page.ids, "cursors": page.cursors, "total": total, "next": has_next},
                         settings.catalog_cache_ttl_seconds)
    return page

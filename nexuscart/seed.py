"""Demo data for `make run` only: the two documented logins, three sellers, categories, products and stock.

Goes through the domains' service functions, so demo products emit the same events as real ones, and the
subgraphs' cached answers are refreshed once it commits. Runs once: if the demo admin exists, nothing is written.
"""
from __future__ import annotations

import random
from collections import Counter

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.auth import Principal
from kernel.db import create_engine, create_session_factory
from kernel.redis import create_redis
from kernel.settings import Settings
from kernel.uow import unit_of_work
from ml.demo import Item
from nexuscart.demo_data import CATEGORY_PLAN, LOW, SELLERS, SOLD_OUT, WAREHOUSES, demo_products, demo_stock
from subgraphs.catalog import service as catalog
from subgraphs.inventory import service as inventory
from subgraphs.recommendations import service as recommendations
from subgraphs.shipping import service as shipping
from subgraphs.shipping.models import RateKind
from subgraphs.users import repository as users_repository
from subgraphs.users import service as users

ADMIN = ("admin@nexuscart.dev", "admin-demo-pass")
CUSTOMER = ("customer@nexuscart.dev", "customer-demo-pass")
SELLER_PASSWORD = "seller-demo-pass"


async def seed_demo_data(settings: Settings) -> str:
    settings.require_peers("database_url", "redis_url")
    engine = create_engine(settings)
    redis = create_redis(settings)
    try:
        async with unit_of_work(create_session_factory(engine)) as session:
            if await users_repository.get_user_by_email(session, ADMIN[0]) is not None:
                return "demo data already present; not seeding again"
            admin = await users.register(session, email=ADMIN[0], password=ADMIN[1], first_name="Demo",
                                         last_name="Admin", roles=("ADMIN",), redis=redis)
            await users.register(session, email=CUSTOMER[0], password=CUSTOMER[1], first_name="Demo",
                                 last_name="Customer", redis=redis)
            sellers = [await users.register(session, email=email, password=SELLER_PASSWORD, first_name=first,
                                            last_name=last, roles=("SELLER",), redis=redis)
                       for email, first, last in SELLERS]

            as_admin = Principal(admin.id, frozenset({"ADMIN"}))
            category_ids: dict[str, int] = {}
            for name, parent, *_ in CATEGORY_PLAN:  # parents come before their children in the plan
                record = await catalog.create_category(session, redis, caller=as_admin, category_in=catalog.CategoryIn(
                    name=name, parent_id=category_ids[parent] if parent else None))
                category_ids[name] = record.id

            products = demo_products()
            variants: list[tuple[int, int]] = []
            catalogue: list[Item] = []  # what recommendations learns from the demo shoppers
            for product in products:
                seller = sellers[product.seller_index]
                doc = await catalog.create_product(
                    session, redis, caller=Principal(seller.id, frozenset({"SELLER"})),
                    product_in=catalog.ProductIn(
                        name=product.name, category_id=category_ids[product.category], brand=product.brand,
                        description=product.description, tags=product.tags, specifications=product.specifications,
                        variants=[catalog.VariantIn(sku=v.sku, price=str(v.price), currency="USD",
                                                    attributes=v.attributes,
                                                    weight_grams=int(str(product.specifications["weight_g"])))
                                  for v in product.variants]))
                variants += [(doc["id"], v["id"]) for v in doc["variants"]]
                catalogue.append(Item(product_id=doc["id"], category_id=category_ids[product.category],
                                      brand=product.brand, price=float(min(v.price for v in product.variants)),
                                      tags=tuple(product.tags)))
            # Stock in two warehouses; the catalog events above reach inventory and the cart's projections
            # through the outbox once the relay and the worker run.
            stock_summary = await seed_demo_stock(session, variants, random.Random(7), redis=redis)
            shipping_summary = await seed_demo_shipping(session, as_admin)
            recommendations_summary = await recommendations.seed_demo_history(session, settings, catalogue)
        return (f"seeded demo data: {len(sellers) + 2} users, {len(category_ids)} categories, "
                f"{len(products)} products, {len(variants)} variants; {stock_summary}; {shipping_summary}; "
                f"{recommendations_summary}")
    finally:
        await redis.aclose()
        await engine.dispose()


async def seed_demo_shipping(session: AsyncSession, admin: Principal) -> str:
    """Demo shipping: a domestic zone (US) with Standard by weight (free from $50) and flat Express, and an
    international zone with one method by weight. Returns a one-line summary."""
    domestic = await shipping.create_zone(session, caller=admin, zone_in=shipping.ZoneIn(
        name="United States", countries=["US"]))
    international = await shipping.create_zone(session, caller=admin, zone_in=shipping.ZoneIn(
        name="International", countries=["CA", "MX", "GB", "IE", "FR", "DE", "NL", "ES", "PT", "IT", "AU", "JP"]))
    plans = [
        (domestic.id, shipping.MethodIn(name="Standard", carrier="USPS", kind=RateKind.WEIGHT, price="4.99",
                                        price_per_kg="1.00", free_above="50.00", min_days=3, max_days=5)),
        (domestic.id, shipping.MethodIn(name="Express", carrier="UPS", kind=RateKind.FLAT, price="14.99",
                                        min_days=1, max_days=2)),
        (international.id, shipping.MethodIn(name="International Standard", carrier="DHL", kind=RateKind.WEIGHT,
                                             price="14.99", price_per_kg="4.00", max_weight_grams=30_000,
                                             min_days=6, max_days=12)),
    ]
    for zone_id, method in plans:
        await shipping.create_method(session, caller=admin, zone_id=zone_id, method_in=method)
    return f"2 shipping zones, {len(plans)} shipping methods"


async def seed_demo_stock(session: AsyncSession, variants: list[tuple[int, int]], rng: random.Random, *,
                          redis: Redis | None = None) -> str:
    """Demo stock: the demo WAREHOUSES (if absent), the (product_id, variant_id) pairs registered with
    inventory, and stock in both warehouses as `demo_stock` rolls it. Stock already there is not overwritten,
    so a re-run is harmless. Pass `redis` when the inventory subgraph may already be serving, to drop its
    cached answers after commit. Returns a one-line summary."""
    warehouse_ids = [(await inventory.ensure_warehouse(session, code, name)).id for code, name in WAREHOUSES]
    await inventory.register_variants(session, variants)
    wanted: list[tuple[int, int, int]] = []
    rolled: Counter[str] = Counter()
    for variant_id in sorted({v for _, v in variants}):
        kind, quantities = demo_stock(rng)
        rolled[kind] += 1
        wanted += [(variant_id, w, q) for w, q in zip(warehouse_ids, quantities, strict=True) if q > 0]
    written = await inventory.stock_empty_rows(session, wanted, reason="demo seed", redis=redis)
    stocked = len({r.variant_id for r in written})
    return (f"inventory: {len(warehouse_ids)} warehouses, {len(set(variants))} variants registered, "
            f"{stocked} stocked ({len(written)} stock rows), ~{rolled[LOW]} low, ~{rolled[SOLD_OUT]} sold out")

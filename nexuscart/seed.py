"""Demo data for `make run` only: the two documented logins, three sellers, categories, products and stock.

Goes through the domains' service functions, so demo products emit the same events as real ones.
Runs once: if the demo admin exists, nothing is written.
"""
from __future__ import annotations

import random

from kernel.auth import Principal
from kernel.db import create_engine, create_session_factory
from kernel.redis import create_redis
from kernel.settings import Settings
from nexuscart.demo_data import CATEGORY_PLAN, SELLERS, demo_products
from subgraphs.catalog import service as catalog
from subgraphs.inventory import service as inventory
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
        async with create_session_factory(engine)() as session, session.begin():
            if await users_repository.get_user_by_email(session, ADMIN[0]) is not None:
                return "demo data already present; not seeding again"
            admin = await users.register(session, email=ADMIN[0], password=ADMIN[1], first_name="Demo",
                                         last_name="Admin", roles=("ADMIN",))
            await users.register(session, email=CUSTOMER[0], password=CUSTOMER[1], first_name="Demo",
                                 last_name="Customer")
            sellers = [await users.register(session, email=email, password=SELLER_PASSWORD, first_name=first,
                                            last_name=last, roles=("SELLER",)) for email, first, last in SELLERS]

            as_admin = Principal(admin.id, frozenset({"ADMIN"}))
            category_ids: dict[str, int] = {}
            for name, parent, *_ in CATEGORY_PLAN:  # parents come before their children in the plan
                record = await catalog.create_category(session, redis, caller=as_admin, category_in=catalog.CategoryIn(
                    name=name, parent_id=category_ids[parent] if parent else None))
                category_ids[name] = record.id

            products = demo_products()
            variants: list[tuple[int, int]] = []
            for product in products:
                seller = sellers[product.seller_index]
                doc = await catalog.create_product(
                    session, redis, caller=Principal(seller.id, frozenset({"SELLER"})),
                    product_in=catalog.ProductIn(
                        name=product.name, category_id=category_ids[product.category], brand=product.brand,
                        description=product.description, tags=product.tags, specifications=product.specifications,
                        variants=[catalog.VariantIn(sku=v.sku, price=str(v.price), currency="USD",
                                                    attributes=v.attributes) for v in product.variants]))
                variants += [(doc["id"], v["id"]) for v in doc["variants"]]
            # Stock in two warehouses; the catalog events above reach inventory and the cart's projections
            # through the outbox once the relay and the worker run.
            stock_summary = await inventory.seed_demo_stock(session, variants, random.Random(7), redis=redis)
        return (f"seeded demo data: {len(sellers) + 2} users, {len(category_ids)} categories, "
                f"{len(products)} products, {len(variants)} variants; {stock_summary}")
    finally:
        await redis.aclose()
        await engine.dispose()

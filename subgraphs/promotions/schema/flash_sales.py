"""Flash sales' part of the promotions schema: validates input shapes, calls flash_sales.py, maps records."""
from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncGenerator
from datetime import datetime
from decimal import Decimal
from typing import Optional

import strawberry
from strawberry.federation.schema_directives import Key

from kernel.errors import BadUserInput
from kernel.graphql import RequestContext
from kernel.ids import parse_id
from kernel.peers import INTERNAL_HTTP
from subgraphs.promotions import flash_sale_store as store
from subgraphs.promotions import flash_sales, repository
from subgraphs.promotions.models import FlashSaleRecord, StockStatus
from subgraphs.promotions.models import FlashSaleStatus as FlashSaleStatusValue

FlashSaleStatus = strawberry.enum(FlashSaleStatusValue, name="FlashSaleStatus")


@strawberry.enum(description="The outcome of one purchase attempt; only SUCCESS bought anything.")
class FlashSalePurchaseStatus(enum.Enum):
    SUCCESS = "SUCCESS"
    SOLD_OUT = "SOLD_OUT"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    NOT_ACTIVE = "NOT_ACTIVE"
    INVALID_TOKEN = "INVALID_TOKEN"
    RATE_LIMITED = "RATE_LIMITED"


@strawberry.federation.type(shareable=True, description="An amount of money; amount is a decimal string.")
class Money:
    amount: str = strawberry.field(description="Decimal string with 2 places, e.g. \"19.99\"")
    currency: str = strawberry.field(description="ISO 4217 code, e.g. \"USD\"")

    @classmethod
    def of(cls, amount: Decimal, currency: str) -> "Money":
        return cls(amount=f"{amount:.2f}", currency=currency)


@strawberry.federation.type(directives=[Key(fields="id", resolvable=False)])
class ProductVariant:
    """Stub of the catalog's entity: only the key, resolved there."""
    id: strawberry.ID


@strawberry.federation.type(directives=[Key(fields="id", resolvable=False)])
class Order:
    """Stub of the orders entity: only the key, resolved there (owner or admin)."""
    id: strawberry.ID


@strawberry.type
class FlashSale:
    id: strawberry.ID
    variant: ProductVariant
    name: str = strawberry.field(description="The product's name when the sale was created")
    sku: str
    sale_price: Money
    regular_price: Money
    starts_at: datetime
    ends_at: datetime
    total_stock: int
    remaining_stock: int = strawberry.field(description="Units still for sale; units of unpaid orders come back")
    per_user_limit: int
    status: FlashSaleStatus  # type: ignore[valid-type]

    @classmethod
    def from_record(cls, sale: FlashSaleRecord, remaining: int | None) -> "FlashSale":
        if remaining is None:  # not loaded yet (PREPARING) or never (UNAVAILABLE)
            remaining = sale.total_stock if sale.stock_status is StockStatus.PENDING else 0
        return cls(id=strawberry.ID(str(sale.id)), variant=ProductVariant(id=strawberry.ID(str(sale.variant_id))),
                   name=sale.name, sku=sale.sku, sale_price=Money.of(sale.sale_price, sale.currency),
                   regular_price=Money.of(sale.regular_price, sale.currency), starts_at=sale.starts_at,
                   ends_at=sale.ends_at, total_stock=sale.total_stock, remaining_stock=max(remaining, 0),
                   per_user_limit=sale.per_user_limit, status=sale.status_at(flash_sales.utcnow(), remaining))


@strawberry.type
class FlashSaleToken:
    token: str = strawberry.field(description="One-time; pass it to purchaseFlashSale")
    expires_at: datetime


@strawberry.type
class FlashSalePurchase:
    status: FlashSalePurchaseStatus
    remaining_stock: int
    order: Optional[Order] = strawberry.field(
        description="SUCCESS only: the order holding the units, AWAITING_PAYMENT at the sale price (pay it with "
                    "payOrder before the payment timeout, or the units go back to the sale)")
    order_id: Optional[strawberry.ID] = strawberry.field(description="The order's id, without a fetch from orders")


@strawberry.input
class CreateFlashSaleInput:
    variant_id: strawberry.ID
    sale_price: str = strawberry.field(description="Decimal string, e.g. \"9.99\"; at most the regular price")
    starts_at: datetime
    ends_at: datetime
    stock: int = strawberry.field(description="Units for sale, set aside in inventory before the start")
    per_user_limit: int = strawberry.field(description="Units one user may hold (reserved or paid)")


async def _sales_with_stock(ctx: RequestContext, sales: list[FlashSaleRecord]) -> list[FlashSale]:
    remaining = await store.remaining_stock(ctx.redis, [s.id for s in sales])
    return [FlashSale.from_record(s, remaining.get(s.id)) for s in sales]


@strawberry.type
class FlashSaleQuery:
    @strawberry.field(description="Newest first. active: true = in its window now, false = not; omitted = all. "
                                  "first is 1..100.")
    async def flash_sales(self, info: strawberry.Info, active: Optional[bool] = None,
                          first: int = 50) -> list[FlashSale]:
        ctx: RequestContext = info.context
        ctx.mark_uncacheable()
        if not 1 <= first <= 100:
            raise BadUserInput("'first' must be 1..100", field="first")
        sales = await repository.list_sales(await ctx.session(), active_at=flash_sales.utcnow(), active=active,
                                            limit=first)
        return await _sales_with_stock(ctx, sales)

    @strawberry.field
    async def flash_sale(self, info: strawberry.Info, id: strawberry.ID) -> Optional[FlashSale]:
        ctx: RequestContext = info.context
        ctx.mark_uncacheable()
        sale = await repository.get_sale(await ctx.session(), parse_id(id))
        return (await _sales_with_stock(ctx, [sale]))[0] if sale else None


@strawberry.type
class FlashSaleMutation:
    @strawberry.mutation(description="ADMIN only. Opens once inventory has set the stock aside (status PREPARING "
                                      "until then, UNAVAILABLE if it cannot).")
    async def create_flash_sale(self, info: strawberry.Info, input: CreateFlashSaleInput) -> FlashSale:
        ctx: RequestContext = info.context
        sale = await flash_sales.create_flash_sale(
            await ctx.session(), http=ctx.resources.extras[INTERNAL_HTTP], settings=ctx.settings,
            caller=ctx.require_user(),
            sale_in=flash_sales.FlashSaleIn(variant_id=parse_id(input.variant_id, field="variantId"),
                                            sale_price=input.sale_price, starts_at=input.starts_at,
                                            ends_at=input.ends_at, stock=input.stock,
                                            per_user_limit=input.per_user_limit))
        return FlashSale.from_record(sale, None)

    @strawberry.mutation(description="A one-time purchase token for the caller, short-lived; issued from shortly "
                                      "before the start until the end, a few per minute per user.")
    async def issue_flash_sale_token(self, info: strawberry.Info, sale_id: strawberry.ID) -> FlashSaleToken:
        ctx: RequestContext = info.context
        issued = await flash_sales.issue_token(await ctx.session(), ctx.redis, ctx.settings,
                                               caller=ctx.require_user(), sale_id=parse_id(sale_id, field="saleId"))
        return FlashSaleToken(token=issued.token, expires_at=issued.expires_at)

    @strawberry.mutation(description="One atomic attempt: window, token, per-user limit and stock are checked and "
                                      "the units reserved in one step. The same idempotencyKey returns the same "
                                      "result and never buys twice.")
    async def purchase_flash_sale(self, info: strawberry.Info, sale_id: strawberry.ID, token: str,
                                  idempotency_key: str, quantity: Optional[int] = 1) -> FlashSalePurchase:
        ctx: RequestContext = info.context
        caller = ctx.require_user()
        sid = parse_id(sale_id, field="saleId")
        sale = flash_sales.cached_sale_rules(sid) or await flash_sales.sale_rules(await ctx.session(), sid)
        request = ctx.request
        peer = request.client.host if request is not None and request.client else None
        forwarded = request.headers.get("x-forwarded-for") if request is not None else None
        result = await flash_sales.purchase(
            ctx.redis, ctx.settings, ctx.resources.extras[INTERNAL_HTTP], caller=caller, sale=sale,
            purchase_in=flash_sales.PurchaseIn(sale_id=sale.id, token=token, quantity=1 if quantity is None else quantity,
                                               idempotency_key=idempotency_key),
            client_ip=flash_sales.client_bucket_ip(forwarded, peer), authorization=ctx.authorization)
        order_id = strawberry.ID(str(result.order_id)) if result.order_id else None
        return FlashSalePurchase(status=FlashSalePurchaseStatus(result.status), remaining_stock=result.remaining_stock,
                                 order=Order(id=order_id) if order_id else None, order_id=order_id)


@strawberry.type(name="Subscription")
class FlashSaleSubscription:
    @strawberry.subscription(description="The remaining stock now, then whenever it changes (coalesced: at most a "
                                         "few updates a second); ends when the sale ends.")
    async def flash_sale_stock(self, info: strawberry.Info, sale_id: strawberry.ID) -> AsyncGenerator[int, None]:
        ctx: RequestContext = info.context
        sid = parse_id(sale_id, field="saleId")
        pubsub = ctx.redis.pubsub()
        # Subscribe before the first read, so a change in between is not missed.
        await pubsub.subscribe(store.stock_channel(sid))
        try:
            sale = await flash_sales.get_sale_or_raise(await ctx.session(), sid)
            await ctx.release_session()
            interval = ctx.settings.flash_sale_stock_push_interval_seconds
            last = (await store.remaining_stock(ctx.redis, [sid]))[sid]
            last = sale.total_stock if last is None else last
            yield max(last, 0)
            while True:
                left = (sale.ends_at - flash_sales.utcnow()).total_seconds()
                if left <= 0:
                    return
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=min(left, 30.0))
                if message is None:
                    continue
                # Coalesce: whatever else changes in the next interval is folded into one update.
                await asyncio.sleep(interval)
                while await pubsub.get_message(ignore_subscribe_messages=True, timeout=0) is not None:
                    pass
                current = (await store.remaining_stock(ctx.redis, [sid]))[sid]
                if current is not None and current != last:
                    last = current
                    yield max(current, 0)
        finally:
            await ctx.release_session()
            await pubsub.aclose()


ENTITY_TYPES: list[type] = [ProductVariant, Order]

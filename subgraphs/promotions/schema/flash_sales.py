"""Flash sales' part of the promotions schema: validates input shapes, calls flash_sales.py, maps records."""
from __future__ import annotations

import contextlib
import enum
from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry
from strawberry.federation.schema_directives import Key
from strawberry.federation.types import FieldSet

from kernel.graphql import Info, Money
from kernel.ids import parse_id
from subgraphs.promotions import flash_sales
from subgraphs.promotions.models import FlashSaleStatus

# The domain's enum is the GraphQL enum: strawberry.enum registers the class itself (and returns it).
strawberry.enum(FlashSaleStatus, name="FlashSaleStatus")


@strawberry.enum(description="The outcome of one purchase attempt; only SUCCESS bought anything.")
class FlashSalePurchaseStatus(enum.Enum):
    SUCCESS = "SUCCESS"
    SOLD_OUT = "SOLD_OUT"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    NOT_ACTIVE = "NOT_ACTIVE"
    INVALID_TOKEN = "INVALID_TOKEN"
    RATE_LIMITED = "RATE_LIMITED"


@strawberry.federation.type(directives=[Key(fields=FieldSet("id"), resolvable=False)])
class ProductVariant:
    """Stub of the catalog's entity: only the key, resolved there."""
    id: strawberry.ID


@strawberry.federation.type(directives=[Key(fields=FieldSet("id"), resolvable=False)])
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
    status: FlashSaleStatus

    @classmethod
    def from_stock(cls, stock: flash_sales.SaleStock) -> FlashSale:
        sale = stock.sale
        return cls(id=strawberry.ID(str(sale.id)), variant=ProductVariant(id=strawberry.ID(str(sale.variant_id))),
                   name=sale.name, sku=sale.sku, sale_price=Money.of(sale.sale_price, sale.currency),
                   regular_price=Money.of(sale.regular_price, sale.currency), starts_at=sale.starts_at,
                   ends_at=sale.ends_at, total_stock=sale.total_stock, remaining_stock=stock.remaining,
                   per_user_limit=sale.per_user_limit, status=stock.status)


@strawberry.type
class FlashSaleToken:
    token: str = strawberry.field(description="One-time; pass it to purchaseFlashSale")
    expires_at: datetime


@strawberry.type
class FlashSalePurchase:
    status: FlashSalePurchaseStatus
    remaining_stock: int
    order: Order | None = strawberry.field(
        description="SUCCESS only: the order holding the units, AWAITING_PAYMENT at the sale price (pay it with "
                    "payOrder before the payment timeout, or the units go back to the sale)")
    order_id: strawberry.ID | None = strawberry.field(description="The order's id, without a fetch from orders")


@strawberry.input
class CreateFlashSaleInput:
    variant_id: strawberry.ID
    sale_price: str = strawberry.field(description="Decimal string, e.g. \"9.99\"; at most the regular price")
    starts_at: datetime
    ends_at: datetime
    stock: int = strawberry.field(description="Units for sale, set aside in inventory before the start")
    per_user_limit: int = strawberry.field(description="Units one user may hold (reserved or paid)")


@strawberry.type
class FlashSaleQuery:
    @strawberry.field(description="Newest first. active: true = in its window now, false = not; omitted = all. "
                                  "first is 1..100.")
    async def flash_sales(self, info: Info, active: bool | None = None, first: int = 50) -> list[FlashSale]:
        ctx = info.context
        ctx.mark_uncacheable()
        sales = await flash_sales.list_sales(await ctx.session(), ctx.redis, active=active, first=first)
        return [FlashSale.from_stock(s) for s in sales]

    @strawberry.field
    async def flash_sale(self, info: Info, id: strawberry.ID) -> FlashSale | None:
        ctx = info.context
        ctx.mark_uncacheable()
        sale = await flash_sales.find_sale(await ctx.session(), ctx.redis, parse_id(id))
        return FlashSale.from_stock(sale) if sale else None


@strawberry.type
class FlashSaleMutation:
    @strawberry.mutation(description="ADMIN only. Opens once inventory has set the stock aside (status PREPARING "
                                      "until then, UNAVAILABLE if it cannot).")
    async def create_flash_sale(self, info: Info, input: CreateFlashSaleInput) -> FlashSale:
        ctx = info.context
        sale = await flash_sales.create_flash_sale(
            await ctx.session(), http=ctx.resources.peers, settings=ctx.settings,
            caller=ctx.require_user(),
            sale_in=flash_sales.FlashSaleIn(variant_id=parse_id(input.variant_id, field="variantId"),
                                            sale_price=input.sale_price, starts_at=input.starts_at,
                                            ends_at=input.ends_at, stock=input.stock,
                                            per_user_limit=input.per_user_limit))
        return FlashSale.from_stock(flash_sales.SaleStock.of(sale, None))  # not loaded into Redis yet

    @strawberry.mutation(description="A one-time purchase token for the caller, short-lived; issued from shortly "
                                      "before the start until the end, a few per minute per user.")
    async def issue_flash_sale_token(self, info: Info, sale_id: strawberry.ID) -> FlashSaleToken:
        ctx = info.context
        issued = await flash_sales.issue_token(await ctx.session(), ctx.redis, ctx.settings,
                                               caller=ctx.require_user(), sale_id=parse_id(sale_id, field="saleId"))
        return FlashSaleToken(token=issued.token, expires_at=issued.expires_at)

    @strawberry.mutation(description="One atomic attempt: window, token, per-user limit and stock are checked and "
                                      "the units reserved in one step. The same idempotencyKey returns the same "
                                      "result and never buys twice.")
    async def purchase_flash_sale(self, info: Info, sale_id: strawberry.ID, token: str,
                                  idempotency_key: str, quantity: int | None = 1) -> FlashSalePurchase:
        ctx = info.context
        caller = ctx.require_user()
        purchase_in = flash_sales.PurchaseIn(sale_id=parse_id(sale_id, field="saleId"), token=token,
                                             quantity=1 if quantity is None else quantity,
                                             idempotency_key=idempotency_key)
        request = ctx.request
        result = await flash_sales.purchase_in_sale(
            ctx.session, ctx.redis, ctx.settings, ctx.resources.peers, caller=caller,
            purchase_in=purchase_in,
            forwarded_for=request.headers.get("x-forwarded-for") if request is not None else None,
            peer=request.client.host if request is not None and request.client else None,
            authorization=ctx.authorization)
        order_id = strawberry.ID(str(result.order_id)) if result.order_id else None
        return FlashSalePurchase(status=FlashSalePurchaseStatus(result.status), remaining_stock=result.remaining_stock,
                                 order=Order(id=order_id) if order_id else None, order_id=order_id)


@strawberry.type(name="Subscription")
class FlashSaleSubscription:
    @strawberry.subscription(description="The remaining stock now, then whenever it changes (coalesced: at most a "
                                         "few updates a second); ends when the sale ends.")
    async def flash_sale_stock(self, info: Info, sale_id: strawberry.ID) -> AsyncGenerator[int, None]:
        ctx = info.context
        updates = flash_sales.remaining_stock_stream(ctx.resources.session_factory, ctx.redis, ctx.settings,
                                                     parse_id(sale_id, field="saleId"))
        async with contextlib.aclosing(updates):  # a client leaving ends the service's stream at once
            async for remaining in updates:
                yield remaining


ENTITY_TYPES: list[type] = [ProductVariant, Order]

"""GraphQL adapter of the orders domain: validates input shapes, calls service.py, maps records to types."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

import strawberry
from strawberry.federation.schema_directives import Key
from strawberry.federation.types import FieldSet

from kernel.errors import BadUserInput
from kernel.graphql import Info, Money, PageInfo, PostalAddressInput, build_schema
from kernel.ids import entity_key, parse_id
from subgraphs.orders import service
from subgraphs.orders.dataloaders import HistoryByOrderIdLoader, ItemsByOrderIdLoader, OrderByIdLoader
from subgraphs.orders.models import CancellationReason, HistoryRecord, OrderItemRecord, OrderRecord, OrderStatus

# The domain's enums are the GraphQL enums: strawberry.enum registers the class itself (and returns it).
strawberry.enum(OrderStatus, name="OrderStatus")
strawberry.enum(CancellationReason, name="CancellationReason")


@strawberry.federation.type(directives=[Key(fields=FieldSet("id"), resolvable=False)])
class ProductVariant:
    """Stub of the catalog's entity: only the key, resolved there."""
    id: strawberry.ID


@strawberry.type(description="The address the order ships to, as it was when the order was placed.")
class OrderAddress:
    line1: str
    line2: str | None
    city: str
    region: str | None
    postal_code: str
    country: str

    @classmethod
    def from_dict(cls, address: dict[str, Any]) -> OrderAddress:
        return cls(line1=address["line1"], line2=address.get("line2"), city=address["city"],
                   region=address.get("region"), postal_code=address["postal_code"], country=address["country"])


@strawberry.type(description="A line of the order, priced as the cart priced it at checkout.")
class OrderItem:
    id: strawberry.ID
    variant: ProductVariant
    product_id: strawberry.ID
    sku: str
    name: str
    quantity: int
    unit_price: Money
    line_total: Money

    @classmethod
    def from_record(cls, item: OrderItemRecord, currency: str) -> OrderItem:
        return cls(id=strawberry.ID(str(item.id)), variant=ProductVariant(id=strawberry.ID(str(item.variant_id))),
                   product_id=strawberry.ID(str(item.product_id)), sku=item.sku, name=item.name,
                   quantity=item.quantity, unit_price=Money.of(item.unit_price, currency),
                   line_total=Money.of(item.line_total, currency))


@strawberry.type
class OrderStatusChange:
    seq: int = strawberry.field(description="1 for the order's creation, +1 per transition")
    status: OrderStatus
    previous_status: OrderStatus | None
    at: datetime
    reason: str | None = strawberry.field(description="The cancellation reason for CANCELLED")

    @classmethod
    def from_record(cls, row: HistoryRecord) -> OrderStatusChange:
        return cls(seq=row.seq, status=row.to_status, previous_status=row.from_status, at=row.at, reason=row.reason)


@strawberry.type(description="One status transition of an order, live.")
class OrderStatusEvent:
    order_id: strawberry.ID
    seq: int
    status: OrderStatus
    previous_status: OrderStatus | None
    at: datetime
    reason: str | None

    @classmethod
    def from_record(cls, row: HistoryRecord) -> OrderStatusEvent:
        return cls(order_id=strawberry.ID(str(row.order_id)), seq=row.seq, status=row.to_status,
                   previous_status=row.from_status, at=row.at, reason=row.reason)


@strawberry.federation.type(keys=["id"])
class Order:
    id: strawberry.ID
    number: str = strawberry.field(description="Human order number, e.g. NC-00012345")
    status: OrderStatus
    subtotal: Money
    discount: Money
    total: Money
    shipping_address: OrderAddress | None = strawberry.field(
        description="Null only for a flash-sale order not yet paid (payOrder supplies it)")
    cancellation_reason: CancellationReason | None
    created_at: datetime
    updated_at: datetime
    user: User
    _record: strawberry.Private[OrderRecord]

    @classmethod
    def from_record(cls, order: OrderRecord) -> Order:
        return cls(id=strawberry.ID(str(order.id)), number=order.number, status=order.status,
                   subtotal=Money.of(order.subtotal, order.currency), discount=Money.of(order.discount, order.currency),
                   total=Money.of(order.total, order.currency),
                   shipping_address=OrderAddress.from_dict(order.shipping_address)
                   if order.shipping_address is not None else None,
                   cancellation_reason=CancellationReason(order.cancellation_reason) if order.cancellation_reason
                   else None, created_at=order.created_at, updated_at=order.updated_at,
                   user=User(id=strawberry.ID(str(order.user_id))), _record=order)

    @strawberry.field(description="What shipping costs; included in total (0 when no shipping zone covers the "
                                  "address)")
    def shipping_total(self) -> Money:
        return Money.of(self._record.shipping_total, self._record.currency)

    @strawberry.field(description="The coupon whose discount the order carries (upper-case); null: none")
    def coupon_code(self) -> str | None:
        return self._record.coupon_code

    @strawberry.field
    async def items(self, info: Info) -> list[OrderItem]:
        items = await info.context.loader(ItemsByOrderIdLoader).load(self._record.id)
        return [OrderItem.from_record(i, self._record.currency) for i in items]

    @strawberry.field(description="Every status the order went through, oldest first.")
    async def status_history(self, info: Info) -> list[OrderStatusChange]:
        rows = await info.context.loader(HistoryByOrderIdLoader).load(self._record.id)
        return [OrderStatusChange.from_record(r) for r in rows]

    @classmethod
    async def resolve_reference(cls, info: Info, id: strawberry.ID, **_unknown: Any) -> Order | None:
        # Entities are as private as the order(id) field: the owner or an admin.
        ctx = info.context
        ctx.mark_uncacheable()
        caller = ctx.require_user()
        order_id = entity_key(id)
        order = await ctx.loader(OrderByIdLoader).load(order_id) if order_id else None
        return cls.from_record(service.check_access(caller, order)) if order is not None else None


@strawberry.type
class OrderEdge:
    cursor: str
    node: Order


@strawberry.type
class OrderConnection:
    edges: list[OrderEdge]
    page_info: PageInfo
    _user_id: strawberry.Private[int]
    _status: strawberry.Private[OrderStatus | None]

    @strawberry.field(description="Orders matching the filter (all pages).")
    async def total_count(self, info: Info) -> int:
        return await service.count_user_orders(await info.context.session(), self._user_id, status=self._status)


@strawberry.federation.type(keys=["id"])
class User:
    id: strawberry.ID

    @classmethod
    def resolve_reference(cls, id: strawberry.ID, **_unknown: Any) -> User:
        return cls(id=id)

    @strawberry.field(description="The user's orders, newest first; the user themself or an admin only. "
                                  "`after` takes an endCursor; first is 1..100.")
    async def orders(self, info: Info, first: int | None = 20, after: str | None = None,
                     status: OrderStatus | None = None) -> OrderConnection:
        ctx = info.context
        ctx.mark_uncacheable()
        caller = ctx.require_user()
        user_id = entity_key(self.id)
        if user_id is None:
            raise BadUserInput("'id' is not a valid user id")
        page = await service.user_orders(await ctx.session(), caller, user_id,
                                         first=20 if first is None else first,
                                         after=parse_id(after, field="after") if after is not None else None,
                                         status=status)
        loader = ctx.loader(OrderByIdLoader)
        for order in page.orders:
            loader.prime(order.id, order)
        edges = [OrderEdge(cursor=str(o.id), node=Order.from_record(o)) for o in page.orders]
        return OrderConnection(edges=edges, page_info=PageInfo(has_next_page=page.has_next_page,
                                                               end_cursor=edges[-1].cursor if edges else None),
                               _user_id=user_id, _status=status)


@strawberry.input
class ShippingAddressInput(PostalAddressInput):
    pass


@strawberry.input
class PaymentMethodInput:
    provider: str = strawberry.field(description="A configured provider, e.g. \"simulated\"")
    token: str = strawberry.field(description="Provider token, e.g. tok_visa")


@strawberry.input
class PlaceOrderInput:
    payment_method: PaymentMethodInput
    idempotency_key: str = strawberry.field(description="8..128 characters; a retry with the same key and the same "
                                                        "request returns the same order")
    cart_id: strawberry.ID | None = strawberry.field(default=None, description="Default: the caller's cart")
    shipping_address_id: strawberry.ID | None = strawberry.field(
        default=None, description="A saved address; exactly one of shippingAddressId and shippingAddress")
    shipping_address: ShippingAddressInput | None = None
    coupon_code: str | None = None
    shipping_method_id: strawberry.ID | None = strawberry.field(
        default=None, description="One of shippingMethods(cartId, address); default: the only (or cheapest) "
                                  "applicable method. BAD_USER_INPUT when unknown or not offered for this address "
                                  "and cart")

    def to_service(self) -> service.PlaceOrderIn:
        address = self.shipping_address
        return service.PlaceOrderIn(
            idempotency_key=self.idempotency_key,
            payment_method=service.PaymentMethodIn(provider=self.payment_method.provider,
                                                   token=self.payment_method.token),
            cart_id=str(self.cart_id) if self.cart_id is not None else None,
            shipping_address_id=parse_id(self.shipping_address_id, field="shippingAddressId")
            if self.shipping_address_id is not None else None,
            shipping_address=address.to_postal_address() if address is not None else None,
            coupon_code=self.coupon_code,
            shipping_method_id=parse_id(self.shipping_method_id, field="shippingMethodId")
            if self.shipping_method_id is not None else None)


@strawberry.input(description="Pay an order created without a payment method (a flash-sale purchase).")
class PayOrderInput:
    order_id: strawberry.ID
    payment_method: PaymentMethodInput
    shipping_address_id: strawberry.ID | None = strawberry.field(
        default=None, description="A saved address; exactly one of shippingAddressId and shippingAddress")
    shipping_address: ShippingAddressInput | None = None

    def to_service(self) -> service.PayOrderIn:
        address = self.shipping_address
        return service.PayOrderIn(
            order_id=parse_id(self.order_id, field="orderId"),
            payment_method=service.PaymentMethodIn(provider=self.payment_method.provider,
                                                   token=self.payment_method.token),
            shipping_address_id=parse_id(self.shipping_address_id, field="shippingAddressId")
            if self.shipping_address_id is not None else None,
            shipping_address=address.to_postal_address() if address is not None else None)


@strawberry.type
class Query:
    @strawberry.field(description="The owner or an admin (else FORBIDDEN); null for an unknown id.")
    async def order(self, info: Info, id: strawberry.ID) -> Order | None:
        ctx = info.context
        ctx.mark_uncacheable()
        order = await service.get_order_for(await ctx.session(), ctx.require_user(), parse_id(id))
        return Order.from_record(order) if order else None


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create an order from the cart and reserve its stock: AWAITING_PAYMENT "
                                      "(the saga charges it), CANCELLED with reason OUT_OF_STOCK, or PENDING "
                                      "while inventory cannot answer (the saga reserves it then). Idempotent per "
                                      "idempotencyKey.")
    async def place_order(self, info: Info, input: PlaceOrderInput) -> Order:
        ctx = info.context
        caller = ctx.require_user()
        placed = await service.place_order(
            await ctx.session(), http=ctx.resources.peers, settings=ctx.settings,
            caller_id=caller.user_id, authorization=ctx.authorization, order_in=input.to_service())
        if placed.created:
            # The order (and its order.placed) is committed before inventory is asked: whatever happens to the
            # reservation call, the saga finds the order and finishes it.
            await ctx.finish(commit=True)
            placed = await service.reserve_at_checkout(
                ctx.resources.session_factory, ctx.redis, http=ctx.resources.peers, settings=ctx.settings,
                placed=placed, authorization=ctx.authorization)
        # The new order's lines and history are already in hand: prime the loaders instead of re-reading them.
        if placed.items is not None:
            ctx.loader(ItemsByOrderIdLoader).prime(placed.order.id, placed.items)
        if placed.history is not None:
            ctx.loader(HistoryByOrderIdLoader).prime(placed.order.id, placed.history)
        return Order.from_record(placed.order)

    @strawberry.mutation(description="The buyer pays an AWAITING_PAYMENT order that has no payment method yet (a "
                                      "flash-sale order): the saga then charges it as for placeOrder. CONFLICT "
                                      "once a payment was submitted or the order left AWAITING_PAYMENT.")
    async def pay_order(self, info: Info, input: PayOrderInput) -> Order:
        ctx = info.context
        order = await service.pay_order(await ctx.session(), http=ctx.resources.peers,
                                        settings=ctx.settings, caller=ctx.require_user(),
                                        authorization=ctx.authorization, pay_in=input.to_service())
        return Order.from_record(order)

    @strawberry.mutation(description="The owner or an admin, before the order ships; CONFLICT afterwards.")
    async def cancel_order(self, info: Info, id: strawberry.ID) -> Order:
        ctx = info.context
        order = await service.cancel_order(await ctx.session(), ctx.redis, ctx.settings, caller=ctx.require_user(),
                                           order_id=parse_id(id))
        return Order.from_record(order)

    @strawberry.mutation(description="ADMIN only: a PAID order has shipped (no shipment, no tracking).",
                         deprecation_reason="Use createShipment (shipping): the first shipment moves the order to "
                                            "SHIPPED and carries tracking")
    async def mark_order_shipped(self, info: Info, id: strawberry.ID) -> Order:
        ctx = info.context
        order = await service.mark_shipped(await ctx.session(), ctx.redis, ctx.settings, caller=ctx.require_user(),
                                           order_id=parse_id(id))
        return Order.from_record(order)

    @strawberry.mutation(description="ADMIN only: a SHIPPED order was delivered.",
                         deprecation_reason="Use markShipmentDelivered (shipping): the order is DELIVERED once every "
                                            "line has shipped and every shipment is delivered")
    async def mark_order_delivered(self, info: Info, id: strawberry.ID) -> Order:
        ctx = info.context
        order = await service.mark_delivered(await ctx.session(), ctx.redis, ctx.settings,
                                             caller=ctx.require_user(), order_id=parse_id(id))
        return Order.from_record(order)


@strawberry.type
class Subscription:
    @strawberry.subscription(description="The order's status history, then every new transition live; ends once "
                                         "no further status can follow. Owner or admin only.")
    async def order_status_changed(self, info: Info,
                                   order_id: strawberry.ID) -> AsyncGenerator[OrderStatusEvent, None]:
        ctx = info.context
        changes = service.order_status_stream(ctx.resources.session_factory, ctx.redis, caller=ctx.require_user(),
                                              order_id=parse_id(order_id, field="orderId"))
        async with contextlib.aclosing(changes):  # a client leaving ends the service's stream at once
            async for change in changes:
                yield OrderStatusEvent.from_record(change)


schema = build_schema(query=Query, mutation=Mutation, subscription=Subscription,
                      types=[Order, User, ProductVariant])

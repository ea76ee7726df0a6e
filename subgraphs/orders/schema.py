"""GraphQL adapter of the orders domain: validates input shapes, calls service.py, maps records to types."""
from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from decimal import Decimal
from typing import Any, Optional

import orjson
import strawberry
from strawberry.federation.schema_directives import Key

from kernel.errors import BadUserInput
from kernel.graphql import RequestContext, build_schema
from kernel.ids import entity_key, parse_id
from subgraphs.orders import clients, events, repository, service
from subgraphs.orders.dataloaders import HistoryByOrderIdLoader, ItemsByOrderIdLoader, OrderByIdLoader
from subgraphs.orders.errors import NotYourOrder, OrderNotFound
from subgraphs.orders.models import CancellationReason, HistoryRecord, OrderItemRecord, OrderRecord
from subgraphs.orders.models import OrderStatus as OrderStatusValue

OrderStatus = strawberry.enum(OrderStatusValue, name="OrderStatus")
CancellationReasonEnum = strawberry.enum(CancellationReason, name="CancellationReason")


@strawberry.federation.type(shareable=True, description="An amount of money; amount is a decimal string.")
class Money:
    amount: str = strawberry.field(description="Decimal string with 2 places, e.g. \"19.99\"")
    currency: str = strawberry.field(description="ISO 4217 code, e.g. \"USD\"")

    @classmethod
    def of(cls, amount: Decimal, currency: str) -> "Money":
        return cls(amount=events.money(amount), currency=currency)


@strawberry.federation.type(shareable=True)
class PageInfo:
    has_next_page: bool
    end_cursor: Optional[str]


@strawberry.federation.type(directives=[Key(fields="id", resolvable=False)])
class ProductVariant:
    """Stub of the catalog's entity: only the key, resolved there."""
    id: strawberry.ID


@strawberry.type(description="The address the order ships to, as it was when the order was placed.")
class OrderAddress:
    line1: str
    line2: Optional[str]
    city: str
    region: Optional[str]
    postal_code: str
    country: str

    @classmethod
    def from_dict(cls, address: dict[str, Any]) -> "OrderAddress":
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
    def from_record(cls, item: OrderItemRecord, currency: str) -> "OrderItem":
        return cls(id=strawberry.ID(str(item.id)), variant=ProductVariant(id=strawberry.ID(str(item.variant_id))),
                   product_id=strawberry.ID(str(item.product_id)), sku=item.sku, name=item.name,
                   quantity=item.quantity, unit_price=Money.of(item.unit_price, currency),
                   line_total=Money.of(item.line_total, currency))


@strawberry.type
class OrderStatusChange:
    seq: int = strawberry.field(description="1 for the order's creation, +1 per transition")
    status: OrderStatus  # type: ignore[valid-type]
    previous_status: Optional[OrderStatus]  # type: ignore[valid-type]
    at: datetime
    reason: Optional[str] = strawberry.field(description="The cancellation reason for CANCELLED")

    @classmethod
    def from_record(cls, row: HistoryRecord) -> "OrderStatusChange":
        return cls(seq=row.seq, status=row.to_status, previous_status=row.from_status, at=row.at, reason=row.reason)


@strawberry.type(description="One status transition of an order, live.")
class OrderStatusEvent:
    order_id: strawberry.ID
    seq: int
    status: OrderStatus  # type: ignore[valid-type]
    previous_status: Optional[OrderStatus]  # type: ignore[valid-type]
    at: datetime
    reason: Optional[str]

    @classmethod
    def from_record(cls, row: HistoryRecord) -> "OrderStatusEvent":
        return cls(order_id=strawberry.ID(str(row.order_id)), seq=row.seq, status=row.to_status,
                   previous_status=row.from_status, at=row.at, reason=row.reason)


@strawberry.federation.type(keys=["id"])
class Order:
    id: strawberry.ID
    number: str = strawberry.field(description="Human order number, e.g. NC-00012345")
    status: OrderStatus  # type: ignore[valid-type]
    subtotal: Money
    discount: Money
    total: Money
    shipping_address: Optional[OrderAddress] = strawberry.field(
        description="Null only for a flash-sale order not yet paid (payOrder supplies it)")
    cancellation_reason: Optional[CancellationReasonEnum]  # type: ignore[valid-type]
    created_at: datetime
    updated_at: datetime
    user: "User"
    _record: strawberry.Private[OrderRecord]

    @classmethod
    def from_record(cls, order: OrderRecord) -> "Order":
        return cls(id=strawberry.ID(str(order.id)), number=order.number, status=order.status,
                   subtotal=Money.of(order.subtotal, order.currency), discount=Money.of(order.discount, order.currency),
                   total=Money.of(order.total, order.currency),
                   shipping_address=OrderAddress.from_dict(order.shipping_address)
                   if order.shipping_address is not None else None,
                   cancellation_reason=CancellationReason(order.cancellation_reason) if order.cancellation_reason
                   else None, created_at=order.created_at, updated_at=order.updated_at,
                   user=User(id=strawberry.ID(str(order.user_id))), _record=order)

    @strawberry.field(description="The coupon whose discount the order carries (upper-case); null: none")
    def coupon_code(self) -> Optional[str]:
        return self._record.coupon_code

    @strawberry.field
    async def items(self, info: strawberry.Info) -> list[OrderItem]:
        items = await info.context.loader(ItemsByOrderIdLoader).load(self._record.id)
        return [OrderItem.from_record(i, self._record.currency) for i in items]

    @strawberry.field(description="Every status the order went through, oldest first.")
    async def status_history(self, info: strawberry.Info) -> list[OrderStatusChange]:
        rows = await info.context.loader(HistoryByOrderIdLoader).load(self._record.id)
        return [OrderStatusChange.from_record(r) for r in rows]

    @classmethod
    async def resolve_reference(cls, info: strawberry.Info, id: strawberry.ID, **_unknown: Any) -> Optional["Order"]:
        # Entities are as private as the order(id) field: the owner or an admin.
        ctx: RequestContext = info.context
        ctx.mark_uncacheable()
        caller = ctx.require_user()
        order_id = entity_key(id)
        order = await ctx.loader(OrderByIdLoader).load(order_id) if order_id else None
        if order is None:
            return None
        if not service.can_access(caller, order):
            raise NotYourOrder()
        return cls.from_record(order)


@strawberry.type
class OrderEdge:
    cursor: str
    node: Order


@strawberry.type
class OrderConnection:
    edges: list[OrderEdge]
    page_info: PageInfo
    _user_id: strawberry.Private[int]
    _status: strawberry.Private[Optional[OrderStatusValue]]

    @strawberry.field(description="Orders matching the filter (all pages).")
    async def total_count(self, info: strawberry.Info) -> int:
        return await repository.count_user_orders(await info.context.session(), self._user_id,
                                                  status=self._status.value if self._status else None)


@strawberry.federation.type(keys=["id"])
class User:
    id: strawberry.ID

    @classmethod
    def resolve_reference(cls, id: strawberry.ID, **_unknown: Any) -> "User":
        return cls(id=id)

    @strawberry.field(description="The user's orders, newest first; the user themself or an admin only. "
                                  "`after` takes an endCursor; first is 1..100.")
    async def orders(self, info: strawberry.Info, first: Optional[int] = 20, after: Optional[str] = None,
                     status: Optional[OrderStatus] = None) -> OrderConnection:  # type: ignore[valid-type]
        ctx: RequestContext = info.context
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
class ShippingAddressInput:
    line1: str
    city: str
    postal_code: str
    country: str = strawberry.field(description="ISO 3166-1 alpha-2, e.g. US")
    line2: Optional[str] = None
    region: Optional[str] = None


@strawberry.input
class PaymentMethodInput:
    provider: str = strawberry.field(description="A configured provider, e.g. \"simulated\"")
    token: str = strawberry.field(description="Provider token, e.g. tok_visa")


@strawberry.input
class PlaceOrderInput:
    payment_method: PaymentMethodInput
    idempotency_key: str = strawberry.field(description="8..128 characters; a retry with the same key and the same "
                                                        "request returns the same order")
    cart_id: Optional[strawberry.ID] = strawberry.field(default=None, description="Default: the caller's cart")
    shipping_address_id: Optional[strawberry.ID] = strawberry.field(
        default=None, description="A saved address; exactly one of shippingAddressId and shippingAddress")
    shipping_address: Optional[ShippingAddressInput] = None
    coupon_code: Optional[str] = None

    def to_service(self) -> service.PlaceOrderIn:
        address = self.shipping_address
        return service.PlaceOrderIn(
            idempotency_key=self.idempotency_key,
            payment_method=service.PaymentMethodIn(provider=self.payment_method.provider,
                                                   token=self.payment_method.token),
            cart_id=str(self.cart_id) if self.cart_id is not None else None,
            shipping_address_id=parse_id(self.shipping_address_id, field="shippingAddressId")
            if self.shipping_address_id is not None else None,
            shipping_address=service.AddressIn(line1=address.line1, line2=address.line2, city=address.city,
                                               region=address.region, postal_code=address.postal_code,
                                               country=address.country) if address is not None else None,
            coupon_code=self.coupon_code)


@strawberry.input(description="Pay an order created without a payment method (a flash-sale purchase).")
class PayOrderInput:
    order_id: strawberry.ID
    payment_method: PaymentMethodInput
    shipping_address_id: Optional[strawberry.ID] = strawberry.field(
        default=None, description="A saved address; exactly one of shippingAddressId and shippingAddress")
    shipping_address: Optional[ShippingAddressInput] = None

    def to_service(self) -> service.PayOrderIn:
        address = self.shipping_address
        return service.PayOrderIn(
            order_id=parse_id(self.order_id, field="orderId"),
            payment_method=service.PaymentMethodIn(provider=self.payment_method.provider,
                                                   token=self.payment_method.token),
            shipping_address_id=parse_id(self.shipping_address_id, field="shippingAddressId")
            if self.shipping_address_id is not None else None,
            shipping_address=service.AddressIn(line1=address.line1, line2=address.line2, city=address.city,
                                               region=address.region, postal_code=address.postal_code,
                                               country=address.country) if address is not None else None)


@strawberry.type
class Query:
    @strawberry.field(description="The owner or an admin (else FORBIDDEN); null for an unknown id.")
    async def order(self, info: strawberry.Info, id: strawberry.ID) -> Optional[Order]:
        ctx: RequestContext = info.context
        ctx.mark_uncacheable()
        order = await service.get_order_for(await ctx.session(), ctx.require_user(), parse_id(id))
        return Order.from_record(order) if order else None


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create a PENDING order from the cart; idempotent per idempotencyKey.")
    async def place_order(self, info: strawberry.Info, input: PlaceOrderInput) -> Order:
        ctx: RequestContext = info.context
        caller = ctx.require_user()
        placed = await service.place_order(
            await ctx.session(), http=ctx.resources.extras[clients.INTERNAL_HTTP], settings=ctx.settings,
            caller_id=caller.user_id, authorization=ctx.authorization, order_in=input.to_service())
        # The new order's lines and history are already in hand: prime the loaders instead of re-reading them.
        if placed.items is not None:
            ctx.loader(ItemsByOrderIdLoader).prime(placed.order.id, placed.items)
        if placed.history is not None:
            ctx.loader(HistoryByOrderIdLoader).prime(placed.order.id, placed.history)
        return Order.from_record(placed.order)

    @strawberry.mutation(description="The buyer pays an AWAITING_PAYMENT order that has no payment method yet (a "
                                      "flash-sale order): the saga then charges it as for placeOrder. CONFLICT "
                                      "once a payment was submitted or the order left AWAITING_PAYMENT.")
    async def pay_order(self, info: strawberry.Info, input: PayOrderInput) -> Order:
        ctx: RequestContext = info.context
        order = await service.pay_order(await ctx.session(), http=ctx.resources.extras[clients.INTERNAL_HTTP],
                                        settings=ctx.settings, caller=ctx.require_user(),
                                        authorization=ctx.authorization, pay_in=input.to_service())
        return Order.from_record(order)

    @strawberry.mutation(description="The owner or an admin, before the order ships; CONFLICT afterwards.")
    async def cancel_order(self, info: strawberry.Info, id: strawberry.ID) -> Order:
        ctx: RequestContext = info.context
        order = await service.cancel_order(await ctx.session(), ctx.redis, ctx.settings, caller=ctx.require_user(),
                                           order_id=parse_id(id))
        return Order.from_record(order)

    @strawberry.mutation(description="ADMIN only: a PAID order has shipped.")
    async def mark_order_shipped(self, info: strawberry.Info, id: strawberry.ID) -> Order:
        ctx: RequestContext = info.context
        order = await service.mark_shipped(await ctx.session(), ctx.redis, ctx.settings, caller=ctx.require_user(),
                                           order_id=parse_id(id))
        return Order.from_record(order)

    @strawberry.mutation(description="ADMIN only: a SHIPPED order was delivered.")
    async def mark_order_delivered(self, info: strawberry.Info, id: strawberry.ID) -> Order:
        ctx: RequestContext = info.context
        order = await service.mark_delivered(await ctx.session(), ctx.redis, ctx.settings,
                                             caller=ctx.require_user(), order_id=parse_id(id))
        return Order.from_record(order)


@strawberry.type
class Subscription:
    @strawberry.subscription(description="The order's status history, then every new transition live; ends once "
                                         "no further status can follow. Owner or admin only.")
    async def order_status_changed(self, info: strawberry.Info,
                                   order_id: strawberry.ID) -> AsyncGenerator[OrderStatusEvent, None]:
        ctx: RequestContext = info.context
        caller = ctx.require_user()
        oid = parse_id(order_id, field="orderId")
        # Subscribe BEFORE reading the history: a transition committed in between is then both in the history
        # and in the channel's buffer (dropped by seq), never in neither.
        pubsub = ctx.redis.pubsub()
        await pubsub.subscribe(service.status_channel(oid))
        try:
            session = await ctx.session()
            order = await repository.get_order(session, oid)
            if order is None:
                raise OrderNotFound(oid)
            if not service.can_access(caller, order):
                raise NotYourOrder()
            history = await repository.history_by_order_ids(session, [oid])
            await ctx.release_session()  # hold no database connection while waiting
            last_seq = 0
            for row in history:
                yield OrderStatusEvent.from_record(row)
                last_seq = row.seq
            if service.is_final_for_watchers(history):
                return
            async for message in pubsub.listen():
                if message["type"] != "message":
                    continue
                event = orjson.loads(message["data"])
                seq = int(event["seq"])
                if seq <= last_seq:
                    continue  # already sent from the history
                if seq == last_seq + 1:
                    row = HistoryRecord(order_id=oid, seq=seq,
                                        from_status=OrderStatusValue(event["previousStatus"])
                                        if event.get("previousStatus") else None,
                                        to_status=OrderStatusValue(event["status"]), reason=event.get("reason"),
                                        at=datetime.fromisoformat(event["at"]))
                    missing = [row]
                else:
                    # A gap (a publish lost, e.g. across a Redis reconnect): the history is the truth.
                    missing = await repository.history_by_order_ids(await ctx.session(), [oid], after_seq=last_seq)
                    await ctx.release_session()
                for row in missing:
                    yield OrderStatusEvent.from_record(row)
                    last_seq = row.seq
                    history.append(row)
                if service.is_final_for_watchers(history):
                    return
        finally:
            await ctx.release_session()
            await pubsub.aclose()


schema = build_schema(query=Query, mutation=Mutation, subscription=Subscription,
                      types=[Order, User, ProductVariant])

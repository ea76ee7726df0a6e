"""Business rules of the orders domain: placing orders idempotently, the status state machine, reads.

Service functions take the session first and never commit: the GraphQL request context or the saga's
consumer owns the transaction, and the outbox rows commit together with the state change.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import re
from collections.abc import AsyncGenerator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kernel.address import PostalAddress, clean_address
from kernel.auth import Principal
from kernel.errors import AppError, BadUserInput, Conflict, Forbidden
from kernel.events import EventPayload
from kernel.ids import next_id
from kernel.money import CENT, is_currency, normalize_coupon_code, parse_amount
from kernel.outbox import add_event
from kernel.pubsub import MAYBE_MISSED, listen
from kernel.settings import Settings
from kernel.uow import after_commit, unit_of_work
from subgraphs.orders import clients, events, repository
from subgraphs.orders.errors import (
    EmptyCart,
    IdempotencyKeyReused,
    IllegalTransition,
    NotYourOrder,
    OrderNotFound,
    PaymentAlreadySubmitted,
    UnknownCoupon,
)
from subgraphs.orders.models import SCHEMA, CancellationReason, HistoryRecord, OrderItemRecord, OrderRecord, OrderStatus
from subgraphs.promotions.events import FlashSalePurchased

log = logging.getLogger("nexuscart.orders")

S = OrderStatus
# The state machine, as data: anything not listed is a CONFLICT (docs/commerce-spine.md).
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING: frozenset({S.AWAITING_PAYMENT, S.CANCELLED}),
    S.AWAITING_PAYMENT: frozenset({S.PAID, S.CANCELLED}),
    # A refund (payment.refunded) moves a captured order to PARTIALLY_REFUNDED or, once all is refunded, REFUNDED.
    S.PAID: frozenset({S.SHIPPED, S.CANCELLED, S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.SHIPPED: frozenset({S.DELIVERED, S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.DELIVERED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.CANCELLED: frozenset({S.REFUNDED}),
    S.PARTIALLY_REFUNDED: frozenset({S.REFUNDED}),
    S.REFUNDED: frozenset(),
}

# Token shapes a provider documents, checked at checkout so a malformed one never reaches the saga. Stripe takes
# PaymentMethod ids (`pm_...`, including its test ids such as `pm_card_visa`), never raw card data.
PAYMENT_TOKEN_SHAPES: dict[str, re.Pattern[str]] = {"stripe": re.compile(r"pm_[A-Za-z0-9_]{1,250}")}


def status_channel(order_id: int) -> str:
    return f"orders:status:{order_id}"


# ---- input ------------------------------------------------------------------------------------------------

# A shipping address as the client gives it: the kernel's postal address (kernel/address.py cleans it).
AddressIn = PostalAddress


@dataclasses.dataclass(frozen=True)
class PaymentMethodIn:
    provider: str
    token: str


@dataclasses.dataclass(frozen=True)
class PlaceOrderIn:
    idempotency_key: str
    payment_method: PaymentMethodIn
    cart_id: str | None = None
    shipping_address_id: int | None = None
    shipping_address: AddressIn | None = None
    coupon_code: str | None = None
    shipping_method_id: int | None = None  # None: the only, else the cheapest, method offered (commerce-spine.md)


def validate_address_and_payment(address_id: int | None, address: AddressIn | None, payment_method: PaymentMethodIn,
                                 settings: Settings) -> tuple[AddressIn | None, PaymentMethodIn]:
    """What placeOrder and payOrder both take: exactly one of a saved address and an address, and a payment
    method of a configured provider. Returns the cleaned address (None for a saved one) and payment method."""
    if (address_id is None) == (address is None):
        raise BadUserInput("Pass exactly one of 'shippingAddressId' and 'shippingAddress'", field="shippingAddress")
    cleaned = clean_address(address, field_prefix="shippingAddress.") if address is not None else None
    providers = {p.strip() for p in settings.payment_providers.split(",") if p.strip()}
    provider = payment_method.provider.strip()
    if provider not in providers:
        raise BadUserInput(f"'paymentMethod.provider' must be one of: {', '.join(sorted(providers))}",
                           field="paymentMethod.provider")
    token = payment_method.token.strip()
    if not token or len(token) > 512:
        raise BadUserInput("'paymentMethod.token' must be 1..512 characters", field="paymentMethod.token")
    shape = PAYMENT_TOKEN_SHAPES.get(provider)
    if shape is not None and not shape.fullmatch(token):
        raise BadUserInput(f"'paymentMethod.token' is not a {provider} payment method id", field="paymentMethod.token")
    return cleaned, PaymentMethodIn(provider=provider, token=token)


def validate_place_order(order_in: PlaceOrderIn, settings: Settings) -> PlaceOrderIn:
    """Everything checkable without I/O, before anything is fetched or written."""
    key = order_in.idempotency_key.strip()
    if not 8 <= len(key) <= 128:
        raise BadUserInput("'idempotencyKey' must be 8..128 characters", field="idempotencyKey")
    address, payment_method = validate_address_and_payment(
        order_in.shipping_address_id, order_in.shipping_address, order_in.payment_method, settings)
    cart_id = (order_in.cart_id or "").strip() or None
    if cart_id is not None and len(cart_id) > 128:
        raise BadUserInput("'cartId' is not a valid cart id", field="cartId")
    coupon = requested_coupon_code(order_in.coupon_code)
    return PlaceOrderIn(idempotency_key=key, payment_method=payment_method,
                        cart_id=cart_id, shipping_address_id=order_in.shipping_address_id,
                        shipping_address=address, coupon_code=coupon, shipping_method_id=order_in.shipping_method_id)


def requested_coupon_code(raw: str | None) -> str | None:
    """The coupon code placeOrder names, or None for none. Codes are case-insensitive (promotions stores them
    upper-case); one that cannot exist is refused here."""
    if raw is None or not raw.strip():
        return None
    code = normalize_coupon_code(raw)
    if code is None:
        raise UnknownCoupon(raw.strip().upper()[:40])
    return code


def request_fingerprint(order_in: PlaceOrderIn) -> bytes:
    """What makes two placeOrder calls 'the same request' for one idempotency key: the validated input."""
    canonical = {"cart_id": order_in.cart_id, "shipping_address_id": order_in.shipping_address_id,
                 "shipping_address": order_in.shipping_address.as_dict() if order_in.shipping_address else None,
                 "payment": [order_in.payment_method.provider, order_in.payment_method.token],
                 "coupon": order_in.coupon_code}
    if order_in.shipping_method_id is not None:  # only then: fingerprints of requests without one are unchanged
        canonical["shipping_method"] = order_in.shipping_method_id
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).digest()


# ---- placing an order -------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class PlacedOrder:
    order: OrderRecord
    items: list[OrderItemRecord] | None  # None: not loaded (a replayed order); the loaders fetch them
    history: list[HistoryRecord] | None
    created: bool


def _checkout_lines(snapshot: dict[str, Any], caller_id: int) -> tuple[str | None, str, list[OrderItemRecord]]:
    owner = snapshot.get("user_id")
    if owner is not None and str(owner) != str(caller_id):
        raise Forbidden("This cart belongs to another user")
    lines = snapshot.get("items") or []
    if not lines:
        raise EmptyCart()
    currencies: set[str] = set()
    items = []
    try:
        for line in lines:
            quantity = int(line["quantity"])
            unit_price = parse_amount(line["unit_price"], field="unit_price")
            if quantity <= 0:
                raise ValueError("bad line")
            currencies.add(str(line.get("currency") or snapshot.get("currency") or ""))
            items.append(OrderItemRecord(order_id=0, id=next_id(), variant_id=int(line["variant_id"]),
                                         product_id=int(line["product_id"]), sku=str(line["sku"]),
                                         name=str(line["name"]), quantity=quantity, unit_price=unit_price,
                                         line_total=(unit_price * quantity).quantize(CENT)))
    except (KeyError, TypeError, ValueError, BadUserInput) as exc:  # the cart's answer, not the client's input
        raise clients.PeerUnavailable("cart: malformed checkout snapshot") from exc
    if not all(is_currency(c) for c in currencies):
        raise clients.PeerUnavailable("cart: malformed checkout snapshot (currency)")
    if len(currencies) != 1:
        raise BadUserInput("The cart mixes currencies; one order is paid in one currency", field="cartId")
    cart_id = snapshot.get("cart_id")
    return (str(cart_id) if cart_id is not None else None), currencies.pop(), items


def _address_from_users(body: dict[str, Any], caller_id: int) -> dict[str, Any]:
    if str(body.get("user_id")) != str(caller_id):
        raise Forbidden("This address belongs to another user")
    try:
        return {"line1": body["line1"], "line2": body.get("line2"), "city": body["city"],
                "region": body.get("region"), "postal_code": body["postal_code"], "country": body["country"]}
    except KeyError as exc:
        raise clients.PeerUnavailable("users: malformed address") from exc


async def place_order(session: AsyncSession, *, http: clients.PeerClient, settings: Settings, caller_id: int,
                      authorization: str | None, order_in: PlaceOrderIn) -> PlacedOrder:
    """Create a PENDING order from the caller's cart, or return the order this idempotency key already made.
    The caller commits it, then reserves its stock with `reserve_at_checkout`."""
    order_in = validate_place_order(order_in, settings)
    fingerprint = request_fingerprint(order_in)

    # The replay check runs while the peers answer: a retry after success must return the same order even
    # though the cart was emptied by then, and a first attempt pays no extra latency for the check.
    lookups: list[Any] = [
        repository.get_order_by_key(session, caller_id, order_in.idempotency_key),
        clients.fetch_checkout(http, settings.cart_service_url, cart_id=order_in.cart_id,
                               authorization=authorization)]
    if order_in.shipping_address_id is not None:
        lookups.append(clients.fetch_address(http, settings.users_service_url,
                                             address_id=order_in.shipping_address_id, authorization=authorization))
    existing, snapshot, *address = await asyncio.gather(*lookups, return_exceptions=True)
    if isinstance(existing, BaseException):
        raise existing
    if existing is not None:
        return _replay(existing, fingerprint)
    if isinstance(snapshot, BaseException):
        raise snapshot
    saved_address = address[0] if address else None
    if isinstance(saved_address, BaseException):
        raise saved_address

    cart_id, currency, items = _checkout_lines(snapshot, caller_id)
    if saved_address is not None:
        shipping = _address_from_users(saved_address, caller_id)
    else:
        assert order_in.shipping_address is not None  # validate_place_order: a saved address or an address
        shipping = order_in.shipping_address.as_dict()
    subtotal = sum((i.line_total for i in items), Decimal("0.00"))
    # Shipping is priced before the coupon is redeemed: the coupon stays the last step that can refuse the order.
    shipping_total, shipping_method_id = await _quote_shipping(
        http, settings, shipping, currency, items, subtotal, order_in.shipping_method_id, authorization)
    order_id = next_id()
    # The input's code, else the one applied to the cart. Redeemed last, once nothing else can refuse the order.
    coupon_code = order_in.coupon_code or _cart_coupon(snapshot)
    discount = Decimal("0.00")
    if coupon_code is not None:
        discount, order_id = await _redeem_coupon(http, settings, coupon_code, subtotal=subtotal, currency=currency,
                                                  idempotency_key=order_in.idempotency_key, order_id=order_id,
                                                  authorization=authorization)
    items = [dataclasses.replace(i, order_id=order_id) for i in items]
    order = await repository.insert_order_if_key_free(session, repository.NewOrder(
        id=order_id, user_id=caller_id, cart_id=cart_id, idempotency_key=order_in.idempotency_key,
        request_fingerprint=fingerprint, currency=currency, subtotal=subtotal, discount=discount,
        total=subtotal - discount + shipping_total, shipping_address=shipping,
        payment_provider=order_in.payment_method.provider, payment_token=order_in.payment_method.token, items=items,
        coupon_code=coupon_code, shipping_total=shipping_total, shipping_method_id=shipping_method_id))
    if order is None:
        # A concurrent request with the same key won (ON CONFLICT waited for its commit): answer with its order.
        winner = await repository.get_order_by_key(session, caller_id, order_in.idempotency_key)
        if winner is None:
            raise Conflict("A concurrent request with this idempotencyKey is still in progress; retry")
        if coupon_code is not None and winner.id != order_id:
            # The winner is a different request (no coupon): the use redeemed for our order would never be
            # released by a cancellation, so it is given back now.
            await _release_coupon(http, settings, order_id=order_id, authorization=authorization)
        return _replay(winner, fingerprint)
    await add_event(session, SCHEMA, order_placed(order, items), key=order.id)
    history = [HistoryRecord(order_id=order.id, seq=1, from_status=None, to_status=S.PENDING, reason=None,
                             at=order.created_at)]
    return PlacedOrder(order=order, items=items, history=history, created=True)


# What inventory's answer at checkout moves a new PENDING order to (its recorded decision about the order).
CHECKOUT_RESERVATION_STEPS: dict[str, tuple[OrderStatus, str | None]] = {
    "RESERVED": (S.AWAITING_PAYMENT, None),
    "OUT_OF_STOCK": (S.CANCELLED, CancellationReason.OUT_OF_STOCK.value),
}


async def reserve_at_checkout(session_factory: async_sessionmaker[AsyncSession], redis: Redis, *,
                              http: clients.PeerClient, settings: Settings, placed: PlacedOrder,
                              authorization: str | None) -> PlacedOrder:
    """The saga's first step while the shopper waits: inventory reserves the new (committed, PENDING) order's
    lines, all or none, and the order moves on with that answer in a transaction of its own, to
    AWAITING_PAYMENT (order.confirmed: payments charges it) or CANCELLED (OUT_OF_STOCK). That spares the order
    two Kafka hops (order.placed -> inventory, inventory.reserved -> orders) and tells the shopper at once.

    Nothing depends on it: the order was committed first, with its order.placed in the outbox. When inventory
    cannot be asked, or its answer is lost, the order stays PENDING and the saga takes it from there (inventory
    reserves on order.placed, or, having decided already, answers a re-sent one), exactly as without this
    call. Returns the order as it stands after the step."""
    if not settings.inventory_service_url or not placed.created or placed.items is None:
        return placed
    order = placed.order
    lines = [(i.variant_id, i.quantity) for i in placed.items]
    try:
        answer = await clients.reserve_stock(http, settings.inventory_service_url, order_id=order.id, items=lines,
                                             authorization=authorization)
        step = CHECKOUT_RESERVATION_STEPS.get(answer["outcome"])
    except AppError as exc:  # inventory refused the call: it decided nothing, and order.placed will ask it
        log.warning("stock not reserved at checkout; the saga will reserve it",
                    extra={"order_id": order.id, "error": exc.code.value})
        return placed
    except (clients.PeerUnavailable, KeyError, TypeError) as exc:
        # No answer (a timeout, a 5xx, a malformed body): inventory may have decided all the same, and then
        # order.placed would find the decision made and say nothing. Ask again right away, as the watchdog
        # would after SAGA_STEP_TIMEOUT_SECONDS: inventory answers the re-sent event with what it decided.
        log.warning("no answer from inventory at checkout; the saga asks it again",
                    extra={"order_id": order.id, "error": type(exc).__name__})
        async with unit_of_work(session_factory) as session:
            await add_event(session, SCHEMA, dataclasses.replace(order_placed(order, placed.items), reasked=True),
                            key=order.id)
        return placed
    if step is None:  # CANCELLED: the order was cancelled before inventory heard of it; the saga has it in hand
        return placed
    to_status, reason = step
    async with unit_of_work(session_factory) as session:
        applied = await transition(session, redis, settings, order.id, from_status=S.PENDING, to_status=to_status,
                                   reason=reason)
    if applied is None:
        # Moved already (the saga's event, or the customer's cancelOrder, got there first): the loaders read it.
        return PlacedOrder(order=await _reread(session_factory, order.id), items=placed.items, history=None,
                           created=True)
    moved = dataclasses.replace(order, status=to_status, status_seq=applied.seq, cancellation_reason=reason,
                                updated_at=applied.at)
    history = [*(placed.history or []), HistoryRecord(order_id=order.id, seq=applied.seq, from_status=S.PENDING,
                                                      to_status=to_status, reason=reason, at=applied.at)]
    return PlacedOrder(order=moved, items=placed.items, history=history, created=True)


async def _reread(session_factory: async_sessionmaker[AsyncSession], order_id: int) -> OrderRecord:
    async with unit_of_work(session_factory) as session:
        return await get_order_or_raise(session, order_id)


async def _quote_shipping(http: clients.PeerClient, settings: Settings, address: dict[str, Any], currency: str,
                          items: Sequence[OrderItemRecord], subtotal: Decimal, method_id: int | None,
                          authorization: str | None) -> tuple[Decimal, int | None]:
    """(shipping price, method id) from the shipping subgraph: one internal call, bounded by
    SHIPPING_QUOTE_TIMEOUT_SECONDS. (0, None) when no shipping subgraph is configured (SHIPPING_SERVICE_URL empty)
    or no shipping zone covers the address, as before shipping existed. An unknown method, or one that does not
    apply to this address and cart, is shipping's BAD_USER_INPUT on `shippingMethodId`: no order is created."""
    if not settings.shipping_service_url:
        if method_id is not None:
            raise BadUserInput("No shipping methods are offered", field="shippingMethodId")
        return Decimal("0.00"), None
    lines = [{"variant_id": str(i.variant_id), "product_id": str(i.product_id), "quantity": i.quantity,
              "line_total": str(i.line_total)} for i in items]
    try:
        body = await asyncio.wait_for(clients.quote_shipping(
            http, settings.shipping_service_url, address=address, currency=currency, items=lines,
            subtotal=subtotal, method_id=method_id, authorization=authorization),
            settings.shipping_quote_timeout_seconds)
    except TimeoutError as exc:
        raise clients.PeerUnavailable("shipping: quote timed out") from exc
    except AppError as exc:
        exc.field = "shippingMethodId"
        raise
    if not body.get("applies"):
        if method_id is not None:
            raise BadUserInput("No shipping method is offered for this address", field="shippingMethodId")
        return Decimal("0.00"), None
    try:
        price = parse_amount(body["price"], field="price")
        chosen = int(body["method_id"])
        if body["currency"] != currency or price < 0:
            raise ValueError("quote out of range")
    except (KeyError, TypeError, ValueError, BadUserInput) as exc:  # shipping's answer, not the client's input
        raise clients.PeerUnavailable("shipping: malformed quote") from exc
    return price, chosen


def _cart_coupon(snapshot: dict[str, Any]) -> str | None:
    code = snapshot.get("coupon_code")
    return requested_coupon_code(code) if isinstance(code, str) else None


async def _redeem_coupon(http: clients.PeerClient, settings: Settings, code: str, *, subtotal: Decimal,
                         currency: str, idempotency_key: str, order_id: int,
                         authorization: str | None) -> tuple[Decimal, int]:
    """Promotions takes one use of the code for this request, atomically against its limits, and answers the
    discount and the order id to create the order with: ours, or for a request it has seen before (same user
    and idempotency key: a retry, or a concurrent duplicate) the id the first one chose, so at most one order
    exists per redemption. Its refusals (unknown code, not applicable, expired, fully redeemed) reach the
    client with promotions' message and code, and no order is created."""
    try:
        body = await clients.redeem_coupon(http, settings.promotions_service_url, code=code, subtotal=subtotal,
                                           currency=currency, idempotency_key=idempotency_key, order_id=order_id,
                                           authorization=authorization)
    except AppError as exc:
        exc.field = "couponCode"
        raise
    try:
        discount = parse_amount(body["discount"], field="discount")
        redeemed_for = int(body["order_id"])
    except (KeyError, TypeError, ValueError, BadUserInput) as exc:  # promotions' answer, not the client's input
        raise clients.PeerUnavailable("promotions: malformed redemption") from exc
    if not Decimal(0) <= discount <= subtotal or redeemed_for <= 0:
        raise clients.PeerUnavailable("promotions: redemption out of range")
    return discount, redeemed_for


async def _release_coupon(http: clients.PeerClient, settings: Settings, *, order_id: int,
                          authorization: str | None) -> None:
    """Best effort: a failure is logged, and the client's answer (the winner's order, or a CONFLICT for a reused
    idempotency key) stands."""
    try:
        await clients.release_coupon(http, settings.promotions_service_url, order_id=order_id,
                                     authorization=authorization)
    except (AppError, clients.PeerUnavailable):
        log.error("coupon release failed", extra={"order_id": order_id})


def _replay(order: OrderRecord, fingerprint: bytes) -> PlacedOrder:
    if order.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused()
    return PlacedOrder(order=order, items=None, history=None, created=False)


# ---- events -----------------------------------------------------------------------------------------------

def order_placed(order: OrderRecord, items: Sequence[OrderItemRecord]) -> events.OrderPlaced:
    return events.OrderPlaced(
        order_id=order.id, user_id=order.user_id, number=order.number, cart_id=order.cart_id,
        items=[events.PlacedItem(variant_id=i.variant_id, product_id=i.product_id, sku=i.sku, name=i.name,
                                 quantity=i.quantity, unit_price=i.unit_price, item_id=i.id) for i in items],
        subtotal=order.subtotal, discount=order.discount, total=order.total, currency=order.currency,
        placed_at=order.created_at, coupon_code=order.coupon_code,
        shipping_total=order.shipping_total if order.shipping_method_id is not None else None,
        shipping_method_id=order.shipping_method_id)


@dataclasses.dataclass(frozen=True)
class ShipmentInfo:
    """What order.shipped tells about the shipment that shipped the order (shipping's shipment.created)."""
    shipment_id: int
    carrier: str
    tracking_number: str
    tracking_url: str | None


def transition_event(to_status: OrderStatus, order_id: int, from_status: OrderStatus, reason: str | None,
                     applied: repository.AppliedTransition, shipment: ShipmentInfo | None = None) -> EventPayload:
    """The event a transition into `to_status` emits (order.placed is emitted at creation)."""
    user_id = applied.user_id
    lines = [events.OrderLine(variant_id=int(i["variant_id"]), quantity=int(i["quantity"])) for i in applied.items]
    if to_status is S.AWAITING_PAYMENT:
        # An order is placed with its payment method, so both are set here; were one missing (null on the wire),
        # payments would refuse the event as malformed and the payment timeout would cancel the order.
        payment = events.PaymentMethod(
            provider=applied.payment_provider,  # type: ignore[arg-type]  # a null goes out on purpose (see above)
            token=applied.payment_token)  # type: ignore[arg-type]  # likewise
        return events.OrderConfirmed(order_id=order_id, user_id=user_id, amount=applied.total,
                                     currency=applied.currency, payment=payment)
    if to_status is S.PAID:
        return events.OrderPaid(order_id=order_id, user_id=user_id, items=lines)
    if to_status is S.CANCELLED:
        if reason is None:
            raise ValueError(f"order {order_id}: a cancellation needs a reason")
        return events.OrderCancelled(order_id=order_id, user_id=user_id, reason=reason,
                                     previous_status=from_status.value, items=lines)
    if to_status is S.SHIPPED and shipment is not None:
        return events.OrderShipped(order_id=order_id, user_id=user_id, shipment_id=shipment.shipment_id,
                                   carrier=shipment.carrier, tracking_number=shipment.tracking_number,
                                   tracking_url=shipment.tracking_url)
    simple: dict[OrderStatus, type[events.OrderRefunded | events.OrderPartiallyRefunded | events.OrderShipped
                                   | events.OrderDelivered]] = {
        S.REFUNDED: events.OrderRefunded, S.PARTIALLY_REFUNDED: events.OrderPartiallyRefunded,
        S.SHIPPED: events.OrderShipped, S.DELIVERED: events.OrderDelivered}
    return simple[to_status](order_id=order_id, user_id=user_id)


# ---- the state machine ------------------------------------------------------------------------------------

def check_transition(order_id: int, current: OrderStatus, target: OrderStatus) -> None:
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(order_id, current.value, target.value)


async def transition(session: AsyncSession, redis: Redis, settings: Settings, order_id: int, *,
                     from_status: OrderStatus, to_status: OrderStatus,
                     reason: str | None = None,
                     shipment: ShipmentInfo | None = None) -> repository.AppliedTransition | None:
    """Move the order from `from_status` to `to_status`: conditional UPDATE, history row, outbox event, and a
    live-status publish after commit. None when the order was not in `from_status` (someone else moved it)."""
    check_transition(order_id, from_status, to_status)
    applied = await repository.apply_transition(
        session, order_id, from_status=from_status.value, to_status=to_status.value, reason=reason,
        payment_timeout_seconds=settings.order_payment_timeout_seconds)
    if applied is None:
        return None
    await add_event(session, SCHEMA, transition_event(to_status, order_id, from_status, reason, applied, shipment),
                    key=order_id)
    message = orjson.dumps({"seq": applied.seq, "orderId": str(order_id), "status": to_status.value,
                            "previousStatus": from_status.value, "at": applied.at.isoformat(), "reason": reason})
    channel = status_channel(order_id)

    async def publish() -> None:
        await redis.publish(channel, message)

    # After commit: a subscriber must never see a status that could still roll back.
    after_commit(session, publish)
    return applied


def can_access(caller: Principal, order: OrderRecord) -> bool:
    return caller.user_id == order.user_id or caller.has_role("ADMIN")


def check_access(caller: Principal, order: OrderRecord) -> OrderRecord:
    """The order, when the caller may see it (its owner or an admin); FORBIDDEN otherwise."""
    if not can_access(caller, order):
        raise NotYourOrder()
    return order


async def get_order_or_raise(session: AsyncSession, order_id: int) -> OrderRecord:
    order = await repository.get_order(session, order_id)
    if order is None:
        raise OrderNotFound(order_id)
    return order


async def get_order_for(session: AsyncSession, caller: Principal, order_id: int) -> OrderRecord | None:
    """The order if the caller may see it; None if it does not exist; FORBIDDEN for someone else's order."""
    order = await repository.get_order(session, order_id)
    if order is not None and not can_access(caller, order):
        raise NotYourOrder()
    return order


async def change_status(session: AsyncSession, redis: Redis, settings: Settings, order_id: int,
                        to_status: OrderStatus, *, reason: str | None = None,
                        caller: Principal | None = None) -> OrderRecord:
    """A status change someone asked for (customer or operator): CONFLICT when the machine forbids it.
    Re-reads after losing a race, so the answer reflects the status that actually won."""
    for _ in range(3):
        order = await get_order_or_raise(session, order_id)
        if caller is not None and not can_access(caller, order):
            raise NotYourOrder()
        check_transition(order_id, order.status, to_status)
        applied = await transition(session, redis, settings, order_id, from_status=order.status,
                                   to_status=to_status, reason=reason)
        if applied is not None:
            return dataclasses.replace(
                order, status=to_status, status_seq=applied.seq, updated_at=applied.at,
                cancellation_reason=reason if to_status is S.CANCELLED else order.cancellation_reason)
    raise Conflict("The order changed concurrently; try again")


async def cancel_order(session: AsyncSession, redis: Redis, settings: Settings, *, caller: Principal,
                       order_id: int) -> OrderRecord:
    """The owner (or an admin) cancels before shipping; inventory releases and payments refunds on
    order.cancelled, and payment.refunded later moves a paid order on to REFUNDED."""
    return await change_status(session, redis, settings, order_id, S.CANCELLED,
                               reason=CancellationReason.CUSTOMER_CANCELLED.value, caller=caller)


async def mark_shipped(session: AsyncSession, redis: Redis, settings: Settings, *, caller: Principal,
                       order_id: int) -> OrderRecord:
    caller.require_role("ADMIN")
    return await change_status(session, redis, settings, order_id, S.SHIPPED)


async def mark_delivered(session: AsyncSession, redis: Redis, settings: Settings, *, caller: Principal,
                         order_id: int) -> OrderRecord:
    caller.require_role("ADMIN")
    return await change_status(session, redis, settings, order_id, S.DELIVERED)


async def apply_shipment_created(session: AsyncSession, redis: Redis, settings: Settings, order_id: int,
                                 shipment: ShipmentInfo) -> bool:
    """shipment.created: the first shipment of a PAID order moves it to SHIPPED, and order.shipped carries that
    shipment's tracking. Any other status (already SHIPPED by an earlier shipment, DELIVERED, refunded, unknown)
    changes nothing, so a redelivery or a later shipment is harmless."""
    return await transition(session, redis, settings, order_id, from_status=S.PAID, to_status=S.SHIPPED,
                            shipment=shipment) is not None


async def apply_shipment_delivered(session: AsyncSession, redis: Redis, settings: Settings, order_id: int,
                                   shipment: ShipmentInfo, order_delivered: bool) -> bool:
    """shipment.delivered with `order_delivered` (every line shipped, every shipment delivered): the order becomes
    DELIVERED. Should it still be PAID (its shipment.created not handled yet: another topic, another partition),
    it passes through SHIPPED first. Idempotent by state."""
    if not order_delivered:
        return False
    await apply_shipment_created(session, redis, settings, order_id, shipment)
    return await transition(session, redis, settings, order_id, from_status=S.SHIPPED,
                            to_status=S.DELIVERED) is not None


async def saga_step(session: AsyncSession, redis: Redis, settings: Settings, order_id: int, *,
                    expected: OrderStatus, to_status: OrderStatus, reason: str | None = None) -> bool:
    """A saga event's step. Idempotent by state: an order no longer in `expected` (a redelivery, a race lost
    to the customer or the sweeper) changes nothing. Returns whether the order moved."""
    if await transition(session, redis, settings, order_id, from_status=expected, to_status=to_status,
                        reason=reason) is not None:
        return True
    order = await repository.get_order(session, order_id)
    if order is None:
        log.warning("saga event for an unknown order", extra={"order_id": order_id, "target": to_status.value})
    elif order.status is S.CANCELLED and to_status is S.PAID:
        # A late provider answer: the order stays CANCELLED; payments refunds what it captured on
        # order.cancelled, so nothing is owed here.
        log.info("payment arrived for a cancelled order", extra={"order_id": order_id})
    else:
        log.info("saga event finds the order past that step", extra={
            "order_id": order_id, "status": order.status.value, "target": to_status.value})
    return False


async def get_order_for_saga(session: AsyncSession, order_id: int) -> OrderRecord | None:
    """The order a saga event names (None: unknown, e.g. an event from before a data reset)."""
    return await repository.get_order(session, order_id)


async def cancel_expired_payments(session: AsyncSession, redis: Redis, settings: Settings, *,
                                  batch_size: int = 50) -> int:
    """One batch of the payment-timeout sweep; the caller commits. SKIP LOCKED hands each expired order to
    exactly one sweeper, and the conditional UPDATE would refuse a second cancellation anyway."""
    cancelled = 0
    for order_id in await repository.lock_expired_awaiting_payment(session, batch_size):
        if await transition(session, redis, settings, order_id, from_status=S.AWAITING_PAYMENT,
                            to_status=S.CANCELLED, reason=CancellationReason.PAYMENT_TIMEOUT.value):
            cancelled += 1
    return cancelled


async def drive_stalled_sagas(session: AsyncSession, redis: Redis, settings: Settings, *,
                              batch_size: int = 50) -> dict[str, int]:
    """One batch of the saga watchdog (the payment-timeout sweep's sibling; the caller commits). An answer lost
    on the way (a broker that lost its topics, an event parked on the DLQ) must not strand an order:

      PENDING past saga_pending_give_up_seconds -> cancelled (PAYMENT_TIMEOUT); inventory releases what it held,
                                                 or records the order so a late order.placed reserves nothing
      PENDING, no move for the step timeout   -> order.placed re-sent (inventory reserves, or repeats its
                                                 recorded answer)
      AWAITING_PAYMENT, no move for that long -> order.confirmed re-sent, once (payments charges once per order,
                                                 and a provider may legitimately take long; the payment deadline
                                                 cancels the order in the end anyway)

    Each re-sent event has a new id, so it passes the consumers' inboxes; their own records make it harmless."""
    done = {"cancelled": 0, "reasked": 0}
    for order_id in await repository.lock_abandoned_pending(session, settings.saga_pending_give_up_seconds,
                                                            batch_size):
        if await transition(session, redis, settings, order_id, from_status=S.PENDING, to_status=S.CANCELLED,
                            reason=CancellationReason.PAYMENT_TIMEOUT.value):
            done["cancelled"] += 1
    for step in (S.PENDING, S.AWAITING_PAYMENT):
        for order_id in await repository.lock_stalled_sagas(session, step.value, settings.saga_step_timeout_seconds,
                                                             batch_size, once=step is S.AWAITING_PAYMENT):
            saga = await repository.touch_saga(session, order_id)
            order = await repository.get_order(session, order_id)
            if saga is None or order is None:
                continue
            if step is S.AWAITING_PAYMENT and not (saga.payment_provider and saga.payment_token):
                continue  # a flash-sale order waits for its buyer's payOrder; the payment deadline covers it
            event: EventPayload
            if step is S.PENDING:
                items = await repository.items_by_order_ids(session, [order_id])
                event = dataclasses.replace(order_placed(order, items), reasked=True)
            else:
                event = events.OrderConfirmed(
                    order_id=order_id, user_id=order.user_id, amount=order.total, currency=order.currency,
                    payment=events.PaymentMethod(provider=saga.payment_provider,  # type: ignore[arg-type]  # as in transition_event
                                                 token=saga.payment_token))  # type: ignore[arg-type]  # likewise
            await add_event(session, SCHEMA, event, key=order_id)
            done["reasked"] += 1
    return done


# ---- reads ------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class OrderPage:
    orders: list[OrderRecord]
    has_next_page: bool


async def user_orders(session: AsyncSession, caller: Principal, user_id: int, *, first: int,
                      after: int | None, status: OrderStatus | None) -> OrderPage:
    if caller.user_id != user_id and not caller.has_role("ADMIN"):
        raise Forbidden("Only the user or an admin can list these orders")
    if not 1 <= first <= 100:
        raise BadUserInput("'first' must be 1..100", field="first")
    rows = await repository.user_orders_page(session, user_id, status=status.value if status else None,
                                             before_id=after, limit=first + 1)
    return OrderPage(orders=rows[:first], has_next_page=len(rows) > first)


async def count_user_orders(session: AsyncSession, user_id: int, *, status: OrderStatus | None) -> int:
    """The user's orders (in `status`, if given) over all pages; `user_orders` has authorized the caller."""
    return await repository.count_user_orders(session, user_id, status=status.value if status else None)


def is_final_for_watchers(history: list[HistoryRecord]) -> bool:
    """No transition can follow (DELIVERED, REFUNDED), or none will: CANCELLED before any charge could have
    been taken (from PENDING, out of stock, or declined). An order cancelled while AWAITING_PAYMENT (by its
    owner, or by the timeout) may still see a late charge that payments then refunds, so its watchers stay
    subscribed for that REFUNDED."""
    last = history[-1]
    if last.to_status in (S.DELIVERED, S.REFUNDED):
        return True
    if last.to_status is not S.CANCELLED or any(h.to_status is S.PAID for h in history):
        return False
    return last.from_status is S.PENDING or last.reason in ("OUT_OF_STOCK", "PAYMENT_DECLINED")


def _published_change(order_id: int, message: dict[str, Any]) -> HistoryRecord:
    """A transition as `transition` publishes it on the order's status channel, as a history row."""
    return HistoryRecord(order_id=order_id, seq=int(message["seq"]),
                         from_status=S(message["previousStatus"]) if message.get("previousStatus") else None,
                         to_status=S(message["status"]), reason=message.get("reason"),
                         at=datetime.fromisoformat(message["at"]))


async def order_status_stream(session_factory: async_sessionmaker[AsyncSession], redis: Redis, *,
                              caller: Principal, order_id: int) -> AsyncGenerator[HistoryRecord, None]:
    """The order's status history, then every transition as it commits, in seq order without duplicates,
    until no further status can follow for a watcher (`is_final_for_watchers`). The owner or an admin only
    (FORBIDDEN; NOT_FOUND for an unknown order). Reads in short transactions of its own, so no database
    connection is held while waiting."""
    # Subscribe BEFORE reading the history: a transition committed in between is then both in the history
    # and in the channel's buffer (dropped by seq), never in neither.
    async with listen(redis, status_channel(order_id)) as transitions:
        async with unit_of_work(session_factory) as session:
            check_access(caller, await get_order_or_raise(session, order_id))
            history = await repository.history_by_order_ids(session, [order_id])
        last_seq = 0
        for row in history:
            yield row
            last_seq = row.seq
        if is_final_for_watchers(history):
            return
        async for data in transitions:
            published = orjson.loads(data) if data != MAYBE_MISSED else None
            seq = int(published["seq"]) if published else None
            if seq is not None and seq <= last_seq:
                continue  # already sent from the history
            if published is not None and seq == last_seq + 1:
                missing = [_published_change(order_id, published)]
            else:
                # A gap (a publish lost, e.g. across a Redis reconnect): the history is the truth.
                async with unit_of_work(session_factory) as session:
                    missing = await repository.history_by_order_ids(session, [order_id], after_seq=last_seq)
            for row in missing:
                yield row
                last_seq = row.seq
                history.append(row)
            if is_final_for_watchers(history):
                return


# ---- flash-sale orders ------------------------------------------------------------------------------------

def flash_sale_reservation(payload: Mapping[str, Any]) -> FlashSalePurchased:
    """A unit reservation made by promotions' purchase script, as orders accepts it: the `flashsale.purchased`
    payload (subgraphs/promotions/events.py), from that event or from the same body posted by the purchase.
    Raises ValueError (MalformedEvent among them) on a malformed or out-of-range one (a producer bug)."""
    return checked_reservation(FlashSalePurchased.from_payload(payload))


def checked_reservation(reservation: FlashSalePurchased) -> FlashSalePurchased:
    """Raises ValueError when the reservation is out of range (a producer bug: retried, then parked)."""
    if reservation.quantity <= 0 or reservation.unit_price < 0 or not is_currency(reservation.currency):
        raise ValueError("flash-sale reservation out of range")
    return reservation


def _reservation_fingerprint(reservation: FlashSalePurchased) -> bytes:
    canonical = dataclasses.asdict(reservation) | {"unit_price": str(reservation.unit_price)}
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).digest()


def flash_sale_idempotency_key(reservation_id: int) -> str:
    return f"flash-sale:{reservation_id}"


async def create_flash_sale_order(session: AsyncSession, settings: Settings,
                                  reservation: FlashSalePurchased) -> tuple[OrderRecord, bool]:
    """The order of a flash-sale reservation: created AWAITING_PAYMENT at the sale price, or the one already
    created for it (the purchase request and the reconciler may both ask). Returns (order, created)."""
    key = flash_sale_idempotency_key(reservation.reservation_id)
    # Insert first: the common case is a new order, and ON CONFLICT answers a repeat without a prior SELECT.
    line_total = (reservation.unit_price * reservation.quantity).quantize(CENT)
    item = OrderItemRecord(order_id=reservation.reservation_id, id=next_id(), variant_id=reservation.variant_id,
                           product_id=reservation.product_id, sku=reservation.sku, name=reservation.name,
                           quantity=reservation.quantity, unit_price=reservation.unit_price, line_total=line_total)
    order = await repository.insert_flash_sale_order_if_new(session, repository.NewFlashSaleOrder(
        id=reservation.reservation_id, user_id=reservation.user_id, flash_sale_id=reservation.sale_id,
        idempotency_key=key, request_fingerprint=_reservation_fingerprint(reservation), currency=reservation.currency,
        item=item), payment_timeout_seconds=settings.order_payment_timeout_seconds)
    if order is None:
        winner = await repository.get_order_by_key(session, reservation.user_id, key)
        if winner is None:
            raise Conflict("A concurrent request is creating this order; retry")
        return winner, False
    placed = dataclasses.replace(order_placed(order, [item]), flash_sale_id=reservation.sale_id,
                                 reservation_id=reservation.reservation_id, status=S.AWAITING_PAYMENT.value)
    await add_event(session, SCHEMA, placed, key=order.id)
    return order, True


@dataclasses.dataclass(frozen=True)
class PayOrderIn:
    order_id: int
    payment_method: PaymentMethodIn
    shipping_address_id: int | None = None
    shipping_address: AddressIn | None = None


async def pay_order(session: AsyncSession, *, http: clients.PeerClient, settings: Settings,
                    caller: Principal, authorization: str | None, pay_in: PayOrderIn) -> OrderRecord:
    """Attach the payment method and shipping address to an order created without them (a flash-sale order),
    then let the saga charge it: emits order.confirmed, which payments acts on, exactly as for placeOrder."""
    address, payment_method = validate_address_and_payment(pay_in.shipping_address_id, pay_in.shipping_address,
                                                           pay_in.payment_method, settings)
    order = await get_order_or_raise(session, pay_in.order_id)
    if order.user_id != caller.user_id:
        raise NotYourOrder()  # paying is the buyer's act; an admin can cancel, not pay
    if order.status is not S.AWAITING_PAYMENT:
        raise IllegalTransition(order.id, order.status.value, S.PAID.value)
    if pay_in.shipping_address_id is not None:
        body = await clients.fetch_address(http, settings.users_service_url, address_id=pay_in.shipping_address_id,
                                           authorization=authorization)
        shipping = _address_from_users(body, caller.user_id)
    else:
        assert address is not None  # validate_address_and_payment: a saved address or an address
        shipping = address.as_dict()
    attached = await repository.attach_payment(
        session, order.id, caller.user_id, provider=payment_method.provider, token=payment_method.token,
        shipping_address=shipping)
    if not attached:
        raise PaymentAlreadySubmitted(order.id)
    await add_event(session, SCHEMA, events.OrderConfirmed(
        order_id=order.id, user_id=order.user_id, amount=order.total, currency=order.currency,
        payment=events.PaymentMethod(provider=payment_method.provider, token=payment_method.token)), key=order.id)
    return dataclasses.replace(order, shipping_address=shipping)

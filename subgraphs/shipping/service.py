"""Shipping: the rules. Zones and methods (ADMIN), what a cart costs to ship to an address (the shopper's
`shippingMethods` and orders' checkout quote), shipments and their delivery, and what the domain learns from
other domains' events (variant weights and product sellers from the catalog, orders' lines and payment).
No GraphQL and no HTTP here (schema.py, internal.py, clients.py).

Pricing. The zone: the most specific zone covering the address (postal-code prefix, then region, then country
only; then the oldest). Its live methods in the cart's currency are offered unless the cart is heavier than the
method's `max_weight_grams`. Price: FLAT `price`; WEIGHT `price + price_per_kg x started kilograms`; ORDER_VALUE
the price of the highest tier whose `min_order_value` the cart's value reaches (no tier reached: not offered);
any kind is free once the cart's value reaches `free_above`. The cart's value is its lines' total before any
coupon; its weight the sum of quantity x the variant's `weightGrams` (learnt from catalog's events; a variant not
learnt yet weighs SHIPPING_DEFAULT_WEIGHT_GRAMS).
"""
from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.address import PostalAddress, clean_address
from kernel.auth import Principal
from kernel.errors import AppError, BadUserInput, Forbidden, NotFound
from kernel.ids import next_id
from kernel.money import CENT, check_currency, parse_amount
from kernel.outbox import add_event
from kernel.settings import Settings
from subgraphs.catalog.events import ProductDeleted, ProductSnapshot
from subgraphs.orders.events import OrderCancelled, OrderPaid, OrderPlaced
from subgraphs.shipping import carriers, clients, repository
from subgraphs.shipping.errors import (
    InvalidShippingInput,
    MethodNotFound,
    NotYourLines,
    OrderNotKnown,
    OrderNotShippable,
    ShipmentNotFound,
    ZoneNotFound,
)
from subgraphs.shipping.events import ShipmentCreated, ShipmentDelivered, ShipmentLine
from subgraphs.shipping.models import (
    SCHEMA,
    MethodRecord,
    OrderFactStatus,
    RateKind,
    ShipmentLineRecord,
    ShipmentRecord,
    ValueTier,
    ZoneRecord,
)

log = logging.getLogger("nexuscart.shipping")

ADMIN = "ADMIN"
SELLER = "SELLER"
MAX_NAME = 100
_TRACKING = re.compile(r"[A-Za-z0-9][A-Za-z0-9 -]{0,63}")
_REGION_OR_PREFIX = re.compile(r"[A-Z0-9-]{1,20}")


# ---- pricing ----------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class CartLine:
    variant_id: int
    quantity: int
    line_total: Decimal


@dataclasses.dataclass(frozen=True)
class Cart:
    """What shipping prices: the lines (for weight), their value, and the currency (None: an empty cart, which
    every method's currency prices)."""
    lines: tuple[CartLine, ...]
    value: Decimal
    currency: str | None

    @classmethod
    def empty(cls) -> Cart:
        return cls(lines=(), value=Decimal("0.00"), currency=None)


@dataclasses.dataclass(frozen=True)
class Offer:
    method: MethodRecord
    price: Decimal


def postal_key(postal_code: str) -> str:
    return postal_code.upper().replace(" ", "").replace("-", "")


def zone_specificity(zone: ZoneRecord, address: PostalAddress) -> int | None:
    """How specifically the zone covers the address (2 by postal prefix, 1 by region, 0 by country alone), or
    None when it does not cover it."""
    if address.country not in zone.countries:
        return None
    score = 0
    if zone.regions:
        if (address.region or "").strip().upper() not in zone.regions:
            return None
        score = 1
    if zone.postal_prefixes:
        code = postal_key(address.postal_code)
        if not any(code.startswith(p) for p in zone.postal_prefixes):
            return None
        score = 2
    return score


def best_zone(zones: Sequence[ZoneRecord], address: PostalAddress) -> ZoneRecord | None:
    covering = [(score, -z.id, z) for z in zones if (score := zone_specificity(z, address)) is not None]
    return max(covering, key=lambda c: (c[0], c[1]))[2] if covering else None


def price_of(method: MethodRecord, *, weight_grams: int, value: Decimal) -> Decimal | None:
    """What the method costs for a cart of this weight and value; None when it is not offered for it."""
    if method.max_weight_grams is not None and weight_grams > method.max_weight_grams:
        return None
    if method.kind is RateKind.FLAT:
        price = method.price
    elif method.kind is RateKind.WEIGHT:
        started_kg = -(-weight_grams // 1000)
        price = method.price + method.price_per_kg * started_kg
    else:
        reached = [t for t in method.value_tiers if value >= t.min_order_value]
        if not reached:
            return None
        price = max(reached, key=lambda t: t.min_order_value).price
    if method.free_above is not None and value >= method.free_above:
        price = Decimal("0.00")
    return price.quantize(CENT)


async def cart_weight(session: AsyncSession, settings: Settings, lines: Sequence[CartLine]) -> int:
    known = await repository.weights(session, sorted({line.variant_id for line in lines}))
    return sum(line.quantity * known.get(line.variant_id, settings.shipping_default_weight_grams) for line in lines)


async def offers_for(session: AsyncSession, settings: Settings, address: PostalAddress,
                     cart: Cart) -> list[Offer] | None:
    """The methods offered for this cart at this address, cheapest first (then fastest, then oldest); None when
    no zone covers the address at all (orders then charges no shipping, as before shipping existed)."""
    candidates = await repository.zones_of_country_with_methods(session, address.country)
    zone = best_zone([z for z, _ in candidates], address)
    if zone is None:
        return None
    weight = await cart_weight(session, settings, cart.lines)
    found = []
    for method in next(m for z, m in candidates if z.id == zone.id):
        if cart.currency is not None and method.currency != cart.currency:
            continue
        price = price_of(method, weight_grams=weight, value=cart.value)
        if price is not None:
            found.append(Offer(method=method, price=price))
    return sorted(found, key=lambda o: (o.price, o.method.max_days, o.method.id))


def cart_from_snapshot(snapshot: dict[str, Any]) -> Cart:
    """The cart's checkout snapshot (cart's /internal/checkout) as shipping prices it."""
    try:
        lines = tuple(CartLine(variant_id=int(i["variant_id"]), quantity=int(i["quantity"]),
                               line_total=(parse_amount(i["unit_price"], field="unit_price")
                                           * int(i["quantity"])).quantize(CENT))
                      for i in snapshot.get("items") or [])
    except (KeyError, TypeError, ValueError, BadUserInput) as exc:  # the cart's answer, not the client's input
        raise clients.PeerUnavailable("cart: malformed checkout snapshot") from exc
    if not lines:
        return Cart.empty()
    return Cart(lines=lines, value=sum((line.line_total for line in lines), Decimal("0.00")),
                currency=str(snapshot.get("currency") or "") or None)


async def shipping_methods(session: AsyncSession, http: clients.PeerClient | None, settings: Settings, *,
                           caller: Principal | None, authorization: str | None, cart_id: str | None,
                           address: PostalAddress) -> list[Offer]:
    """`shippingMethods(cartId, address)`: the cart is read from the cart subgraph (its internal checkout
    snapshot, with the caller's credentials: a guest cart by its id, a user's cart by its owner). Without cartId:
    the signed-in caller's cart, and for an anonymous caller (or a caller without a cart) an empty cart, i.e.
    each method's price for 0 g and an order value of 0."""
    address = clean_address(address, field_prefix="address.")
    cart = Cart.empty()
    if cart_id is not None or caller is not None:
        if http is None:
            raise clients.PeerUnavailable("shipping: no internal HTTP client")
        try:
            cart = cart_from_snapshot(await clients.fetch_checkout(http, settings.cart_service_url,
                                                                   cart_id=cart_id, authorization=authorization))
        except NotFound:
            if cart_id is not None:
                raise
    return await offers_for(session, settings, address, cart) or []


async def quote(session: AsyncSession, settings: Settings, body: dict[str, Any]) -> dict[str, Any]:
    """Orders' checkout quote (internal.py): the chosen method and its price for the order's lines, or
    `applies: false` when no zone covers the address. BAD_USER_INPUT: the method is unknown or not offered for
    this address and cart, or no method is (a zone covers the address, but nothing fits the cart)."""
    try:
        raw = body["address"]
        address = clean_address(PostalAddress(
            line1=str(raw["line1"]), city=str(raw["city"]), postal_code=str(raw["postal_code"]),
            country=str(raw["country"]), line2=raw.get("line2"), region=raw.get("region")))
        currency = check_currency(str(body["currency"]))
        lines = tuple(CartLine(variant_id=int(i["variant_id"]), quantity=int(i["quantity"]),
                               line_total=parse_amount(i["line_total"], field="line_total"))
                      for i in body["items"])
        method_id = int(body["method_id"]) if body.get("method_id") is not None else None
    except (KeyError, TypeError, ValueError) as exc:
        raise BadUserInput("malformed shipping quote request") from exc
    cart = Cart(lines=lines, value=sum((line.line_total for line in lines), Decimal("0.00")), currency=currency)
    offers = await offers_for(session, settings, address, cart)
    if offers is None:
        return {"applies": False}
    if method_id is None:
        if not offers:
            raise InvalidShippingInput("No shipping method is available for this address and cart",
                                       field="shippingMethodId")
        chosen = offers[0]  # the only one, or the cheapest
    else:
        match = [o for o in offers if o.method.id == method_id]
        if not match:
            raise InvalidShippingInput("This shipping method is not offered for this address and cart; see "
                                       "shippingMethods", field="shippingMethodId")
        chosen = match[0]
    return {"applies": True, "method_id": str(chosen.method.id), "name": chosen.method.name,
            "carrier": chosen.method.carrier, "price": str(chosen.price), "currency": chosen.method.currency}


# ---- zones and methods (ADMIN) ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ZoneIn:
    name: str
    countries: Sequence[str]
    regions: Sequence[str] = ()
    postal_code_prefixes: Sequence[str] = ()


@dataclasses.dataclass(frozen=True)
class MethodIn:
    """A method's terms; on update, None leaves a field as it is (`clear_*` empties the nullable ones)."""
    name: str | None = None
    carrier: str | None = None
    kind: RateKind | None = None
    currency: str | None = None
    price: str | None = None
    price_per_kg: str | None = None
    value_tiers: Sequence[tuple[str, str]] | None = None  # (min order value, price)
    free_above: str | None = None
    clear_free_above: bool = False
    max_weight_grams: int | None = None
    clear_max_weight: bool = False
    min_days: int | None = None
    max_days: int | None = None


def _name(value: str, field: str) -> str:
    name = value.strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise InvalidShippingInput(f"'{field}' must be 1..{MAX_NAME} characters", field=field)
    return name


def _codes(values: Sequence[str], field: str, pattern: re.Pattern[str], transform: Any = str.upper) -> list[str]:
    out = []
    for value in values:
        code = transform(value.strip())
        if not pattern.fullmatch(code):
            raise InvalidShippingInput(f"'{field}' has an invalid entry: {value[:30]!r}", field=field)
        out.append(code)
    return sorted(set(out))


async def create_zone(session: AsyncSession, *, caller: Principal, zone_in: ZoneIn) -> ZoneRecord:
    caller.require_role(ADMIN)
    countries = _codes(zone_in.countries, "countries", re.compile(r"[A-Z]{2}"))
    if not countries:
        raise InvalidShippingInput("A zone needs at least one country", field="countries")
    return await repository.insert_zone(session, {
        "id": next_id(), "name": _name(zone_in.name, "name"), "countries": countries,
        "regions": _codes(zone_in.regions, "regions", _REGION_OR_PREFIX),
        "postal_prefixes": _codes(zone_in.postal_code_prefixes, "postalCodePrefixes", _REGION_OR_PREFIX,
                                  postal_key)})


async def delete_zone(session: AsyncSession, *, caller: Principal, zone_id: int) -> bool:
    caller.require_role(ADMIN)
    if not await repository.delete_zone(session, zone_id):
        raise ZoneNotFound(zone_id)
    return True


async def list_zones(session: AsyncSession, *, caller: Principal) -> list[ZoneRecord]:
    caller.require_role(ADMIN)
    return await repository.list_zones(session)


async def methods_of_zones(session: AsyncSession, zone_ids: Sequence[int]) -> dict[int, list[MethodRecord]]:
    found: dict[int, list[MethodRecord]] = {z: [] for z in zone_ids}
    for method in await repository.methods_of_zones(session, zone_ids):
        found[method.zone_id].append(method)
    return found


def _amount(value: str, field: str) -> Decimal:
    try:
        amount = parse_amount(value, field=field)
    except BadUserInput:
        raise InvalidShippingInput(f"'{field}' must be a decimal amount such as \"4.99\"", field=field) from None
    if amount < 0:
        raise InvalidShippingInput(f"'{field}' must not be negative", field=field)
    return amount


def _method_values(method_in: MethodIn) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if method_in.name is not None:
        values["name"] = _name(method_in.name, "name")
    if method_in.carrier is not None:
        values["carrier"] = _name(method_in.carrier, "carrier")
    if method_in.kind is not None:
        values["kind"] = method_in.kind
    if method_in.currency is not None:
        try:
            values["currency"] = check_currency(method_in.currency)
        except BadUserInput:
            raise InvalidShippingInput("'currency' must be an ISO 4217 code such as USD", field="currency") from None
    if method_in.price is not None:
        values["price"] = _amount(method_in.price, "price")
    if method_in.price_per_kg is not None:
        values["price_per_kg"] = _amount(method_in.price_per_kg, "pricePerKg")
    if method_in.value_tiers is not None:
        tiers = [ValueTier(min_order_value=_amount(m, "valueTiers.minOrderValue"),
                           price=_amount(p, "valueTiers.price")) for m, p in method_in.value_tiers]
        values["value_tiers"] = sorted(tiers, key=lambda t: t.min_order_value)
    if method_in.free_above is not None:
        values["free_above"] = _amount(method_in.free_above, "freeAbove")
    elif method_in.clear_free_above:
        values["free_above"] = None
    if method_in.max_weight_grams is not None:
        if method_in.max_weight_grams <= 0:
            raise InvalidShippingInput("'maxWeightGrams' must be positive", field="maxWeightGrams")
        values["max_weight_grams"] = method_in.max_weight_grams
    elif method_in.clear_max_weight:
        values["max_weight_grams"] = None
    for field, key in (("minDays", "min_days"), ("maxDays", "max_days")):
        days = getattr(method_in, key)
        if days is not None:
            if not 0 <= days <= 365:
                raise InvalidShippingInput(f"'{field}' must be 0..365", field=field)
            values[key] = days
    return values


def _check_terms(method: dict[str, Any]) -> None:
    if method["min_days"] > method["max_days"]:
        raise InvalidShippingInput("'minDays' must not exceed 'maxDays'", field="minDays")
    if RateKind(method["kind"]) is RateKind.ORDER_VALUE and not method.get("value_tiers"):
        raise InvalidShippingInput("An ORDER_VALUE method needs at least one value tier", field="valueTiers")


async def create_method(session: AsyncSession, *, caller: Principal, zone_id: int,
                        method_in: MethodIn) -> MethodRecord:
    caller.require_role(ADMIN)
    values = _method_values(method_in)
    for required in ("name", "carrier", "kind", "min_days", "max_days"):
        if required not in values:
            raise InvalidShippingInput(f"'{required}' is required", field=required)
    values.setdefault("currency", "USD")
    values.setdefault("price", Decimal("0.00"))
    values.setdefault("price_per_kg", Decimal("0.00"))
    values.setdefault("value_tiers", [])
    _check_terms(values)
    if await repository.get_zone(session, zone_id) is None:
        raise ZoneNotFound(zone_id)
    return await repository.insert_method(session, {"id": next_id(), "zone_id": zone_id, **values})


async def update_method(session: AsyncSession, *, caller: Principal, method_id: int,
                        method_in: MethodIn) -> MethodRecord:
    caller.require_role(ADMIN)
    current = await repository.get_method(session, method_id)
    if current is None or current.deleted:
        raise MethodNotFound(method_id)
    values = _method_values(method_in)
    merged = {"kind": current.kind, "min_days": current.min_days, "max_days": current.max_days,
              "value_tiers": current.value_tiers, **values}
    _check_terms(merged)
    updated = await repository.update_method(session, method_id, values) if values else current
    if updated is None:
        raise MethodNotFound(method_id)
    return updated


async def delete_method(session: AsyncSession, *, caller: Principal, method_id: int) -> bool:
    """No longer offered; orders placed with it keep its id and the price they paid."""
    caller.require_role(ADMIN)
    if not await repository.delete_method(session, method_id):
        raise MethodNotFound(method_id)
    return True


# ---- shipments --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ShipmentIn:
    order_id: int
    lines: Sequence[tuple[int, int]]  # (order item id, quantity)
    carrier: str
    tracking_number: str


async def create_shipment(session: AsyncSession, *, caller: Principal, shipment_in: ShipmentIn) -> ShipmentRecord:
    """ADMIN, or the SELLER of every line in it: ship some or all of what is left of a PAID order's lines.
    CONFLICT unless the order is paid (and not cancelled); BAD_USER_INPUT for an unknown carrier or line, or a
    quantity above what is left to ship. Emits shipment.created (orders moves the order to SHIPPED)."""
    if not (caller.has_role(ADMIN) or caller.has_role(SELLER)):
        raise Forbidden("Only an admin or the product's seller can ship")
    carrier = carriers.carrier_key(shipment_in.carrier)
    if carrier is None:
        raise InvalidShippingInput(f"Unknown carrier; one of: {', '.join(sorted(carriers.CARRIERS))}",
                                   field="carrier")
    tracking = shipment_in.tracking_number.strip()
    if not _TRACKING.fullmatch(tracking):
        raise InvalidShippingInput("'trackingNumber' must be 1..64 letters, digits, spaces or dashes",
                                   field="trackingNumber")
    if not shipment_in.lines:
        raise InvalidShippingInput("A shipment needs at least one line", field="lines")
    wanted: dict[int, int] = {}
    for item_id, quantity in shipment_in.lines:
        if quantity <= 0:
            raise InvalidShippingInput("'quantity' must be positive", field="lines.quantity")
        wanted[item_id] = wanted.get(item_id, 0) + quantity

    order = await repository.lock_order(session, shipment_in.order_id)  # serializes this order's shipments
    if order is None:
        raise OrderNotKnown(shipment_in.order_id)
    if order.status is not OrderFactStatus.PAID:
        raise OrderNotShippable(order.order_id, order.status.value)
    lines = {line.item_id: line for line in await repository.lines_of(session, order.order_id)}
    unknown = [i for i in wanted if i not in lines]
    if unknown:
        raise InvalidShippingInput(f"Not a line of this order: {unknown[0]}", field="lines.orderItemId")
    if not caller.has_role(ADMIN):
        sellers = await repository.sellers(session, sorted({lines[i].product_id for i in wanted}))
        if any(sellers.get(lines[i].product_id) != caller.user_id for i in wanted):
            raise NotYourLines()
    for item_id, quantity in wanted.items():
        line = lines[item_id]
        if quantity > line.quantity - line.shipped:
            raise InvalidShippingInput(
                f"Line {item_id} has {line.quantity - line.shipped} of {line.quantity} left to ship",
                field="lines.quantity")
    for item_id, quantity in wanted.items():
        if not await repository.add_shipped(session, order.order_id, item_id, quantity):
            raise InvalidShippingInput(f"Line {item_id} has less left to ship", field="lines.quantity")
    shipment_lines = [ShipmentLineRecord(item_id=i, quantity=q) for i, q in sorted(wanted.items())]
    shipment = await repository.insert_shipment(session, {
        "id": next_id(), "order_id": order.order_id, "carrier": carrier, "tracking_number": tracking,
        "tracking_url": carriers.tracking_url(carrier, tracking), "status": "SHIPPED",
        "created_by": caller.user_id}, shipment_lines)
    fully_shipped, _ = await repository.order_delivery_state(session, order.order_id)
    await add_event(session, SCHEMA, ShipmentCreated(
        shipment_id=shipment.id, order_id=order.order_id, user_id=order.user_id, carrier=carrier,
        tracking_number=tracking, tracking_url=shipment.tracking_url,
        items=[ShipmentLine(item_id=line.item_id, quantity=line.quantity) for line in shipment_lines],
        shipped_at=shipment.shipped_at, fully_shipped=fully_shipped), key=order.order_id)
    return shipment


async def mark_delivered(session: AsyncSession, *, caller: Principal, shipment_id: int) -> ShipmentRecord:
    """ADMIN, or the seller who created the shipment. A delivered shipment stays as it is (no second event).
    Emits shipment.delivered; with every line shipped and every shipment delivered, orders makes the order
    DELIVERED."""
    shipment = await repository.get_shipment(session, shipment_id)
    if shipment is None:
        raise ShipmentNotFound(shipment_id)
    if not (caller.has_role(ADMIN) or (caller.has_role(SELLER) and shipment.created_by == caller.user_id)):
        raise Forbidden("Only an admin or the seller who shipped it can mark this shipment delivered")
    order = await repository.lock_order(session, shipment.order_id)
    delivered = await repository.set_delivered(session, shipment_id)
    if delivered is None or order is None:
        return shipment
    fully_shipped, all_delivered = await repository.order_delivery_state(session, shipment.order_id)
    assert delivered.delivered_at is not None
    await add_event(session, SCHEMA, ShipmentDelivered(
        shipment_id=shipment_id, order_id=order.order_id, user_id=order.user_id, carrier=delivered.carrier,
        tracking_number=delivered.tracking_number, tracking_url=delivered.tracking_url,
        delivered_at=delivered.delivered_at, order_delivered=fully_shipped and all_delivered), key=order.order_id)
    return delivered


async def shipments_for_orders(session: AsyncSession, caller: Principal,
                               order_ids: Sequence[int]) -> list[list[ShipmentRecord] | AppError]:
    """Order.shipments for a batch of orders: its owner's or an ADMIN's (FORBIDDEN, per order, for anyone
    else); [] for an order shipping has not heard of."""
    facts = await repository.order_facts(session, order_ids)
    found = await repository.shipments_by_order_ids(session, order_ids)
    out: list[list[ShipmentRecord] | AppError] = []
    for order_id in order_ids:
        fact = facts.get(order_id)
        if fact is not None and fact.user_id != caller.user_id and not caller.has_role(ADMIN):
            out.append(Forbidden("Only the order's owner or an admin can see its shipments"))
        else:
            out.append(found.get(order_id, []))
    return out


# ---- what shipping learns from other domains --------------------------------------------------------------

async def apply_product_snapshot(session: AsyncSession, settings: Settings, product: ProductSnapshot) -> None:
    await repository.apply_product(
        session, product_id=product.product_id, seller_id=product.seller_id, updated_at=product.updated_at,
        weights=[(v.variant_id, settings.shipping_default_weight_grams if v.weight_grams is None else v.weight_grams)
                 for v in product.variants])


async def apply_product_deleted(session: AsyncSession, product: ProductDeleted) -> None:
    """Nothing to forget: orders already placed still ship, and a deleted product is no longer in any cart."""


async def apply_order_placed(session: AsyncSession, order: OrderPlaced) -> None:
    """The order's lines (by order item id). An order.placed written before line ids were in it cannot be shipped
    through shipments (its lines are unknown here); the deprecated markOrderShipped still ships it."""
    await repository.record_order(session, order_id=order.order_id, user_id=order.user_id,
                                  status=OrderFactStatus.PLACED, number=order.number)
    await repository.record_order_lines(session, [
        {"order_id": order.order_id, "item_id": i.item_id, "variant_id": i.variant_id, "product_id": i.product_id,
         "sku": i.sku, "name": i.name, "quantity": i.quantity} for i in order.items if i.item_id is not None])


async def apply_order_paid(session: AsyncSession, order: OrderPaid) -> None:
    await repository.record_order(session, order_id=order.order_id, user_id=order.user_id,
                                  status=OrderFactStatus.PAID)


async def apply_order_cancelled(session: AsyncSession, order: OrderCancelled) -> None:
    await repository.record_order(session, order_id=order.order_id, user_id=order.user_id,
                                  status=OrderFactStatus.CANCELLED)

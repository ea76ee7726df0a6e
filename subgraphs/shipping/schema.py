"""GraphQL adapter of the shipping domain: validates input shapes, calls service.py, maps records to types.

Shipping extends orders' `Order` with `shipments` (resolve_reference builds a stub without I/O; one loader
answers a whole page of orders). `Order.shippingTotal` is orders' own field (stored on the order).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from kernel.graphql import Info, Money, PostalAddressInput, RequestContext, build_schema
from kernel.ids import entity_key, parse_id
from subgraphs.shipping import carriers, service
from subgraphs.shipping.dataloaders import ShipmentsByOrderIdLoader
from subgraphs.shipping.models import MethodRecord, RateKind, ShipmentRecord, ShipmentStatus, ZoneRecord

strawberry.enum(RateKind, name="ShippingRateKind",
                description="FLAT: price; WEIGHT: price + pricePerKg per started kg; ORDER_VALUE: the price of the "
                            "highest value tier the order value reaches")
strawberry.enum(ShipmentStatus, name="ShipmentStatus")


@strawberry.type(description="A way to ship a cart to an address, priced for that cart.")
class ShippingMethod:
    id: strawberry.ID
    name: str
    carrier: str
    price: Money = strawberry.field(description="For this cart and address (0 when free above a threshold)")
    min_days: int = strawberry.field(description="Delivery estimate, in days")
    max_days: int

    @classmethod
    def from_offer(cls, offer: service.Offer) -> ShippingMethod:
        m = offer.method
        return cls(id=strawberry.ID(str(m.id)), name=m.name, carrier=m.carrier,
                   price=Money.of(offer.price, m.currency), min_days=m.min_days, max_days=m.max_days)


@strawberry.type
class ShippingValueTier:
    min_order_value: str
    price: str


@strawberry.type(description="ADMIN: a shipping method's terms, as configured.")
class ShippingMethodSettings:
    id: strawberry.ID
    zone_id: strawberry.ID
    name: str
    carrier: str
    kind: RateKind
    currency: str
    price: str
    price_per_kg: str
    value_tiers: list[ShippingValueTier]
    free_above: str | None
    max_weight_grams: int | None
    min_days: int
    max_days: int

    @classmethod
    def from_record(cls, m: MethodRecord) -> ShippingMethodSettings:
        return cls(id=strawberry.ID(str(m.id)), zone_id=strawberry.ID(str(m.zone_id)), name=m.name,
                   carrier=m.carrier, kind=m.kind, currency=m.currency, price=str(m.price),
                   price_per_kg=str(m.price_per_kg),
                   value_tiers=[ShippingValueTier(min_order_value=str(t.min_order_value), price=str(t.price))
                                for t in m.value_tiers],
                   free_above=str(m.free_above) if m.free_above is not None else None,
                   max_weight_grams=m.max_weight_grams, min_days=m.min_days, max_days=m.max_days)


@strawberry.type(description="ADMIN: where a set of shipping methods applies.")
class ShippingZone:
    id: strawberry.ID
    name: str
    countries: list[str]
    regions: list[str]
    postal_code_prefixes: list[str]

    @classmethod
    def from_record(cls, z: ZoneRecord) -> ShippingZone:
        return cls(id=strawberry.ID(str(z.id)), name=z.name, countries=z.countries, regions=z.regions,
                   postal_code_prefixes=z.postal_prefixes)

    @strawberry.field(description="Its methods (deleted ones are gone)")
    async def methods(self, info: Info) -> list[ShippingMethodSettings]:
        found = await service.methods_of_zones(await info.context.session(), [int(self.id)])
        return [ShippingMethodSettings.from_record(m) for m in found[int(self.id)]]


@strawberry.type
class ShipmentLine:
    order_item_id: strawberry.ID
    quantity: int


@strawberry.type(description="Some or all of an order's lines, sent with one carrier.")
class Shipment:
    id: strawberry.ID
    carrier: str
    tracking_number: str
    tracking_url: str | None = strawberry.field(description="The carrier's tracking page")
    status: ShipmentStatus
    lines: list[ShipmentLine]
    shipped_at: datetime
    delivered_at: datetime | None

    @classmethod
    def from_record(cls, s: ShipmentRecord) -> Shipment:
        return cls(id=strawberry.ID(str(s.id)), carrier=carriers.CARRIERS.get(s.carrier, (s.carrier,))[0],
                   tracking_number=s.tracking_number,
                   tracking_url=s.tracking_url, status=s.status,
                   lines=[ShipmentLine(order_item_id=strawberry.ID(str(line.item_id)), quantity=line.quantity)
                          for line in s.lines],
                   shipped_at=s.shipped_at, delivered_at=s.delivered_at)


# Owned by orders; shipping contributes `shipments` (no description here: composition keeps orders').
@strawberry.federation.type(keys=["id"])
class Order:
    id: strawberry.ID

    @classmethod
    def resolve_reference(cls, id: strawberry.ID, **_unknown: Any) -> Order | None:
        return cls(id=id) if entity_key(id) is not None else None

    @strawberry.field(description="Its shipments, oldest first (the owner or an admin).")
    async def shipments(self, info: Info) -> list[Shipment]:
        ctx = _ctx(info)
        found = await ctx.loader(ShipmentsByOrderIdLoader).load(int(self.id))
        return [Shipment.from_record(s) for s in found]


@strawberry.input(description="A postal address, as users' address book takes it (the isDefault flags are "
                               "ignored here).")
class AddressInput(PostalAddressInput):
    is_default_shipping: bool = False
    is_default_billing: bool = False


@strawberry.input
class ShippingZoneInput:
    name: str
    countries: list[str] = strawberry.field(description="ISO 3166-1 alpha-2 codes, e.g. [\"US\"]")
    regions: list[str] = strawberry.field(default_factory=list, description="Optional: only these regions "
                                                                             "(as addresses spell them, e.g. CA)")
    postal_code_prefixes: list[str] = strawberry.field(default_factory=list,
                                                       description="Optional: only postal codes starting so")

    def to_service(self) -> service.ZoneIn:
        return service.ZoneIn(name=self.name, countries=self.countries, regions=self.regions,
                               postal_code_prefixes=self.postal_code_prefixes)


@strawberry.input
class ShippingValueTierInput:
    min_order_value: str
    price: str


@strawberry.input(description="A method's terms. Create: name, carrier, kind, minDays and maxDays are required; "
                               "currency defaults to USD. Update: omitted fields stay.")
class ShippingMethodInput:
    name: str | None = None
    carrier: str | None = None
    kind: RateKind | None = None
    currency: str | None = None
    price: str | None = strawberry.field(default=None, description="FLAT price, or WEIGHT base price")
    price_per_kg: str | None = strawberry.field(default=None, description="WEIGHT: per started kilogram")
    value_tiers: list[ShippingValueTierInput] | None = strawberry.field(default=None,
                                                                       description="ORDER_VALUE price tiers")
    free_above: str | None = strawberry.field(default=None, description="Free once the order value reaches it")
    clear_free_above: bool = False
    max_weight_grams: int | None = strawberry.field(default=None, description="Not offered above this weight")
    clear_max_weight_grams: bool = False
    min_days: int | None = None
    max_days: int | None = None

    def to_service(self) -> service.MethodIn:
        return service.MethodIn(
            name=self.name, carrier=self.carrier, kind=self.kind, currency=self.currency, price=self.price,
            price_per_kg=self.price_per_kg,
            value_tiers=[(t.min_order_value, t.price) for t in self.value_tiers] if self.value_tiers is not None
            else None, free_above=self.free_above, clear_free_above=self.clear_free_above,
            max_weight_grams=self.max_weight_grams, clear_max_weight=self.clear_max_weight_grams,
            min_days=self.min_days, max_days=self.max_days)


@strawberry.input
class ShipmentLineInput:
    order_item_id: strawberry.ID
    quantity: int


@strawberry.input
class CreateShipmentInput:
    order_id: strawberry.ID
    lines: list[ShipmentLineInput]
    carrier: str = strawberry.field(description="UPS, FedEx, DHL or USPS (case-insensitive)")
    tracking_number: str

    def to_service(self) -> service.ShipmentIn:
        return service.ShipmentIn(
            order_id=parse_id(self.order_id, field="orderId"),
            lines=[(parse_id(line.order_item_id, field="lines.orderItemId"), line.quantity) for line in self.lines],
            carrier=self.carrier, tracking_number=self.tracking_number)


def _ctx(info: Info) -> RequestContext:
    ctx = info.context
    ctx.mark_uncacheable()
    return ctx


@strawberry.type
class Query:
    @strawberry.field(description=(
        "The methods offered to ship this cart to this address, cheapest first, priced for the cart (its weight "
        "and value). Without cartId: the caller's cart; anonymous, a 0 g cart of value 0. Empty when no shipping "
        "zone covers the address (orders then ship for 0)."))
    async def shipping_methods(self, info: Info, cart_id: strawberry.ID | None = None, *,
                               address: AddressInput) -> list[ShippingMethod]:
        ctx = _ctx(info)
        offers = await service.shipping_methods(
            await ctx.session(), ctx.resources.peers, ctx.settings, caller=ctx.user,
            authorization=ctx.authorization, cart_id=str(cart_id) if cart_id is not None else None,
            address=address.to_postal_address())
        return [ShippingMethod.from_offer(o) for o in offers]

    @strawberry.field(description="ADMIN: every shipping zone and its methods.")
    async def shipping_zones(self, info: Info) -> list[ShippingZone]:
        ctx = _ctx(info)
        zones = await service.list_zones(await ctx.session(), caller=ctx.require_user())
        return [ShippingZone.from_record(z) for z in zones]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="ADMIN: a shipping zone (then add methods to it).")
    async def create_shipping_zone(self, info: Info, input: ShippingZoneInput) -> ShippingZone:
        ctx = _ctx(info)
        zone = await service.create_zone(await ctx.session(), caller=ctx.require_user(), zone_in=input.to_service())
        return ShippingZone.from_record(zone)

    @strawberry.mutation(description="ADMIN: delete a zone and its methods (placed orders keep their price).")
    async def delete_shipping_zone(self, info: Info, id: strawberry.ID) -> bool:
        ctx = _ctx(info)
        return await service.delete_zone(await ctx.session(), caller=ctx.require_user(), zone_id=parse_id(id))

    @strawberry.mutation(description="ADMIN: a shipping method of a zone.")
    async def create_shipping_method(self, info: Info, zone_id: strawberry.ID,
                                     input: ShippingMethodInput) -> ShippingMethodSettings:
        ctx = _ctx(info)
        method = await service.create_method(await ctx.session(), caller=ctx.require_user(),
                                             zone_id=parse_id(zone_id, field="zoneId"), method_in=input.to_service())
        return ShippingMethodSettings.from_record(method)

    @strawberry.mutation(description="ADMIN: change a method's terms (omitted fields stay).")
    async def update_shipping_method(self, info: Info, id: strawberry.ID,
                                     input: ShippingMethodInput) -> ShippingMethodSettings:
        ctx = _ctx(info)
        method = await service.update_method(await ctx.session(), caller=ctx.require_user(),
                                             method_id=parse_id(id), method_in=input.to_service())
        return ShippingMethodSettings.from_record(method)

    @strawberry.mutation(description="ADMIN: stop offering a method (placed orders keep it).")
    async def delete_shipping_method(self, info: Info, id: strawberry.ID) -> bool:
        ctx = _ctx(info)
        return await service.delete_method(await ctx.session(), caller=ctx.require_user(), method_id=parse_id(id))

    @strawberry.mutation(description=(
        "ADMIN, or the SELLER of every line in it (FORBIDDEN otherwise): ship some or all of what is left of a "
        "paid order's lines. CONFLICT unless the order is paid; BAD_USER_INPUT for an unknown carrier or line or "
        "more than is left to ship. The first shipment moves the order to SHIPPED."))
    async def create_shipment(self, info: Info, input: CreateShipmentInput) -> Shipment:
        ctx = _ctx(info)
        shipment = await service.create_shipment(await ctx.session(), caller=ctx.require_user(),
                                                 shipment_in=input.to_service())
        return Shipment.from_record(shipment)

    @strawberry.mutation(description=(
        "ADMIN, or the seller who shipped it: the shipment arrived. Once every line has shipped and every "
        "shipment is delivered, the order becomes DELIVERED."))
    async def mark_shipment_delivered(self, info: Info, id: strawberry.ID) -> Shipment:
        ctx = _ctx(info)
        shipment = await service.mark_delivered(await ctx.session(), caller=ctx.require_user(),
                                                shipment_id=parse_id(id))
        return Shipment.from_record(shipment)


schema = build_schema(query=Query, mutation=Mutation, types=[Order])

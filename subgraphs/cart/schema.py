"""GraphQL adapter of the cart domain: validates input, calls service.py, maps carts to types.

Every field of Cart and CartItem is a plain attribute filled from the one Lua script answer, so a cart
query or mutation costs one Redis round trip and no per-field resolvers.
"""
from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import strawberry
from strawberry import UNSET
from strawberry.federation.schema_directives import Key
from strawberry.federation.types import FieldSet

from kernel.graphql import Info, Money, RequestContext, build_schema
from kernel.ids import parse_id
from subgraphs.cart import service
from subgraphs.cart.models import CartLine, CartView


@strawberry.federation.type(directives=[Key(fields=FieldSet("id"), resolvable=False)])
class ProductVariant:
    """Stub of the catalog's entity: only the key; the router fetches its fields from catalog and inventory."""

    id: strawberry.ID


@strawberry.type
class CartItem:
    id: strawberry.ID = strawberry.field(description="The line id (one line per variant)")
    variant: ProductVariant
    quantity: int
    unit_price: Money = strawberry.field(description="Current catalog price of the variant")
    line_total: Money
    name: str | None = strawberry.field(description="Product name, from the cart's catalog copy")
    sku: str | None
    product_id: strawberry.ID | None
    available: bool = strawberry.field(
        description="Still sold and in stock for this quantity; false lines cannot be checked out as they are")

    @classmethod
    def from_line(cls, line: CartLine, cart_currency: str) -> CartItem:
        currency = line.currency or cart_currency
        return cls(id=strawberry.ID(str(line.item_id)), variant=ProductVariant(id=strawberry.ID(str(line.variant_id))),
                   quantity=line.quantity,
                   unit_price=Money.of(line.unit_price or Decimal(0), currency),
                   line_total=Money.of(line.line_total, currency),
                   name=line.name, sku=line.sku,
                   product_id=strawberry.ID(str(line.product_id)) if line.product_id is not None else None,
                   available=line.available)


@strawberry.type(description="The coupon applied to a cart (applyCoupon).")
class CartCoupon:
    code: str
    discount: Money = strawberry.field(description="What it takes off this cart now; 0 while not applicable")
    applicable: bool = strawberry.field(
        description="False while the cart does not qualify (subtotal below the coupon's minimum, another currency, "
                    "outside its window): placeOrder would then refuse the code")


@strawberry.federation.type(keys=["id"])
class Cart:
    id: strawberry.ID = strawberry.field(description="Unguessable; whoever holds a guest cart's id can use it")
    items: list[CartItem]
    subtotal: Money = strawberry.field(description="Sum of the lines whose variant is still sold")
    coupon: CartCoupon | None = strawberry.field(description="The applied coupon; placeOrder redeems it")
    discount: Money = strawberry.field(description="The applied coupon's discount (0 without one)")
    total: Money = strawberry.field(description="subtotal - discount")
    item_count: int = strawberry.field(description="Total units over all lines")
    updated_at: datetime

    @classmethod
    async def resolve_reference(cls, info: Info, id: strawberry.ID) -> Cart | None:
        """An entity: other subgraphs add fields to a cart (recommendations: `Cart.recommendations`, which needs
        its lines). Resolved as `cart(id)` is: the same access rules, the same one Redis round trip."""
        ctx = _ctx(info)
        cart = await service.get_cart(ctx.redis, caller=ctx.user, cart_id=str(id))
        return cls.from_view(cart) if cart else None

    @classmethod
    def from_view(cls, cart: CartView) -> Cart:
        currency, now = cart.currency, datetime.now(UTC)
        discount = cart.discount(now)
        coupon = None
        if cart.coupon is not None:
            coupon = CartCoupon(code=cart.coupon.code, discount=Money.of(discount, currency),
                                applicable=cart.coupon.applies(cart.subtotal, currency, now))
        return cls(id=strawberry.ID(cart.id), items=[CartItem.from_line(line, currency) for line in cart.lines],
                   subtotal=Money.of(cart.subtotal, currency), coupon=coupon, discount=Money.of(discount, currency),
                   total=Money.of(cart.subtotal - discount, currency),
                   item_count=cart.item_count, updated_at=cart.updated_at)


# `cartId: ID` with no default in the SDL, as the client contract writes it: an omitted argument is UNSET,
# turned into None (the caller's cart) with `cart_id or None`.


def _ctx(info: Info) -> RequestContext:
    ctx = info.context
    ctx.mark_uncacheable()  # a cart is private to whoever holds it
    return ctx


@strawberry.type
class Query:
    @strawberry.field(description="A cart by id; without cartId the caller's own cart (null without a token or cart).")
    async def cart(self, info: Info, cart_id: strawberry.ID | None = UNSET) -> Cart | None:
        ctx = _ctx(info)
        cart = await service.get_cart(ctx.redis, caller=ctx.user, cart_id=cart_id or None)
        return Cart.from_view(cart) if cart else None


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Without cartId: the caller's cart (created if needed), or a new guest cart.")
    async def add_to_cart(self, info: Info, cart_id: strawberry.ID | None = UNSET, *,
                          variant_id: strawberry.ID, quantity: int) -> Cart:
        ctx = _ctx(info)
        caller, variant = ctx.user, parse_id(variant_id, field="variantId")
        cart = await service.add_to_cart(await ctx.session(), ctx.redis, ctx.settings, caller=caller,
                                         cart_id=cart_id or None, variant_id=variant, quantity=quantity,
                                         http=ctx.resources.peers)
        return Cart.from_view(cart)

    @strawberry.mutation(description="Set a line's quantity (1..100).")
    async def update_cart_item(self, info: Info, cart_id: strawberry.ID | None = UNSET, *,
                               item_id: strawberry.ID, quantity: int) -> Cart:
        ctx = _ctx(info)
        cart = await service.update_cart_item(ctx.redis, ctx.settings, caller=ctx.user, cart_id=cart_id or None,
                                              item_id=parse_id(item_id, field="itemId"), quantity=quantity)
        return Cart.from_view(cart)

    @strawberry.mutation
    async def remove_cart_item(self, info: Info, cart_id: strawberry.ID | None = UNSET, *,
                               item_id: strawberry.ID) -> Cart:
        ctx = _ctx(info)
        cart = await service.remove_cart_item(ctx.redis, ctx.settings, caller=ctx.user, cart_id=cart_id or None,
                                              item_id=parse_id(item_id, field="itemId"))
        return Cart.from_view(cart)

    @strawberry.mutation
    async def clear_cart(self, info: Info, cart_id: strawberry.ID | None = UNSET) -> Cart:
        ctx = _ctx(info)
        cart = await service.clear_cart(ctx.redis, ctx.settings, caller=ctx.user, cart_id=cart_id or None)
        return Cart.from_view(cart)

    @strawberry.mutation(description="Apply a coupon code (case-insensitive) to the cart, replacing any applied "
                                     "before. BAD_USER_INPUT: unknown code or the cart does not qualify; CONFLICT: "
                                     "not active, fully redeemed, or the caller's uses are spent.")
    async def apply_coupon(self, info: Info, cart_id: strawberry.ID | None = UNSET, *,
                           code: str) -> Cart:
        ctx = _ctx(info)
        cart = await service.apply_coupon(ctx.redis, ctx.resources.peers, ctx.settings,
                                          caller=ctx.user, authorization=ctx.authorization, cart_id=cart_id or None,
                                          code=code)
        return Cart.from_view(cart)

    @strawberry.mutation(description="Remove the applied coupon (no error when none is applied).")
    async def remove_coupon(self, info: Info, cart_id: strawberry.ID | None = UNSET) -> Cart:
        ctx = _ctx(info)
        cart = await service.remove_coupon(ctx.redis, ctx.settings, caller=ctx.user, cart_id=cart_id or None)
        return Cart.from_view(cart)

    @strawberry.mutation(description="Move a guest cart into the caller's cart (login required); "
                                     "the guest cart is deleted.")
    async def merge_cart(self, info: Info, guest_cart_id: strawberry.ID) -> Cart:
        ctx = _ctx(info)
        cart = await service.merge_cart(ctx.redis, ctx.settings, caller=ctx.require_user(),
                                        guest_cart_id=guest_cart_id)
        return Cart.from_view(cart)


schema = build_schema(query=Query, mutation=Mutation, types=[ProductVariant])

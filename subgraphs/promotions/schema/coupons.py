"""Coupons' part of the promotions schema: createCoupon and the ADMIN reads. Customers meet coupons through the
cart (applyCoupon / removeCoupon, cart subgraph) and placeOrder (orders subgraph), which ask coupons.py over
internal HTTP. Amounts are decimal strings (no Money here: a coupon's value is a percentage or an amount)."""
from __future__ import annotations

from datetime import datetime

import strawberry

from kernel.graphql import Info, RequestContext
from kernel.ids import parse_id
from subgraphs.promotions import coupons
from subgraphs.promotions.coupon_repository import CouponRecord
from subgraphs.promotions.coupons import CouponKind

# The domain's enum is the GraphQL enum: strawberry.enum registers the class itself (and returns it).
strawberry.enum(CouponKind, name="CouponKind",
                description="PERCENT: value is a percentage of the subtotal; FIXED: an amount off")


@strawberry.type(description="A discount code. Codes are case-insensitive and shown upper-case.")
class Coupon:
    id: strawberry.ID
    code: str
    kind: CouponKind
    value: str = strawberry.field(description="Decimal string: a percentage (PERCENT) or an amount in currency")
    currency: str = strawberry.field(description="ISO 4217: orders in this currency only")
    min_subtotal: str = strawberry.field(description="Decimal string: the least subtotal the coupon applies to")
    starts_at: datetime
    ends_at: datetime | None = strawberry.field(description="Null: no end")
    usage_limit: int | None = strawberry.field(description="Redemptions in all; null: unlimited")
    per_user_limit: int | None = strawberry.field(description="Redemptions per customer; null: unlimited")
    times_redeemed: int = strawberry.field(description="Redemptions holding a slot (a cancelled order's is "
                                                       "given back)")
    remaining: int | None = strawberry.field(description="Redemptions left; null: unlimited")
    active: bool = strawberry.field(description="Inside its window now")
    created_at: datetime

    @classmethod
    def from_record(cls, coupon: CouponRecord) -> Coupon:
        return cls(id=strawberry.ID(str(coupon.id)), code=coupon.code, kind=coupons.CouponKind(coupon.kind),
                   value=str(coupon.value), currency=coupon.currency, min_subtotal=str(coupon.min_subtotal),
                   starts_at=coupon.starts_at, ends_at=coupon.ends_at, usage_limit=coupon.usage_limit,
                   per_user_limit=coupon.per_user_limit, times_redeemed=coupon.times_redeemed,
                   remaining=coupon.remaining, active=coupons.is_active(coupon, coupons.utc_now()),
                   created_at=coupon.created_at)


@strawberry.input
class CreateCouponInput:
    code: str = strawberry.field(description="3..32 characters: letters, digits, '-' or '_' (case-insensitive)")
    kind: CouponKind
    value: str = strawberry.field(description="Decimal string > 0 with at most 2 decimals; PERCENT at most 100")
    currency: str | None = strawberry.field(default="USD", description="ISO 4217 code of the orders it applies to")
    min_subtotal: str | None = strawberry.field(default=None, description="Decimal string; default 0")
    starts_at: datetime | None = strawberry.field(default=None, description="Default: now; no zone means UTC")
    ends_at: datetime | None = strawberry.field(default=None, description="After startsAt; null: no end")
    usage_limit: int | None = strawberry.field(default=None, description="Redemptions in all; null: unlimited")
    per_user_limit: int | None = strawberry.field(default=1, description="Redemptions per customer; null: "
                                                                            "unlimited")

    def to_service(self) -> coupons.CreateCouponIn:
        return coupons.CreateCouponIn(code=self.code, kind=coupons.CouponKind(self.kind), value=self.value,
                                      currency=self.currency or "", min_subtotal=self.min_subtotal,
                                      starts_at=self.starts_at, ends_at=self.ends_at, usage_limit=self.usage_limit,
                                      per_user_limit=self.per_user_limit)


def _admin_ctx(info: Info) -> RequestContext:
    ctx = info.context
    ctx.mark_uncacheable()
    return ctx


@strawberry.type
class CouponQuery:
    @strawberry.field(description="ADMIN: a coupon by code (case-insensitive); null when unknown.")
    async def coupon(self, info: Info, code: str) -> Coupon | None:
        ctx = _admin_ctx(info)
        coupon = await coupons.get_coupon(await ctx.session(), caller=ctx.require_user(), code=code)
        return Coupon.from_record(coupon) if coupon else None

    @strawberry.field(description="ADMIN: coupons, newest first; `after` takes the last id of the previous page.")
    async def coupons(self, info: Info, first: int | None = 50,
                      after: strawberry.ID | None = None) -> list[Coupon]:
        ctx = _admin_ctx(info)
        rows = await coupons.list_coupons(await ctx.session(), caller=ctx.require_user(),
                                          first=50 if first is None else first,
                                          after=parse_id(after, field="after") if after is not None else None)
        return [Coupon.from_record(c) for c in rows]


@strawberry.type
class CouponMutation:
    @strawberry.mutation(description="ADMIN: define a coupon. BAD_USER_INPUT for invalid values, CONFLICT when "
                                     "the code exists.")
    async def create_coupon(self, info: Info, input: CreateCouponInput) -> Coupon:
        ctx = _admin_ctx(info)
        coupon = await coupons.create_coupon(await ctx.session(), caller=ctx.require_user(),
                                             coupon_in=input.to_service())
        return Coupon.from_record(coupon)


ENTITY_TYPES: list[type] = []

"""Business rules of the cart: who may touch which cart, quantity and line caps, stock, checkout snapshots.

No GraphQL and no HTTP here: the GraphQL schema, the internal checkout route and the event handlers all
call these functions. The checks that depend on Redis state run inside one Lua script per operation
(repository.py); this module validates input first and turns a script's refusal into a domain error.
"""
from __future__ import annotations

import logging
import re
import secrets
import time
from decimal import Decimal
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.auth import Principal
from kernel.errors import AppError
from kernel.money import format_money, normalize_coupon_code
from kernel.outbox import add_event
from kernel.settings import Settings
from subgraphs.cart import clients, repository
from subgraphs.cart.errors import (
    CartFull,
    CartIdRequired,
    CartItemNotFound,
    CartNotFound,
    CartNotPurchasable,
    CartOwnedByAnotherUser,
    CartRequiresLogin,
    InvalidCouponCode,
    InvalidQuantity,
    OutOfStock,
    QuantityLimit,
    VariantNotFound,
)
from subgraphs.cart.events import CartItemAdded
from subgraphs.cart.models import CartLine, CartView
from subgraphs.cart.repository import Outcome, Rejection

log = logging.getLogger("nexuscart.cart")

SCHEMA = "cart"
MAX_QUANTITY = 100
# token_urlsafe(16): 22 characters, 128 random bits. Anything that cannot be a cart id is simply unknown
# (and never reaches a Redis key name).
_CART_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


def new_cart_id() -> str:
    # Holding a guest cart's id is the only proof of access to it, so it must be unguessable.
    return secrets.token_urlsafe(16)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _caller(caller: Principal | None) -> str:
    return "" if caller is None else str(caller.user_id)


def _cart_id(cart_id: str | None) -> str:
    """'' means "the caller's cart"; a malformed id is an unknown cart."""
    if cart_id is None or cart_id == "":
        return ""
    if not _CART_ID.fullmatch(cart_id):
        raise CartNotFound()
    return cart_id


def _check_quantity(quantity: int) -> None:
    if not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidQuantity(MAX_QUANTITY)


def _error(rejection: Rejection, *, variant_id: int | None = None) -> AppError:
    code, detail = rejection.code, rejection.detail
    if code == "CART_NOT_FOUND":
        return CartNotFound()
    if code == "CART_ID_REQUIRED":
        return CartIdRequired()
    if code == "UNAUTHENTICATED":
        return CartRequiresLogin()
    if code == "FORBIDDEN":
        return CartOwnedByAnotherUser()
    if code == "ITEM_NOT_FOUND":
        return CartItemNotFound()
    if code == "VARIANT_NOT_FOUND":
        return VariantNotFound()
    if code == "QUANTITY_LIMIT":
        return QuantityLimit(MAX_QUANTITY)
    if code == "LINE_LIMIT":
        return CartFull(int(detail))
    if code == "OUT_OF_STOCK":
        return OutOfStock(variant_id or 0, int(detail))
    raise RuntimeError(f"unknown cart script refusal {code!r}")


def _cart(outcome: Outcome | None, *, variant_id: int | None = None) -> CartView:
    if outcome is None:
        raise CartNotFound()
    if isinstance(outcome, Rejection):
        raise _error(outcome, variant_id=variant_id)
    return outcome


async def get_cart(redis: Redis, *, caller: Principal | None, cart_id: str | None) -> CartView | None:
    """The cart `cart_id`, or without it the caller's own cart (None when there is none or no caller)."""
    outcome = await repository.view_cart(redis, cart_id=_cart_id(cart_id), caller=_caller(caller))
    return None if outcome is None else _cart(outcome)


async def learn_from_owners(redis: Redis, http: clients.PeerClient, settings: Settings, variant_id: int, *,
                            refused_at_stock: int | None) -> bool:
    """The projections learn products and stock from events, which can lag a first request (a product listed a
    moment ago, a restock a moment ago, consumers rebalancing). For a variant they have not heard of, ask its
    owners (catalog, then inventory; each call bounded by INTERNAL_HTTP_TIMEOUT_SECONDS) and store their answers
    as the events would. A refusal for stock, or the stock of a variant just learned, is checked with
    inventory (at most once a second per variant) when the projection holds less than inventory has. A variant
    the projection knows as gone is not asked about: its deletion came by event. `refused_at_stock`: the units
    a refusal for stock saw (None when the refusal was not for stock); an event that raised the projection
    since then counts as learned too. Returns whether anything was learned (worth trying again); a peer that
    does not answer leaves the refusal as it was."""
    try:
        if not await repository.variant_heard_of(redis, variant_id):
            found = await clients.fetch_variant_product(http, settings.catalog_service_url, variant_id)
            if found is None:
                return False
            product = found["product"]
            variants = [(int(v["id"]), v["sku"], format_money(Decimal(v["price"]["amount"])), v["price"]["currency"])
                        for v in product["variants"]]
            # No version: the next product event, whatever its age, replaces this answer.
            await repository.put_product(redis, product_id=int(product["id"]), version=None, name=product["name"],
                                         variants=variants)
            learned = True
        else:
            learned = False
        projected = await repository.projected_stock(redis, variant_id)
        if projected is None:
            available = await clients.fetch_variant_stock(http, settings.inventory_service_url, variant_id)
            if available is not None:
                await repository.put_stock_if_unknown(redis, variant_id=variant_id, available=available)
                learned = True
        elif refused_at_stock is not None and projected > refused_at_stock:
            # inventory.stock_changed arrived between the refusal and now: the projection already knows more.
            learned = True
        elif ((refused_at_stock is not None or learned)  # a variant just learned is refused next if its stock lags
              and await repository.claim_stock_recheck(redis, variant_id, every_seconds=1)):
            available = await clients.fetch_variant_stock(http, settings.inventory_service_url, variant_id)
            if available is not None and available > projected:
                # Last writer wins, as with the events: the stock_changed event behind this answer comes next
                # on its partition, so the projection ends on the newest figure either way.
                await repository.put_stock(redis, variant_id=variant_id, available=available)
                learned = True
    except (clients.PeerUnavailable, AppError, KeyError, TypeError, ValueError, ArithmeticError) as exc:
        log.warning("could not ask the owners about a variant", extra={"variant_id": variant_id, "error": repr(exc)})
        return False
    return learned


async def add_to_cart(session: AsyncSession, redis: Redis, settings: Settings, *, caller: Principal | None,
                      cart_id: str | None, variant_id: int, quantity: int,
                      http: clients.PeerClient | None = None) -> CartView:
    """Add `quantity` units to the line of `variant_id` (created if needed). Without `cart_id`: the
    caller's cart, created if needed, or for an anonymous caller a new guest cart. With `http`, a variant the
    projections have not heard of yet, or a stock refusal, is checked with its owners (`learn_from_owners`)."""
    _check_quantity(quantity)
    guest_cart_id = new_cart_id()

    async def add() -> Outcome:
        return await repository.add_item(
            redis, cart_id=_cart_id(cart_id), caller=_caller(caller), new_cart_id=guest_cart_id,
            variant_id=variant_id, quantity=quantity, now_ms=_now_ms(), ttl=settings.cart_ttl_seconds,
            max_lines=settings.cart_max_lines, max_quantity=MAX_QUANTITY)

    outcome = await add()
    if (isinstance(outcome, Rejection) and outcome.code in ("VARIANT_NOT_FOUND", "OUT_OF_STOCK")
            and http is not None and await learn_from_owners(
                redis, http, settings, variant_id,
                refused_at_stock=int(outcome.detail) if outcome.code == "OUT_OF_STOCK" else None)):
        outcome = await add()
    cart = _cart(outcome, variant_id=variant_id)
    # Redis has the line now; the event row is written in the request's transaction, which the edge commits
    # after this returns. If that commit fails, the client gets an error although the line stays in the cart
    # (Redis cannot join the Postgres transaction) and no cart.item_added is ever published: the event is
    # at-most-once. Acceptable because it only feeds analytics and recommendations; the cart itself, which
    # the client sees on its next read, stays the source of truth. The reverse order (outbox first) would
    # only swap which side can be left behind.
    await add_event(session, SCHEMA, CartItemAdded(cart_id=cart.id, user_id=cart.user_id, variant_id=variant_id,
                                                   quantity=quantity), key=cart.id)
    return cart


async def update_cart_item(redis: Redis, settings: Settings, *, caller: Principal | None, cart_id: str | None,
                           item_id: int, quantity: int) -> CartView:
    _check_quantity(quantity)
    outcome = await repository.set_item_quantity(redis, cart_id=_cart_id(cart_id), caller=_caller(caller),
                                                 variant_id=item_id, quantity=quantity, now_ms=_now_ms(),
                                                 ttl=settings.cart_ttl_seconds)
    return _cart(outcome, variant_id=item_id)


async def remove_cart_item(redis: Redis, settings: Settings, *, caller: Principal | None, cart_id: str | None,
                           item_id: int) -> CartView:
    outcome = await repository.remove_item(redis, cart_id=_cart_id(cart_id), caller=_caller(caller),
                                           variant_id=item_id, now_ms=_now_ms(), ttl=settings.cart_ttl_seconds)
    return _cart(outcome)


async def clear_cart(redis: Redis, settings: Settings, *, caller: Principal | None, cart_id: str | None) -> CartView:
    outcome = await repository.clear(redis, cart_id=_cart_id(cart_id), caller=_caller(caller), now_ms=_now_ms(),
                                     ttl=settings.cart_ttl_seconds)
    return _cart(outcome)


async def merge_cart(redis: Redis, settings: Settings, *, caller: Principal, guest_cart_id: str) -> CartView:
    """Move a guest cart's lines into the caller's cart (created if needed) and delete the guest cart.
    Quantities add up, capped by the stock and the per-line maximum; lines past the line cap and lines
    whose variant is no longer sold are dropped."""
    guest = _cart_id(guest_cart_id)
    if not guest:
        raise CartNotFound()
    outcome = await repository.merge(redis, guest_cart_id=guest, caller=_caller(caller), new_cart_id=new_cart_id(),
                                     now_ms=_now_ms(), ttl=settings.cart_ttl_seconds,
                                     max_lines=settings.cart_max_lines, max_quantity=MAX_QUANTITY)
    return _cart(outcome)


# ---- coupons ----------------------------------------------------------------------------------------------

async def apply_coupon(redis: Redis, http: clients.PeerClient, settings: Settings, *, caller: Principal | None,
                       authorization: str | None, cart_id: str | None, code: str) -> CartView:
    """Apply `code` to the cart (replacing a coupon applied before) once promotions says it applies to the
    cart as it is now. The cart keeps the coupon's terms to show its discount; whether the code is still good
    at checkout is promotions' decision when placeOrder redeems it. A refusal changes nothing."""
    normalized = normalize_coupon_code(code)
    if normalized is None:
        raise InvalidCouponCode()
    cart_arg = _cart_id(cart_id)
    if not cart_arg and caller is None:
        raise CartIdRequired()
    cart = _cart(await repository.view_cart(redis, cart_id=cart_arg, caller=_caller(caller)))
    try:
        terms = await clients.quote_coupon(http, settings.promotions_service_url, code=normalized,
                                           subtotal=cart.subtotal, currency=cart.currency,
                                           authorization=authorization)
    except AppError as exc:
        exc.field = "code"
        raise
    try:
        coupon = repository.coupon_from_json(terms)
    except ValueError as exc:
        raise clients.PeerUnavailable("promotions: malformed coupon quote") from exc
    outcome = await repository.set_coupon(redis, cart_id=cart.id, caller=_caller(caller), coupon=coupon,
                                          now_ms=_now_ms(), ttl=settings.cart_ttl_seconds)
    return _cart(outcome)


async def remove_coupon(redis: Redis, settings: Settings, *, caller: Principal | None,
                        cart_id: str | None) -> CartView:
    outcome = await repository.remove_coupon(redis, cart_id=_cart_id(cart_id), caller=_caller(caller),
                                             now_ms=_now_ms(), ttl=settings.cart_ttl_seconds)
    return _cart(outcome)


# ---- checkout (orders asks over internal HTTP) -----------------------------------------------------------

async def checkout_snapshot(redis: Redis, *, caller: Principal | None, cart_id: str | None) -> CartView:
    """The cart an order is placed from, under the same access rules as the GraphQL API. Refused with
    CONFLICT when a line can no longer be bought, so an order never holds a deleted variant."""
    cart_arg = _cart_id(cart_id)
    if not cart_arg and caller is None:
        raise CartRequiresLogin()
    cart = _cart(await repository.view_cart(redis, cart_id=cart_arg, caller=_caller(caller)))
    gone = [line.variant_id for line in cart.lines if not line.purchasable]
    if gone:
        raise CartNotPurchasable("Some items in the cart are no longer sold; remove them first", gone)
    currencies = {line.currency for line in cart.lines}
    if len(currencies) > 1:
        raise CartNotPurchasable("The cart mixes currencies", [line.variant_id for line in cart.lines])
    return cart


def checkout_payload(cart: CartView) -> dict[str, Any]:
    """The JSON orders reads (docs/commerce-spine.md): ids and money as strings, quantities as integers."""
    currency = cart.currency
    return {
        "cart_id": cart.id,
        "user_id": str(cart.user_id) if cart.user_id is not None else None,
        "items": [_checkout_line(line) for line in cart.lines],
        "subtotal": format_money(cart.subtotal),
        "currency": currency,
        # placeOrder redeems it when its input names no coupon; promotions decides whether it still applies.
        "coupon_code": cart.coupon.code if cart.coupon is not None else None,
    }


def _checkout_line(line: CartLine) -> dict[str, Any]:
    assert line.unit_price is not None  # checkout_snapshot refused the cart if a line was not purchasable
    return {"item_id": str(line.item_id), "variant_id": str(line.variant_id), "product_id": str(line.product_id),
            "sku": line.sku, "name": line.name, "quantity": line.quantity, "unit_price": format_money(line.unit_price),
            "currency": line.currency}

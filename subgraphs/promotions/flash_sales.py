"""Business rules of flash sales: creating a sale, purchase tokens, the purchase itself, and what happens to
a reservation afterwards (its order, its payment or its return). No GraphQL here.

Lifecycle (docs/flash-sales.md):
  createFlashSale -> row PENDING + `flashsale.scheduled` -> inventory sets the units aside ->
  `inventory.flash_sale_held` -> HELD: rules and stock loaded into Redis (the warm-up) ->
  purchases run the Lua script only -> each SUCCESS is a reservation (stream entry) whose order is created at
  once through orders' internal endpoint, or by the reconciler via `flashsale.purchased` ->
  order.paid counts the units as paid; order.cancelled returns them to the sale ->
  after the end, once every reserved unit is paid or returned, the sale settles: `flashsale.ended` tells
  inventory how many units left the warehouse; the rest of the hold goes back to general stock.
"""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kernel.auth import Principal
from kernel.errors import BadUserInput
from kernel.ids import next_id
from kernel.internal_client import PeerClient, PeerUnavailable
from kernel.money import MAX_PRICE, check_currency, parse_amount
from kernel.outbox import add_event
from kernel.pubsub import MAYBE_MISSED, listen
from kernel.redis import reply_bytes, reply_text
from kernel.settings import Settings
from kernel.uow import after_commit, unit_of_work
from subgraphs.promotions import clients, repository
from subgraphs.promotions import flash_sale_store as store
from subgraphs.promotions.errors import FlashSaleNotFound, FlashSaleNotOpen, TokenRateLimited, VariantNotFound
from subgraphs.promotions.events import FlashSaleEnded, FlashSalePurchased, FlashSaleScheduled
from subgraphs.promotions.models import SCHEMA, FlashSaleRecord, FlashSaleStatus, StockStatus

log = logging.getLogger("nexuscart.promotions.flash_sales")

SessionSource = Callable[[], Awaitable[AsyncSession]]

MAX_STOCK = 1_000_000
MAX_PER_USER_LIMIT = 100
MAX_DURATION = timedelta(days=31)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


# ---- creating a sale --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class FlashSaleIn:
    variant_id: int
    sale_price: str
    starts_at: datetime
    ends_at: datetime
    stock: int
    per_user_limit: int


def _aware(at: datetime, field: str) -> datetime:
    if at.tzinfo is None:
        raise BadUserInput(f"'{field}' needs a time zone offset, e.g. 2026-12-01T10:00:00Z", field=field)
    return at.astimezone(UTC)


def validate_new_sale(sale_in: FlashSaleIn, now: datetime) -> tuple[Decimal, datetime, datetime]:
    price = parse_amount(sale_in.sale_price, field="salePrice", maximum=MAX_PRICE)
    starts_at, ends_at = _aware(sale_in.starts_at, "startsAt"), _aware(sale_in.ends_at, "endsAt")
    if ends_at <= starts_at:
        raise BadUserInput("'endsAt' must be after 'startsAt'", field="endsAt")
    if ends_at <= now:
        raise BadUserInput("'endsAt' is in the past", field="endsAt")
    if ends_at - starts_at > MAX_DURATION:
        raise BadUserInput("A flash sale lasts at most 31 days", field="endsAt")
    if not 1 <= sale_in.stock <= MAX_STOCK:
        raise BadUserInput(f"'stock' must be 1..{MAX_STOCK}", field="stock")
    most_per_user = min(MAX_PER_USER_LIMIT, sale_in.stock)
    if not 1 <= sale_in.per_user_limit <= most_per_user:
        raise BadUserInput(f"'perUserLimit' must be 1..{most_per_user} (and at most the stock)", field="perUserLimit")
    return price, starts_at, ends_at


async def create_flash_sale(session: AsyncSession, *, http: PeerClient, settings: Settings, caller: Principal,
                            sale_in: FlashSaleIn) -> FlashSaleRecord:
    """ADMIN only. The sale opens once inventory has set its stock aside (`flashsale.scheduled` ->
    `inventory.flash_sale_held`); until then its status is PREPARING."""
    caller.require_role("ADMIN")
    price, starts_at, ends_at = validate_new_sale(sale_in, utcnow())
    variant = await clients.fetch_variant(http, settings.catalog_service_url, sale_in.variant_id)
    if variant is None:
        raise VariantNotFound(sale_in.variant_id)
    try:
        regular = parse_amount(variant["price"]["amount"], field="price")
        currency = check_currency(variant["price"]["currency"])
    except (KeyError, TypeError, BadUserInput) as exc:  # the catalog's answer, not the client's input
        raise PeerUnavailable("catalog: malformed variant price") from exc
    if price > regular:
        raise BadUserInput(f"'salePrice' must not exceed the regular price {regular}", field="salePrice")
    sale = await repository.insert_sale(session, {
        "id": next_id(), "variant_id": sale_in.variant_id, "product_id": int(variant["product"]["id"]),
        "sku": variant["sku"], "name": variant["product"]["name"], "currency": currency,
        "regular_price": regular, "sale_price": price, "starts_at": starts_at, "ends_at": ends_at,
        "total_stock": sale_in.stock, "per_user_limit": sale_in.per_user_limit, "created_by": caller.user_id})
    await add_event(session, SCHEMA, FlashSaleScheduled(sale_id=sale.id, variant_id=sale.variant_id,
                                                        quantity=sale.total_stock, starts_at=sale.starts_at,
                                                        ends_at=sale.ends_at), key=sale.id)
    return sale


async def get_sale_or_raise(session: AsyncSession, sale_id: int) -> FlashSaleRecord:
    sale = await repository.get_sale(session, sale_id)
    if sale is None:
        raise FlashSaleNotFound(sale_id)
    return sale


# ---- reading sales ----------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SaleStock:
    """A sale as buyers see it now: the units it still has for sale, and its status."""
    sale: FlashSaleRecord
    remaining: int
    status: FlashSaleStatus

    @classmethod
    def of(cls, sale: FlashSaleRecord, live: int | None) -> SaleStock:
        """`live`: the sale's count in Redis; None until the warm-up loaded it, which means all of its stock
        while inventory is setting it aside (PENDING) and none once it cannot (UNAVAILABLE)."""
        if live is None:
            live = sale.total_stock if sale.stock_status is StockStatus.PENDING else 0
        return cls(sale=sale, remaining=max(live, 0), status=sale.status_at(utcnow(), live))


async def _with_stock(redis: Redis, sales: list[FlashSaleRecord]) -> list[SaleStock]:
    remaining = await store.remaining_stock(redis, [s.id for s in sales])
    return [SaleStock.of(s, remaining.get(s.id)) for s in sales]


async def list_sales(session: AsyncSession, redis: Redis, *, active: bool | None, first: int) -> list[SaleStock]:
    """Newest first; `active`: True = in its window now, False = not, None = all. `first` is 1..100."""
    if not 1 <= first <= 100:
        raise BadUserInput("'first' must be 1..100", field="first")
    sales = await repository.list_sales(session, active_at=utcnow(), active=active, limit=first)
    return await _with_stock(redis, sales)


async def find_sale(session: AsyncSession, redis: Redis, sale_id: int) -> SaleStock | None:
    sale = await repository.get_sale(session, sale_id)
    return (await _with_stock(redis, [sale]))[0] if sale else None


async def remaining_stock_stream(session_factory: async_sessionmaker[AsyncSession], redis: Redis,
                                 settings: Settings, sale_id: int) -> AsyncGenerator[int, None]:
    """The sale's remaining stock now, then whenever it changes, coalesced (the changes of one
    `flash_sale_stock_push_interval_seconds` make one update); ends when the sale ends. NOT_FOUND for an
    unknown sale. Reads the sale in a short transaction of its own: no database connection is held after."""
    # Subscribe before the first read, so a change in between is not missed.
    async with listen(redis, store.stock_channel(sale_id)) as changes:
        async with unit_of_work(session_factory) as session:
            sale = await get_sale_or_raise(session, sale_id)
        interval = settings.flash_sale_stock_push_interval_seconds
        last = (await store.remaining_stock(redis, [sale_id]))[sale_id]
        last = sale.total_stock if last is None else last
        yield max(last, 0)
        while True:
            left = (sale.ends_at - utcnow()).total_seconds()
            if left <= 0:
                return
            message = await changes.get(within_seconds=min(left, 30.0))
            if message is None:
                continue
            # Coalesce: whatever else changes in the next interval is folded into one update. Each message is
            # the remaining stock its Lua script left, published in script order, so the newest one is the
            # stock now: a thousand streams of one sale need no thousand Redis reads per update.
            await asyncio.sleep(interval)
            message = changes.newest(since=message)
            if message == MAYBE_MISSED:
                current = (await store.remaining_stock(redis, [sale_id]))[sale_id]
            else:
                current = int(message)
            if current is not None and current != last:
                last = current
                yield max(current, 0)


async def on_stock_held(session: AsyncSession, redis: Redis, sale_id: int, *, held: bool) -> None:
    """Inventory's answer to `flashsale.scheduled`. HELD: the warm-up loads rules and stock into Redis. The
    load never overwrites a loaded sale, so a redelivered answer cannot reset its stock."""
    sale = await repository.set_stock_status(session, sale_id, StockStatus.HELD if held else StockStatus.UNAVAILABLE)
    sale = sale or await repository.get_sale(session, sale_id)
    if sale is None:
        log.warning("stock answer for an unknown flash sale", extra={"sale_id": sale_id})
        return
    if sale.stock_status is StockStatus.HELD:
        await store.load_sale(redis, sale.id, starts_ms=_ms(sale.starts_at), ends_ms=_ms(sale.ends_at),
                              per_user_limit=sale.per_user_limit, total_stock=sale.total_stock)
    elif held:
        log.warning("inventory held stock for a sale recorded as unavailable", extra={"sale_id": sale_id})


# ---- purchase tokens --------------------------------------------------------------------------------------

_SECRET_KEY = "promo:fs:token-secret"
_secret_cache: dict[str, bytes] = {}


async def _token_secret(redis: Redis, settings: Settings) -> bytes:
    """Shared by every process: from settings, or generated once and kept in Redis."""
    if settings.flash_sale_token_secret:
        return settings.flash_sale_token_secret.encode()
    secret = _secret_cache.get("secret")
    if secret is None:
        await redis.set(_SECRET_KEY, secrets.token_hex(32), nx=True)
        stored = await redis.get(_SECRET_KEY)
        if stored is None:  # set just above (NX); only a flush in between loses it, and no secret is no token
            raise RuntimeError("the flash sale token secret vanished from Redis")
        secret = _secret_cache["secret"] = reply_bytes(stored)
    return secret


def _sign(secret: bytes, sale_id: int, user_id: int, nonce: str, expires: int) -> str:
    mac = hmac.new(secret, f"{sale_id}.{user_id}.{nonce}.{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode()


@dataclasses.dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime


async def issue_token(session: AsyncSession, redis: Redis, settings: Settings, *, caller: Principal,
                      sale_id: int) -> IssuedToken:
    """A one-time purchase token for this user and sale: from `flash_sale_token_early_seconds` before the start
    until the end, at most `flash_sale_token_issue_per_minute` per user and sale."""
    sale = await sale_rules(session, sale_id)
    now = utcnow()
    if sale.stock_status is not StockStatus.HELD:
        raise FlashSaleNotOpen(sale_id, "This flash sale is not open for purchases")
    if now < sale.starts_at - timedelta(seconds=settings.flash_sale_token_early_seconds):
        raise FlashSaleNotOpen(sale_id, "Purchase tokens are issued shortly before the sale starts")
    if now >= sale.ends_at:
        raise FlashSaleNotOpen(sale_id, "This flash sale has ended")
    if await store.count_token_issue(redis, sale_id, caller.user_id) > \
            settings.flash_sale_token_issue_per_minute:
        raise TokenRateLimited(sale_id)
    nonce = secrets.token_urlsafe(12)
    expires = min(int(now.timestamp()) + settings.flash_sale_token_ttl_seconds, int(sale.ends_at.timestamp()) + 1)
    await store.issue_token(redis, sale_id, user_id=caller.user_id, nonce=nonce,
                            ttl_seconds=max(1, expires - int(now.timestamp())))
    signature = _sign(await _token_secret(redis, settings), sale_id, caller.user_id, nonce, expires)
    return IssuedToken(token=f"{nonce}.{expires}.{signature}",
                       expires_at=datetime.fromtimestamp(expires, UTC))


async def _token_nonce(redis: Redis, settings: Settings, token: str, sale_id: int, user_id: int) -> str | None:
    """The nonce of a well-formed, correctly signed, unexpired token for this user and sale; else None. Forged
    or foreign tokens stop here, before Redis; the script then checks the nonce was issued and unused."""
    parts = token.split(".")
    if len(parts) != 3 or not 8 <= len(parts[0]) <= 32 or not parts[1].isdigit():
        return None
    nonce, expires_text, signature = parts
    expires = int(expires_text)
    if expires < time.time():
        return None
    expected = _sign(await _token_secret(redis, settings), sale_id, user_id, nonce, expires)
    return nonce if hmac.compare_digest(expected, signature) else None


# ---- the purchase -----------------------------------------------------------------------------------------

# A sale's definition never changes after creation except its stock status; the purchase path reads it from
# this per-process copy instead of Postgres (only HELD sales are kept: a PENDING one is re-read).
_RULES: OrderedDict[int, FlashSaleRecord] = OrderedDict()
_RULES_MAX = 1024


def cached_sale_rules(sale_id: int) -> FlashSaleRecord | None:
    return _RULES.get(sale_id)


async def sale_rules(session: AsyncSession, sale_id: int) -> FlashSaleRecord:
    """The sale's definition, from this process's copy (the purchase path checks `cached_sale_rules` first, so
    it opens no session once the copy is warm)."""
    sale = _RULES.get(sale_id)
    if sale is not None:
        return sale
    sale = await get_sale_or_raise(session, sale_id)
    if sale.stock_status is StockStatus.HELD:
        _RULES[sale_id] = sale
        if len(_RULES) > _RULES_MAX:
            _RULES.popitem(last=False)
    return sale


@dataclasses.dataclass(frozen=True)
class PurchaseIn:
    sale_id: int
    token: str
    quantity: int
    idempotency_key: str


@dataclasses.dataclass(frozen=True)
class PurchaseResult:
    status: str
    remaining_stock: int
    order_id: int | None


def client_bucket_ip(forwarded_for: str | None, peer: str | None) -> str:
    """The address the rate limit is keyed on: the hop our router appended to X-Forwarded-For (the last
    entry), never an entry the client could have written itself; the TCP peer without a router."""
    if forwarded_for:
        last = forwarded_for.split(",")[-1].strip()
        if last:
            return last[:64]
    return (peer or "unknown")[:64]


def purchased(sale: FlashSaleRecord, reservation_id: int, user_id: int, quantity: int) -> FlashSalePurchased:
    """The reservation as orders takes it: the `flashsale.purchased` payload, also the body of the request path."""
    return FlashSalePurchased(reservation_id=reservation_id, sale_id=sale.id, user_id=user_id,
                              variant_id=sale.variant_id, product_id=sale.product_id, sku=sale.sku, name=sale.name,
                              quantity=quantity, unit_price=sale.sale_price, currency=sale.currency)


async def create_order_now(redis: Redis, http: PeerClient, settings: Settings, sale: FlashSaleRecord, *,
                           reservation_id: int, user_id: int, quantity: int, authorization: str | None) -> bool:
    """Ask orders to create the reservation's order right away. False on any failure: the reservation stays
    in the stream and the reconciler hands it to orders via Kafka, so the buyer never loses the unit."""
    try:
        await clients.create_flash_sale_order(http, settings.orders_service_url,
                                              purchased(sale, reservation_id, user_id, quantity),
                                              authorization=authorization)
    except Exception:  # the reconciler is the fallback for every failure
        log.warning("flash-sale order not created on the request path; the reconciler will",
                    extra={"sale_id": sale.id, "reservation_id": reservation_id}, exc_info=True)
        return False
    await store.mark_ordered(redis, sale.id, reservation_id)
    return True


async def purchase(redis: Redis, settings: Settings, http: PeerClient, *, caller: Principal, sale: FlashSaleRecord,
                   purchase_in: PurchaseIn, client_ip: str, authorization: str | None) -> PurchaseResult:
    if not 8 <= len(purchase_in.idempotency_key) <= 128 or not purchase_in.idempotency_key.isprintable():
        raise BadUserInput("'idempotencyKey' must be 8..128 printable characters", field="idempotencyKey")
    if not 1 <= purchase_in.quantity <= sale.per_user_limit:
        raise BadUserInput(f"'quantity' must be 1..{sale.per_user_limit} for this sale", field="quantity")
    nonce = await _token_nonce(redis, settings, purchase_in.token, sale.id, caller.user_id)
    if nonce is None:
        # Still answer an idempotent replay of a finished attempt (its token is legitimately spent by now).
        nonce = "-"
    outcome = await store.purchase(
        redis, sale.id, user_id=caller.user_id, quantity=purchase_in.quantity, nonce=nonce,
        idempotency_key=purchase_in.idempotency_key, reservation_id=next_id(), client_ip=client_ip,
        limits=store.BucketLimits(settings.flash_sale_user_rate_per_second, settings.flash_sale_user_burst,
                                  settings.flash_sale_ip_rate_per_second, settings.flash_sale_ip_burst))
    order_id = None
    if outcome.status == "SUCCESS" and outcome.reservation_id is not None:
        order_id = outcome.reservation_id
        if not outcome.replayed or not await store.is_ordered(redis, sale.id, order_id):
            quantity = purchase_in.quantity
            if outcome.replayed:  # the reservation's own quantity, not the replay's
                quantity = await _reserved_quantity(redis, sale.id, order_id) or quantity
            await create_order_now(redis, http, settings, sale, reservation_id=order_id, user_id=caller.user_id,
                                   quantity=quantity, authorization=authorization)
    return PurchaseResult(status=outcome.status, remaining_stock=max(outcome.remaining, 0), order_id=order_id)


async def purchase_in_sale(sessions: SessionSource, redis: Redis, settings: Settings, http: PeerClient, *,
                           caller: Principal, purchase_in: PurchaseIn, forwarded_for: str | None, peer: str | None,
                           authorization: str | None) -> PurchaseResult:
    """`purchase` in the sale `purchase_in` names: its rules from this process's copy (no session is opened
    once that is warm), the rate limit keyed on the client's address as `client_bucket_ip` picks it from the
    X-Forwarded-For header and the TCP peer."""
    sale = cached_sale_rules(purchase_in.sale_id) or await sale_rules(await sessions(), purchase_in.sale_id)
    return await purchase(redis, settings, http, caller=caller, sale=sale, purchase_in=purchase_in,
                          client_ip=client_bucket_ip(forwarded_for, peer), authorization=authorization)


async def _reserved_quantity(redis: Redis, sale_id: int, reservation_id: int) -> int | None:
    value = await redis.hget(store.sale_key(sale_id, "res"), str(reservation_id))
    return int(reply_text(value).split("|")[1]) if value else None


# ---- after the purchase: orders' outcomes and the reconciler ---------------------------------------------

async def on_order_paid(redis: Redis, order_id: int) -> int:
    """A paid flash-sale order's units count as paid (nothing for any other order). Returns the units."""
    sale_id = await store.sale_of_reservation(redis, order_id)
    return 0 if sale_id is None else await store.mark_paid(redis, sale_id, order_id)


async def on_order_cancelled(redis: Redis, order_id: int) -> int:
    """An unpaid (timed out), declined or cancelled flash-sale order gives its units back to the sale."""
    sale_id = await store.sale_of_reservation(redis, order_id)
    if sale_id is None:
        return 0
    returned = await store.return_units(redis, sale_id, order_id)
    if returned:
        log.info("flash-sale units returned", extra={"sale_id": sale_id, "order_id": order_id, "units": returned})
    return returned


@dataclasses.dataclass
class ReconcileReport:
    forwarded: int = 0
    settled: int = 0


async def reconcile_sale(session: AsyncSession, redis: Redis, settings: Settings, sale: FlashSaleRecord,
                         report: ReconcileReport) -> None:
    """One sale's round: hand every reservation older than the grace period whose order is not known to exist
    to orders (`flashsale.purchased`, idempotent there), then settle the sale once it can. Redis writes happen
    only after the caller commits the outbox rows (see consumers.py), so a crash repeats work, never skips it."""
    grace_ms = int(settings.flash_sale_reconcile_grace_seconds * 1000)
    reservations, caught_up = await store.reservations_after_cursor(
        redis, sale.id, older_than_ms=int(time.time() * 1000) - grace_ms)
    forwarded: list[int] = []
    for reservation in reservations:
        if not await store.is_ordered(redis, sale.id, reservation.reservation_id):
            await add_event(session, SCHEMA, purchased(sale, reservation.reservation_id, reservation.user_id,
                                                       reservation.quantity), key=reservation.reservation_id)
            forwarded.append(reservation.reservation_id)
    report.forwarded += len(forwarded)
    if reservations:
        last = reservations[-1]

        async def after() -> None:
            async with redis.pipeline(transaction=False) as pipe:
                for rid in forwarded:
                    pipe.hset(store.sale_key(sale.id, "ordered"), str(rid), 1)
                pipe.set(store.sale_key(sale.id, "cursor"), last.stream_id)
                await pipe.execute()

        after_commit(session, after)
        return
    if not caught_up or utcnow() < sale.ends_at:
        return
    paid = await store.try_settle(redis, sale.id)
    if paid is None:
        return
    if await repository.mark_settled(session, sale.id, paid):
        await add_event(session, SCHEMA, FlashSaleEnded(sale_id=sale.id, variant_id=sale.variant_id, sold=paid,
                                                        total_stock=sale.total_stock), key=sale.id)
        report.settled += 1

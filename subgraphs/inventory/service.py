"""Business rules of inventory: reservations for the order saga, flash-sale holds, manual adjustments, initial stock.

No GraphQL and no commits here: the edge (GraphQL request, event consumer, script) owns the transaction,
and every event below goes to the outbox in that same transaction.

Locking: any operation that changes a variant's stock first locks all of that variant's warehouse rows in
(variant_id, warehouse_id) order (`repository.lock_stock`), in one statement. Changes to one variant are
therefore serial, which keeps the before/after totals behind `inventory.low_stock` exact, and the fixed order
means two orders touching the same variants queue instead of deadlocking. Every transaction takes its stock
locks in one such statement: up front where it decides (a reservation, a hold, an adjustment, a consumer
batch that reserves), or at its end for moves that decide nothing (see "stock moves" below).
"""
from __future__ import annotations

import dataclasses
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.auth import Principal
from kernel.ids import next_id
from kernel.outbox import add_event
from kernel.uow import before_commit
from subgraphs.inventory import cache, clients, repository
from subgraphs.inventory.errors import (
    InvalidDelta,
    InvalidReason,
    InvalidWarehouse,
    StockBelowReserved,
    StockLimitExceeded,
    VariantNotFound,
    WarehouseCodeTaken,
    WarehouseNotFound,
)
from subgraphs.inventory.events import (
    FlashSaleHeld,
    InventoryCommitted,
    InventoryOutOfStock,
    InventoryReleased,
    InventoryReserved,
    LowStock,
    StockChanged,
    StockLine,
)
from subgraphs.inventory.models import SCHEMA, WarehouseRow
from subgraphs.inventory.repository import ReservationLine, StockMove, StockRow, Totals

log = logging.getLogger("nexuscart.inventory")

MAX_ADJUST_DELTA = 1_000_000
MAX_REASON_LENGTH = 500
MAX_WAREHOUSE_NAME_LENGTH = 200

RESERVED, COMMITTED, RELEASED, RESTOCKED = "RESERVED", "COMMITTED", "RELEASED", "RESTOCKED"
OUT_OF_STOCK, CANCELLED = "OUT_OF_STOCK", "CANCELLED"


class InvalidOrderLine(ValueError):
    """An order event whose lines cannot be reserved as written (a producer bug): the consumer retries,
    then parks it on the DLQ rather than guessing."""


@dataclasses.dataclass(frozen=True, slots=True)
class StockLevel:
    """A variant's stock over all warehouses."""
    variant_id: int
    on_hand: int
    reserved: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    @property
    def in_stock(self) -> bool:
        return self.available > 0

    @classmethod
    def of(cls, variant_id: int, totals: Totals | None) -> StockLevel:
        totals = totals or Totals()
        return cls(variant_id=variant_id, on_hand=totals.on_hand, reserved=totals.reserved)


@dataclasses.dataclass(frozen=True, slots=True)
class ReservationResult:
    order_id: int
    outcome: str                         # RESERVED | OUT_OF_STOCK | CANCELLED (cancelled before placed)
    lines: list[ReservationLine]         # what is held for the order (empty unless RESERVED)
    short_variant_ids: list[int]         # OUT_OF_STOCK: the variants that could not be covered
    duplicate: bool = False              # the order had been decided before; nothing changed now

    @property
    def reserved(self) -> bool:
        return self.outcome == RESERVED


# ---- the order saga ---------------------------------------------------------------------------------------

def _quantities(items: Iterable[tuple[int, int]]) -> dict[int, int]:
    wanted: dict[int, int] = defaultdict(int)
    for variant_id, quantity in items:
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
            raise InvalidOrderLine(f"quantity {quantity!r} of variant {variant_id} is not a positive integer")
        wanted[int(variant_id)] += quantity  # the same variant on two lines is one demand
    if not wanted:
        raise InvalidOrderLine("an order without lines cannot be reserved")
    return dict(wanted)


def _allocate(wanted: dict[int, int], rows: list[StockRow]) -> tuple[list[tuple[int, int, int]], list[int]]:
    """Split each variant's demand over its warehouses, fullest first so an order ships from as few
    warehouses as possible. Returns (variant, warehouse, quantity) lines and the variants that fall short."""
    by_variant: dict[int, list[StockRow]] = defaultdict(list)
    for row in rows:
        by_variant[row.variant_id].append(row)
    lines: list[tuple[int, int, int]] = []
    short: list[int] = []
    for variant_id in sorted(wanted):
        need = wanted[variant_id]
        candidates = sorted(by_variant.get(variant_id, []), key=lambda r: (-r.available, r.warehouse_id))
        if sum(max(r.available, 0) for r in candidates) < need:
            short.append(variant_id)
            continue
        for row in candidates:
            if need == 0:
                break
            take = min(need, row.available)
            if take > 0:
                lines.append((variant_id, row.warehouse_id, take))
                need -= take
    return lines, short


def _stock_lines(lines: Iterable[ReservationLine | tuple[int, int, int]]) -> list[StockLine]:
    items = []
    for line in lines:
        variant_id, warehouse_id, quantity = ((line.variant_id, line.warehouse_id, line.quantity)
                                              if isinstance(line, ReservationLine) else line)
        items.append(StockLine(variant_id=variant_id, warehouse_id=warehouse_id, quantity=quantity))
    return items


def _totals_of(rows: Iterable[StockRow]) -> dict[int, Totals]:
    sums: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        sums[row.variant_id][0] += row.on_hand
        sums[row.variant_id][1] += row.reserved
    return {v: Totals(on_hand=o, reserved=r) for v, (o, r) in sums.items()}


async def _emit_stock_changes(session: AsyncSession, before: dict[int, Totals], variant_ids: Iterable[int]) -> None:
    """`inventory.stock_changed` for each touched variant (totals after the change), plus
    `inventory.low_stock` when available drops from at/above the variant's threshold to below it: one alert
    per crossing, not one per sale while stock stays low."""
    ids = sorted(set(variant_ids))
    if not ids:
        return
    after, thresholds = await repository.totals_and_thresholds(session, ids)
    for variant_id in ids:
        level = StockLevel.of(variant_id, after.get(variant_id))
        await add_event(session, SCHEMA, StockChanged(
            variant_id=variant_id, on_hand=level.on_hand, reserved=level.reserved, available=level.available,
            in_stock=level.in_stock), key=variant_id)
        threshold = thresholds.get(variant_id)
        previous = before.get(variant_id, Totals()).available
        if threshold is not None and previous >= threshold > level.available:
            await add_event(session, SCHEMA, LowStock(variant_id=variant_id, available=level.available,
                                                      threshold=threshold), key=variant_id)


async def reserve_for_order(session: AsyncSession, order_id: int, items: Iterable[tuple[int, int]], *,
                            announce: bool = True) -> ReservationResult:
    """Reserve every (variant_id, quantity) line of an order, or nothing.

    Emits `inventory.reserved` or `inventory.out_of_stock` when `announce` (the saga's path: orders hears the
    answer as an event); placeOrder's own call (internal.py) is answered directly and announces nothing. The
    first decision about an order is final: a repeated call (placeOrder's call and then its order.placed, a
    re-sent order.placed, or one arriving after the order was cancelled) returns the recorded outcome with
    `duplicate=True` and changes and emits nothing."""
    wanted = _quantities(items)
    decided = await repository.order_outcome(session, order_id)
    if decided is not None:  # decided before: no lock taken
        return await _recorded_outcome(session, order_id, decided)
    # The stock rows first, then the order's claim, on every path (placeOrder's call, a consumer batch, one
    # event): a claim held while waiting for a stock row, against a stock row held while waiting for that
    # claim, would be a deadlock between the call and the order's own order.placed.
    locked = await repository.lock_stock(session, wanted)
    if not await repository.claim_order(session, order_id, RESERVED):
        # Decided meanwhile (the claim waited for the other decision to commit).
        return await _recorded_outcome(session, order_id, await repository.order_outcome(session, order_id))

    lines, short = _allocate(wanted, locked)
    if short:
        await repository.set_order_outcome(session, order_id, OUT_OF_STOCK)
        if announce:
            await add_event(session, SCHEMA, InventoryOutOfStock(order_id=order_id, variant_ids=short), key=order_id)
        return ReservationResult(order_id=order_id, outcome=OUT_OF_STOCK, lines=[], short_variant_ids=short)

    for variant_id, warehouse_id, quantity in lines:
        if not await repository.reserve_units(session, variant_id, warehouse_id, quantity):
            # Cannot happen while we hold the row locks; refusing beats reserving what is not there.
            raise RuntimeError(f"stock of variant {variant_id} in warehouse {warehouse_id} changed under lock")
    await repository.insert_reservations(session, order_id, lines)
    if announce:
        await add_event(session, SCHEMA, InventoryReserved(order_id=order_id, items=_stock_lines(lines)),
                        key=order_id)
    await _emit_stock_changes(session, _totals_of(locked), wanted)
    return ReservationResult(order_id=order_id, outcome=RESERVED,
                             lines=[ReservationLine(v, w, q, RESERVED) for v, w, q in lines], short_variant_ids=[])


async def _recorded_outcome(session: AsyncSession, order_id: int, outcome: str | None) -> ReservationResult:
    lines = await repository.reservations_of(session, order_id)
    return ReservationResult(order_id=order_id, outcome=outcome or RESERVED, lines=lines, short_variant_ids=[],
                             duplicate=True)


async def repeat_recorded_answer(session: AsyncSession, order_id: int) -> bool:
    """A re-sent order.placed (the orders saga watchdog asks again when no answer came: it may have been lost
    on the way): emit the recorded answer again while it still stands (reserved lines still held, or out of
    stock). The saga moves an order only from the step it expects, so a repeated answer changes nothing there."""
    outcome = await repository.order_outcome(session, order_id)
    if outcome == OUT_OF_STOCK:
        await add_event(session, SCHEMA, InventoryOutOfStock(order_id=order_id, variant_ids=[]), key=order_id)
        return True
    if outcome == RESERVED:
        held = [line for line in await repository.reservations_of(session, order_id) if line.status == RESERVED]
        if held:
            await add_event(session, SCHEMA, InventoryReserved(order_id=order_id, items=_stock_lines(held)),
                            key=order_id)
            return True
    return False


async def commit_order(session: AsyncSession, order_id: int) -> list[ReservationLine]:
    """The order was paid: its RESERVED lines leave stock for good (on_hand and reserved both drop) and
    become COMMITTED. Emits `inventory.committed` with the lines committed now; lines in any other status are
    left alone, so a repeated call commits (and emits) nothing. Returns the lines committed now."""
    open_lines = await repository.lock_reservations(session, order_id, [RESERVED])
    if not open_lines:
        return []
    for line in open_lines:
        await repository.set_reservation_status(session, order_id, line, COMMITTED)
    await add_event(session, SCHEMA, InventoryCommitted(order_id=order_id, items=_stock_lines(open_lines)),
                    key=order_id)
    await _move_stock(session, [StockMove(line.variant_id, line.warehouse_id, on_hand=-line.quantity,
                                          reserved=-line.quantity) for line in open_lines])
    return [dataclasses.replace(line, status=COMMITTED) for line in open_lines]


async def release_order(session: AsyncSession, order_id: int) -> list[ReservationLine]:
    """The order was cancelled: RESERVED lines are released (reserved drops) and COMMITTED lines restocked
    (on_hand grows back). Emits `inventory.released` with the lines changed now; RELEASED and RESTOCKED
    lines are final, so a repeated call changes nothing. An order inventory never reserved for is recorded
    as CANCELLED so a late order.placed cannot reserve for it. Returns the lines changed now, with their
    new status."""
    if await repository.claim_order(session, order_id, CANCELLED):
        return []
    open_lines = await repository.lock_reservations(session, order_id, [RESERVED, COMMITTED])
    if not open_lines:
        return []
    changed: list[ReservationLine] = []
    moves: list[StockMove] = []
    for line in open_lines:
        if line.status == RESERVED:
            moves.append(StockMove(line.variant_id, line.warehouse_id, reserved=-line.quantity))
            new_status = RELEASED
        else:
            moves.append(StockMove(line.variant_id, line.warehouse_id, on_hand=line.quantity))
            new_status = RESTOCKED
        await repository.set_reservation_status(session, order_id, line, new_status)
        changed.append(dataclasses.replace(line, status=new_status))
    await add_event(session, SCHEMA, InventoryReleased(order_id=order_id, items=_stock_lines(changed)), key=order_id)
    await _move_stock(session, moves)
    return changed


# ---- stock moves ------------------------------------------------------------------------------------------
# A paid order's units leaving, a cancelled order's units coming back, a flash sale's settlement: changes that
# decide nothing (the reservation lines say what moves) and never lower availability. One way applies them:
# lock the rows, one UPDATE with the invariants in its WHERE, the stock events. In a consumer batch that makes
# no stock decision they wait for the batch's end (defer_stock_moves) and are applied together just before it
# commits.

_DEFERRED_MOVES = "inventory_deferred_stock_moves"


def defer_stock_moves(session: AsyncSession) -> None:
    """From now until `session` commits, stock moves are gathered and applied together as its last work
    (kernel/uow.py `before_commit`). For a consumer batch that decides nothing under the stock locks (see
    consumers.py): the hot stock rows are then locked for the batch's last statements only, not while its
    twenty events are applied one after the other on a busy event loop (placeOrder's own reservation waited
    on those locks), and the batch writes one `inventory.stock_changed` per variant, not one per order.

    Only for transactions that read no stock to decide: a move waiting here is not yet in the rows. Moves
    never lower availability, so such a read would only ever refuse what it could have granted."""
    if _DEFERRED_MOVES in session.info:
        return
    pending: list[StockMove] = []
    session.info[_DEFERRED_MOVES] = pending

    async def apply() -> None:
        del session.info[_DEFERRED_MOVES]
        await _apply_moves(session, pending)

    before_commit(session, apply)


async def _move_stock(session: AsyncSession, moves: list[StockMove]) -> None:
    pending: list[StockMove] | None = session.info.get(_DEFERRED_MOVES)
    if pending is not None:
        pending.extend(moves)
    else:
        await _apply_moves(session, moves)


async def _apply_moves(session: AsyncSession, moves: list[StockMove]) -> None:
    """Lock the moved variants' rows (in key order, as every stock change does), apply every move in one
    statement, emit the stock events. A move the rows cannot take means the reservation lines and the stock
    rows disagree: raised, so the transaction rolls back and the consumer retries it, then parks the event."""
    if not moves:
        return
    variant_ids = sorted({move.variant_id for move in moves})
    locked = await repository.lock_stock(session, variant_ids)
    if not await repository.move_stock(session, moves):
        raise RuntimeError(f"stock moves of variants {variant_ids} exceed what their stock rows hold")
    await _emit_stock_changes(session, _totals_of(locked), variant_ids)


# ---- flash sales ------------------------------------------------------------------------------------------
# A flash sale (promotions) sets units of one variant aside before it starts and settles them when it ends.
# The hold is a reservation like an order's, keyed by the sale id in the same tables (Snowflake ids never
# collide across domains), so the stock rows, locks and CHECKs that keep orders from overselling also keep
# sales and orders from overselling each other. The sale's own orders reserve nothing (the hold covers
# them), and the hold is never announced as inventory.reserved / out_of_stock: the order saga reads those
# keyed by order id.

class InvalidFlashSaleEvent(ValueError):
    """A flash-sale event that cannot be applied as written (a producer bug): the consumer retries, then
    parks it on the DLQ rather than guessing."""


@dataclasses.dataclass(frozen=True, slots=True)
class FlashSaleHold:
    sale_id: int
    variant_id: int
    quantity: int
    held: bool
    lines: list[ReservationLine]         # what is held for the sale (empty unless held)
    duplicate: bool = False              # the sale had been decided before; nothing changed now


@dataclasses.dataclass(frozen=True, slots=True)
class FlashSaleSettlement:
    sale_id: int
    shipped: list[ReservationLine]       # lines that left stock now (COMMITTED, quantity = units shipped)
    released: list[ReservationLine]      # units returned to general availability now (line quantities)

    @property
    def changed(self) -> bool:
        return bool(self.shipped or self.released)


async def hold_for_flash_sale(session: AsyncSession, sale_id: int, variant_id: int, quantity: int) -> FlashSaleHold:
    """Set `quantity` units of a variant aside for a flash sale: all of them or none, split over warehouses
    like an order. Emits `inventory.flash_sale_held` (held false when not enough is available or the variant
    is unknown) and, when units were held, the stock events. The first decision about a sale is final: a
    repeated call (or one after the sale was settled) returns it with `duplicate=True` and changes and emits
    nothing."""
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise InvalidFlashSaleEvent(f"flash sale {sale_id}: quantity {quantity!r} is not a positive integer")
    if not await repository.claim_order(session, sale_id, RESERVED):
        lines = await repository.reservations_of(session, sale_id)
        held = await repository.order_outcome(session, sale_id) == RESERVED
        return FlashSaleHold(sale_id=sale_id, variant_id=variant_id, quantity=quantity, held=held, lines=lines,
                             duplicate=True)

    locked = await repository.lock_stock(session, [variant_id])
    allocation, short = _allocate({variant_id: quantity}, locked)  # an unknown variant has no rows: short
    held = not short
    if held:
        for _, warehouse_id, units in allocation:
            if not await repository.reserve_units(session, variant_id, warehouse_id, units):
                raise RuntimeError(f"stock of variant {variant_id} in warehouse {warehouse_id} changed under lock")
        await repository.insert_reservations(session, sale_id, allocation)
    else:
        await repository.set_order_outcome(session, sale_id, OUT_OF_STOCK)
    await add_event(session, SCHEMA, FlashSaleHeld(sale_id=sale_id, variant_id=variant_id, quantity=quantity,
                                                   held=held), key=sale_id)
    if held:
        await _emit_stock_changes(session, _totals_of(locked), [variant_id])
    return FlashSaleHold(sale_id=sale_id, variant_id=variant_id, quantity=quantity, held=held,
                         lines=[ReservationLine(v, w, q, RESERVED) for v, w, q in allocation] if held else [])


async def settle_flash_sale(session: AsyncSession, sale_id: int, sold: int) -> FlashSaleSettlement:
    """The sale ended having sold `sold` units: that many of its held units leave stock (on_hand and reserved
    both drop), the rest go back to general availability (reserved drops). Held lines end COMMITTED (their
    quantity cut to what shipped from them) or RELEASED; units ship from the largest holds first, so a sale
    ships from as few warehouses as it can. Emits `inventory.stock_changed`.

    Only RESERVED lines are settled, so a repeated call changes nothing, and a sale that was never held
    settles as a no-op. A sale inventory has not heard of yet (flashsale.ended overtook flashsale.scheduled)
    is recorded as CANCELLED when nothing was sold, so a late hold cannot lock its units forever; `sold`
    above the units held (or negative) is a producer bug, raised for the consumer to retry and park."""
    if isinstance(sold, bool) or not isinstance(sold, int) or sold < 0:
        raise InvalidFlashSaleEvent(f"flash sale {sale_id}: sold {sold!r} is not a non-negative integer")
    if await repository.claim_order(session, sale_id, CANCELLED):
        if sold:  # rolled back with the claim: retried, the hold may have arrived by then
            raise InvalidFlashSaleEvent(f"flash sale {sale_id} sold {sold} units but inventory holds none for it")
        return FlashSaleSettlement(sale_id=sale_id, shipped=[], released=[])
    open_lines = await repository.lock_reservations(session, sale_id, [RESERVED])
    if not open_lines:
        return FlashSaleSettlement(sale_id=sale_id, shipped=[], released=[])
    held = sum(line.quantity for line in open_lines)
    if sold > held:
        raise InvalidFlashSaleEvent(f"flash sale {sale_id} sold {sold} units but held only {held}")

    to_ship = sold
    shipped: list[ReservationLine] = []
    released: list[ReservationLine] = []
    moves: list[StockMove] = []
    for line in sorted(open_lines, key=lambda r: (-r.quantity, r.variant_id, r.warehouse_id)):
        ship = min(to_ship, line.quantity)
        back = line.quantity - ship
        to_ship -= ship
        moves.append(StockMove(line.variant_id, line.warehouse_id, on_hand=-ship, reserved=-line.quantity))
        status, quantity = (COMMITTED, ship) if ship else (RELEASED, line.quantity)
        await repository.close_reservation(session, sale_id, line, status, quantity)
        if ship:
            shipped.append(dataclasses.replace(line, quantity=ship, status=COMMITTED))
        if back:
            released.append(dataclasses.replace(line, quantity=back, status=RELEASED))
    await _move_stock(session, moves)
    return FlashSaleSettlement(sale_id=sale_id, shipped=shipped, released=released)


# ---- catalog projection -----------------------------------------------------------------------------------

async def register_variants(session: AsyncSession, variants: Sequence[tuple[int, int]]) -> bool:
    """(product_id, variant_id) pairs from product events: known to inventory from now on, with a zero
    stock row in every warehouse. Existing rows (stock set or adjusted first) are left untouched.
    True when a variant was new to inventory (`variant(id)` answers change from null)."""
    if not variants:
        return False
    pairs = sorted(set(variants), key=lambda pv: pv[1])
    added = await repository.register_variants(session, pairs)
    await repository.ensure_stock_rows(session, [v for _, v in pairs])
    return added > 0


# ---- reads ------------------------------------------------------------------------------------------------

async def stock_levels(session: AsyncSession, variant_ids: Sequence[int]) -> list[StockLevel]:
    """Totals for each id in order, in one query; a variant inventory does not know has zero stock."""
    totals = await repository.totals(session, variant_ids)
    return [StockLevel.of(v, totals.get(v)) for v in variant_ids]


async def is_known_variant(session: AsyncSession, variant_id: int) -> bool:
    """Whether inventory knows the variant (`register_variants`: catalog's product events)."""
    return await repository.variant_exists(session, variant_id)


def check_can_see_warehouse_stock(caller: Principal) -> None:
    """Stock per warehouse is operational detail: ADMIN only (totals are public)."""
    caller.require_role("ADMIN")


async def warehouses(session: AsyncSession, caller: Principal) -> list[WarehouseRow]:
    caller.require_role("ADMIN")
    return await repository.list_warehouses(session)


# ---- admin writes -----------------------------------------------------------------------------------------

def _valid_reason(reason: str) -> str:
    reason = reason.strip()
    if not 1 <= len(reason) <= MAX_REASON_LENGTH:
        raise InvalidReason(MAX_REASON_LENGTH)
    return reason


async def learn_variant_from_catalog(session: AsyncSession, http: clients.PeerClient, catalog_url: str,
                                     variant_id: int) -> bool:
    """Inventory learns variants from catalog's product events, which can lag a first request (a product
    created a moment ago, consumers rebalancing). For a variant it has not heard of, ask the catalog (bounded by
    INTERNAL_HTTP_TIMEOUT_SECONDS) and register it as the event would; the event, when it comes, finds it
    registered and changes nothing. Returns whether the catalog sells it; a catalog that does not answer
    counts as no."""
    try:
        product_id = await clients.fetch_variant_product_id(http, catalog_url, variant_id)
    except clients.PeerUnavailable as exc:
        log.warning("could not ask the catalog about a variant", extra={"variant_id": variant_id, "error": repr(exc)})
        return False
    if product_id is None:
        return False
    await register_variants(session, [(product_id, variant_id)])
    return True


async def adjust_stock(session: AsyncSession, caller: Principal, variant_id: int, warehouse_id: int,
                       delta: int, reason: str, *, redis: Redis | None = None,
                       http: clients.PeerClient | None = None, catalog_url: str | None = None) -> StockLevel:
    """ADMIN: add (receiving, returns found) or remove (damage, shrinkage) units in one warehouse.

    Refused with CONFLICT when on_hand would drop below the units reserved there (hence never below zero):
    reserved units belong to orders, and the admin must cancel those first. Writes an audit row and the
    stock events, and (given the subgraph's `redis`) drops its cached stock answers once the change commits.
    Given `http` and `catalog_url`, a variant inventory has not heard of yet is checked with the catalog
    (`learn_variant_from_catalog`), so a product created a moment ago can be stocked at once.
    Returns the variant's totals over all warehouses after the change."""
    caller.require_role("ADMIN")
    if isinstance(delta, bool) or delta == 0 or abs(delta) > MAX_ADJUST_DELTA:
        raise InvalidDelta(delta, MAX_ADJUST_DELTA)
    reason = _valid_reason(reason)
    if not await repository.variant_exists(session, variant_id) and not (
            http is not None and catalog_url is not None
            and await learn_variant_from_catalog(session, http, catalog_url, variant_id)):
        raise VariantNotFound(variant_id)
    if not await repository.warehouse_exists(session, warehouse_id):
        raise WarehouseNotFound(warehouse_id)

    locked = await repository.lock_stock(session, [variant_id])
    await repository.ensure_stock_row(session, variant_id, warehouse_id)
    on_hand_after = await repository.adjust_on_hand(session, variant_id, warehouse_id, delta)
    if on_hand_after is None:
        row = await repository.stock_row(session, variant_id, warehouse_id)
        assert row is not None  # ensured above, in this transaction
        if row.on_hand + delta > repository.INT_MAX:
            raise StockLimitExceeded(on_hand=row.on_hand, delta=delta)
        raise StockBelowReserved(on_hand=row.on_hand, reserved=row.reserved, delta=delta)
    await repository.add_adjustments(session, [{
        "id": next_id(), "variant_id": variant_id, "warehouse_id": warehouse_id, "delta": delta,
        "reason": reason, "actor_id": caller.user_id, "on_hand_after": on_hand_after}])
    await _emit_stock_changes(session, _totals_of(locked), [variant_id])
    cache.GENERATION.bump_after_commit(session, redis)
    return (await stock_levels(session, [variant_id]))[0]


def _valid_warehouse(code: str, name: str) -> tuple[str, str]:
    code, name = code.strip().upper(), name.strip()
    if not re.fullmatch(r"[A-Z0-9][A-Z0-9-]{1,31}", code):
        raise InvalidWarehouse("'code' must be 2 to 32 letters, digits or dashes, e.g. WH-EAST", field="code")
    if not 1 <= len(name) <= MAX_WAREHOUSE_NAME_LENGTH:
        raise InvalidWarehouse(f"'name' must be 1 to {MAX_WAREHOUSE_NAME_LENGTH} characters", field="name")
    return code, name


async def create_warehouse(session: AsyncSession, caller: Principal, code: str, name: str) -> WarehouseRow:
    """ADMIN. Codes are stored upper-case. A new warehouse starts empty: a variant without a row there
    simply has nothing in it until stock is adjusted in."""
    caller.require_role("ADMIN")
    code, name = _valid_warehouse(code, name)
    row = await repository.insert_warehouse_if_code_free(session, id=next_id(), code=code, name=name)
    if row is None:
        raise WarehouseCodeTaken(code)
    return row


async def ensure_warehouse(session: AsyncSession, code: str, name: str) -> WarehouseRow:
    """The warehouse with this code, created (empty) when there is none yet: for setting up an installation,
    where running twice must be harmless. Admins use `create_warehouse`."""
    code, name = _valid_warehouse(code, name)
    row = (await repository.insert_warehouse_if_code_free(session, id=next_id(), code=code, name=name)
           or await repository.warehouse_by_code(session, code))
    assert row is not None  # inserted now, or there before
    return row


async def stock_empty_rows(session: AsyncSession, levels: Iterable[tuple[int, int, int]], *, reason: str,
                           redis: Redis | None = None) -> list[StockRow]:
    """Initial stock: (variant_id, warehouse_id, on_hand) levels, each set where its variant has nothing in
    that warehouse yet (no row, or the empty one `register_variants` made). Stock that is really there is
    never overwritten, so doing it again is harmless. Each write is audited (no actor) and each variant
    stocked announced with `inventory.stock_changed`; given the subgraph's `redis`, its cached answers are
    dropped once this commits. Returns the rows written."""
    reason = _valid_reason(reason)
    written = await repository.set_stock_where_empty(session, [StockRow(v, w, q, 0) for v, w, q in levels])
    await repository.add_adjustments(session, [{
        "id": next_id(), "variant_id": r.variant_id, "warehouse_id": r.warehouse_id, "delta": r.on_hand,
        "reason": reason, "actor_id": None, "on_hand_after": r.on_hand} for r in written])
    # Zero "before" totals: stock that starts low is not a crossing, so no low_stock alerts from here.
    await _emit_stock_changes(session, {}, (r.variant_id for r in written))
    cache.GENERATION.bump_after_commit(session, redis)
    return written

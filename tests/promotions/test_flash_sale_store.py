"""The Lua scripts on their own, against the real Redis: edge cases of the purchase, the buckets, returns and
settlement that are awkward to reach through the API."""
from __future__ import annotations

import itertools
import time

from redis.asyncio import Redis

from subgraphs.promotions import flash_sale_store as store

GENEROUS = store.BucketLimits(1e6, 10**6, 1e6, 10**6)
_ids = itertools.count(1)


async def _sale(redis: Redis, *, stock: int, limit: int, starts_in_ms: int = -1000,
                lasts_ms: int = 3_600_000) -> int:
    sale_id = 8_000_000 + next(_ids)
    now = int(time.time() * 1000)
    assert await store.load_sale(redis, sale_id, starts_ms=now + starts_in_ms, ends_ms=now + starts_in_ms + lasts_ms,
                                 per_user_limit=limit, total_stock=stock)
    return sale_id


async def _attempt(redis: Redis, sale_id: int, user: int, *, quantity: int = 1, ip: str = "10.0.0.1",
                   limits: store.BucketLimits = GENEROUS, nonce: str | None = None,
                   issue: bool = True) -> store.PurchaseOutcome:
    n = next(_ids)
    nonce = nonce or f"nonce{n}"
    if issue:
        await store.issue_token(redis, sale_id, user_id=user, nonce=nonce, ttl_seconds=60)
    return await store.purchase(redis, sale_id, user_id=user, quantity=quantity, nonce=nonce,
                                idempotency_key=f"key{n}", reservation_id=900_000 + n, client_ip=ip, limits=limits)


async def test_not_enough_left_for_the_quantity_is_sold_out_and_changes_nothing(redis: Redis) -> None:
    sale_id = await _sale(redis, stock=3, limit=2)
    assert (await _attempt(redis, sale_id, 1, quantity=2)).status == "SUCCESS"
    outcome = await _attempt(redis, sale_id, 2, quantity=2)
    assert (outcome.status, outcome.remaining, outcome.reservation_id) == ("SOLD_OUT", 1, None)
    assert await store.user_holdings(redis, sale_id) == {1: 2}
    assert (await _attempt(redis, sale_id, 2, quantity=1)).status == "SUCCESS"
    assert (await store.sale_counters(redis, sale_id))["remaining"] == 0


async def test_the_ip_bucket_is_shared_by_users_and_a_refused_attempt_keeps_its_token(redis: Redis) -> None:
    sale_id = await _sale(redis, stock=100, limit=5)
    tight_ip = store.BucketLimits(1e6, 10**6, ip_rate_per_second=20.0, ip_burst=3)
    results = [await _attempt(redis, sale_id, user, limits=tight_ip) for user in (1, 2, 3)]
    assert [r.status for r in results] == ["SUCCESS"] * 3
    await store.issue_token(redis, sale_id, user_id=4, nonce="kept", ttl_seconds=60)
    limited = await _attempt(redis, sale_id, 4, limits=tight_ip, nonce="kept", issue=False)
    assert limited.status == "RATE_LIMITED"
    assert (await _attempt(redis, sale_id, 5, limits=tight_ip, ip="10.0.0.2")).status == "SUCCESS"  # other IP
    # The refused attempt did not spend the token: once the bucket refills (20/s), it buys.
    deadline = time.monotonic() + 5
    while (outcome := await _attempt(redis, sale_id, 4, limits=tight_ip, nonce="kept", issue=False)).status \
            == "RATE_LIMITED":
        assert time.monotonic() < deadline, "the IP bucket never refilled"
    assert outcome.status == "SUCCESS"


async def test_the_user_bucket_limits_one_user_only(redis: Redis) -> None:
    sale_id = await _sale(redis, stock=100, limit=100)
    tight_user = store.BucketLimits(user_rate_per_second=0.001, user_burst=2, ip_rate_per_second=1e6, ip_burst=10**6)
    statuses = [(await _attempt(redis, sale_id, 7, limits=tight_user)).status for _ in range(4)]
    assert statuses == ["SUCCESS", "SUCCESS", "RATE_LIMITED", "RATE_LIMITED"]
    assert (await _attempt(redis, sale_id, 8, limits=tight_user)).status == "SUCCESS"


async def test_returns_and_payments_move_each_reservation_once(redis: Redis) -> None:
    sale_id = await _sale(redis, stock=5, limit=3)
    paid = await _attempt(redis, sale_id, 1, quantity=2)
    unpaid = await _attempt(redis, sale_id, 2, quantity=3)
    assert await store.mark_paid(redis, sale_id, paid.reservation_id) == 2
    assert await store.mark_paid(redis, sale_id, paid.reservation_id) == 0
    assert await store.return_units(redis, sale_id, unpaid.reservation_id) == 3
    assert await store.return_units(redis, sale_id, unpaid.reservation_id) == 0
    assert await store.mark_paid(redis, sale_id, unpaid.reservation_id) == 0  # a returned one is never paid
    counters = await store.sale_counters(redis, sale_id)
    assert (counters["remaining"], counters["paid"]) == (3, 2)
    # A paid order cancelled (refunded) while the sale runs gives its units back too.
    assert await store.return_units(redis, sale_id, paid.reservation_id) == 2
    counters = await store.sale_counters(redis, sale_id)
    assert (counters["remaining"], counters["paid"]) == (5, 0)
    assert await store.user_holdings(redis, sale_id) == {1: 0, 2: 0}
    assert await store.return_units(redis, sale_id, 123) == 0  # not a reservation of this sale


async def test_settlement_waits_for_the_end_and_for_every_reserved_unit(redis: Redis) -> None:
    sale_id = await _sale(redis, stock=4, limit=2, lasts_ms=2000)
    paid = await _attempt(redis, sale_id, 1, quantity=2)
    pending = await _attempt(redis, sale_id, 2, quantity=1)
    assert (paid.status, pending.status) == ("SUCCESS", "SUCCESS")
    await store.mark_paid(redis, sale_id, paid.reservation_id)
    assert await store.try_settle(redis, sale_id) is None  # still running
    deadline = time.monotonic() + 5
    # A probe without an issued token buys nothing: INVALID_TOKEN while the sale runs, NOT_ACTIVE after.
    while (await _attempt(redis, sale_id, 3, issue=False)).status != "NOT_ACTIVE":
        assert time.monotonic() < deadline, "the sale never ended"
    assert await store.try_settle(redis, sale_id) is None  # one unit is still reserved, unpaid
    await store.return_units(redis, sale_id, pending.reservation_id)
    assert await store.try_settle(redis, sale_id) == 2
    assert await store.try_settle(redis, sale_id) == 2  # settled stays settled, with the same answer
    # After settlement the books are closed: a late return changes nothing.
    assert await store.return_units(redis, sale_id, paid.reservation_id) == 0
    assert (await store.sale_counters(redis, sale_id))["paid"] == 2


async def test_a_second_load_never_resets_a_running_sale(redis: Redis) -> None:
    sale_id = await _sale(redis, stock=3, limit=3)
    await _attempt(redis, sale_id, 1, quantity=2)
    now = int(time.time() * 1000)
    assert not await store.load_sale(redis, sale_id, starts_ms=now, ends_ms=now + 1000, per_user_limit=3,
                                     total_stock=3)
    assert (await store.sale_counters(redis, sale_id))["remaining"] == 1

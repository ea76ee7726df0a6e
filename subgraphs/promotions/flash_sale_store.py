"""Redis state of flash sales, changed only by the Lua scripts below (one script = one atomic step).

Keys of one sale share the hash tag `{fs:<id>}`, so they stay on one node under Redis Cluster:
  {fs:ID}:sale        hash   starts, ends (ms), limit, total, remaining, paid, settled
  {fs:ID}:users       hash   user id -> units the user holds (reserved or paid; returned units are taken off)
  {fs:ID}:tok:<nonce> string the user id a one-time purchase token was issued to (expires with the token)
  {fs:ID}:idem:<user>:<key>  string  "STATUS|reservation id" of a finished attempt (replays answer it)
  {fs:ID}:stream      stream one entry per reservation: rid, user, qty (the reconciler's work list)
  {fs:ID}:res         hash   reservation id -> "user|qty|state", state R (reserved), P (paid), X (returned)
  {fs:ID}:ordered     hash   reservation id -> 1 once its order is known to exist
  {fs:ID}:cursor      string the last stream id the reconciler has seen through
  {fs:ID}:stock       pub/sub channel: the remaining stock after each change
  promo:fs:reservation-sale  hash  reservation id (= order id) -> sale id, for order events
  promo:rl:user:<id>, promo:rl:ip:<ip>  token buckets of the purchase path

Time comes from Redis (`TIME`), so every process agrees on when a sale opens and closes.
"""
from __future__ import annotations

import dataclasses

from redis.asyncio import Redis

from kernel.redis import count_in_minute, lua_script, reply_text

RESERVATION_SALE_KEY = "promo:fs:reservation-sale"
IDEMPOTENCY_TTL_SECONDS = 24 * 3600


def sale_key(sale_id: int, part: str) -> str:
    return f"{{fs:{sale_id}}}:{part}"


def stock_channel(sale_id: int) -> str:
    return sale_key(sale_id, "stock")


_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# Loads a sale's rules and stock once; a second call (a redelivered event) must not reset the stock.
_LOAD_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'starts', ARGV[1], 'ends', ARGV[2], 'limit', ARGV[3], 'total', ARGV[4],
           'remaining', ARGV[4], 'paid', 0, 'settled', 0)
return 1
"""

# KEYS: 1 sale, 2 users, 3 token, 4 idempotency, 5 stream, 6 reservations, 7 reservation index,
#       8 user bucket, 9 ip bucket
# ARGV: 1 user, 2 quantity, 3 reservation id (used only on success), 4 sale id, 5 idempotency ttl (s),
#       6 user rate (per ms), 7 user burst, 8 ip rate (per ms), 9 ip burst, 10 stock channel
# Returns {status, reservation id or '', remaining stock, replayed 0|1}. Every check comes before the first
# write of its branch, so a refused attempt changes nothing but the rate buckets (and a consumed token).
_PURCHASE_LUA = _NOW_MS + """
local user, qty = ARGV[1], tonumber(ARGV[2])

local function refill(key, rate, burst)
  local b = redis.call('HMGET', key, 't', 'ts')
  local tokens, ts = tonumber(b[1]), tonumber(b[2])
  if tokens == nil then return burst end
  return math.min(burst, tokens + (now - ts) * rate)
end
local urate, uburst, irate, iburst = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local ut, it = refill(KEYS[8], urate, uburst), refill(KEYS[9], irate, iburst)
if ut < 1 or it < 1 then
  return {'RATE_LIMITED', '', tonumber(redis.call('HGET', KEYS[1], 'remaining') or '0'), 0}
end
redis.call('HSET', KEYS[8], 't', tostring(ut - 1), 'ts', now)
redis.call('PEXPIRE', KEYS[8], math.ceil(uburst / urate) + 1000)
redis.call('HSET', KEYS[9], 't', tostring(it - 1), 'ts', now)
redis.call('PEXPIRE', KEYS[9], math.ceil(iburst / irate) + 1000)

local prior = redis.call('GET', KEYS[4])
if prior then
  local bar = string.find(prior, '|', 1, true)
  return {string.sub(prior, 1, bar - 1), string.sub(prior, bar + 1),
          tonumber(redis.call('HGET', KEYS[1], 'remaining') or '0'), 1}
end

local s = redis.call('HMGET', KEYS[1], 'starts', 'ends', 'limit', 'remaining')
if not s[1] then return {'NOT_ACTIVE', '', 0, 0} end
local remaining = tonumber(s[4])
if now < tonumber(s[1]) or now >= tonumber(s[2]) then return {'NOT_ACTIVE', '', remaining, 0} end
if redis.call('GET', KEYS[3]) ~= user then return {'INVALID_TOKEN', '', remaining, 0} end
redis.call('DEL', KEYS[3])

local status, rid = 'SUCCESS', ''
local held = tonumber(redis.call('HGET', KEYS[2], user) or '0')
if held + qty > tonumber(s[3]) then
  status = 'LIMIT_EXCEEDED'
elseif remaining < qty then
  status = 'SOLD_OUT'
else
  rid = ARGV[3]
  remaining = redis.call('HINCRBY', KEYS[1], 'remaining', -qty)
  redis.call('HINCRBY', KEYS[2], user, qty)
  redis.call('XADD', KEYS[5], '*', 'rid', rid, 'user', user, 'qty', qty)
  redis.call('HSET', KEYS[6], rid, user .. '|' .. qty .. '|R')
  redis.call('HSET', KEYS[7], rid, ARGV[4])
  redis.call('PUBLISH', ARGV[10], remaining)
end
redis.call('SET', KEYS[4], status .. '|' .. rid, 'EX', ARGV[5])
return {status, rid, remaining, 0}
"""

# An order of the sale was cancelled (unpaid, declined, or by its buyer): its units go back to the sale and
# the buyer's count, once. After settlement the units belong to inventory's books, not the sale's.
# KEYS: 1 sale, 2 users, 3 reservations; ARGV: 1 reservation id, 2 stock channel. Returns units returned.
_RETURN_LUA = """
local r = redis.call('HGET', KEYS[3], ARGV[1])
if not r then return 0 end
local user, qty, state = string.match(r, '^([^|]+)|([^|]+)|(.)$')
qty = tonumber(qty)
if state == 'X' or redis.call('HGET', KEYS[1], 'settled') == '1' then return 0 end
if state == 'P' then redis.call('HINCRBY', KEYS[1], 'paid', -qty) end
local remaining = redis.call('HINCRBY', KEYS[1], 'remaining', qty)
redis.call('HINCRBY', KEYS[2], user, -qty)
redis.call('HSET', KEYS[3], ARGV[1], user .. '|' .. qty .. '|X')
redis.call('PUBLISH', ARGV[2], remaining)
return qty
"""

# KEYS: 1 sale, 2 reservations; ARGV: 1 reservation id. Returns units newly counted as paid.
_MARK_PAID_LUA = """
local r = redis.call('HGET', KEYS[2], ARGV[1])
if not r then return 0 end
local user, qty, state = string.match(r, '^([^|]+)|([^|]+)|(.)$')
if state ~= 'R' then return 0 end
redis.call('HINCRBY', KEYS[1], 'paid', tonumber(qty))
redis.call('HSET', KEYS[2], ARGV[1], user .. '|' .. qty .. '|P')
return tonumber(qty)
"""

# Closes the sale's books once it has ended and every reserved unit is either paid or returned: from then on
# nothing changes in Redis. KEYS: 1 sale. Returns the paid units, or -1 while the sale cannot settle yet.
_SETTLE_LUA = _NOW_MS + """
local s = redis.call('HMGET', KEYS[1], 'ends', 'total', 'remaining', 'paid', 'settled')
if not s[1] then return -1 end
if s[5] == '1' then return tonumber(s[4]) end
if now < tonumber(s[1]) then return -1 end
if tonumber(s[2]) - tonumber(s[3]) ~= tonumber(s[4]) then return -1 end
redis.call('HSET', KEYS[1], 'settled', 1)
return tonumber(s[4])
"""


@dataclasses.dataclass(frozen=True, slots=True)
class PurchaseOutcome:
    status: str
    reservation_id: int | None
    remaining: int
    replayed: bool


@dataclasses.dataclass(frozen=True, slots=True)
class BucketLimits:
    user_rate_per_second: float
    user_burst: int
    ip_rate_per_second: float
    ip_burst: int


@dataclasses.dataclass(frozen=True, slots=True)
class Reservation:
    stream_id: str
    reservation_id: int
    user_id: int
    quantity: int


async def load_sale(redis: Redis, sale_id: int, *, starts_ms: int, ends_ms: int, per_user_limit: int,
                    total_stock: int) -> bool:
    return bool(await lua_script(redis, _LOAD_LUA)(
        keys=[sale_key(sale_id, "sale")], args=[starts_ms, ends_ms, per_user_limit, total_stock], client=redis))


async def purchase(redis: Redis, sale_id: int, *, user_id: int, quantity: int, nonce: str, idempotency_key: str,
                   reservation_id: int, client_ip: str, limits: BucketLimits) -> PurchaseOutcome:
    keys = [sale_key(sale_id, "sale"), sale_key(sale_id, "users"), sale_key(sale_id, f"tok:{nonce}"),
            sale_key(sale_id, f"idem:{user_id}:{idempotency_key}"), sale_key(sale_id, "stream"),
            sale_key(sale_id, "res"), RESERVATION_SALE_KEY, f"promo:rl:user:{user_id}", f"promo:rl:ip:{client_ip}"]
    args = [user_id, quantity, reservation_id, sale_id, IDEMPOTENCY_TTL_SECONDS,
            limits.user_rate_per_second / 1000, limits.user_burst, limits.ip_rate_per_second / 1000,
            limits.ip_burst, stock_channel(sale_id)]
    status, rid, remaining, replayed = await lua_script(redis, _PURCHASE_LUA)(keys=keys, args=args, client=redis)
    return PurchaseOutcome(status=reply_text(status), reservation_id=int(rid) if rid else None,  # int() takes bytes
                           remaining=int(remaining), replayed=bool(replayed))


async def issue_token(redis: Redis, sale_id: int, *, user_id: int, nonce: str, ttl_seconds: int) -> None:
    await redis.set(sale_key(sale_id, f"tok:{nonce}"), user_id, ex=ttl_seconds)


async def count_token_issue(redis: Redis, sale_id: int, user_id: int) -> int:
    """How many tokens this user has asked for in this minute, this one included."""
    return await count_in_minute(redis, sale_key(sale_id, f"tokrate:{user_id}"))


async def remaining_stock(redis: Redis, sale_ids: list[int]) -> dict[int, int | None]:
    if not sale_ids:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for sale_id in sale_ids:
            pipe.hget(sale_key(sale_id, "sale"), "remaining")
        values = await pipe.execute()
    return {s: (int(v) if v is not None else None) for s, v in zip(sale_ids, values, strict=True)}


async def sale_of_reservation(redis: Redis, reservation_id: int) -> int | None:
    value = await redis.hget(RESERVATION_SALE_KEY, str(reservation_id))
    return int(value) if value is not None else None


async def return_units(redis: Redis, sale_id: int, reservation_id: int) -> int:
    return int(await lua_script(redis, _RETURN_LUA)(
        keys=[sale_key(sale_id, "sale"), sale_key(sale_id, "users"), sale_key(sale_id, "res")],
        args=[reservation_id, stock_channel(sale_id)], client=redis))


async def mark_paid(redis: Redis, sale_id: int, reservation_id: int) -> int:
    return int(await lua_script(redis, _MARK_PAID_LUA)(
        keys=[sale_key(sale_id, "sale"), sale_key(sale_id, "res")], args=[reservation_id], client=redis))


async def try_settle(redis: Redis, sale_id: int) -> int | None:
    """The paid units once the sale can settle (it is then closed for good), else None."""
    paid = int(await lua_script(redis, _SETTLE_LUA)(keys=[sale_key(sale_id, "sale")], client=redis))
    return paid if paid >= 0 else None


async def mark_ordered(redis: Redis, sale_id: int, reservation_id: int) -> None:
    await redis.hset(sale_key(sale_id, "ordered"), str(reservation_id), 1)


async def is_ordered(redis: Redis, sale_id: int, reservation_id: int) -> bool:
    return bool(await redis.hexists(sale_key(sale_id, "ordered"), str(reservation_id)))


async def reservations_after_cursor(redis: Redis, sale_id: int, *, older_than_ms: int,
                                    count: int = 500) -> tuple[list[Reservation], bool]:
    """Reservations past the reconciler's cursor and made before `older_than_ms` (stream ids start with the
    time in ms), oldest first; and whether the stream holds nothing newer than the cursor at all."""
    cursor = reply_text(await redis.get(sale_key(sale_id, "cursor")) or b"0-0")
    entries = await redis.xrange(sale_key(sale_id, "stream"), min=f"({cursor}", max=str(older_than_ms),
                                 count=count)
    out = []
    for stream_id, fields in entries or []:  # redis-py's types allow nil; XRANGE answers a list
        if stream_id is None or fields is None:  # the entry type also covers XAUTOCLAIM's deleted entries
            continue
        f = {reply_text(k): reply_text(v) for k, v in fields.items()}
        out.append(Reservation(stream_id=reply_text(stream_id), reservation_id=int(f["rid"]),
                               user_id=int(f["user"]), quantity=int(f["qty"])))
    if out:
        return out, False
    newer = await redis.xrange(sale_key(sale_id, "stream"), min=f"({cursor}", max="+", count=1)
    return [], not newer


async def sale_counters(redis: Redis, sale_id: int) -> dict[str, int]:
    values = await redis.hgetall(sale_key(sale_id, "sale"))
    return {reply_text(k): int(v) for k, v in values.items()}


async def user_holdings(redis: Redis, sale_id: int) -> dict[int, int]:
    return {int(k): int(v) for k, v in (await redis.hgetall(sale_key(sale_id, "users"))).items()}

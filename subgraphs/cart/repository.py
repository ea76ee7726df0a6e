"""Redis storage of the cart domain: carts and the catalog/stock projections, one Lua script per operation.

Keys (every id is a decimal string; cart ids are `secrets.token_urlsafe` strings)
  cart:{cart_id}               hash  user ('' for a guest cart), created, updated (epoch ms), seq (line counter),
                                     coupon_code and coupon (the applied coupon's terms as JSON), when one is applied
  cart:{cart_id}:items         hash  variant_id -> "position:quantity" (one line per variant)
  cart:{cart_id}:orders        set   order ids already taken out of this cart (order.placed is applied once)
  cart:user:{user_id}          string -> the user's cart id
  cart:variant:{variant_id}    hash  product_id, name, sku, price, currency, gone ('1': deleted or removed)
  cart:product:{product_id}    hash  variants (comma list), version (updated_at in µs), deleted
  cart:stock:{variant_id}      string  available units (inventory.stock_changed)

Why Lua: each mutation reads the cart, checks ownership, the projections, the line and quantity caps and
the stock, then writes, and all of that must be one atomic step or concurrent writers lose updates (50
parallel "add 1" must give 50). A script runs alone on the Redis server, so read-check-write cannot
interleave; it also returns the cart as it is after the write, so a mutation costs one round trip.
A script makes every check before its first write, so a refused request changes nothing (a Lua error
does not roll back earlier writes).

Every write refreshes the TTL of all the cart's keys (the user pointer included), so an abandoned cart
and its pointer expire together. Projection keys have no TTL: they are this domain's copy of the catalog.

The scripts build key names from values they read (the lines' variant keys), which Redis Cluster would
refuse; the cart store is one Redis primary, like the rest of the platform (kernel/response_cache.py).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from redis.asyncio import Redis

from kernel.errors import BadUserInput
from kernel.money import check_currency, parse_amount
from kernel.redis import lua_script
from subgraphs.cart.models import AppliedCoupon, CartLine, CartView, datetime_from_ms


def cart_key(cart_id: str) -> str:
    return f"cart:{cart_id}"


def items_key(cart_id: str) -> str:
    return f"cart:{cart_id}:items"


def orders_key(cart_id: str) -> str:
    return f"cart:{cart_id}:orders"


def user_cart_key(user_id: int | str) -> str:
    return f"cart:user:{user_id}"


def variant_key(variant_id: int | str) -> str:
    return f"cart:variant:{variant_id}"


def product_key(product_id: int | str) -> str:
    return f"cart:product:{product_id}"


def stock_key(variant_id: int | str) -> str:
    return f"cart:stock:{variant_id}"


# Shared by every cart script. Errors are returned as {'ERR', code, detail}, never raised, because a
# script stops at its first check that fails and before any write.
_PRELUDE = """
local P = 'cart:'
local function meta_key(c) return P .. c end
local function items_key(c) return P .. c .. ':items' end
local function orders_key(c) return P .. c .. ':orders' end
local function user_key(u) return P .. 'user:' .. u end
local function variant_key(v) return P .. 'variant:' .. v end
local function stock_key(v) return P .. 'stock:' .. v end

-- A guest cart is open to whoever holds its id; a user's cart to its owner only.
local function authorize(cid, caller)
  local owner = redis.call('HGET', meta_key(cid), 'user')
  if not owner then return nil, nil, 'CART_NOT_FOUND' end
  if owner ~= '' and owner ~= caller then
    if caller == '' then return nil, nil, 'UNAUTHENTICATED' end
    return nil, nil, 'FORBIDDEN'
  end
  return cid, owner, nil
end

local function own_cart(caller)
  local cid = redis.call('GET', user_key(caller))
  if cid and redis.call('EXISTS', meta_key(cid)) == 1 then return cid end
  return nil
end

-- The cart a mutation on an existing cart works on: the given id, or the caller's own cart.
local function target(cid, caller)
  if cid ~= '' then return authorize(cid, caller) end
  if caller == '' then return nil, nil, 'CART_ID_REQUIRED' end
  local own = own_cart(caller)
  if not own then return nil, nil, 'CART_NOT_FOUND' end
  return own, caller, nil
end

local function create(cid, owner, now)
  redis.call('HSET', meta_key(cid), 'user', owner, 'created', now, 'updated', now, 'seq', 0)
  if owner ~= '' then redis.call('SET', user_key(owner), cid) end
end

local function touch(cid, owner, now, ttl)
  redis.call('HSET', meta_key(cid), 'updated', now)
  redis.call('EXPIRE', meta_key(cid), ttl)
  redis.call('EXPIRE', items_key(cid), ttl)
  redis.call('EXPIRE', orders_key(cid), ttl)
  if owner ~= '' then redis.call('EXPIRE', user_key(owner), ttl) end
end

local function parse_line(raw)
  if not raw then return nil, 0 end
  local pos, qty = string.match(raw, '^(%d+):(%d+)$')
  return tonumber(pos), tonumber(qty)
end

local function sellable(vid)
  local v = redis.call('HMGET', variant_key(vid), 'product_id', 'gone')
  return v[1] and v[2] ~= '1'
end

-- No stock projection yet means nothing is known to be available.
local function stock_of(vid)
  return tonumber(redis.call('GET', stock_key(vid)) or '0') or 0
end

-- The cart with each line's projection: 'OK', id, user, updated, coupon terms ('' for none), then 10
-- strings per line.
local function view(cid)
  local m = redis.call('HMGET', meta_key(cid), 'user', 'updated', 'coupon')
  local out = {'OK', cid, m[1] or '', m[2] or '0', m[3] or ''}
  local items = redis.call('HGETALL', items_key(cid))
  for i = 1, #items, 2 do
    local vid = items[i]
    local pos, qty = parse_line(items[i + 1])
    local v = redis.call('HMGET', variant_key(vid), 'product_id', 'name', 'sku', 'price', 'currency', 'gone')
    local n = #out
    out[n + 1] = vid
    out[n + 2] = tostring(pos)
    out[n + 3] = tostring(qty)
    for j = 1, 6 do out[n + 3 + j] = v[j] or '' end
    out[n + 10] = redis.call('GET', stock_key(vid)) or ''
  end
  return out
end
"""

_VIEW_LUA = _PRELUDE + """
local cid, caller = ARGV[1], ARGV[2]
if cid == '' then
  if caller == '' then return {'NONE'} end
  cid = own_cart(caller)
  if not cid then return {'NONE'} end
  return view(cid)
end
local _, _, err = authorize(cid, caller)
if err then return {'ERR', err, ''} end
return view(cid)
"""

# ARGV: cart id ('' = the caller's cart, created if needed, or a new guest cart), caller, id for a new
# cart, variant id, quantity, now (ms), ttl, max lines, max quantity per line.
_ADD_LUA = _PRELUDE + """
local cid, caller, new_cid, vid = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local qty, now, ttl = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
local max_lines, max_qty = tonumber(ARGV[8]), tonumber(ARGV[9])
local owner, err
if cid ~= '' then
  cid, owner, err = authorize(cid, caller)
  if err then return {'ERR', err, ''} end
else
  cid, owner = nil, caller
  if caller ~= '' then cid = own_cart(caller) end
end
if not sellable(vid) then return {'ERR', 'VARIANT_NOT_FOUND', vid} end
local pos, have = nil, 0
if cid then pos, have = parse_line(redis.call('HGET', items_key(cid), vid)) end
if have + qty > max_qty then return {'ERR', 'QUANTITY_LIMIT', tostring(max_qty - have)} end
if not pos and cid and redis.call('HLEN', items_key(cid)) >= max_lines then
  return {'ERR', 'LINE_LIMIT', tostring(max_lines)}
end
local available = stock_of(vid)
if have + qty > available then return {'ERR', 'OUT_OF_STOCK', tostring(available)} end
if not cid then
  cid = new_cid
  create(cid, owner, now)
end
if not pos then pos = redis.call('HINCRBY', meta_key(cid), 'seq', 1) end
redis.call('HSET', items_key(cid), vid, pos .. ':' .. (have + qty))
touch(cid, owner, now, ttl)
return view(cid)
"""

# ARGV: cart id, caller, item (variant) id, quantity, now, ttl.
_UPDATE_LUA = _PRELUDE + """
local cid, owner, err = target(ARGV[1], ARGV[2])
if err then return {'ERR', err, ''} end
local vid, qty = ARGV[3], tonumber(ARGV[4])
local pos, have = parse_line(redis.call('HGET', items_key(cid), vid))
if not pos then return {'ERR', 'ITEM_NOT_FOUND', vid} end
-- Only growing a line needs the variant on sale and in stock: trimming a line is never refused.
if qty > have then
  if not sellable(vid) then return {'ERR', 'VARIANT_NOT_FOUND', vid} end
  local available = stock_of(vid)
  if qty > available then return {'ERR', 'OUT_OF_STOCK', tostring(available)} end
end
redis.call('HSET', items_key(cid), vid, pos .. ':' .. qty)
touch(cid, owner, ARGV[5], tonumber(ARGV[6]))
return view(cid)
"""

# ARGV: cart id, caller, item (variant) id, now, ttl.
_REMOVE_LUA = _PRELUDE + """
local cid, owner, err = target(ARGV[1], ARGV[2])
if err then return {'ERR', err, ''} end
if redis.call('HDEL', items_key(cid), ARGV[3]) == 0 then return {'ERR', 'ITEM_NOT_FOUND', ARGV[3]} end
touch(cid, owner, ARGV[4], tonumber(ARGV[5]))
return view(cid)
"""

# ARGV: cart id, caller, now, ttl.
_CLEAR_LUA = _PRELUDE + """
local cid, owner, err = target(ARGV[1], ARGV[2])
if err then return {'ERR', err, ''} end
redis.call('DEL', items_key(cid))
touch(cid, owner, ARGV[3], tonumber(ARGV[4]))
return view(cid)
"""

# ARGV: guest cart id, caller (required), id for a new user cart, now, ttl, max lines, max quantity.
_MERGE_LUA = _PRELUDE + """
local guest, caller, new_cid, now, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local max_lines, max_qty = tonumber(ARGV[6]), tonumber(ARGV[7])
local guest_owner = redis.call('HGET', meta_key(guest), 'user')
if not guest_owner then return {'ERR', 'CART_NOT_FOUND', ''} end
if guest_owner == caller then return view(guest) end
if guest_owner ~= '' then return {'ERR', 'FORBIDDEN', ''} end
local cid = own_cart(caller)
if not cid then
  cid = new_cid
  create(cid, caller, now)
end
local raw = redis.call('HGETALL', items_key(guest))
local lines = {}
for i = 1, #raw, 2 do
  local pos, qty = parse_line(raw[i + 1])
  lines[#lines + 1] = {raw[i], pos, qty}
end
table.sort(lines, function(a, b) return a[2] < b[2] end)
local count = redis.call('HLEN', items_key(cid))
for _, line in ipairs(lines) do
  local vid, qty = line[1], line[3]
  if sellable(vid) then
    local pos, have = parse_line(redis.call('HGET', items_key(cid), vid))
    -- Quantities add up, capped by the per-line maximum and the stock; a line the user already had is
    -- never lowered by merging, and lines beyond the line cap are dropped.
    local want = math.min(have + qty, max_qty, stock_of(vid))
    if want > have and (pos or count < max_lines) then
      if not pos then
        pos = redis.call('HINCRBY', meta_key(cid), 'seq', 1)
        count = count + 1
      end
      redis.call('HSET', items_key(cid), vid, pos .. ':' .. want)
    end
  end
end
-- A coupon applied to the guest cart comes along unless the user's cart has one of its own.
local guest_coupon = redis.call('HMGET', meta_key(guest), 'coupon_code', 'coupon')
if guest_coupon[1] and not redis.call('HGET', meta_key(cid), 'coupon_code') then
  redis.call('HSET', meta_key(cid), 'coupon_code', guest_coupon[1], 'coupon', guest_coupon[2])
end
redis.call('DEL', meta_key(guest), items_key(guest), orders_key(guest))
touch(cid, caller, now, ttl)
return view(cid)
"""

# ARGV: cart id ('' = the caller's cart), caller, coupon code, coupon terms (JSON), now, ttl. Replaces the
# coupon applied before, if any: a cart carries one coupon.
_SET_COUPON_LUA = _PRELUDE + """
local cid, owner, err = target(ARGV[1], ARGV[2])
if err then return {'ERR', err, ''} end
redis.call('HSET', meta_key(cid), 'coupon_code', ARGV[3], 'coupon', ARGV[4])
touch(cid, owner, ARGV[5], tonumber(ARGV[6]))
return view(cid)
"""

# ARGV: cart id, caller, now, ttl. Removing when none is applied is not an error.
_REMOVE_COUPON_LUA = _PRELUDE + """
local cid, owner, err = target(ARGV[1], ARGV[2])
if err then return {'ERR', err, ''} end
redis.call('HDEL', meta_key(cid), 'coupon_code', 'coupon')
touch(cid, owner, ARGV[3], tonumber(ARGV[4]))
return view(cid)
"""

# ARGV: cart id, order id, now, ttl, the order's coupon code ('' for none), then variant id / quantity pairs.
# The order id set makes a redelivered order.placed (inbox commit failed after this ran) a no-op. The coupon
# the order redeemed leaves the cart with the lines (another code applied since stays).
_ORDER_PLACED_LUA = _PRELUDE + """
local cid, order_id, now, ttl, coupon = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local owner = redis.call('HGET', meta_key(cid), 'user')
if not owner then return 0 end
if redis.call('SADD', orders_key(cid), order_id) == 0 then return 0 end
if coupon ~= '' and redis.call('HGET', meta_key(cid), 'coupon_code') == coupon then
  redis.call('HDEL', meta_key(cid), 'coupon_code', 'coupon')
end
for i = 6, #ARGV, 2 do
  local vid = ARGV[i]
  local pos, have = parse_line(redis.call('HGET', items_key(cid), vid))
  if pos then
    local left = have - tonumber(ARGV[i + 1])
    if left > 0 then
      redis.call('HSET', items_key(cid), vid, pos .. ':' .. left)
    else
      redis.call('HDEL', items_key(cid), vid)
    end
  end
end
touch(cid, owner, now, ttl)
return 1
"""

# ARGV: product id, version (updated_at in µs, '' if unknown), product name, then per variant: id, sku,
# price, currency. A snapshot replaces the previous one: applying it twice is the same as once.
_PROJECT_PRODUCT_LUA = _PRELUDE + """
local pid, version, name = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local pkey = P .. 'product:' .. pid
local state = redis.call('HMGET', pkey, 'deleted', 'version', 'variants')
if state[1] == '1' then return 0 end
if version and state[2] and tonumber(state[2]) and tonumber(state[2]) > version then return 0 end
local keep, list = {}, {}
for i = 4, #ARGV, 4 do
  local vid = ARGV[i]
  keep[vid] = true
  list[#list + 1] = vid
  redis.call('HSET', variant_key(vid), 'product_id', pid, 'name', name, 'sku', ARGV[i + 1],
             'price', ARGV[i + 2], 'currency', ARGV[i + 3], 'gone', '0')
end
if state[3] then
  for vid in string.gmatch(state[3], '[^,]+') do
    if not keep[vid] then redis.call('HSET', variant_key(vid), 'gone', '1') end
  end
end
redis.call('HSET', pkey, 'version', ARGV[2], 'variants', table.concat(list, ','))
return 1
"""

# ARGV: product id, then the variant ids the event names. Deletion is final (soft-deleted products
# never come back), so a late product.updated cannot revive the variants.
_PRODUCT_DELETED_LUA = _PRELUDE + """
local pkey = P .. 'product:' .. ARGV[1]
local vids = {}
for i = 2, #ARGV do vids[#vids + 1] = ARGV[i] end
local known = redis.call('HGET', pkey, 'variants')
if known then
  for vid in string.gmatch(known, '[^,]+') do vids[#vids + 1] = vid end
end
for _, vid in ipairs(vids) do redis.call('HSET', variant_key(vid), 'gone', '1') end
redis.call('HSET', pkey, 'deleted', '1')
return 1
"""


@dataclasses.dataclass(frozen=True, slots=True)
class Rejection:
    """A script refused the operation (nothing was written): `code` names the failed check."""
    code: str
    detail: str


Outcome = CartView | Rejection


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decimal(value: str) -> Decimal | None:
    try:
        return Decimal(value) if value else None
    except InvalidOperation:
        return None


def _outcome(raw: Sequence[Any]) -> Outcome | None:
    values = [_text(v) for v in raw]
    status = values[0]
    if status == "NONE":
        return None
    if status == "ERR":
        return Rejection(values[1], values[2])
    cart_id, user, updated, coupon = values[1], values[2], values[3], values[4]
    lines = []
    for i in range(5, len(values), 10):
        vid, pos, qty, pid, name, sku, price, currency, gone, stock = values[i:i + 10]
        lines.append(CartLine(variant_id=int(vid), quantity=int(qty), position=int(pos),
                              product_id=int(pid) if pid else None, name=name or None, sku=sku or None,
                              unit_price=_decimal(price), currency=currency or None, gone=gone == "1",
                              stock=int(stock) if stock.lstrip("-").isdigit() else 0))
    lines.sort(key=lambda line: line.position)
    return CartView(id=cart_id, user_id=int(user) if user else None, updated_at=datetime_from_ms(int(updated)),
                    lines=tuple(lines), coupon=coupon_from_json(coupon) if coupon else None)


def _written(raw: Sequence[Any]) -> Outcome:
    """A write script's answer: the cart it left, or a rejection (only the view script answers NONE)."""
    outcome = _outcome(raw)
    if outcome is None:
        raise RuntimeError("a cart write script answered NONE")
    return outcome


def coupon_terms(coupon: AppliedCoupon) -> str:
    """How the applied coupon is stored in the cart hash."""
    return orjson.dumps({"code": coupon.code, "kind": coupon.kind, "value": str(coupon.value),
                         "currency": coupon.currency, "min_subtotal": str(coupon.min_subtotal),
                         "starts_at": coupon.starts_at.isoformat(),
                         "ends_at": coupon.ends_at.isoformat() if coupon.ends_at else None}).decode()


def coupon_from_json(raw: str | bytes | dict[str, Any]) -> AppliedCoupon:
    """Parses stored terms, or promotions' quote (the same fields); raises ValueError when malformed."""
    try:
        terms = orjson.loads(raw) if isinstance(raw, (str, bytes)) else raw
        return AppliedCoupon(code=str(terms["code"]), kind=str(terms["kind"]),
                             value=parse_amount(terms["value"], field="value"),
                             currency=check_currency(terms["currency"]),
                             min_subtotal=parse_amount(terms["min_subtotal"], field="min_subtotal"),
                             starts_at=datetime.fromisoformat(terms["starts_at"]),
                             ends_at=datetime.fromisoformat(terms["ends_at"]) if terms.get("ends_at") else None)
    except (orjson.JSONDecodeError, KeyError, TypeError, BadUserInput) as exc:
        raise ValueError("malformed coupon terms") from exc


async def _run(redis: Redis, source: str, args: Sequence[Any]) -> Any:
    return await lua_script(redis, source)(keys=[], args=list(args), client=redis)


async def view_cart(redis: Redis, *, cart_id: str, caller: str) -> Outcome | None:
    return _outcome(await _run(redis, _VIEW_LUA, [cart_id, caller]))


async def add_item(redis: Redis, *, cart_id: str, caller: str, new_cart_id: str, variant_id: int, quantity: int,
                   now_ms: int, ttl: int, max_lines: int, max_quantity: int) -> Outcome:
    raw = await _run(redis, _ADD_LUA, [cart_id, caller, new_cart_id, variant_id, quantity, now_ms, ttl,
                                       max_lines, max_quantity])
    return _written(raw)


async def set_item_quantity(redis: Redis, *, cart_id: str, caller: str, variant_id: int, quantity: int,
                            now_ms: int, ttl: int) -> Outcome:
    return _written(await _run(redis, _UPDATE_LUA, [cart_id, caller, variant_id, quantity, now_ms, ttl]))


async def remove_item(redis: Redis, *, cart_id: str, caller: str, variant_id: int, now_ms: int, ttl: int) -> Outcome:
    return _written(await _run(redis, _REMOVE_LUA, [cart_id, caller, variant_id, now_ms, ttl]))


async def clear(redis: Redis, *, cart_id: str, caller: str, now_ms: int, ttl: int) -> Outcome:
    return _written(await _run(redis, _CLEAR_LUA, [cart_id, caller, now_ms, ttl]))


async def merge(redis: Redis, *, guest_cart_id: str, caller: str, new_cart_id: str, now_ms: int, ttl: int,
                max_lines: int, max_quantity: int) -> Outcome:
    raw = await _run(redis, _MERGE_LUA, [guest_cart_id, caller, new_cart_id, now_ms, ttl, max_lines, max_quantity])
    return _written(raw)


async def set_coupon(redis: Redis, *, cart_id: str, caller: str, coupon: AppliedCoupon, now_ms: int,
                     ttl: int) -> Outcome:
    raw = await _run(redis, _SET_COUPON_LUA, [cart_id, caller, coupon.code, coupon_terms(coupon), now_ms, ttl])
    return _written(raw)


async def remove_coupon(redis: Redis, *, cart_id: str, caller: str, now_ms: int, ttl: int) -> Outcome:
    return _written(await _run(redis, _REMOVE_COUPON_LUA, [cart_id, caller, now_ms, ttl]))


async def take_ordered(redis: Redis, *, cart_id: str, order_id: str, items: Sequence[tuple[int, int]],
                       now_ms: int, ttl: int, coupon_code: str | None = None) -> bool:
    args: list[Any] = [cart_id, order_id, now_ms, ttl, coupon_code or ""]
    for variant_id, quantity in items:
        args += [variant_id, quantity]
    return bool(await _run(redis, _ORDER_PLACED_LUA, args))


async def put_product(redis: Redis, *, product_id: int, version: int | None, name: str,
                      variants: Sequence[tuple[int, str, str, str]]) -> bool:
    """variants: (variant id, sku, price, currency)."""
    args: list[Any] = [product_id, "" if version is None else version, name]
    for variant in variants:
        args += list(variant)
    return bool(await _run(redis, _PROJECT_PRODUCT_LUA, args))


async def mark_product_deleted(redis: Redis, *, product_id: int, variant_ids: Sequence[int]) -> None:
    await _run(redis, _PRODUCT_DELETED_LUA, [product_id, *variant_ids])


async def put_stock(redis: Redis, *, variant_id: int, available: int) -> None:
    await redis.set(stock_key(variant_id), available)


async def variant_heard_of(redis: Redis, variant_id: int) -> bool:
    """Whether the product projection has this variant at all (on sale or gone)."""
    return bool(await redis.exists(variant_key(variant_id)))


async def stock_heard_of(redis: Redis, variant_id: int) -> bool:
    return bool(await redis.exists(stock_key(variant_id)))


async def projected_stock(redis: Redis, variant_id: int) -> int | None:
    value = await redis.get(stock_key(variant_id))
    return None if value is None else int(value)


async def claim_stock_recheck(redis: Redis, variant_id: int, *, every_seconds: int) -> bool:
    """True at most once per `every_seconds` per variant (across cart replicas): how often a refusal for stock may
    be checked with inventory, so a crowd adding a sold-out product costs inventory one call a second."""
    return bool(await redis.set(f"cart:stock-recheck:{variant_id}", 1, nx=True, ex=every_seconds))


async def put_stock_if_unknown(redis: Redis, *, variant_id: int, available: int) -> bool:
    """Store a stock figure read from inventory, unless an inventory.stock_changed got there first (the event
    is at least as fresh)."""
    return bool(await redis.set(stock_key(variant_id), available, nx=True))

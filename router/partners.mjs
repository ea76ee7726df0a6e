// Partner API keys at the edge (X-Api-Key), and demand control for every client.
//
// Per request with an X-Api-Key header, before the body is read:
//   1. the key's record: Redis `nexuscart:partners:key:<sha256 hex of the key>` (written by the partners
//      subgraph when a key is created or revoked; subgraphs/partners/key_store.py), or on a miss the partners
//      subgraph's GET /internal/api-keys/<hash>, which also refills Redis. Unknown or revoked: 401
//      UNAUTHENTICATED. The router never reads Postgres itself;
//   2. the key's request rate: a fixed one-minute window in Redis (the same atomic SET NX PX + INCR + PTTL as
//      the per-IP limiter), RATE_LIMITED with HTTP 429 and Retry-After.
// Then, per operation, after validation and before anything reaches a subgraph:
//   3. persisted-only keys run only the documents of their own allowlist (router/operations/<key name>/; see
//      `persistedDocumentsFor` below and gateway.config.mjs): PERSISTED_QUERY_ONLY / PERSISTED_QUERY_NOT_IN_LIST;
//   4. cost (cost.mjs): above ROUTER_MAX_COST -> QUERY_TOO_COMPLEX with the computed cost, for every client;
//      for a key, the requested cost is also taken from the key's leaky bucket of ROUTER_KEY_COST_PER_MINUTE
//      (one Lua script in Redis): RATE_LIMITED with Retry-After when it would overflow;
//   5. the subgraphs learn the key's id and scopes from `x-nexuscart-partner`, a 2-minute RS256 token minted
//      here with the platform's key pair (JWT_PRIVATE_KEY_FILE), and check the scopes where the data is
//      (kernel/graphql/scopes.py). A client's own header of that name is never forwarded.
// Every response reports extensions.cost {requested, actual}; a key's requests, errors and actual cost are
// counted per UTC day in Redis (apiKeyUsage reads them).
import { createHash, createPrivateKey, createPublicKey, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { GraphQLError } from 'graphql';
import { operationCost } from './cost.mjs';

export const apiKeyHeader = 'x-api-key';
export const partnerHeader = 'x-nexuscart-partner';

/** What to forward to subgraphs in `x-nexuscart-partner` for this request, or undefined. */
export function partnerTokenOf(request) {
  return request ? requests.get(request)?.token : undefined;
}

const keyPrefix = 'nexuscart:partners:key:';
const usagePrefix = 'nexuscart:partners:usage:';
const lastUsedKey = 'nexuscart:partners:last-used';
const keyRatePrefix = 'nexuscart:router:key-rate:';
const costBucketPrefix = 'nexuscart:router:key-cost:';
const usageRetentionSeconds = 100 * 24 * 3600;

// Request -> { key, token, actual, errored } for requests with a valid key. Module-wide because the
// persisted-documents options (gateway.config.mjs) look the key up by request too.
const requests = new WeakMap();

/** The verified API key record of this request ({id, name, scopes, persistedOnly, ...}), or undefined. */
export function apiKeyOf(request) {
  return request ? requests.get(request)?.key : undefined;
}
const windowMs = 60_000;

function graphqlError(message, code, { status, headers, extensions } = {}) {
  return new GraphQLError(message, {
    extensions: { code, ...(extensions ?? {}), ...(status ? { http: { status, ...(headers ? { headers } : {}) } } : {}) },
  });
}

function errorResponse(fetchAPI, error, status, headers = {}) {
  return new fetchAPI.Response(JSON.stringify({ errors: [error.toJSON()] }), {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', ...headers },
  });
}

function retryAfterSeconds(ms) {
  return String(Math.max(1, Math.ceil(ms / 1000)));
}

function utcDay(now = new Date()) {
  return now.toISOString().slice(0, 10);
}

// ---------------------------------------------------------------- identity
// An RS256 JWT kernel/auth.py's TokenVerifier.verify_partner accepts: kid = RFC 7638 thumbprint of the public
// key, audience "<JWT_AUDIENCE>:partner" (so it never passes for a user's access token).
function partnerTokenMinter({ privateKeyFile, issuer, audience, log }) {
  if (!privateKeyFile) {
    log?.warn('[partners] JWT_PRIVATE_KEY_FILE is not set: requests with an X-Api-Key are refused');
    return null;
  }
  const privateKey = createPrivateKey(readFileSync(privateKeyFile));
  const { n, e } = createPublicKey(privateKey).export({ format: 'jwk' });
  const kid = createHash('sha256').update(`{"e":"${e}","kty":"RSA","n":"${n}"}`).digest('base64url');
  const header = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid })).toString('base64url');
  const ttlSeconds = 120;
  const cache = new Map(); // key id -> { token, renewAt }: one RSA signature per key per minute, not per request
  return (key) => {
    const now = Math.floor(Date.now() / 1000);
    const cached = cache.get(key.id);
    if (cached && cached.renewAt > now) return cached.token;
    const claims = { sub: key.id, scopes: [...key.scopes].sort(), iss: issuer, aud: `${audience}:partner`, iat: now, exp: now + ttlSeconds };
    const signingInput = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    const token = `${signingInput}.${sign('sha256', Buffer.from(signingInput), privateKey).toString('base64url')}`;
    cache.set(key.id, { token, renewAt: now + ttlSeconds / 2 });
    return token;
  };
}

// ------------------------------------------------------------- key records
function keyLookup({ redis, partnersUrl, log }) {
  // Without Redis (a router started by hand) every keyed request asks the partners subgraph, with a 5 s
  // memory of the answer.
  const memory = new Map();
  const fromService = async (hash) => {
    if (!partnersUrl) throw new Error('no partners service address');
    const response = await fetch(`${partnersUrl}/internal/api-keys/${hash}`, { signal: AbortSignal.timeout(3000) });
    if (!response.ok) throw new Error(`partners answered HTTP ${response.status}`);
    const body = await response.json();
    return body.found ? body.key : { unknown: true };
  };
  return async (apiKey) => {
    const hash = createHash('sha256').update(apiKey).digest('hex');
    const client = redis && (await redis.client());
    if (client) {
      try {
        const raw = await client.get(keyPrefix + hash);
        if (raw) return JSON.parse(raw);
      } catch (error) {
        log?.warn(`[partners] Redis unavailable (${error.message}): asking the partners service`);
      }
      return fromService(hash);
    }
    const remembered = memory.get(hash);
    if (remembered && remembered.until > Date.now()) return remembered.record;
    const record = await fromService(hash);
    memory.set(hash, { record, until: Date.now() + 5000 });
    return record;
  };
}

// One request counted in a fixed window (one Redis round trip): the window starts with the first request and
// its counter expires with it. Shared by the per-key limit here and the per-IP limit (gateway.config.mjs).
export async function countInWindow(client, redisKey, limit, windowLengthMs) {
  const [, [e1, count], [e2, pttl]] = await client
    .multi()
    .set(redisKey, 0, 'PX', windowLengthMs, 'NX')
    .incr(redisKey)
    .pttl(redisKey)
    .exec();
  if (e1 || e2) throw e1 || e2;
  return { limited: count > limit, retryAfterMs: pttl > 0 ? pttl : windowLengthMs };
}

async function countKeyRequest(client, key) {
  return countInWindow(client, keyRatePrefix + key.id, key.rateLimitPerMinute, windowMs);
}

// Leaky bucket of cost units: it drains at capacity per minute; a request that would overflow it is refused
// and told when it would fit. The time comes from the router (one clock per host is close enough for a
// one-minute budget) so the script also runs on Redis versions without effect replication.
const leakyBucketLua = `
local capacity = tonumber(ARGV[1])
local leak_per_ms = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'level', 'ts')
local level = tonumber(state[1]) or 0
local ts = tonumber(state[2]) or now
level = math.max(0, level - math.max(0, now - ts) * leak_per_ms)
if level + cost > capacity then
  return {0, math.ceil((level + cost - capacity) / leak_per_ms)}
end
redis.call('HMSET', KEYS[1], 'level', tostring(level + cost), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / leak_per_ms) + 1000)
return {1, 0}`;

// ------------------------------------------------------------------ Redis
// One connection per gateway worker for the partner paths (the per-IP limiter keeps its own), opened on first
// use so a router no partner calls never opens it.
export function lazyRedis(url, log) {
  if (!url) return null;
  let connecting = null;
  let redis = null;
  return {
    client() {
      connecting ??= (async () => {
        const { default: Redis } = await import('ioredis');
        redis = new Redis(url, {
          enableOfflineQueue: false,
          maxRetriesPerRequest: 0,
          commandTimeout: 1000,
          disconnectTimeout: 200,
          connectionName: 'nexuscart-router-partners',
        });
        redis.on('error', () => {});
        redis.defineCommand('costBucket', { numberOfKeys: 1, lua: leakyBucketLua });
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, 2000);
          const done = () => resolve(clearTimeout(timer));
          redis.once('ready', done);
          redis.once('error', done);
        });
        if (redis.status !== 'ready') log?.warn('[partners] Redis is not reachable yet');
        return redis;
      })();
      return connecting;
    },
    dispose() {
      redis?.disconnect();
    },
  };
}

// ------------------------------------------------------------------ plugin
// options: { redisUrl, partnersUrl, privateKeyFile, issuer, audience, maxCost, keyCostPerMinute,
//            defaultListSize, log }
export function usePartners(options) {
  const { log, maxCost, keyCostPerMinute, defaultListSize } = options;
  const redis = lazyRedis(options.redisUrl, log);
  const lookup = keyLookup({ redis, partnersUrl: options.partnersUrl, log });
  const mint = partnerTokenMinter(options);

  const recordUsage = async (state, errored) => {
    if (!state?.key || !redis) return;
    try {
      const client = await redis.client();
      const usageKey = `${usagePrefix}${state.key.id}:${utcDay()}`;
      await client
        .multi()
        .hincrby(usageKey, 'requests', 1)
        .hincrby(usageKey, 'errors', errored ? 1 : 0)
        .hincrby(usageKey, 'cost', state.actual ?? 0)
        .expire(usageKey, usageRetentionSeconds)
        .hset(lastUsedKey, state.key.id, Date.now())
        .exec();
    } catch (error) {
      log?.warn(`[partners] usage not recorded (${error.message})`);
    }
  };

  const unauthenticated = () =>
    graphqlError('Unknown or revoked API key (X-Api-Key).', 'UNAUTHENTICATED');

  // Cost check of one operation (query, mutation or subscription); returns an error result or null.
  const checkCost = async (args, state) => {
    const cost = operationCost(args.schema, args.document, args.operationName, args.variableValues, { defaultListSize });
    if (!cost) return { cost: null, refusal: null };
    const limit = state?.key ? Math.min(maxCost || Infinity, keyCostPerMinute || Infinity) : maxCost || Infinity;
    if (cost.requested > limit) {
      return {
        cost,
        refusal: graphqlError(
          `The operation's cost, ${cost.requested}, is above the limit of ${limit}. ` +
            'Ask for fewer items (first/last) or fewer fields.',
          'QUERY_TOO_COMPLEX',
          { extensions: { cost: { requested: cost.requested, maximum: limit } } },
        ),
      };
    }
    if (state?.key && keyCostPerMinute > 0 && redis) {
      try {
        const client = await redis.client();
        const [allowed, retryMs] = await client.costBucket(
          costBucketPrefix + state.key.id,
          keyCostPerMinute,
          keyCostPerMinute / windowMs,
          Date.now(),
          cost.requested,
        );
        if (!allowed) {
          return {
            cost,
            refusal: graphqlError(
              `Cost budget exceeded: at most ${keyCostPerMinute} cost units per minute for this API key.`,
              'RATE_LIMITED',
              { status: 429, headers: { 'retry-after': retryAfterSeconds(retryMs) } },
            ),
          };
        }
      } catch (error) {
        // The per-request limit still holds; the budget is skipped rather than refusing every partner.
        log?.warn(`[partners] cost budget not checked (${error.message})`);
      }
    }
    return { cost, refusal: null };
  };

  const withCost = (result, cost, actual) => {
    if (!result || typeof result !== 'object' || Symbol.asyncIterator in result) return result;
    return { ...result, extensions: { ...(result.extensions ?? {}), cost: { requested: cost.requested, actual } } };
  };

  return {

    async onRequest({ request, url, endResponse, fetchAPI }) {
      const apiKey = request.headers.get(apiKeyHeader);
      if (apiKey == null) return;
      const pathname = url?.pathname ?? new URL(request.url).pathname;
      if (pathname !== '/graphql') return;
      let key;
      try {
        key = apiKey.length > 0 && apiKey.length <= 200 ? await lookup(apiKey) : { unknown: true };
      } catch (error) {
        log?.error(`[partners] API key lookup failed: ${error.message}`);
        endResponse(errorResponse(fetchAPI, graphqlError('API keys cannot be checked right now; try again shortly.', 'SERVICE_UNAVAILABLE'), 503, { 'retry-after': '5' }));
        return;
      }
      if (!key || key.unknown || key.revoked) {
        if (key?.revoked) await recordUsage({ key, actual: 0 }, true);
        endResponse(errorResponse(fetchAPI, unauthenticated(), 401));
        return;
      }
      if (!mint) {
        endResponse(errorResponse(fetchAPI, graphqlError('API keys are not enabled on this router.', 'UNAUTHENTICATED'), 401));
        return;
      }
      if (redis) {
        try {
          const { limited, retryAfterMs } = await countKeyRequest(await redis.client(), key);
          if (limited) {
            await recordUsage({ key, actual: 0 }, true);
            endResponse(
              errorResponse(
                fetchAPI,
                graphqlError(`Rate limit exceeded: at most ${key.rateLimitPerMinute} requests per minute for this API key.`, 'RATE_LIMITED'),
                429,
                { 'retry-after': retryAfterSeconds(retryAfterMs) },
              ),
            );
            return;
          }
        } catch (error) {
          log?.warn(`[partners] key rate limit not checked (${error.message})`);
        }
      }
      requests.set(request, { key, token: mint(key), actual: 0, errored: false });
    },

    // WebSocket operations carry no per-request key check here: a key is refused over WebSocket (SSE serves
    // partner subscriptions), so a persisted-only key cannot use a socket to run other documents.
    onParams({ context, setResult }) {
      if (!context?.socket || !context.request) return;
      const params = context.connectionParams ?? {};
      if (context.request.headers.get(apiKeyHeader) != null || params[apiKeyHeader] != null || params['X-Api-Key'] != null) {
        setResult({
          errors: [graphqlError('API keys are accepted over HTTP only (use SSE for subscriptions).', 'BAD_REQUEST')],
        });
      }
    },

    async onExecute({ args, setResultAndStopExecution }) {
      const state = requests.get(args.contextValue?.request);
      const { cost, refusal } = await checkCost(args, state);
      if (refusal) {
        setResultAndStopExecution({ errors: [refusal], extensions: { cost: { requested: cost.requested, actual: 0 } } });
        return;
      }
      if (!cost) return;
      return {
        onExecuteDone({ result, setResult }) {
          if (!result || Symbol.asyncIterator in result) return;
          const actual = cost.actualOf(result.data);
          if (state) state.actual = actual;
          setResult(withCost(result, cost, actual));
        },
      };
    },

    async onSubscribe({ args, setResultAndStopExecution }) {
      const state = requests.get(args.contextValue?.request);
      const { cost, refusal } = await checkCost(args, state);
      if (refusal) setResultAndStopExecution({ errors: [refusal], extensions: { cost: { requested: cost.requested, actual: 0 } } });
    },

    onResultProcess({ request, result }) {
      const state = requests.get(request);
      if (!state) return;
      const results = Array.isArray(result) ? result : [result];
      if (results.some((r) => r && Array.isArray(r.errors) && r.errors.length > 0)) state.errored = true;
    },

    onResponse({ request, response }) {
      const state = requests.get(request);
      if (!state) return;
      requests.delete(request);
      // Not awaited: the client's answer never waits for the usage counters.
      recordUsage(state, state.errored || response.status >= 400);
    },

    onDispose() {
      redis?.dispose();
    },
  };
}

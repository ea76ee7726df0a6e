// NexusCart router: Hive Gateway configuration.
//
// Picked up automatically by `hive-gateway supergraph` when the working
// directory is router/ (or pass `-c router/gateway.config.mjs`).
// Every knob is an environment variable; see README.md in this folder.
//
// Hive Gateway built-ins do the work wherever they can: error masking
// (`maskedErrors`), persisted documents (`persistedDocuments` with the
// gateway's own id extraction), the GraphQL Armor limits (`maxTokens`,
// `maxDepth`, `blockFieldSuggestions`), `upstreamTimeout`, response caching,
// Prometheus, request ids and header propagation. Custom code is kept only
// where 2.15.1 has nothing that does the job; each such place says why.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { maxAliasesPlugin } from '@escape.tech/graphql-armor-max-aliases';
import { defineConfig } from '@graphql-hive/gateway';
import { GraphQLError, Kind } from 'graphql';
import { apiKeyHeader, apiKeyOf, countInWindow, partnerHeader, partnerTokenOf, usePartners } from './partners.mjs';

const routerDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(routerDir, '..');
const env = process.env;

function envInt(name, fallback) {
  const raw = env[name];
  if (raw == null || raw.trim() === '') return fallback;
  const n = Number.parseInt(raw, 10);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got "${raw}"`);
  return n;
}

function envBool(name, fallback) {
  const raw = env[name];
  if (raw == null || raw.trim() === '') return fallback;
  return ['1', 'true', 'yes', 'on'].includes(raw.trim().toLowerCase());
}

// ---------------------------------------------------------------- supergraph
const supergraphPath = resolve(env.NEXUSCART_SUPERGRAPH || resolve(repoRoot, 'schema', 'supergraph.graphql'));
if (!existsSync(supergraphPath)) {
  throw new Error(`supergraph not found at ${supergraphPath} (run: node router/compose.mjs)`);
}

// Per-subgraph URL override: NEXUSCART_<NAME>_URL, where <NAME> is the
// subgraph name from supergraph.yaml upper-cased with non-alphanumerics as "_"
// (users -> NEXUSCART_USERS_URL, order-history -> NEXUSCART_ORDER_HISTORY_URL).
// The subgraph names are read from the supergraph's @join__graph directives.
function subgraphNames(sdl) {
  const names = new Set();
  for (const m of sdl.matchAll(/@join__graph\(\s*name:\s*"([^"]+)"/g)) names.add(m[1]);
  return [...names];
}

// Subgraph subscriptions go over graphql-transport-ws on the same URL
// (http -> ws). WebSocket upgrade requests carry no per-operation headers, so
// the client's Authorization is sent both as an upgrade header and in the
// connection_init payload (connectionParams); see the context plugin below. A partner's subscription (over
// SSE: keys are refused on client WebSockets) carries the router's partner token the same way, so the
// subgraph checks its scopes (the subgraph sees it as an upgrade header).
const wsSubscriptions = {
  kind: 'ws',
  headers: [
    ['authorization', '{context.nexuscart.authorization}'],
    ['x-nexuscart-partner', '{context.nexuscart.partner}'],
  ],
  options: {
    connectionParams: { authorization: '{context.nexuscart.authorization}' },
  },
};

// No merging of identical in-flight subgraph requests (the HTTP executor's default for queries). A merged follower's
// answer comes from the leader's fetch, so the follower's own context never sees the subgraph's Cache-Control:
// the response cache below then kept that caller-only answer for its full TTL, under a key that names the
// audience, not the caller. Measured before this line: a shopper who sent `{ me { email } }` twice at once had
// their email served to the next signed-in shopper for a second, and searches answered that way were never
// logged for searchInsights. Shared answers still come from the response cache.
const transportEntries = { '*': { options: { subscriptions: wsSubscriptions, deduplicateInflightRequests: false } } };
const urlOverrides = {};
const supergraphSdl = readFileSync(supergraphPath, 'utf8');
for (const name of subgraphNames(supergraphSdl)) {
  const varName = `NEXUSCART_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_URL`;
  const url = env[varName];
  if (url && url.trim()) {
    transportEntries[name] = { location: url.trim() };
    urlOverrides[name] = url.trim();
  }
}

// --------------------------------------------------------- persisted documents
// Manifest: { "<sha256 hex of document text>": "<document text>" }, generated
// by `node router/persist.mjs` from router/operations/*.graphql.
// The gateway's own id extraction reads Apollo APQ style
// (extensions.persistedQuery.sha256Hash) and `documentId` (POST body or GET
// query string); the "sha256:" prefix some clients put on documentId is
// stripped at lookup. The router never registers new documents.
const manifestPath = resolve(env.ROUTER_PERSISTED_DOCUMENTS || resolve(routerDir, 'persisted-documents.json'));
const persistedDocs = new Map(
  existsSync(manifestPath) ? Object.entries(JSON.parse(readFileSync(manifestPath, 'utf8'))) : [],
);
const persistedOnly = envBool('ROUTER_PERSISTED_ONLY', false);

// Partner apps' allowlists: router/persisted/<app>.json (Apollo persisted-query manifests, generated by
// persist.mjs from router/operations/<app>/). An API key with persistedOnly runs only its own app's
// documents (the app named like the key); other clients may run any persisted document by id.
const appManifestsDir = resolve(env.ROUTER_APP_MANIFESTS || resolve(routerDir, 'persisted'));
const appDocs = new Map(); // app -> Map(id -> body)
for (const file of existsSync(appManifestsDir) ? readdirSync(appManifestsDir).filter((f) => f.endsWith('.json')) : []) {
  const manifest = JSON.parse(readFileSync(resolve(appManifestsDir, file), 'utf8'));
  appDocs.set(file.slice(0, -'.json'.length), new Map(manifest.operations.map((op) => [op.id, op.body])));
}

function persistedDocument(rawId, request) {
  const id = rawId.startsWith('sha256:') ? rawId.slice(7) : rawId;
  const key = apiKeyOf(request);
  if (key?.persistedOnly) {
    const own = appDocs.get(key.name)?.get(id);
    if (own) return own;
    if (persistedDocs.has(id) || [...appDocs.values()].some((docs) => docs.has(id))) {
      throw new GraphQLError(
        `The persisted document "${id.slice(0, 80)}" is not in this API key's allowlist ` +
          `(router/operations/${key.name}/).`,
        { extensions: { code: 'PERSISTED_QUERY_NOT_IN_LIST', http: { status: 403 } } },
      );
    }
    return null;
  }
  return persistedDocs.get(id) ?? [...appDocs.values()].find((docs) => docs.has(id))?.get(id) ?? null;
}

function printableId(params, request) {
  const id =
    params?.documentId ??
    params?.extensions?.persistedQuery?.sha256Hash ??
    (request?.method === 'GET' ? new URL(request.url).searchParams.get('documentId') : null);
  const text = String(id ?? '');
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

const persistedDocumentErrors = {
  // Unknown id. PERSISTED_QUERY_NOT_FOUND is the code Apollo clients react to.
  notFound: ({ params, request }) =>
    new GraphQLError(
      `PersistedQueryNotFound: no persisted document has the id "${printableId(params, request)}". ` +
        (persistedOnly
          ? 'This router only runs the documents in its manifest (router/operations, node router/persist.mjs).'
          : 'Send the document itself in "query".'),
      { extensions: { code: 'PERSISTED_QUERY_NOT_FOUND' } },
    ),
  // Neither a document nor an id. Without this, `{}` answered "PersistedQueryKeyNotFound".
  keyNotFound: () =>
    new GraphQLError(
      persistedOnly
        ? 'Missing "documentId": this router only runs persisted documents; send their id as "documentId" ' +
            '(or extensions.persistedQuery.sha256Hash).'
        : 'Missing "query": the request has neither a GraphQL document in "query" nor a persisted document id ' +
            'in "documentId" (or extensions.persistedQuery.sha256Hash).',
      { extensions: { code: 'BAD_REQUEST', http: { status: 400 } } },
    ),
  persistedQueryOnly: ({ request }) =>
    new GraphQLError(
      (apiKeyOf(request)?.persistedOnly ? 'This API key runs only the persisted documents of its allowlist' :
        'Only persisted documents are accepted by this router') +
        ': send "documentId" (or extensions.persistedQuery.sha256Hash) instead of "query".',
      { extensions: { code: 'PERSISTED_QUERY_ONLY', http: { status: 400 } } },
    ),
};

// ---------------------------------------------------------- transport errors
// Custom: Yoga answers a POST that no request parser accepts (no body, no
// Content-Type, text/plain, ...) with an empty HTTP 415 (graphql-yoga
// server.js parseRequest, 5.24.1), and there is no option to give it a body.
// This plugin runs after the built-in parsers and only acts when none of them
// matched: its parser reads the body and throws a GraphQL error saying what
// is wrong, which Yoga serialises like any other request error.
function useExplainUnparsableRequests() {
  return {
    onRequestParse({ request, requestParser, setRequestParser }) {
      if (requestParser || request.method !== 'POST') return;
      setRequestParser(async (req) => {
        const contentType = req.headers.get('content-type');
        const body = await req.text();
        if (!body.trim()) {
          throw new GraphQLError(
            'The POST body is empty: send a JSON object such as {"query": "{ categories { name } }"} ' +
              'with Content-Type: application/json.',
            { extensions: { code: 'BAD_REQUEST', http: { status: 400 } } },
          );
        }
        throw new GraphQLError(
          contentType
            ? `Unsupported Content-Type "${contentType.slice(0, 100)}": send the request as JSON ` +
                '({"query": ..., "variables": ...}) with Content-Type: application/json.'
            : 'Missing Content-Type: send the request as JSON ({"query": ..., "variables": ...}) ' +
                'with Content-Type: application/json.',
          { extensions: { code: 'BAD_REQUEST', http: { status: 415 } } },
        );
      });
    },
  };
}

// -------------------------------------------------------------- client info
// Client IP = TCP peer address, or (ROUTER_TRUST_PROXY=true, behind a trusted
// ingress/load balancer) the left-most X-Forwarded-For entry.
const trustProxy = envBool('ROUTER_TRUST_PROXY', false);

function peerAddress(serverContext) {
  const req = serverContext?.req;
  return req?.socket?.remoteAddress || req?.connection?.remoteAddress || 'unknown';
}

function clientIp(request, serverContext) {
  if (trustProxy) {
    const xff = request.headers.get('x-forwarded-for');
    if (xff) return xff.split(',')[0].trim();
  }
  return peerAddress(serverContext);
}

// Custom, a workaround for a per-request cost in 2.15.1's subgraph HTTP executor (@graphql-tools/executor-http
// 3.4.1): each subgraph executor keeps one long-lived "dispose" AbortController and ties every subgraph request to
// it with @graphql-hive/signal's abortSignalAny, which adds an "abort" listener to that long-lived signal and only
// removes it once a garbage collection has finalized the request's own signal. Between major collections the
// listeners pile up (seen: 4,500 on the inventory executor), and Node's EventTarget compares each new listener
// with every one already there: addEventListener alone was 5.5% of the router's CPU on the stock check, and
// removing the pile at each collection costs as much again. The executor creates no dispose controller when the
// incoming request carries `cf` (Cloudflare Workers' request property, the only thing that reads it), so every
// request is given one. Measured on one gateway process, stock check at 16 connections, five alternating pairs:
// 2.25-2.85 -> 1.75-2.27 ms of router CPU per request. Given up: in-flight subgraph requests are no longer
// aborted when a supergraph reload disposes an executor; they finish or hit the upstream timeout. The client's own
// abort still reaches the subgraph request (the request's signal is passed on as before). Every context gets the
// flag, WebSocket ones included: one request without it would create the controller for all that follow.
function useNoExecutorDisposeSignal() {
  return {
    onContextBuilding({ context }) {
      if (context.request && context.request.cf == null) context.request.cf = { nexuscart: 'no-dispose-signal' };
    },
  };
}

// Computes once per operation what is forwarded to subgraphs and stores it
// on the context as `context.nexuscart` (used by header propagation and by
// the WebSocket transport's interpolated headers/connectionParams).
function useNexusCartContext() {
  return {
    onContextBuilding({ context, extendContext }) {
      const request = context.request;
      if (!request) return;
      const headers = request.headers;
      const connectionParams = context.connectionParams;
      const authorization =
        headers.get('authorization') ||
        connectionParams?.authorization ||
        connectionParams?.Authorization ||
        undefined;
      const peer = peerAddress(context);
      const incomingXff = headers.get('x-forwarded-for');
      extendContext({
        nexuscart: {
          authorization,
          // Append the peer address like a well-behaved proxy does.
          forwardedFor: incomingXff ? `${incomingXff}, ${peer}` : peer,
          // The partner token partners.mjs minted for this request's X-Api-Key (never the client's header).
          partner: partnerTokenOf(request),
        },
      });
    },
  };
}

// ------------------------------------------------------ partners, demand control
// partners.mjs: X-Api-Key, per-key rate limits and cost budgets, the identity forwarded to subgraphs, and
// every client's cost limit and extensions.cost.
// The partners subgraph's base URL, for the router's key lookups that miss Redis: PARTNERS_SERVICE_URL, else
// the partners subgraph's GraphQL URL (override or supergraph routing URL) without its path.
function partnersServiceUrl() {
  const explicit = (env.PARTNERS_SERVICE_URL || '').trim();
  if (explicit) return explicit.replace(/\/+$/, '');
  const graphqlUrl =
    urlOverrides.partners ?? /@join__graph\(\s*name:\s*"partners"\s*,\s*url:\s*"([^"]+)"/.exec(supergraphSdl)?.[1];
  return graphqlUrl ? new URL(graphqlUrl).origin : null;
}
// Above this cost an operation is refused (QUERY_TOO_COMPLEX) for every client; 0 disables the limit. GraphiQL's
// full introspection query costs about 16,400 with the default list size.
const maxCost = envInt('ROUTER_MAX_COST', 20_000);
// Per API key, a leaky bucket of cost units that refills at this many per minute; 0 disables it.
const keyCostPerMinute = envInt('ROUTER_KEY_COST_PER_MINUTE', 50_000);
// The size assumed for a list field with no slicing argument (first/last/limit) and no @listSize.
const defaultListSize = envInt('ROUTER_COST_DEFAULT_LIST_SIZE', 10);

// --------------------------------------------------------------- edge hygiene
// CORS: browsers may call the API from the origins of ROUTER_CORS_ORIGINS (comma-separated, exact
// "scheme://host[:port]"), with credentials; "*" allows any origin (`make run` only). Unset or empty: no
// CORS headers at all, so a browser page on another origin cannot read the answers.
const corsOrigins = (env.ROUTER_CORS_ORIGINS || '')
  .split(',')
  .map((o) => o.trim().replace(/\/+$/, ''))
  .filter(Boolean);
function corsFor(request) {
  const origin = request.headers.get('origin');
  if (!origin || !(corsOrigins.includes('*') || corsOrigins.includes(origin))) return false;
  return {
    origin: [origin],
    credentials: true,
    allowedHeaders: ['content-type', 'authorization', 'x-api-key', 'x-request-id', 'accept'],
    exposedHeaders: ['retry-after', 'x-request-id'],
    maxAge: 600,
  };
}
// Introspection: ROUTER_INTROSPECTION=false (production) refuses __schema/__type, and hides field
// suggestions, for every client except those in ROUTER_INTROSPECTION_ALLOWLIST: client IPs (see
// ROUTER_TRUST_PROXY) and/or API key names, comma-separated.
const introspectionEnabled = envBool('ROUTER_INTROSPECTION', true);
const introspectionAllowlist = new Set(
  (env.ROUTER_INTROSPECTION_ALLOWLIST || '')
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean),
);
function mayIntrospect(context) {
  const request = context?.request;
  if (!request) return false;
  const key = apiKeyOf(request);
  return (key != null && introspectionAllowlist.has(key.name)) || introspectionAllowlist.has(clientIp(request, context));
}

// ------------------------------------------------------------ rate limiting
// Custom, because the built-in `rateLimiting` (2.15.1, useRateLimiting in
// @graphql-hive/gateway over @envelop/rate-limiter) limits *fields*, not
// requests: it runs in onExecute, i.e. after parsing and validation, counts
// each configured Type.field in its own bucket, never sees subscriptions
// (no onSubscribe hook), keys clients by their Authorization header before
// the IP, answers without an extensions.code and with the status in
// `extensions.http.statusCode`, which Yoga ignores (HTTP 200), and stores a
// JSON array of timestamps per bucket with a read-modify-write (get, then
// set) on the gateway cache, so concurrent requests from several workers
// overwrite each other's counts.
//
// This limiter: a fixed one-minute window per client IP that starts at the
// client's first request. It counts every HTTP request on the GraphQL
// endpoint (queries, mutations, SSE subscriptions) before the body is read,
// and every operation sent over a WebSocket; /health, /readiness and
// /metrics are exempt. With REDIS_URL set the counters live in Redis (one
// atomic MULTI: SET NX PX + INCR + PTTL), shared by every fork and replica,
// so the limit is exact fleet-wide. Without Redis, or while Redis is
// unreachable, each worker process counts in memory and enforces
// limit / FORK, so forking never loosens the per-IP limit.
// ROUTER_RATE_LIMIT_PER_MINUTE=0 disables it.
const rateLimitPerMinute = envInt('ROUTER_RATE_LIMIT_PER_MINUTE', 6000);
const routerWorkers = Math.max(1, envInt('FORK', 1));
const redisUrl = (env.REDIS_URL || '').trim();
const rateLimitWindowMs = 60_000;
const graphqlEndpoint = '/graphql';

function memoryCounter(limit) {
  let windows = new Map(); // ip -> { count, resetAt }
  const sweep = setInterval(() => {
    const now = Date.now();
    windows = new Map([...windows].filter(([, w]) => w.resetAt > now));
  }, rateLimitWindowMs);
  sweep.unref();
  return (ip) => {
    const now = Date.now();
    let w = windows.get(ip);
    if (!w || w.resetAt <= now) {
      w = { count: 0, resetAt: now + rateLimitWindowMs };
      windows.set(ip, w);
    }
    w.count += 1;
    return { limited: w.count > limit, retryAfterMs: w.resetAt - now };
  };
}

function redisCounter(url, limit, fallback, log) {
  // Imported here: the fork primary and a router without Redis never load it.
  let redis;
  const connect = async () => {
    const { default: Redis } = await import('ioredis');
    redis = new Redis(url, {
      // Fail fast instead of queueing: a request must never wait for Redis to
      // come back; the in-memory counter answers meanwhile.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: 1000,
      // ioredis otherwise keeps a never-connected socket's close timer (2 s) alive at shutdown.
      disconnectTimeout: 200,
      connectionName: 'nexuscart-router-rate-limit',
    });
    redis.on('error', () => {}); // reported below, once per outage
    // The first requests wait for the connection (2 s at most) rather than count locally.
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, 2000);
      const done = () => resolve(clearTimeout(timer));
      redis.once('ready', done);
      redis.once('error', done);
    });
    return redis;
  };
  const client = connect(); // when the worker builds its plugins, i.e. before it serves
  let healthy = true;
  const prefix = 'nexuscart:router:rate-limit:';
  const counter = async (ip) => {
    const key = prefix + ip;
    try {
      const counted = await countInWindow(await client, key, limit, rateLimitWindowMs);
      if (!healthy) log?.info('[rate-limit] Redis is back: counters are shared again');
      healthy = true;
      return counted;
    } catch (error) {
      if (healthy) log?.warn(`[rate-limit] Redis unavailable (${error.message}): counting per process meanwhile`);
      healthy = false;
      return fallback(ip);
    }
  };
  counter.dispose = () => redis?.disconnect();
  return counter;
}

function useIpRateLimit(limit, log) {
  const local = memoryCounter(Math.ceil(limit / routerWorkers));
  const count = redisUrl ? redisCounter(redisUrl, limit, local, log) : local;
  const rateLimitedMessage = `Rate limit exceeded: at most ${limit} requests per minute per client.`;
  const rateLimited = () => new GraphQLError(rateLimitedMessage, { extensions: { code: 'RATE_LIMITED' } });
  return {
    // Plain HTTP (incl. SSE): rejected before the body is even parsed.
    async onRequest({ request, url, serverContext, endResponse, fetchAPI }) {
      const pathname = url?.pathname ?? new URL(request.url).pathname;
      if (pathname !== graphqlEndpoint) return; // health, readiness, metrics are exempt
      const { limited, retryAfterMs } = await count(clientIp(request, serverContext));
      if (!limited) return;
      endResponse(
        new fetchAPI.Response(JSON.stringify({ errors: [rateLimited().toJSON()] }), {
          status: 429,
          headers: {
            'content-type': 'application/json; charset=utf-8',
            'retry-after': String(Math.max(1, Math.ceil(retryAfterMs / 1000))),
          },
        }),
      );
    },
    // WebSocket: onRequest only sees the upgrade, so each operation
    // (subscribe message) on a socket is counted here instead.
    async onParams({ context, setResult }) {
      if (!context?.socket || !context.request) return; // not a WebSocket operation
      const { limited } = await count(clientIp(context.request, context));
      if (limited) setResult({ errors: [rateLimited()] });
    },
    onDispose() {
      count.dispose?.();
    },
  };
}

// -------------------------------------------------------------- error policy
// Built-in `maskedErrors` with our maskError: the one place that decides what
// a client sees, and makes sure every error leaves with an extensions.code.
// - A subgraph's own coded errors (FORBIDDEN, UNAUTHENTICATED,
//   BAD_USER_INPUT, ...) are forwarded as-is, plus extensions.serviceName.
// - A subgraph error WITHOUT a code is an unexpected exception, and a
//   transport failure ("connect ECONNREFUSED 10.0.0.5:8000", HTTP 502, bad
//   JSON) carries the subgraph's URL; unless ROUTER_EXPOSE_SUBGRAPH_ERRORS=true
//   both become "Unexpected error." / INTERNAL_SERVER_ERROR (with serviceName).
//   The gateway tags them DOWNSTREAM_SERVICE_ERROR (uncoded subgraph error) or
//   SUBREQUEST_HTTP_ERROR (transport), so those codes count as "no code".
// - An upstream timeout keeps its code (GATEWAY_TIMEOUT) but not the subgraph
//   request (URL, body) the built-in attaches to it.
// - Variable coercion errors, which graphql-js raises without a code (e.g.
//   2147483648 for an Int, a missing required variable), get BAD_USER_INPUT,
//   as on Apollo's servers.
// - The Armor depth and alias limits throw from inside validation, so Yoga
//   does not tag them: GRAPHQL_VALIDATION_FAILED.
// - Any other uncoded error: BAD_REQUEST if it carries a 4xx status, else it
//   is masked as INTERNAL_SERVER_ERROR.
// Yoga logs the original of every error replaced here at error level; client
// errors are tagged in place, so they are not logged.
const exposeSubgraphErrors = envBool('ROUTER_EXPOSE_SUBGRAPH_ERRORS', false);
const subgraphFailureCodes = new Set(['DOWNSTREAM_SERVICE_ERROR', 'SUBREQUEST_HTTP_ERROR']);
const timeoutCodes = new Set(['GATEWAY_TIMEOUT', 'TIMEOUT_ERROR']);
const armorValidationMessage = /^Syntax Error: ((?:Query depth limit|Aliases limit) of \d+ exceeded.*)$/s;
// `spec: true`: HTTP 400 for application/graphql-response+json clients and
// 200 for application/json ones, exactly as Yoga answers validation errors.
const requestErrorHttp = { spec: true, status: 400 };

function isOriginalGraphQLError(error) {
  if (!(error instanceof GraphQLError)) return false;
  return error.originalError == null || isOriginalGraphQLError(error.originalError);
}

function tag(error, code, { message, http } = {}) {
  error.extensions = { ...error.extensions, code, ...(http ? { http } : {}) };
  if (message) error.message = message;
  return error;
}

function replacement(error, message, extensions) {
  return new GraphQLError(message, { path: error instanceof GraphQLError ? error.path : undefined, extensions });
}

function maskError(error, message) {
  const extensions = (error instanceof GraphQLError && error.extensions) || {};
  const { code, serviceName } = extensions;
  const service = serviceName ? { serviceName } : {};
  if (timeoutCodes.has(code)) {
    return replacement(
      error,
      `The ${serviceName ?? 'upstream'} service did not answer in time (upstream timeout ${upstreamTimeoutMs} ms).`,
      { code: 'GATEWAY_TIMEOUT', ...service },
    );
  }
  if (serviceName && exposeSubgraphErrors) return error;
  if (!isOriginalGraphQLError(error) || (serviceName && (!code || subgraphFailureCodes.has(code)))) {
    return replacement(error, message, { code: 'INTERNAL_SERVER_ERROR', ...service });
  }
  if (code) return error;
  const isVariableError =
    !error.path &&
    (error.nodes?.some((node) => node.kind === Kind.VARIABLE_DEFINITION) || error.message.startsWith('Variable "$'));
  if (isVariableError) return tag(error, 'BAD_USER_INPUT', { http: requestErrorHttp });
  const armor = armorValidationMessage.exec(error.message);
  // "Syntax Error: Query depth limit of 12 exceeded, found 14." is no syntax error.
  if (armor) return tag(error, 'GRAPHQL_VALIDATION_FAILED', { message: armor[1], http: requestErrorHttp });
  const status = extensions.http?.status;
  if (status >= 400 && status < 500) return tag(error, 'BAD_REQUEST');
  return replacement(error, message, { code: 'INTERNAL_SERVER_ERROR' });
}

// ----------------------------------------------------------- security limits
// Generous for every operation the apps send (the deepest is 6 levels, the
// most aliased 4, the longest ~70 tokens) but real. 0 disables a limit.
// Introspection is not counted by maxDepth (Armor ignores __schema).
const maxTokens = envInt('ROUTER_MAX_TOKENS', 3000);
const maxDepth = envInt('ROUTER_MAX_DEPTH', 12);
const maxAliases = envInt('ROUTER_MAX_ALIASES', 30);
// Field suggestions ("Did you mean ...?") reveal the schema to anyone; turn
// them back on for development only.
const fieldSuggestions = envBool('ROUTER_FIELD_SUGGESTIONS', false);
// Per subgraph request. Subscriptions are exempt: the built-in aborts a
// subgraph stream when the timeout fires, however healthy the stream is.
const upstreamTimeoutMs = envInt('ROUTER_UPSTREAM_TIMEOUT_MS', 30_000);

// ------------------------------------------------------------------ GraphiQL
// Opens on a real browse query. The gateway's default renderer (Hive
// Laboratory, @graphql-hive/render-laboratory in 2.15.1) ignores
// graphiql.defaultQuery (it only maps credentials, timeout, protocol and
// collections), so the offline GraphiQL bundle from @graphql-yoga/render-graphiql
// renders it (`renderLegacyGraphiQL` would load GraphiQL from a CDN instead).
const graphiqlDefaultQuery = `# NexusCart: the newest products with price, seller and stock, across the
# catalog, users and inventory subgraphs. Press Run (Ctrl+Enter).
# Signed-in queries (me, cart, orders) need a header:
#   {"Authorization": "Bearer <accessToken from the login mutation>"}
query BrowseProducts($first: Int = 10, $filter: ProductFilter, $sort: ProductSort = NEWEST) {
  products(first: $first, filter: $filter, sort: $sort) {
    totalCount
    edges {
      node {
        id
        slug
        name
        brand
        category { name path }
        minPrice { amount currency }
        seller { firstName lastName }
        variants {
          id
          sku
          price { amount currency }
          stock { available inStock }
        }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}
`;

// ------------------------------------------------------------------ tracing
// OpenTelemetry only when OTEL_EXPORTER_OTLP_ENDPOINT is set, as in the Python processes (kernel/tracing.py);
// unset, nothing is imported and no plugin runs. On: a span per request, operation and subgraph call, the
// caller's `traceparent` inherited and passed on to every subgraph request (the plugin's inheritContext and
// propagateContext, both on by default), so a subgraph's spans and the events it writes join the router's trace.
// Set up here rather than with the CLI's `--opentelemetry`: that one hands the bare endpoint to the exporter as
// its URL, without the standard /v1/traces path. The exporter, given no URL, reads OTEL_EXPORTER_OTLP_ENDPOINT
// (or _TRACES_ENDPOINT, _HEADERS) itself; the exporter and context manager ship with @graphql-hive/gateway.
const otlpEndpoint = (env.OTEL_EXPORTER_OTLP_ENDPOINT || '').trim();
if (otlpEndpoint) {
  const { openTelemetrySetup } = await import('@graphql-hive/gateway/opentelemetry/setup');
  const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
  const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks');
  openTelemetrySetup({
    contextManager: new AsyncLocalStorageContextManager(),
    resource: { serviceName: env.OTEL_SERVICE_NAME || 'router' },
    traces: { exporter: new OTLPTraceExporter() },
  });
}

// ------------------------------------------------------------------- config
const metricsEnabled = envBool('ROUTER_METRICS', true);

// Query responses that are the same for every caller are cached for a short TTL, the way an edge cache serves
// public listing pages, for anonymous and signed-in shoppers alike: on a hit the router plans nothing and calls no
// subgraph, and planning + fan-out are its main cost. Whether an answer is shared is the subgraphs' call, never a
// guess here: every subgraph answer carries Cache-Control, `private, max-age=0` unless the subgraph's own response
// cache found the answer independent of the caller (allowlisted root fields, no resolver that read the caller;
// kernel/response_cache.py), then `public`. The gateway's response cache takes the lowest max-age of the answers
// an operation needed, so one caller-dependent part (`me`, a cart, an order) keeps the whole response out.
// Mutations and subscriptions are never cached, and a mutation through the router evicts the entities it returns
// from that worker's cache. Staleness is bounded by the TTL; staff tokens and a request with `Cache-Control:
// no-cache` skip the cache (see responseCacheable). ROUTER_RESPONSE_CACHE_TTL_MS=0 turns it off.
// It lives in each worker's memory (the gateway's default cache), not in Redis: the response cache
// writes two keys per entity per response and invalidates with SCAN over the whole keyspace.
const responseCacheTtlMs = envInt('ROUTER_RESPONSE_CACHE_TTL_MS', 1000);
// An API key's answers go through its scope checks, cost and usage accounting in the router and the subgraphs:
// never from this cache. Staff (a token with a role other than CUSTOMER) skip it too, so an admin or seller reads
// their own writes at once; the claim is only read, not verified, which is safe because skipping the cache
// grants nothing (the subgraphs verify the token).
const STAFF_ROLES = new Set(['ADMIN', 'SELLER']);
function isStaff(request) {
  const authorization = request.headers.get('authorization');
  if (!authorization) return false;
  const payload = authorization.replace(/^bearer\s+/i, '').split('.')[1];
  if (!payload) return false;
  try {
    const roles = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')).roles;
    return Array.isArray(roles) && roles.some((role) => STAFF_ROLES.has(role));
  } catch {
    return false;
  }
}
// Asked several times per request (the plugin's hooks and the key builder): decided once, kept with the request.
const cacheableByRequest = new WeakMap();
function responseCacheable(request) {
  let cacheable = cacheableByRequest.get(request);
  if (cacheable === undefined) {
    cacheable =
      !request.headers.has(apiKeyHeader) &&
      !/no-cache/i.test(request.headers.get('cache-control') ?? '') &&
      !isStaff(request);
    cacheableByRequest.set(request, cacheable);
  }
  return cacheable;
}

// The cache's own key (2.15.1: SHA-256 through WebCrypto, awaited) is built for EVERY request, before the plugin asks
// whether the request may use the cache at all: a CPU profile of signed-in searches put it at ~5% of the router's
// CPU, for requests that never touch the cache. Here only a cacheable request gets a key (same inputs, Node's
// synchronous hash); the others get an empty one, which nothing reads, since the cache is off for them.
function stableJson(value) {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  return `{${Object.keys(value)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${stableJson(value[key])}`)
    .join(',')}}`;
}
// Anonymous and signed-in requests never share an entry: the lookup comes before any subgraph has answered, and
// a subgraph may share its anonymous answer while showing a signed-in caller more (reviews: the author's own
// unpublished review). A signed-in entry is stored only from a signed-in request every subgraph marked shared.
const audienceOf = (request) => (request.headers.get('authorization') ? 'signed-in' : 'anonymous');
function responseCacheKey({ documentString, operationName, variableValues, sessionId, request }) {
  if (!responseCacheable(request)) return '';
  rememberOperation(request, { documentString, operationName });
  if (learnedPrivateRequests.has(request)) return '';
  const audience = audienceOf(request);
  return createHash('sha256')
    .update(
      [documentString, operationName ?? '', stableJson(variableValues ?? {}), sessionId ?? '', audience].join('|'),
    )
    .digest('hex');
}

// Fail closed: the cache keeps an answer only when this request's own context saw every subgraph answer it asked
// for, at least one, and each said `public` (kernel/graphql/context.py's SHARED). The response cache plugin alone
// would keep an answer whose context saw no Cache-Control at all (it lowers its TTL only on a max-age it sees): that
// is how merged in-flight requests leaked one shopper's `me` to the next (see transportEntries above), and how a
// subgraph answer without the header (a new service, a proxy that strips it) would be shared. Here such an answer is
// simply not cached. The plugin's own hooks give `shouldCacheResult` no context, so the verdict travels with the
// result object: marked by the execute wrapper below, read by shouldCacheResult.
const sharedResults = new WeakSet();
function saysShared(cacheControl) {
  const directives = (cacheControl ?? '').toLowerCase().split(',').map((directive) => directive.trim());
  return directives.includes('public') && !directives.some((d) => d === 'private' || d === 'no-store' || d === 'no-cache');
}

// A query whose answers keep coming back private (a search, `me`, a cart, recommendations) skips the cache for a
// while. For an answer it will never keep, the cache plugin still rewrites the document (an `id` and `__typename` in
// every selection) and walks the answer twice (its entities, then stripping what it added): ~20% of the router's CPU
// per signed-in search in a profile. After PRIVATE_STREAK private answers in a row, a query (same document,
// operation name and audience) skips the cache for PRIVATE_SKIP_MS; the first one after that goes through it again,
// and one shared answer clears the record. Skipping is always safe: a wrong guess costs a cache miss, never a wrong
// answer.
const PRIVATE_STREAK = 3;
const PRIVATE_SKIP_MS = 1000;
const MAX_TRACKED_QUERIES = 5000;
const privateQueries = new Map();  // operation key -> { streak, skipUntil }
// Set by responseCacheKey, which the cache calls with the request's parameters before it first asks whether the
// request may use the cache (yoga's onParams: the context has no params yet).
const operationKeyByRequest = new WeakMap();
const learnedPrivateRequests = new WeakSet();
function rememberOperation(request, { documentString, operationName }) {
  if (!documentString) return;
  const key = `${audienceOf(request)}|${operationName ?? ''}|${documentString}`;
  operationKeyByRequest.set(request, key);
  const record = privateQueries.get(key);
  if (record !== undefined && record.skipUntil > Date.now()) learnedPrivateRequests.add(request);
}
function learnFromAnswer(request, shared) {
  const key = operationKeyByRequest.get(request);
  if (key === undefined) return;
  if (shared) {
    privateQueries.delete(key);
    return;
  }
  let record = privateQueries.get(key);
  if (record === undefined) {
    if (privateQueries.size >= MAX_TRACKED_QUERIES) privateQueries.delete(privateQueries.keys().next().value);
    record = { streak: 0, skipUntil: 0 };
    privateQueries.set(key, record);
  }
  record.streak += 1;
  if (record.streak >= PRIVATE_STREAK) record.skipUntil = Date.now() + PRIVATE_SKIP_MS;
}
function responseCacheUsed(request) {
  return responseCacheable(request) && !learnedPrivateRequests.has(request);
}
function isQuery(document, operationName) {
  const operation = document.definitions.find(
    (d) => d.kind === 'OperationDefinition' && (!operationName || d.name?.value === operationName));
  return operation?.operation === 'query';
}

function useSharedAnswersOnly() {
  const fetchesByContext = new WeakMap();  // context -> { started, sharedAnswers }
  return {
    onFetch({ executionRequest, context }) {
      if (!executionRequest || !context) return undefined;  // not a subgraph request
      const fetches = fetchesByContext.get(context) ?? { started: 0, sharedAnswers: 0 };
      fetchesByContext.set(context, fetches);
      fetches.started += 1;
      return ({ response }) => {
        if (saysShared(response.headers.get('cache-control'))) fetches.sharedAnswers += 1;
      };
    },
    // Registered after the response cache (the gateway adds its plugins before these), so this wrapper runs inside
    // the cache's own and returns before the cache decides.
    onExecute({ args, executeFn, setExecuteFn }) {
      const context = args.contextValue;
      if (!context?.request || !responseCacheUsed(context.request)) return;
      const query = isQuery(args.document, args.operationName);
      const markIfShared = (result) => {
        const fetches = fetchesByContext.get(context);
        const shared = fetches !== undefined && fetches.started > 0 && fetches.sharedAnswers === fetches.started;
        if (shared) sharedResults.add(result);
        if (query && result && !result.errors) learnFromAnswer(context.request, shared);
        return result;
      };
      setExecuteFn((executionArgs) => {
        const result = executeFn(executionArgs);
        return typeof result?.then === 'function' ? result.then(markIfShared) : markIfShared(result);
      });
    },
  };
}
const shouldCacheResult = ({ result }) => !result.errors && sharedResults.has(result);

// Query planning and execution: Hive Router's Rust query planner (@graphql-hive/router-runtime) by default.
// Measured here with one gateway process at 16 connections: router CPU per signed-in browse request
// 2.7-2.9 ms -> 1.4 ms, per stock check 1.6-2.1 ms -> 1.3 ms. ROUTER_QUERY_PLANNER=js goes back to the
// gateway's own JavaScript planner (@graphql-tools/federation).
const queryPlanner = (env.ROUTER_QUERY_PLANNER || 'rust').trim().toLowerCase();
if (!['rust', 'js'].includes(queryPlanner)) throw new Error(`ROUTER_QUERY_PLANNER must be rust or js, got "${queryPlanner}"`);
const rustPlanner = queryPlanner === 'rust' ? await import('@graphql-hive/router-runtime') : null;

export const gatewayConfig = defineConfig({
  ...(rustPlanner ? { unifiedGraphHandler: rustPlanner.unifiedGraphHandler } : {}),
  supergraph: supergraphPath,
  host: env.ROUTER_HOST || '0.0.0.0',
  port: envInt('ROUTER_PORT', 4000),
  graphqlEndpoint,
  healthCheckEndpoint: '/health',  // same path as every other NexusCart process
  readinessCheckEndpoint: '/readiness',
  logging: env.ROUTER_LOG_LEVEL || 'info',
  // A local supergraph file is watched by the CLI: re-running compose.mjs
  // hot-reloads the schema without a restart.

  graphiql: { title: 'NexusCart GraphQL', defaultQuery: graphiqlDefaultQuery },
  // Imported when GraphiQL is first opened (a 9 MB module): no cost at start-up.
  renderGraphiQL: (options) => import('@graphql-yoga/render-graphiql').then((m) => m.renderGraphiQL(options)),
  landingPage: false,
  maskedErrors: { maskError },

  transportEntries,

  // Incoming `x-request-id` is reused, otherwise a UUID is generated; it is
  // forwarded to every subgraph HTTP request and echoed in the response.
  requestId: { headerName: 'x-request-id' },

  propagateHeaders: {
    fromClientToSubgraphs({ request, context }) {
      return {
        authorization: request.headers.get('authorization') ?? context.nexuscart?.authorization,
        'x-forwarded-for': context.nexuscart?.forwardedFor,
        // Only the router's own token: a client's header of this name is never forwarded.
        [partnerHeader]: partnerTokenOf(request),
      };
    },
  },

  persistedDocuments: {
    getPersistedOperation: persistedDocument,
    allowArbitraryDocuments: (request) => !persistedOnly && !apiKeyOf(request)?.persistedOnly,
    customErrors: persistedDocumentErrors,
  },

  ...(maxTokens > 0 ? { maxTokens } : {}),
  ...(maxDepth > 0 ? { maxDepth } : {}),
  // Without introspection, suggestions would leak the schema field by field: hidden then, whatever
  // ROUTER_FIELD_SUGGESTIONS says.
  blockFieldSuggestions: !fieldSuggestions || !introspectionEnabled,
  ...(introspectionEnabled ? {} : { disableIntrospection: { disableIf: ({ context }) => !mayIntrospect(context) } }),
  cors: corsFor,
  ...(upstreamTimeoutMs > 0
    ? {
        upstreamTimeout: ({ executionRequest }) =>
          executionRequest?.operationType === 'subscription' ? undefined : upstreamTimeoutMs,
      }
    : {}),

  ...(responseCacheTtlMs > 0
    ? {
        responseCaching: {
          session: () => null,  // shared: an answer reaches the cache only when every subgraph said so
          enabled: responseCacheUsed,
          buildResponseCacheKey: responseCacheKey,
          ttl: responseCacheTtlMs,
          shouldCacheResult,
          includeExtensionMetadata: false,
        },
      }
    : {}),
  ...(metricsEnabled
    ? {
        prometheus: {
          endpoint: '/metrics',
          // The request URL (incl. GET query strings) would be an unbounded
          // label; drop it.
          labels: { url: false },
          // A lean metric set: per-request and per-subgraph durations and
          // error counts. The per-phase parse/validate/context histograms are
          // left off to keep the hot path cheap.
          metrics: {
            graphql_yoga_http_duration: true,
            graphql_envelop_request: true,
            graphql_envelop_error_result: true,
            graphql_gateway_subgraph_execute_duration: true,
            graphql_gateway_subgraph_execute_errors: true,
            graphql_envelop_deprecated_field: false,
            graphql_envelop_request_duration: false,
            graphql_envelop_request_time_summary: false,
            graphql_envelop_phase_parse: false,
            graphql_envelop_phase_validate: false,
            graphql_envelop_phase_context: false,
            graphql_envelop_phase_execute: false,
            graphql_envelop_phase_subscribe: false,
            graphql_envelop_execute_resolver: false,
            graphql_envelop_schema_change: true,
            graphql_gateway_fetch_duration: false,
          },
        },
      }
    : {}),

  ...(otlpEndpoint ? { openTelemetry: { traces: true } } : {}),

  // graphql-jit compiled execution: ~10-15% less router CPU per request in a
  // quick benchmark, but off by default (less battle-tested than graphql-js).
  jit: envBool('ROUTER_JIT', false),

  // Called once per gateway worker, so each worker opens its own Redis
  // connection (the fork primary opens none).
  plugins: (ctx) => [
    useNoExecutorDisposeSignal(),
    useNexusCartContext(),
    ...(responseCacheTtlMs > 0 ? [useSharedAnswersOnly()] : []),
    ...(rateLimitPerMinute > 0 ? [useIpRateLimit(rateLimitPerMinute, ctx.log)] : []),
    usePartners({
      redisUrl,
      partnersUrl: partnersServiceUrl(),
      privateKeyFile: (env.JWT_PRIVATE_KEY_FILE || '').trim() || null,
      issuer: env.JWT_ISSUER || 'nexuscart',
      audience: env.JWT_AUDIENCE || 'nexuscart-api',
      maxCost,
      keyCostPerMinute,
      defaultListSize,
      log: ctx.log,
    }),
    useExplainUnparsableRequests(),
    // Not a gateway option in 2.15.1 (it has maxTokens and maxDepth only);
    // this is the Armor plugin its docs point to, from the same family.
    ...(maxAliases > 0 ? [maxAliasesPlugin({ n: maxAliases })] : []),
  ],
});

if (Object.keys(urlOverrides).length > 0) {
  console.error(`[nexuscart-router] subgraph URL overrides: ${JSON.stringify(urlOverrides)}`);
}

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
import { readFileSync, existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { maxAliasesPlugin } from '@escape.tech/graphql-armor-max-aliases';
import { defineConfig } from '@graphql-hive/gateway';
import { GraphQLError, Kind } from 'graphql';

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
// connection_init payload (connectionParams); see the context plugin below.
const wsSubscriptions = {
  kind: 'ws',
  headers: [['authorization', '{context.nexuscart.authorization}']],
  options: {
    connectionParams: { authorization: '{context.nexuscart.authorization}' },
  },
};

const transportEntries = { '*': { options: { subscriptions: wsSubscriptions } } };
const urlOverrides = {};
for (const name of subgraphNames(readFileSync(supergraphPath, 'utf8'))) {
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

function persistedDocument(id) {
  return persistedDocs.get(id.startsWith('sha256:') ? id.slice(7) : id) ?? null;
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
  persistedQueryOnly: () =>
    new GraphQLError(
      'Only persisted documents are accepted by this router: send "documentId" (or ' +
        'extensions.persistedQuery.sha256Hash) instead of "query".',
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
        },
      });
    },
  };
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
      const [, [e1, count], [e2, pttl]] = await (await client)
        .multi()
        .set(key, 0, 'PX', rateLimitWindowMs, 'NX')
        .incr(key)
        .pttl(key)
        .exec();
      if (e1 || e2) throw e1 || e2;
      if (!healthy) log?.info('[rate-limit] Redis is back: counters are shared again');
      healthy = true;
      return { limited: count > limit, retryAfterMs: pttl > 0 ? pttl : rateLimitWindowMs };
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

// ------------------------------------------------------------------- config
const metricsEnabled = envBool('ROUTER_METRICS', true);

// Anonymous query responses are cached for a short TTL, the way an edge cache serves public listing pages:
// on a hit the router plans nothing and calls no subgraph, and planning + fan-out are its main cost. Any
// request with an Authorization header bypasses it (its answer may depend on the caller); mutations and
// subscriptions are never cached, and a mutation through the router evicts the entities it returns.
// Staleness is bounded by the TTL. ROUTER_RESPONSE_CACHE_TTL_MS=0 turns it off.
// It lives in each worker's memory (the gateway's default cache), not in Redis: the response cache
// writes two keys per entity per response and invalidates with SCAN over the whole keyspace.
const responseCacheTtlMs = envInt('ROUTER_RESPONSE_CACHE_TTL_MS', 1000);

export const gatewayConfig = defineConfig({
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
      };
    },
  },

  persistedDocuments: {
    getPersistedOperation: persistedDocument,
    allowArbitraryDocuments: !persistedOnly,
    customErrors: persistedDocumentErrors,
  },

  ...(maxTokens > 0 ? { maxTokens } : {}),
  ...(maxDepth > 0 ? { maxDepth } : {}),
  blockFieldSuggestions: !fieldSuggestions,
  ...(upstreamTimeoutMs > 0
    ? {
        upstreamTimeout: ({ executionRequest }) =>
          executionRequest?.operationType === 'subscription' ? undefined : upstreamTimeoutMs,
      }
    : {}),

  ...(responseCacheTtlMs > 0
    ? {
        responseCaching: {
          session: () => null,
          enabled: (request) => !request.headers.get('authorization'),
          ttl: responseCacheTtlMs,
          // A guest cart is read without a token, but it is one shopper's state and changes with every
          // click: never served from a cache (a mutation's eviction only reaches one gateway worker).
          ttlPerSchemaCoordinate: { 'Query.cart': 0 },
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

  // graphql-jit compiled execution: ~10-15% less router CPU per request in a
  // quick benchmark, but off by default (less battle-tested than graphql-js).
  jit: envBool('ROUTER_JIT', false),

  // Called once per gateway worker, so each worker opens its own Redis
  // connection (the fork primary opens none).
  plugins: (ctx) => [
    useNexusCartContext(),
    ...(rateLimitPerMinute > 0 ? [useIpRateLimit(rateLimitPerMinute, ctx.log)] : []),
    useExplainUnparsableRequests(),
    // Not a gateway option in 2.15.1 (it has maxTokens and maxDepth only);
    // this is the Armor plugin its docs point to, from the same family.
    ...(maxAliases > 0 ? [maxAliasesPlugin({ n: maxAliases })] : []),
  ],
});

if (Object.keys(urlOverrides).length > 0) {
  console.error(`[nexuscart-router] subgraph URL overrides: ${JSON.stringify(urlOverrides)}`);
}

// NexusCart router: Hive Gateway configuration.
//
// Picked up automatically by `hive-gateway supergraph` when the working
// directory is router/ (or pass `-c router/gateway.config.mjs`).
// Every knob is an environment variable; see README.md in this folder.
import { readFileSync, existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from '@graphql-hive/gateway';
import { GraphQLError } from 'graphql';

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
const manifestPath = resolve(env.ROUTER_PERSISTED_DOCUMENTS || resolve(routerDir, 'persisted-documents.json'));
const persistedDocs = new Map(
  existsSync(manifestPath) ? Object.entries(JSON.parse(readFileSync(manifestPath, 'utf8'))) : [],
);
const persistedOnly = envBool('ROUTER_PERSISTED_ONLY', false);

// Both Apollo APQ style ({extensions:{persistedQuery:{version:1,sha256Hash}}})
// and `documentId` (POST body or GET query string) are accepted. An optional
// "sha256:" prefix on documentId is tolerated. Unknown ids fail with
// PersistedQueryNotFound / PERSISTED_QUERY_NOT_IN_LIST; the router never
// registers new documents (no automatic APQ registration).
function extractPersistedOperationId(params, request) {
  let documentId = params.documentId;
  if (documentId == null && request?.method === 'GET') {
    documentId = new URL(request.url).searchParams.get('documentId');
  }
  if (typeof documentId === 'string' && documentId) {
    return documentId.startsWith('sha256:') ? documentId.slice(7) : documentId;
  }
  const pq = params.extensions?.persistedQuery;
  if (pq && pq.version === 1 && typeof pq.sha256Hash === 'string') return pq.sha256Hash;
  return null;
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
// Fixed one-minute window, in memory, keyed by client IP; counts every
// HTTP request on the GraphQL endpoint (queries, mutations, SSE
// subscriptions) and every operation sent over a WebSocket. Not shared
// between router replicas/forks.
// ROUTER_RATE_LIMIT_PER_MINUTE=0 disables it.
// With FORK=n the gateway runs n worker processes, each with its own in-memory counters: each enforces its
// share, so forking never loosens the per-IP limit (a client on one connection gets limit/n at worst).
const routerWorkers = Math.max(1, envInt('FORK', 1));
const rateLimitPerMinute = Math.ceil(envInt('ROUTER_RATE_LIMIT_PER_MINUTE', 6000) / routerWorkers);
const graphqlEndpoint = '/graphql';

function useIpRateLimit(limit) {
  let counts = new Map();
  const timer = setInterval(() => {
    counts = new Map();
  }, 60_000);
  timer.unref();
  const rateLimitedMessage = `Rate limit exceeded: at most ${limit} requests per minute per client.`;
  const body = JSON.stringify({
    errors: [
      {
        message: rateLimitedMessage,
        extensions: { code: 'RATE_LIMITED' },
      },
    ],
  });
  const hit = (ip) => {
    const n = (counts.get(ip) || 0) + 1;
    counts.set(ip, n);
    return n > limit;
  };
  return {
    // Plain HTTP (incl. SSE): rejected before the body is even parsed.
    onRequest({ request, url, serverContext, endResponse, fetchAPI }) {
      const pathname = url?.pathname ?? new URL(request.url).pathname;
      if (pathname !== graphqlEndpoint) return; // health, readiness, metrics are exempt
      if (hit(clientIp(request, serverContext))) {
        endResponse(
          new fetchAPI.Response(body, {
            status: 429,
            headers: { 'content-type': 'application/json; charset=utf-8', 'retry-after': '60' },
          }),
        );
      }
    },
    // WebSocket: onRequest only sees the upgrade, so each operation
    // (subscribe message) on a socket is counted here instead.
    onParams({ context, setResult }) {
      if (!context?.socket || !context.request) return; // not a WebSocket operation
      if (hit(clientIp(context.request, context))) {
        setResult({ errors: [new GraphQLError(rateLimitedMessage, { extensions: { code: 'RATE_LIMITED' } })] });
      }
    },
  };
}

// -------------------------------------------------------------- error policy
// Subgraph errors that carry an extensions.code (FORBIDDEN, UNAUTHENTICATED,
// BAD_USER_INPUT, ...) are forwarded as-is (plus extensions.serviceName).
// Errors WITHOUT a code are unexpected exceptions (or transport failures such
// as "connect ECONNREFUSED 10.0.0.5:8000"); their message may contain
// internals, so unless ROUTER_EXPOSE_SUBGRAPH_ERRORS=true they are rewritten
// to "Unexpected error." with code INTERNAL_SERVER_ERROR. The gateway's own
// subgraph-error plugin tags uncoded errors DOWNSTREAM_SERVICE_ERROR, so both
// "no code" and that code are treated as uncoded.
const exposeSubgraphErrors = envBool('ROUTER_EXPOSE_SUBGRAPH_ERRORS', false);

function maskUncodedErrors(result, subgraphName) {
  const errors = result?.errors;
  if (!errors) return;
  for (const error of errors) {
    const code = error?.extensions?.code;
    if (code && code !== 'DOWNSTREAM_SERVICE_ERROR') continue;
    error.message = 'Unexpected error.';
    error.extensions = { code: 'INTERNAL_SERVER_ERROR', serviceName: subgraphName };
  }
}

function useMaskUncodedSubgraphErrors() {
  return {
    onSubgraphExecute({ subgraphName }) {
      return ({ result }) => {
        if (result && typeof result[Symbol.asyncIterator] === 'function') {
          return { onNext: ({ result: next }) => maskUncodedErrors(next, subgraphName) };
        }
        maskUncodedErrors(result, subgraphName);
      };
    },
  };
}

// ------------------------------------------------------------------- config
const plugins = [useNexusCartContext()];
if (rateLimitPerMinute > 0) plugins.push(useIpRateLimit(rateLimitPerMinute));
if (!exposeSubgraphErrors) plugins.push(useMaskUncodedSubgraphErrors());

const metricsEnabled = envBool('ROUTER_METRICS', true);

// Anonymous query responses are cached for a short TTL, the way an edge cache serves public listing pages:
// on a hit the router plans nothing and calls no subgraph, and planning + fan-out are its main cost. Any
// request with an Authorization header bypasses it (its answer may depend on the caller); mutations and
// subscriptions are never cached, and a mutation through the router evicts the entities it returns.
// Staleness is bounded by the TTL. ROUTER_RESPONSE_CACHE_TTL_MS=0 turns it off.
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

  graphiql: { title: 'NexusCart GraphQL' },
  landingPage: false,
  // Unexpected (non-GraphQL) errors raised inside the router are masked.
  maskedErrors: true,

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
    getPersistedOperation: (key) => persistedDocs.get(key) ?? null,
    extractPersistedOperationId,
    allowArbitraryDocuments: !persistedOnly,
    customErrors: {
      persistedQueryOnly: {
        message: 'Only persisted documents are accepted by this router.',
        extensions: { code: 'PERSISTED_QUERY_ONLY' },
      },
    },
  },

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

  plugins: () => plugins,
});

if (Object.keys(urlOverrides).length > 0) {
  console.error(`[nexuscart-router] subgraph URL overrides: ${JSON.stringify(urlOverrides)}`);
}

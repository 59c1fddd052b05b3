// The routes file (SPEC §3) as zod schemas: the single source of the config types. Parsing
// validates everything the runtime relies on and fills every default, so the output is plain,
// trusted data; cross-file checks (pool references, duplicate names) live in load.ts.
import { z } from 'zod';
import { POLICIES } from '../balance/index.ts';
import type { BalanceName } from '../balance/index.ts';
import { compileValueMatcher } from '../router/matchers.ts';
import { parsePattern } from '../router/pattern.ts';
import { cookieName, headerMap, headerName, int, method, name, nonEmpty, status, strict, text } from './fields.ts';
import { hostPattern, parseStatusRanges, statusRanges, targetUrl } from './net-fields.ts';
import type { StatusRange } from './net-fields.ts';
import { routeTestSchema } from './route-tests.ts';
import { splitSchema, tcpRouteSchema, udpRouteSchema } from './l4-schema.ts';
import { middlewareSchema } from './middleware-schema.ts';
import { suggest } from './suggest.ts';
import { duration } from './units.ts';

export { defaultStaticConfig, staticConfigSchema } from './static-schema.ts';
export type { StaticConfig } from './static-schema.ts';
export { routeTestSchema } from './route-tests.ts';
export type { RouteTestConfig, HttpTestConfig, ConnectTestConfig } from './route-tests.ts';
export type { TcpRouteConfig, UdpRouteConfig, TcpMatchConfig } from './l4-schema.ts';
export type { MiddlewareConfig } from './middleware-schema.ts';

const POSITIVE_DURATION = 'must be greater than 0s';

// ---- pools ----

// A tcp:// or udp:// target names its port (there is no default to fall back on). Said on the
// input side too, so the JSON Schema for editors flags it as --check does.
const L4_WITHOUT_PORT = /^(?!(?:tcp|udp):\/\/(?:\[[^\]]*\]|[^:/[\]]+)\/?$)/;

/** A target URL: any scheme of targetUrl(), a tcp:// or udp:// one with its port. */
function poolTarget() {
  return z
    .string()
    .regex(L4_WITHOUT_PORT, {
      error: (iss) => {
        const s = String(iss.input);
        const scheme = s.slice(0, 3).toLowerCase();
        return `a ${scheme}:// target needs a port, such as ${scheme === 'udp' ? 'udp://10.0.0.53:53' : 'tcp://10.0.0.21:5432'}, got ${JSON.stringify(s)}`;
      },
    })
    .pipe(targetUrl());
}

const targetSchema = z.union([
  poolTarget().transform((url) => ({ url, weight: 1 })),
  strict({ url: poolTarget(), weight: int(1).default(1) }),
]);

const stickySchema = strict({
  cookie: cookieName(),
  maxAge: duration().optional(),
  onDown: z.enum(['rebalance', 'fail']).default('rebalance'),
});

const healthCheckSchema = strict({
  // http: GET path; connect: a TCP connection opens; send-expect: optional bytes sent, then the
  // reply must contain `expect` (SPEC §7). Omitted: http for an HTTP pool, connect for a tcp:// one.
  type: z.enum(['http', 'connect', 'send-expect']).optional(),
  path: z.string().startsWith('/', { error: 'a health check path must start with "/"' }).optional(),
  send: z.string().optional(),
  expect: nonEmpty().optional(),
  interval: duration().refine((ms) => ms > 0, POSITIVE_DURATION).default(5000),
  timeout: duration().refine((ms) => ms > 0, POSITIVE_DURATION).default(2000),
  unhealthyAfter: int(1).default(3),
  healthyAfter: int(1).default(2),
  // Filled in (200-399) by poolSchema for HTTP checks; an L4 check has no status to expect.
  expectStatus: statusRanges().optional(),
});

const DEFAULT_EXPECT_STATUS = parseStatusRanges('200-399') as StatusRange[];

const upstreamTlsSchema = strict({
  ca: nonEmpty().optional(),
  verify: z.boolean().default(true),
  serverName: nonEmpty().optional(),
  cert: nonEmpty().optional(),
  key: nonEmpty().optional(),
}).superRefine((tls, ctx) => {
  // A client certificate is useless without its key and vice versa (mutual TLS to the target).
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    const missing = tls.cert === undefined ? 'cert' : 'key';
    ctx.addIssue({ code: 'custom', path: [], message: `"cert" and "key" go together: "${missing}" is missing` });
  }
});

const poolObject = strict({
  targets: z.array(targetSchema).min(1),
  // Derived from the policies themselves so the schema and the runtime cannot drift apart.
  balance: z.enum(Object.keys(POLICIES) as [BalanceName, ...BalanceName[]]).default('round-robin'),
  sticky: stickySchema.optional(),
  healthCheck: healthCheckSchema.optional(),
  timeouts: strict({
    connect: duration().default(5000),
    response: duration().default(60_000),
    idle: duration().default(60_000),
  }).prefault({}),
  retries: int(0).default(1),
  discovery: z.literal('dns').optional(),
  dnsRefresh: duration().refine((ms) => ms > 0, POSITIVE_DURATION).default(10_000),
  tls: upstreamTlsSchema.prefault({}),
  h2: z.boolean().default(false),
  // The HTTP/1.1 client: waygate's own (default) or undici, the supported fallback. Omitted means
  // builtin, or undici for an h2 pool (the builtin client speaks only HTTP/1.1).
  client: z.enum(['builtin', 'undici']).optional(),
  // SPEC §7: a PROXY protocol header first on every connection to a target.
  proxyProtocol: z.enum(['off', 'v1', 'v2']).default('off'),
  // tcp:// pools: what happens to live connections to a target that health checks evict.
  onTargetDown: z.enum(['keep', 'close']).default('keep'),
});

/** The schema of one pool: targets plus balancing, affinity, health, timeouts and upstream TLS; `kind` says what it carries. */
export const poolSchema = poolObject.superRefine(checkPool).transform((pool) => {
  const kind = poolKind(pool.targets);
  const h = pool.healthCheck;
  const healthCheck = h === undefined ? undefined : {
    ...h,
    type: h.type ?? (kind === 'http' ? 'http' as const : kind === 'udp' ? 'send-expect' as const : 'connect' as const),
    path: h.path ?? '/',
    send: h.send ?? '',
    expectStatus: h.expectStatus ?? DEFAULT_EXPECT_STATUS.map(([lo, hi]): StatusRange => [lo, hi]),
  };
  return { ...pool, kind, healthCheck };
});

/** What a pool carries: HTTP requests (http:// and https:// targets), TCP connections or UDP datagrams. */
export type PoolKind = 'http' | 'tcp' | 'udp';

function poolKind(targets: readonly { url: string }[]): PoolKind {
  const scheme = targets[0]?.url.slice(0, targets[0].url.indexOf(':'));
  return scheme === 'tcp' ? 'tcp' : scheme === 'udp' ? 'udp' : 'http';
}

function checkPool(pool: z.output<typeof poolObject>, ctx: z.RefinementCtx): void {
  const issue = (path: (string | number)[], message: string, at?: 'key'): void => ctx.addIssue({ code: 'custom', path, message, ...(at ? { params: { at } } : {}) });
  if (pool.h2 && pool.client === 'builtin') {
    issue(['client'], 'the builtin client speaks HTTP/1.1 only; an h2 pool is served by undici (remove "client" or set it to "undici")');
  }
  const kind = poolKind(pool.targets);
  pool.targets.forEach((t, i) => {
    if (poolKind([t]) !== kind) issue(['targets', i], `a pool has one kind of target: ${kind === 'http' ? 'http:// or https://' : `${kind}://`} like its first, got ${t.url}`);
  });
  const h = pool.healthCheck;
  if (kind === 'http') {
    if (pool.proxyProtocol !== 'off' && (pool.h2 || pool.client === 'undici')) {
      issue(['proxyProtocol'], 'proxyProtocol on an HTTP pool needs the builtin HTTP/1.1 client (each client connection gets its own upstream connection); remove h2 and client: undici');
    }
    if (pool.onTargetDown !== 'keep') issue(['onTargetDown'], 'onTargetDown applies to tcp:// pools', 'key');
    if (h !== undefined && (h.type ?? 'http') !== 'http') issue(['healthCheck', 'type'], `an HTTP pool checks its targets with type: http (a GET of path); "${h.type}" is for tcp:// pools`);
    if (h !== undefined && h.path === undefined) issue(['healthCheck'], 'a health check of type http needs a path, such as /health');
  } else {
    const not = (key: string, why: string): void => issue([key], `"${key}" does not apply to a ${kind}:// pool: ${why}`, 'key');
    if (pool.sticky !== undefined) not('sticky', 'cookie affinity is HTTP (ip-hash keeps a client on one target)');
    if (pool.h2) not('h2', 'it carries bytes, not HTTP');
    if (pool.client !== undefined) not('client', 'it carries bytes, not HTTP');
    const t = pool.tls;
    if (t.ca !== undefined || t.cert !== undefined || t.key !== undefined || t.serverName !== undefined || !t.verify) not('tls', 'waygate does not originate TLS to L4 targets (tls: passthrough forwards the client\'s own)');
    if (kind === 'udp' && pool.proxyProtocol !== 'off') not('proxyProtocol', 'the PROXY protocol is sent on TCP connections');
    if (kind === 'udp' && pool.onTargetDown !== 'keep') not('onTargetDown', 'a UDP session moves to another target with its next datagram');
    if (h !== undefined) {
      const type = h.type ?? (kind === 'udp' ? 'send-expect' : 'connect');
      if (type === 'http') issue(['healthCheck', 'type'], `type: http is for HTTP pools; a ${kind}:// pool checks with ${kind === 'udp' ? 'send-expect' : 'connect or send-expect'}`);
      if (kind === 'udp' && type === 'connect') issue(['healthCheck', 'type'], 'UDP has no connection to open: a udp:// pool checks with send-expect');
      // type: http itself is the error above; its path and expectStatus follow from it.
      if (type !== 'http' && h.path !== undefined) issue(['healthCheck', 'path'], `"path" is for type: http checks; a ${type} check has none`, 'key');
      if (type !== 'http' && h.expectStatus !== undefined) issue(['healthCheck', 'expectStatus'], `"expectStatus" is for type: http checks; a ${type} check has no status (send-expect matches expect in the reply)`, 'key');
      if (type === 'send-expect' && h.expect === undefined) issue(['healthCheck'], 'a send-expect check needs expect: the text the reply must contain (and usually send)');
      if (type === 'send-expect' && kind === 'udp' && (h.send ?? '') === '') issue(['healthCheck'], 'a UDP send-expect check needs send: a UDP target answers only what it is sent');
      if (type === 'connect' && (h.send !== undefined || h.expect !== undefined)) issue(['healthCheck', 'type'], 'send and expect need type: send-expect');
    }
  }
}

// ---- routes ----

type MatcherKind = 'header' | 'cookie' | 'query';

// Matcher values are compiled here once so a bad regex is a load error, never a request error.
function matcherMap(kind: MatcherKind) {
  const key = kind === 'header' ? headerName() : kind === 'cookie' ? cookieName() : nonEmpty();
  return z.record(z.string(), text()).superRefine((map, ctx) => {
    for (const [k, v] of Object.entries(map)) {
      const keyCheck = key.safeParse(k);
      if (!keyCheck.success) {
        ctx.addIssue({ code: 'custom', path: [k], message: keyCheck.error.issues[0].message, params: { at: 'key' } });
      }
      const m = compileValueMatcher(v);
      // matchers.ts prefixes the engine's own "Invalid regular expression: ..." text; say it once.
      if (!m.ok) ctx.addIssue({ code: 'custom', path: [k], message: m.reason.replace(/^(invalid regular expression: )invalid regular expression: /i, '$1') });
    }
  }).transform((map) => (kind === 'header' ? Object.fromEntries(Object.entries(map).map(([k, v]) => [k.toLowerCase(), v])) : map));
}

const matchSchema = strict({
  host: z
    .union([hostPattern(), z.array(hostPattern()).min(1)])
    .optional()
    .transform((h) => (h === undefined ? [] : Array.isArray(h) ? h : [h])),
  path: z.string().default('/*').superRefine((p, ctx) => {
    const r = parsePattern(p);
    if (!r.ok) ctx.addIssue({ code: 'custom', message: `invalid path pattern ${JSON.stringify(p)}: ${r.reason}` });
  }),
  methods: z.array(method()).min(1).optional().transform((m) => m ?? []),
  headers: matcherMap('header').default({}),
  cookies: matcherMap('cookie').default({}),
  query: matcherMap('query').default({}),
});

const headerEditsSchema = strict({
  set: headerMap().default({}),
  add: headerMap().default({}),
  remove: z.array(headerName()).default([]),
});

/** Header changes applied to a request or response: set (replace), add (append), remove. */
export type HeaderEdits = z.output<typeof headerEditsSchema>;

const redirectSchema = strict({
  to: nonEmpty(),
  status: z.literal([301, 302, 303, 307, 308]).default(302),
});
const respondSchema = strict({
  status: status().default(200),
  body: z.string().default(''),
  headers: headerMap().default({}),
});

const ACTIONS = ['pool', 'split', 'redirect', 'respond'] as const;
const FORWARD_ONLY = ['stripPrefix', 'rewritePath', 'requestHeaders'] as const;

const routeObject = strict({
  name: name().optional(),
  match: matchSchema.prefault({}),
  priority: z.number().int().default(0),
  pool: name().optional(),
  split: splitSchema.optional(),
  redirect: redirectSchema.optional(),
  respond: respondSchema.optional(),
  stripPrefix: z.string().regex(/^\/[^*]*$/, { error: 'stripPrefix must start with "/" and cannot contain "*"' }).optional(),
  rewritePath: z
    .string()
    .startsWith('/', { error: 'rewritePath must start with "/"' })
    .regex(/^[^\x00-\x20\x7f]*$/, { error: 'rewritePath cannot contain spaces or control characters (percent-encode them)' })
    .optional(),
  requestHeaders: headerEditsSchema.optional(),
  responseHeaders: headerEditsSchema.optional(),
  // SPEC §8: names from `middlewares:` (any file), run in this order before the action.
  middlewares: z.array(name()).default([]),
});

type RouteObject = z.output<typeof routeObject>;

/** What a route does with a matched request; exactly one per route, tagged by `kind`. */
export type RouteAction =
  | { kind: 'pool'; pool: string }
  | { kind: 'split'; split: SplitEntry[] }
  | { kind: 'redirect'; redirect: RedirectConfig }
  | { kind: 'respond'; respond: RespondConfig };

type RouteCommon = Omit<RouteObject, (typeof ACTIONS)[number] | 'requestHeaders' | 'responseHeaders'> & {
  requestHeaders: HeaderEdits;
  responseHeaders: HeaderEdits;
};

function checkRoute(route: RouteObject, ctx: z.RefinementCtx): void {
  const actions = ACTIONS.filter((a) => route[a] !== undefined);
  if (actions.length === 0) {
    ctx.addIssue({ code: 'custom', path: [], message: 'a route needs one of pool, split, redirect or respond' });
  }
  for (const extra of actions.slice(1)) {
    ctx.addIssue({
      code: 'custom',
      path: [extra],
      params: { at: 'key' },
      message: `"${extra}" cannot be combined with "${actions[0]}": a route has exactly one of pool, split, redirect or respond`,
    });
  }
  const answersItself = actions[0] === 'redirect' || actions[0] === 'respond';
  for (const key of FORWARD_ONLY) {
    if (answersItself && route[key] !== undefined) {
      ctx.addIssue({ code: 'custom', path: [key], params: { at: 'key' }, message: `"${key}" does not apply to a ${actions[0]} route` });
    }
  }
  const pattern = parsePattern(route.match.path);
  if (route.rewritePath !== undefined && pattern.ok) {
    for (const [, param] of route.rewritePath.matchAll(/:([A-Za-z_][A-Za-z0-9_]*)/g)) {
      if (pattern.pattern.params.includes(param)) continue;
      const close = suggest(param, pattern.pattern.params);
      ctx.addIssue({
        code: 'custom',
        path: ['rewritePath'],
        message: `":${param}" is not a parameter of match.path "${route.match.path}"${close ? ` (did you mean ":${close}"?)` : ''}`,
      });
    }
  }
}

const noEdits = (): HeaderEdits => ({ set: {}, add: {}, remove: [] });

function toRoute(r: RouteObject): RouteCommon & RouteAction {
  const { pool, split, redirect, respond, requestHeaders, responseHeaders, ...rest } = r;
  // Fresh objects per route: routes never share mutable defaults.
  const common: RouteCommon = { ...rest, requestHeaders: requestHeaders ?? noEdits(), responseHeaders: responseHeaders ?? noEdits() };
  // checkRoute guarantees exactly one action by now.
  if (pool !== undefined) return { ...common, kind: 'pool', pool };
  if (split !== undefined) return { ...common, kind: 'split', split };
  if (redirect !== undefined) return { ...common, kind: 'redirect', redirect };
  return { ...common, kind: 'respond', respond: respond! };
}

/** The schema of one route: match conditions, priority, one action and optional rewrites. */
export const routeSchema = routeObject.superRefine(checkRoute).transform(toRoute);

// ---- the file ----

// An empty "routes:" is null in YAML; treat it like an absent key.
const orEmpty = <T extends z.ZodType>(schema: T) => z.preprocess((v) => (v === null ? undefined : v), schema);

/** The schema of a whole routes file: `pools`, `middlewares`, `routes`, `tcpRoutes`, `udpRoutes` and `tests`, all optional. */
export const routesFileSchema = strict({
  pools: orEmpty(z.record(name(), poolSchema).default({})),
  middlewares: orEmpty(z.record(name(), middlewareSchema).default({})),
  routes: orEmpty(z.array(routeSchema).default([])),
  tcpRoutes: orEmpty(z.array(tcpRouteSchema).default([])),
  udpRoutes: orEmpty(z.array(udpRouteSchema).default([])),
  tests: orEmpty(z.array(routeTestSchema).default([])),
});

/** A validated pool with every default filled and durations in milliseconds. */
export type PoolConfig = z.output<typeof poolSchema>;
/** One weighted target of a pool; `url` is the origin, without a trailing slash. */
export type TargetConfig = PoolConfig['targets'][number];
/** Cookie affinity settings of a pool. */
export type StickyConfig = z.output<typeof stickySchema>;
/** Active health check settings of a pool, defaults filled; `expectStatus` is a list of inclusive ranges. */
export type HealthCheckConfig = NonNullable<PoolConfig['healthCheck']>;
/** TLS settings for connecting to https:// targets. */
export type UpstreamTlsConfig = z.output<typeof upstreamTlsSchema>;
/** One weighted branch of a traffic split. */
export type SplitEntry = z.output<typeof splitSchema>[number];
/** A redirect answer. */
export type RedirectConfig = z.output<typeof redirectSchema>;
/** A fixed answer. */
export type RespondConfig = z.output<typeof respondSchema>;
/** The match conditions of a route; empty lists and maps mean "any". */
export type MatchConfig = z.output<typeof matchSchema>;
/** A validated route; `name` is filled in by the loader when omitted. */
export type RouteConfig = z.output<typeof routeSchema>;
/** A validated routes file. */
export type RoutesFile = z.output<typeof routesFileSchema>;

// The routes file (SPEC §3) as zod schemas: the single source of the config types. Parsing
// validates everything the runtime relies on and fills every default, so the output is plain,
// trusted data; cross-file checks (pool references, duplicate names) live in load.ts.
import { z } from 'zod';
import { POLICIES } from '../balance/index.ts';
import type { BalanceName } from '../balance/index.ts';
import { compileValueMatcher } from '../router/matchers.ts';
import { parsePattern } from '../router/pattern.ts';
import { cookieName, headerMap, headerName, int, method, name, nonEmpty, status, strict, text } from './fields.ts';
import { hostPattern, statusRanges, targetUrl } from './net-fields.ts';
import { routeTestSchema } from './route-tests.ts';
import { suggest } from './suggest.ts';
import { duration } from './units.ts';

export { defaultStaticConfig, staticConfigSchema } from './static-schema.ts';
export type { StaticConfig } from './static-schema.ts';
export { routeTestSchema } from './route-tests.ts';
export type { RouteTestConfig } from './route-tests.ts';

const POSITIVE_DURATION = 'must be greater than 0s';

// ---- pools ----

const targetSchema = z.union([
  targetUrl().transform((url) => ({ url, weight: 1 })),
  strict({ url: targetUrl(), weight: int(1).default(1) }),
]);

const stickySchema = strict({
  cookie: cookieName(),
  maxAge: duration().optional(),
  onDown: z.enum(['rebalance', 'fail']).default('rebalance'),
});

const healthCheckSchema = strict({
  path: z.string().startsWith('/', { error: 'a health check path must start with "/"' }),
  interval: duration().refine((ms) => ms > 0, POSITIVE_DURATION).default(5000),
  timeout: duration().refine((ms) => ms > 0, POSITIVE_DURATION).default(2000),
  unhealthyAfter: int(1).default(3),
  healthyAfter: int(1).default(2),
  expectStatus: statusRanges().prefault('200-399'),
});

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

/** The schema of one pool: targets plus balancing, affinity, health, timeouts and upstream TLS. */
export const poolSchema = strict({
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
}).superRefine((pool, ctx) => {
  if (pool.h2 && pool.client === 'builtin') {
    ctx.addIssue({ code: 'custom', path: ['client'], message: 'the builtin client speaks HTTP/1.1 only; an h2 pool is served by undici (remove "client" or set it to "undici")' });
  }
});

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

const splitSchema = z.array(strict({ pool: name(), weight: int(1) })).min(1);
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

/** The schema of a whole routes file: `pools`, `routes` and `tests`, all optional. */
export const routesFileSchema = strict({
  pools: orEmpty(z.record(name(), poolSchema).default({})),
  routes: orEmpty(z.array(routeSchema).default([])),
  tests: orEmpty(z.array(routeTestSchema).default([])),
});

/** A validated pool with every default filled and durations in milliseconds. */
export type PoolConfig = z.output<typeof poolSchema>;
/** One weighted target of a pool; `url` is the origin, without a trailing slash. */
export type TargetConfig = PoolConfig['targets'][number];
/** Cookie affinity settings of a pool. */
export type StickyConfig = z.output<typeof stickySchema>;
/** Active health check settings of a pool; `expectStatus` is a list of inclusive ranges. */
export type HealthCheckConfig = z.output<typeof healthCheckSchema>;
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

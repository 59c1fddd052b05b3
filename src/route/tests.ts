// Routes-file tests (SPEC §3 `tests:`): each one is a request and what it must get — the route,
// the pool, the upstream path, the status or Location of an answer — checked against a scratch
// build of the routes, with no network. They run at --check, at start and before every reload;
// a failing test rejects the routes like a syntax error.
import { checkListeners, checkMiddlewares, formatConfigError } from '../config/load.ts';
import type { ConnectTestConfig, StaticConfig } from '../config/schema.ts';
import { isIP } from 'node:net';
import type { RoutesConfig } from '../config/load.ts';
import { buildRuntime } from '../runtime.ts';
import type { Runtime } from '../runtime.ts';
import { normalizeHost } from '../router/host.ts';
import { normalizePath, rawPathOf } from '../router/path.ts';
import type { AmbiguousPaths } from '../router/path.ts';
import { RequestView } from '../router/request-view.ts';
import { TargetRegistry } from '../upstream/registry.ts';

/**
 * Everything a routes directory must pass beyond its schema before it serves (at --check, at
 * start and before every reload): its L4 routes name listeners waygate.yaml has, and its tests
 * pass. Returns one formatted error line per problem, empty when there is none.
 */
export function verifyRoutes(routes: RoutesConfig, config: StaticConfig): string[] {
  const listenerErrors = [...checkListeners(routes, config), ...checkMiddlewares(routes, config)].map(formatConfigError);
  if (listenerErrors.length > 0) return listenerErrors;
  return runRouteTests(routes, config.security.ambiguousPaths);
}

/**
 * Runs every test of `routes`; returns one formatted error line per failed expectation (empty
 * when all pass). `ambiguousPaths` is waygate.yaml's `security.ambiguousPaths`: a test request
 * the listener would refuse is reported as refused, not routed.
 */
export function runRouteTests(routes: RoutesConfig, ambiguousPaths: AmbiguousPaths = 'reject'): string[] {
  if (routes.tests.length === 0) return [];
  // A scratch registry: its targets never connect (connection pools are made on first use).
  const { runtime } = buildRuntime(routes, new TargetRegistry(), 0, 'route-tests');
  const errors: string[] = [];
  for (const t of routes.tests) {
    const fail = (message: string): void => {
      errors.push(formatConfigError({ file: t.source.file, line: t.source.line, col: t.source.col, path: `tests[${t.source.index}]`, message }));
    };
    if (t.kind === 'connect') {
      runConnectTest(runtime, t, fail);
      continue;
    }
    const url = new URL(t.request.url);
    const host = normalizeHost(url.host) ?? '';
    // As written: `new URL` resolves %2e%2e and turns '\' into '/', which the listener does not.
    const norm = normalizePath(rawPathOf(t.request.url) ?? url.pathname, ambiguousPaths);
    if (!norm.ok) {
      fail(`the request path is refused: ${norm.reason}`);
      continue;
    }
    const headers: Record<string, string> = { host: url.host };
    for (const [k, v] of Object.entries(t.headers)) headers[k.toLowerCase()] = v;
    const cookies = Object.entries(t.cookies).map(([k, v]) => `${k}=${v}`).join('; ');
    if (cookies !== '') headers.cookie = cookies;
    const query = url.search.slice(1);
    const match = runtime.router.match(new RequestView(t.request.method, host, norm.path, query, headers));
    const e = t.expect;
    const got = match?.name;
    if (e.route !== undefined && got !== e.route) fail(`expected route "${e.route}", got ${got === undefined ? 'no route' : `"${got}"`}`);
    const action = match?.value.action;
    if (e.status !== undefined) {
      const status = action === undefined ? 404 : action.kind === 'forward' ? undefined : action.status;
      if (status === undefined) fail(`status is only known for respond, redirect and unmatched requests; route "${got}" forwards`);
      else if (status !== e.status) fail(`expected status ${e.status}, got ${status}`);
    }
    if (e.pool !== undefined || e.path !== undefined) {
      if (action?.kind !== 'forward') {
        fail(`expected a forwarding route, got ${got === undefined ? 'no route' : `"${got}" (${action!.kind})`}`);
      } else {
        const pools = action.pools.map((p) => p.name);
        if (e.pool !== undefined && !pools.includes(e.pool)) fail(`expected pool "${e.pool}", got ${pools.map((p) => `"${p}"`).join(' or ')}`);
        if (e.path !== undefined) {
          const path = action.rewrite(norm.path, match!.params);
          const full = e.path.includes('?') && query !== '' ? `${path}?${query}` : path;
          if (full !== e.path) fail(`expected upstream path "${e.path}", got "${full}"`);
        }
      }
    }
    if (e.location !== undefined) {
      if (action?.kind !== 'redirect') fail(`expected a redirect, got ${got === undefined ? 'no route' : `"${got}"`}`);
      else {
        const location = action.location({ scheme: url.protocol.slice(0, -1), host, port: url.port, path: norm.path, query: query === '' ? '' : `?${query}`, params: match!.params });
        if (location !== e.location) fail(`expected Location "${e.location}", got "${location}"`);
      }
    }
    if (e.host !== undefined && host !== e.host.toLowerCase()) fail(`expected host "${e.host}", got "${host}"`);
  }
  return errors;
}

/**
 * SPEC §7 `connect:` tests: "tls://NAME" is a ClientHello with that SNI (and the test's alpn),
 * "tcp://HOST" and "udp://HOST" send none; the route and pool are those the L4 router picks.
 */
function runConnectTest(runtime: Runtime, t: ConnectTestConfig, fail: (message: string) => void): void {
  const udp = t.connect.scheme === 'udp';
  const router = udp ? runtime.udp : runtime.tcp;
  const tls = t.connect.scheme === 'tls';
  // A plain TCP client sends no hello: on a listener that peeks, it gets no SNI and no ALPN.
  const host = t.connect.host.replace(/^\[|\]$/g, '');
  const query = { sni: tls && isIP(host) === 0 ? host : undefined, alpn: tls ? t.alpn : [], clientIp: t.clientIp };
  const match = router.match(t.listener, query);
  const got = match?.name;
  const e = t.expect;
  if (e.route === null && got !== undefined) fail(`expected the connection to be closed (no route), got route "${got}"`);
  if (typeof e.route === 'string' && got !== e.route) fail(`expected route "${e.route}", got ${got === undefined ? 'no route: the connection is closed' : `"${got}"`}`);
  if (e.pool !== undefined) {
    const pools = match?.value.pools.map((p) => p.name) ?? [];
    if (!pools.includes(e.pool)) fail(`expected pool "${e.pool}", got ${pools.length === 0 ? 'no route' : pools.map((p) => `"${p}"`).join(' or ')}`);
  }
}

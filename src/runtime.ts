// Compiles a validated config into what serves requests: pools of targets (from the registry
// that outlives reloads, expanded by DNS discovery), their TLS material and probe settings, and
// the router with each route's compiled action. Pure apart from reading TLS files.
import { readFile } from 'node:fs/promises';
import { BlockList, isIP } from 'node:net';
import { POLICIES } from './balance/index.ts';
import { StickyPins } from './balance/sticky.ts';
import type { RoutesConfig } from './config/load.ts';
import type { PoolConfig } from './config/schema.ts';
import type { ProbeConfig } from './health/checker.ts';
import { L4Router } from './l4/router.ts';
import type { L4RouteSpec } from './l4/router.ts';
import type { TcpRoute, UdpRoute } from './l4/route.ts';
import { buildMiddlewares } from './middleware/build.ts';
import type { MiddlewareDeps } from './middleware/build.ts';
import type { Middleware } from './middleware/types.ts';
import { compileAction } from './route/actions.ts';
import type { RouteAction, RouteActionOptions } from './route/actions.ts';
import { parsePattern } from './router/pattern.ts';
import { Router } from './router/router.ts';
import type { RouteSpec } from './router/router.ts';
import { DEFAULT_RETRY_AFTER } from './server/respond.ts';
import { expandTarget } from './upstream/dns.ts';
import { poolChooser, UpstreamPool } from './upstream/pool.ts';
import type { TargetRegistry } from './upstream/registry.ts';
import type { ClientKind } from './upstream/client.ts';
import type { Target, UpstreamTls } from './upstream/target.ts';
import { loadUndici } from './upstream/undici.ts';

/** A route as the request path needs it. */
export interface CompiledRoute {
  readonly name: string;
  readonly action: RouteAction;
  /** SPEC §8: the middlewares it runs, in order; undefined when it lists none. */
  readonly middlewares?: readonly Middleware[];
}

/** The routing table in force: swapped whole on reload, captured by each request at its start and
 * read by the listeners, the upgrade handler and /explain. */
export interface Runtime {
  readonly router: Router<CompiledRoute>;
  /** SPEC §7: tcpRoutes by listener (the shared HTTPS port is listener "https"), and udpRoutes. */
  readonly tcp: L4Router<TcpRoute>;
  readonly udp: L4Router<UdpRoute>;
  /** SPEC §8: every middleware of the routes, by name (empty for a scratch build without MiddlewareDeps). */
  readonly middlewares: ReadonlyMap<string, Middleware>;
  /** The routes that list each middleware, by middleware name (/status). */
  readonly middlewareRoutes: ReadonlyMap<string, readonly string[]>;
  readonly version: number;
}

/** Idle time of pooled upstream keep-alive connections; below the 5 s default of Node servers
 * so waygate closes an idle connection before the upstream does and never writes into a closing one. */
const UPSTREAM_KEEPALIVE_MS = 4000;

/** Returns a predicate telling whether an address is in the trusted-proxies list. */
export function trustPredicate(cidrs: readonly string[]): (ip: string) => boolean {
  if (cidrs.length === 0) return () => false;
  const list = new BlockList();
  for (const c of cidrs) {
    const [addr, bits] = c.split('/');
    const type = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(addr, type);
    else list.addSubnet(addr, Number(bits), type);
  }
  return (ip) => {
    const v = isIP(ip);
    return v !== 0 && list.check(ip, v === 6 ? 'ipv6' : 'ipv4');
  };
}

/** The contents of a pool's TLS files, read before a build (pool name → material). */
export type PoolTlsFiles = Map<string, UpstreamTls>;

/**
 * Reads every pool's `tls.ca`, `tls.cert` and `tls.key` (paths relative to the working
 * directory). Rejects with an error naming the pool and the file when one cannot be read.
 */
export async function readPoolTls(routes: RoutesConfig): Promise<PoolTlsFiles> {
  const out: PoolTlsFiles = new Map();
  for (const [name, pc] of routes.pools) {
    const t = pc.tls;
    const read = async (key: 'ca' | 'cert' | 'key'): Promise<string | undefined> => {
      const file = t[key];
      if (file === undefined) return undefined;
      try {
        return await readFile(file, 'utf8');
      } catch (err) {
        throw new Error(`pools.${name}.tls.${key}: cannot read "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    };
    out.set(name, { ca: await read('ca'), cert: await read('cert'), key: await read('key'), rejectUnauthorized: t.verify, servername: t.serverName });
  }
  return out;
}

/** Returns the addresses DNS discovery knows for a host, or undefined when it has none yet. */
export type Discovered = (host: string) => readonly string[] | undefined;

/**
 * Returns a pool's target URLs and weights: as configured, or — with `discovery: dns` — one per
 * address each host name resolved to (a name not resolved yet stays as configured).
 */
export function targetList(pc: PoolConfig, discovered: Discovered | undefined): { url: string; weight: number }[] {
  if (pc.discovery !== 'dns' || discovered === undefined) return pc.targets;
  return pc.targets.flatMap((t) => {
    const host = new URL(t.url).hostname;
    const addresses = isIP(host.replace(/^\[|\]$/g, '')) !== 0 ? undefined : discovered(host);
    return addresses === undefined ? [t] : expandTarget(t.url, addresses).map((url) => ({ url, weight: t.weight }));
  });
}

/** The host names of every `discovery: dns` pool, with their refresh interval. */
export function discoveryHosts(routes: RoutesConfig): Map<string, number> {
  const hosts = new Map<string, number>();
  for (const pc of routes.pools.values()) {
    if (pc.discovery !== 'dns') continue;
    for (const t of pc.targets) {
      const host = new URL(t.url).hostname;
      if (isIP(host.replace(/^\[|\]$/g, '')) === 0) hosts.set(host, Math.min(hosts.get(host) ?? Infinity, pc.dnsRefresh));
    }
  }
  return hosts;
}

function poolFromConfig(name: string, pc: PoolConfig, registry: TargetRegistry, secret: string | undefined, tls: UpstreamTls | undefined, discovered?: Discovered): UpstreamPool {
  const targets = targetList(pc, discovered).map((t) => registry.obtain(name, t.url, t.weight));
  // Discovered https targets are addresses: their certificate names the configured host.
  if (pc.discovery === 'dns' && tls !== undefined && tls.servername === undefined) {
    tls = { ...tls, servername: new URL(pc.targets[0].url).hostname };
  }
  const sticky = pc.sticky === undefined ? undefined : new StickyPins(secret!, name, targets, { cookie: pc.sticky.cookie, maxAge: pc.sticky.maxAge, onDown: pc.sticky.onDown });
  const client: ClientKind = pc.h2 ? 'undici' : (pc.client ?? 'builtin');
  // Loaded while the config is built, so no request waits for undici's module to load.
  if (client === 'undici') loadUndici();
  const connect = { connectTimeout: pc.timeouts.connect, keepAliveTimeout: UPSTREAM_KEEPALIVE_MS, tls, h2: pc.h2, client, proxyProtocol: pc.proxyProtocol, key: '' };
  connect.key = JSON.stringify(connect);
  const settings = {
    responseTimeout: pc.timeouts.response,
    idleTimeout: pc.timeouts.idle,
    retries: pc.retries,
    retryAfter: pc.healthCheck === undefined ? DEFAULT_RETRY_AFTER : Math.max(1, Math.ceil(pc.healthCheck.interval / 1000)),
    connect,
    h2: pc.h2,
    onTargetDown: pc.onTargetDown,
  };
  const pool = new UpstreamPool(name, targets, POLICIES[pc.balance], settings, sticky);
  pool.balance = pc.balance;
  return pool;
}

/** Returns the active-check settings of a pool, or undefined when it has none. */
export function probeConfig(pc: PoolConfig, tls: UpstreamTls | undefined): ProbeConfig | undefined {
  const h = pc.healthCheck;
  if (h === undefined) return undefined;
  return {
    type: h.type, path: h.path, send: h.send, expect: h.expect, proxyProtocol: pc.proxyProtocol, interval: h.interval, timeout: h.timeout, unhealthyAfter: h.unhealthyAfter, healthyAfter: h.healthyAfter, expectStatus: h.expectStatus,
    tls: tls === undefined ? undefined : { rejectUnauthorized: tls.rejectUnauthorized, ca: tls.ca, servername: tls.servername, cert: tls.cert, key: tls.key },
  };
}

/** True when some pool needs the sticky secret. */
export function needsSecret(routes: RoutesConfig): boolean {
  for (const pc of routes.pools.values()) if (pc.sticky !== undefined) return true;
  return false;
}

/**
 * Compiles routes and pools into a runtime; returns it with every target it uses. Without `mw`
 * (route tests' scratch builds) no middleware is built and routes run none.
 */
export function buildRuntime(routes: RoutesConfig, registry: TargetRegistry, version: number, secret?: string, tls?: PoolTlsFiles, discovered?: Discovered, mw?: MiddlewareDeps): { runtime: Runtime; targets: Set<Target>; pools: Map<string, UpstreamPool> } {
  const pools = new Map<string, UpstreamPool>();
  const targets = new Set<Target>();
  for (const [name, pc] of routes.pools) {
    const pool = poolFromConfig(name, pc, registry, secret, tls?.get(name), discovered);
    pools.set(name, pool);
    for (const t of pool.targets) targets.add(t);
  }
  const middlewares = mw === undefined ? new Map<string, Middleware>() : buildMiddlewares(routes, pools, registry, targets, mw);
  const specs: RouteSpec<CompiledRoute>[] = routes.routes.map((r, order) => {
    const parsed = parsePattern(r.match.path);
    const opts: RouteActionOptions = {
      params: parsed.ok ? parsed.pattern.params : [],
      stripPrefix: r.stripPrefix,
      rewritePath: r.rewritePath,
      requestHeaders: r.requestHeaders,
      responseHeaders: r.responseHeaders,
      pool: r.kind === 'pool' ? pools.get(r.pool) : undefined,
      split: r.kind === 'split' ? r.split.map((s) => ({ pool: pools.get(s.pool)!, weight: s.weight })) : undefined,
      redirect: r.kind === 'redirect' ? r.redirect : undefined,
      respond: r.kind === 'respond' ? r.respond : undefined,
    };
    return {
      name: r.name,
      hosts: r.match.host.length > 0 ? r.match.host : undefined,
      path: r.match.path,
      methods: r.match.methods.length > 0 ? r.match.methods : undefined,
      headers: r.match.headers,
      cookies: r.match.cookies,
      query: r.match.query,
      priority: r.priority,
      order,
      value: { name: r.name, action: compileAction(opts), middlewares: mw === undefined || r.middlewares.length === 0 ? undefined : r.middlewares.map((n) => middlewares.get(n)!) },
    };
  });
  const l4Order = routes.routes.length;
  const poolsOf = (r: { kind: 'pool'; pool: string } | { kind: 'split'; split: { pool: string; weight: number }[] }): { list: UpstreamPool[]; weights: number[] } =>
    r.kind === 'pool' ? { list: [pools.get(r.pool)!], weights: [1] } : { list: r.split.map((x) => pools.get(x.pool)!), weights: r.split.map((x) => x.weight) };
  const tcpSpecs: L4RouteSpec<TcpRoute>[] = routes.tcpRoutes.map((r, i) => {
    const { list, weights } = poolsOf(r);
    const value: TcpRoute = {
      kind: 'tcp', name: r.name, listener: r.listener, tls: r.tls, pools: list, weights, choosePool: poolChooser(list, weights),
      idleTimeout: r.idleTimeout, halfCloseTimeout: r.halfCloseTimeout, maxConnections: r.limits.maxConnections, perClient: r.limits.perClient,
    };
    return { name: r.name, listener: r.listener, sni: r.match.sni, alpn: r.match.alpn, clientIp: r.match.clientIp, priority: r.priority, order: l4Order + i, value };
  });
  const udpSpecs: L4RouteSpec<UdpRoute>[] = routes.udpRoutes.map((r, i) => {
    const { list, weights } = poolsOf(r);
    const value: UdpRoute = { kind: 'udp', name: r.name, listener: r.listener, pools: list, weights, choosePool: poolChooser(list, weights) };
    return { name: r.name, listener: r.listener, sni: [], alpn: [], clientIp: r.match.clientIp, priority: r.priority, order: i, value };
  });
  const middlewareRoutes = new Map<string, string[]>([...middlewares.keys()].map((n) => [n, []]));
  for (const r of routes.routes) for (const n of r.middlewares) middlewareRoutes.get(n)?.push(r.name);
  return { runtime: { router: new Router(specs), tcp: new L4Router(tcpSpecs), udp: new L4Router(udpSpecs), middlewares, middlewareRoutes, version }, targets, pools };
}

/** True when some tcpRoute terminates TLS (it needs the certificates of certsDir). */
export function needsCertificates(routes: RoutesConfig): boolean {
  return routes.tcpRoutes.some((r) => r.tls === 'terminate');
}

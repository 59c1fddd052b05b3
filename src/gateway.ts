// Builds the runtime from a validated config and owns its life: start, reload (an atomic swap
// of the whole routing table), close (drain). The only module that reads config types.
import { readFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { Http2SecureServer } from 'node:http2';
import type { Server as NetServer } from 'node:net';
import { BlockList, isIP } from 'node:net';
import { createAdminServer } from './admin/admin.ts';
import type { AdminSource, ExplainQuery } from './admin/admin.ts';
import { POLICIES } from './balance/index.ts';
import { StickyPins } from './balance/sticky.ts';
import type { ListenAddress } from './config/address.ts';
import { formatConfigError, loadRoutesDir } from './config/load.ts';
import type { ConfigError, RoutesConfig } from './config/load.ts';
import type { PoolConfig, StaticConfig } from './config/schema.ts';
import { resolveSecret } from './config/secret.ts';
import { routesFingerprint } from './config/watch.ts';
import { outcomeOf } from './errors.ts';
import type { GatewayError } from './errors.ts';
import { createUpgradeHandler } from './forward/websocket.ts';
import { HealthChecker } from './health/checker.ts';
import type { ProbeConfig } from './health/checker.ts';
import { PassiveHealth } from './health/passive.ts';
import type { Logger } from './observe/logger.ts';
import { Metrics } from './observe/metrics.ts';
import { compileAction } from './route/actions.ts';
import type { RouteActionOptions } from './route/actions.ts';
import { normalizeHost } from './router/host.ts';
import { normalizePath } from './router/path.ts';
import { parsePattern } from './router/pattern.ts';
import { RequestView } from './router/request-view.ts';
import { runRouteTests } from './route/tests.ts';
import { Router } from './router/router.ts';
import type { RouteSpec } from './router/router.ts';
import { createContinueHandler, createHandler } from './server/handler.ts';
import type { CompiledRoute, Runtime } from './server/handler.ts';
import { CertStore, ensureSelfSigned, loadCertsDir, secureOptions, watchCertsDir } from './server/certs.ts';
import type { TlsPolicy } from './server/certs.ts';
import { closeGracefully, createHttpServer, createHttpsServer, listen, trackConnections } from './server/listener.ts';
import { proxyProtocolFront } from './server/proxy-protocol.ts';
import type { TrackedConnections } from './server/listener.ts';
import { DEFAULT_RETRY_AFTER } from './server/respond.ts';
import { UpstreamPool } from './upstream/pool.ts';
import { DnsDiscovery, expandTarget, systemResolver } from './upstream/dns.ts';
import type { Resolver } from './upstream/dns.ts';
import { TargetRegistry } from './upstream/registry.ts';
import type { Target, UpstreamTls } from './upstream/target.ts';
import type { UpstreamPool as Pool } from './upstream/pool.ts';

/** Idle time of pooled upstream keep-alive connections; below the 5 s default of Node servers
 * so waygate closes an idle connection before the upstream does and never writes into a closing one. */
const UPSTREAM_KEEPALIVE_MS = 4000;

/** What a gateway starts from. */
export interface GatewayOptions {
  config: StaticConfig;
  routes: RoutesConfig;
  log: Logger;
  access: Logger | undefined;
  env?: NodeJS.ProcessEnv;
  /** Watch the routes directory and reload on change (default true). */
  watchRoutes?: boolean;
  /** How `discovery: dns` resolves names (the system resolver by default). */
  resolver?: Resolver;
}

/** The bound addresses ("host:port"), null for a listener that is off. */
export interface BoundAddresses {
  http: string | null;
  https: string | null;
  admin: string | null;
}

/** The outcome of a reload. */
export type ReloadResult = { ok: true; version: number } | { ok: false; errors: string[] };

/** True for a loopback listen host (127.0.0.0/8, ::1, localhost). */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

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
function targetList(pc: PoolConfig, discovered: Discovered | undefined): { url: string; weight: number }[] {
  if (pc.discovery !== 'dns' || discovered === undefined) return pc.targets;
  return pc.targets.flatMap((t) => {
    const host = new URL(t.url).hostname;
    const addresses = isIP(host.replace(/^\[|\]$/g, '')) !== 0 ? undefined : discovered(host);
    return addresses === undefined ? [t] : expandTarget(t.url, addresses).map((url) => ({ url, weight: t.weight }));
  });
}

/** The host names of every `discovery: dns` pool, with their refresh interval. */
function discoveryHosts(routes: RoutesConfig): Map<string, number> {
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
  const connect = { connectTimeout: pc.timeouts.connect, keepAliveTimeout: UPSTREAM_KEEPALIVE_MS, tls, h2: pc.h2, key: '' };
  connect.key = JSON.stringify(connect);
  const settings = {
    responseTimeout: pc.timeouts.response,
    idleTimeout: pc.timeouts.idle,
    retries: pc.retries,
    retryAfter: pc.healthCheck === undefined ? DEFAULT_RETRY_AFTER : Math.max(1, Math.ceil(pc.healthCheck.interval / 1000)),
    connect,
    h2: pc.h2,
  };
  const pool = new UpstreamPool(name, targets, POLICIES[pc.balance], settings, sticky);
  pool.balance = pc.balance;
  return pool;
}

/** Returns the active-check settings of a pool, or undefined when it has none. */
function probeConfig(pc: PoolConfig, tls: UpstreamTls | undefined): ProbeConfig | undefined {
  const h = pc.healthCheck;
  if (h === undefined) return undefined;
  return {
    path: h.path, interval: h.interval, timeout: h.timeout, unhealthyAfter: h.unhealthyAfter, healthyAfter: h.healthyAfter, expectStatus: h.expectStatus,
    tls: tls === undefined ? undefined : { rejectUnauthorized: tls.rejectUnauthorized, ca: tls.ca, servername: tls.servername, cert: tls.cert, key: tls.key },
  };
}

/** True when some pool needs the sticky secret. */
function needsSecret(routes: RoutesConfig): boolean {
  for (const pc of routes.pools.values()) if (pc.sticky !== undefined) return true;
  return false;
}

/** Compiles routes and pools into a runtime; returns it with every target it uses. */
export function buildRuntime(routes: RoutesConfig, registry: TargetRegistry, version: number, secret?: string, tls?: PoolTlsFiles, discovered?: Discovered): { runtime: Runtime; targets: Set<Target>; pools: Map<string, UpstreamPool> } {
  const pools = new Map<string, UpstreamPool>();
  const targets = new Set<Target>();
  for (const [name, pc] of routes.pools) {
    const pool = poolFromConfig(name, pc, registry, secret, tls?.get(name), discovered);
    pools.set(name, pool);
    for (const t of pool.targets) targets.add(t);
  }
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
      value: { name: r.name, action: compileAction(opts) },
    };
  });
  return { runtime: { router: new Router(specs), version }, targets, pools };
}

/** A running waygate: listeners, the routing table in force, and the target registry. */
export class Gateway {
  readonly #config: StaticConfig;
  readonly #log: Logger;
  readonly #env: NodeJS.ProcessEnv;
  readonly #registry = new TargetRegistry();
  readonly #metrics: Metrics;
  readonly #checker: HealthChecker<Target>;
  readonly #passive: PassiveHealth;
  #secret: string | undefined;
  readonly #dns: DnsDiscovery;
  #routes!: RoutesConfig;
  #poolTls: PoolTlsFiles = new Map();
  readonly #servers: { server: Server | Http2SecureServer; tracked?: TrackedConnections; front?: NetServer }[] = [];
  #admin: Server | undefined;
  readonly #certs = new CertStore();
  #certWatch: { close(): void } | undefined;
  #routesWatch: { close(): void } | undefined;
  #reloadingCerts: Promise<string[]> | undefined;
  #runtime!: Runtime;
  #pools = new Map<string, UpstreamPool>();
  #ready = false;
  #addresses: BoundAddresses = { http: null, https: null, admin: null };
  #reloading: Promise<ReloadResult> | undefined;
  #lastReload: { at: string; ok: boolean; errors: string[] } | undefined;

  private constructor(o: GatewayOptions) {
    this.#config = o.config;
    this.#log = o.log;
    this.#env = o.env ?? {};
    this.#metrics = new Metrics(() => this.#registry.all());
    const changed = (target: Target, available: boolean, reason: string): void => this.#availabilityChanged(target, available, reason);
    this.#passive = new PassiveHealth(changed);
    this.#dns = new DnsDiscovery(
      o.resolver ?? systemResolver,
      () => this.#rediscover(),
      (host, err) => this.#log.warn({ host, err }, 'DNS lookup failed; keeping the last addresses'),
    );
    this.#checker = new HealthChecker<Target>((target, healthy, reason) => {
      // Every flip of the active verdict is logged; the gauge follows availability.
      this.#log[healthy ? 'info' : 'warn']({ pool: target.pool, target: target.url, reason }, healthy ? 'target passed health checks' : 'target failed health checks');
      if (target.setActiveHealth(healthy)) this.#metrics.targetHealth(target.pool, target.url, target.available);
    });
  }

  /** Builds the runtime and binds every listener that is on; rejects (closing what was opened) on a bind error. */
  static async start(o: GatewayOptions): Promise<Gateway> {
    const g = new Gateway(o);
    await g.#ensureSecret(o.routes);
    await g.#dns.sync(discoveryHosts(o.routes));
    g.#install(o.routes, 1, await readPoolTls(o.routes), true);
    try {
      await g.#listen(o.access);
    } catch (err) {
      await g.close(0);
      throw err;
    }
    g.#ready = true;
    // Routes files are watched: a change is validated, tested and swapped in, or logged and refused.
    if (o.watchRoutes !== false) {
      let last = await routesFingerprint(o.config.routesDir);
      g.#routesWatch = watchCertsDir(o.config.routesDir, () => {
        void routesFingerprint(o.config.routesDir).then((now) => {
          if (now === last) return;
          last = now;
          void g.reload();
        });
      });
    }
    return g;
  }

  /** The bound listener addresses. */
  get addresses(): BoundAddresses {
    return this.#addresses;
  }

  /** The routing table in force. */
  get runtime(): Runtime {
    return this.#runtime;
  }

  /** The pools in force, by name. */
  get pools(): ReadonlyMap<string, UpstreamPool> {
    return this.#pools;
  }

  /** The process's metrics. */
  get metrics(): Metrics {
    return this.#metrics;
  }

  /** What the admin API reads: readiness, metrics, status, reload and explain of this process. */
  adminSource(): AdminSource {
    return {
      ready: () => this.#ready,
      metrics: this.#metrics,
      status: async () => this.status(),
      reload: async () => {
        const r = await this.reload();
        return r.ok ? { ok: true, version: r.version } : { ok: false, errors: r.errors };
      },
      explain: async (q) => this.explain(q),
    };
  }

  /** Returns the JSON of GET /status: listeners, config version, last reload, routes, pools and targets, certificates. */
  status(): Record<string, unknown> {
    return {
      ready: this.#ready,
      pid: process.pid,
      listeners: this.#addresses,
      config: { version: this.#runtime.version, routesDir: this.#config.routesDir, lastReload: this.#lastReload ?? null },
      routes: this.#runtime.router.size,
      pools: [...this.#pools.values()].map((p) => ({
        name: p.name,
        balance: p.balance,
        sticky: p.sticky === undefined ? null : p.sticky.options.cookie,
        available: p.targets.filter((t) => t.available).length,
        targets: p.targets.map((t) => {
          const check = this.#checker.status(t);
          return {
            url: t.url,
            weight: t.weight,
            healthy: t.available,
            activeHealthy: t.activeHealthy,
            ejected: t.ejected,
            inFlight: t.inFlight,
            requests: t.requests,
            failures: t.failures,
            lastCheck: check?.lastCheck == null ? null : new Date(check.lastCheck).toISOString(),
            lastCheckResult: check?.lastResult ?? null,
          };
        }),
      })),
      certificates: this.#certs.certs.map((c) => ({ file: c.file, names: c.names, notAfter: c.notAfter, default: c === this.#certs.defaultCert })),
    };
  }

  /**
   * Returns the JSON of GET /explain: the route chosen and every candidate rejected with the
   * condition that failed, the rewrite, the pool and the target that would be picked now and
   * why — without sending anything or moving any balancing state.
   */
  explain(q: ExplainQuery): Record<string, unknown> {
    const url = new URL(q.url);
    const host = normalizeHost(url.host);
    if (host === undefined) throw new Error(`invalid host in ${q.url}`);
    const norm = normalizePath(url.pathname);
    if (!norm.ok) return { request: { method: q.method, url: q.url }, refused: `400: ${norm.reason}` };
    const headers: Record<string, string> = { host: url.host };
    for (const [k, v] of q.headers) headers[k.toLowerCase()] = v;
    if (q.cookies.length > 0) headers.cookie = q.cookies.map(([k, v]) => `${k}=${v}`).join('; ');
    const query = url.search.slice(1);
    const view = new RequestView(q.method, host, norm.path, query, headers);
    const { match, rejected } = this.#runtime.router.explain(view);
    const out: Record<string, unknown> = {
      request: { method: q.method, host, path: norm.path, query },
      route: match?.name ?? null,
      pattern: match?.pattern.source ?? null,
      params: match?.params ?? {},
      rejected,
    };
    if (match === undefined) return { ...out, result: '404 no route' };
    const action = match.value.action;
    if (action.kind === 'respond') return { ...out, action: 'respond', status: action.status };
    if (action.kind === 'redirect') {
      const location = action.location({ scheme: url.protocol.slice(0, -1), host, port: url.port, path: norm.path, query: query === '' ? '' : `?${query}`, params: match.params });
      return { ...out, action: 'redirect', status: action.status, location };
    }
    const upstreamPath = action.rewrite(norm.path, match.params);
    const pools = action.pools.map((pool, i) => {
      const clientIp = '127.0.0.1';
      const skipped = pool.targets.filter((t) => !t.available).map((t) => ({ url: t.url, reason: t.ejected ? 'passively ejected' : 'failing health checks' }));
      let target: string | null = null;
      let why: string;
      const token = pool.sticky === undefined ? undefined : view.cookie(pool.sticky.options.cookie);
      const pinned = pool.sticky?.target(token);
      if (pinned !== undefined && pinned.available) {
        target = pinned.url;
        why = `sticky cookie "${pool.sticky!.options.cookie}" pins it`;
      } else if (pinned !== undefined && pool.sticky!.options.onDown === 'fail') {
        why = `sticky target ${pinned.url} is down and onDown is fail: 503`;
      } else {
        const t = pool.preview({ clientIp });
        target = t?.url ?? null;
        why = t === undefined ? 'no available target: 503 no healthy upstream' : `${pool.balance}${pool.balance === 'ip-hash' ? ` of client ${clientIp}` : ''}${pinned !== undefined ? ' (sticky target down: rebalanced)' : ''}`;
      }
      return { pool: pool.name, weight: action.weights[i], target, why, skipped };
    });
    return { ...out, action: action.pools.length > 1 ? 'split' : 'forward', upstreamPath: query === '' ? upstreamPath : `${upstreamPath}?${query}`, pools };
  }

  /** The last reload's time, result and errors; undefined before the first reload. */
  get lastReload(): { at: string; ok: boolean; errors: string[] } | undefined {
    return this.#lastReload;
  }

  async #ensureSecret(routes: RoutesConfig): Promise<void> {
    if (this.#secret !== undefined || !needsSecret(routes)) return;
    const r = await resolveSecret(this.#env, this.#config.secret, this.#config.certsDir);
    this.#secret = r.secret;
    if (r.source === 'generated') this.#log.warn({ file: r.file }, 'generated a sticky-session secret; replicas must share it (WAYGATE_SECRET or secret in waygate.yaml)');
  }

  /** Passive ejections and readmissions: logged once each, reflected in the health gauge. */
  #availabilityChanged(target: Target, available: boolean, reason: string): void {
    this.#log[available ? 'info' : 'warn']({ pool: target.pool, target: target.url, reason }, available ? 'target readmitted' : 'target ejected');
    this.#metrics.targetHealth(target.pool, target.url, available);
  }

  /** Feeds one finished upstream attempt to the metrics and to passive health. */
  #attempted(pool: Pool, target: Target, err: GatewayError | undefined): void {
    this.#metrics.upstream(pool.name, target.url, err === undefined ? 'success' : outcomeOf(err));
    if (err === undefined) this.#passive.success(target);
    else if (err.code === 'upstream_connect' || err.code === 'upstream_reset' || (err.code === 'upstream_timeout' && err.beforeSend)) {
      this.#passive.failure(target, pool.targets, err.message);
    }
  }

  /** DNS answers changed: rebuild the pools from the routes in force (same version). */
  #rediscover(): void {
    this.#install(this.#routes, this.#runtime.version, this.#poolTls);
    this.#log.info({ pools: [...this.#pools.values()].filter((p) => this.#routes.pools.get(p.name)?.discovery === 'dns').map((p) => ({ pool: p.name, targets: p.targets.map((t) => t.url) })) }, 'discovered targets changed');
  }

  #install(routes: RoutesConfig, version: number, tls: PoolTlsFiles, first = false): void {
    const known = (pool: string, url: string): boolean => this.#registry.has(pool, url);
    const fresh = new Set<Target>();
    if (!first) {
      for (const [name, pc] of routes.pools) {
        if (pc.discovery !== 'dns' || pc.healthCheck === undefined) continue;
        for (const t of targetList(pc, (h) => this.#dns.addresses(h))) if (!known(name, t.url)) fresh.add(this.#registry.obtain(name, t.url, t.weight));
      }
    }
    const built = buildRuntime(routes, this.#registry, version, this.#secret, tls, (h) => this.#dns.addresses(h));
    this.#routes = routes;
    this.#poolTls = tls;
    // The swap is one assignment: a request in flight keeps the runtime it captured.
    this.#runtime = built.runtime;
    this.#pools = built.pools;
    this.#registry.retain(built.targets);
    const probes: { target: Target; config: ProbeConfig; healthy?: boolean }[] = [];
    for (const [name, pool] of built.pools) {
      const config = probeConfig(routes.pools.get(name)!, tls.get(name));
      if (config === undefined) {
        // Health checks removed from a pool: its targets are no longer held out by them.
        for (const t of pool.targets) if (!t.activeHealthy) t.setActiveHealth(true);
        continue;
      }
      // A target discovered after start joins only once it passes its health checks.
      for (const target of pool.targets) {
        if (fresh.has(target)) target.setActiveHealth(false);
        probes.push({ target, config, healthy: fresh.has(target) ? false : undefined });
      }
    }
    this.#checker.sync(probes);
    this.#metrics.syncTargets(this.#registry.all());
  }

  /** The certificates in force on the HTTPS listener. */
  get certificates(): CertStore {
    return this.#certs;
  }

  #tlsPolicy(): TlsPolicy {
    return { minVersion: this.#config.listeners.https.minTlsVersion };
  }

  /**
   * Loads certsDir into the store: each bad file is logged by name and skipped; with no usable
   * certificate at all the certificates in force are kept. Returns the problems, one line each.
   */
  async #loadCerts(): Promise<string[]> {
    const dir = this.#config.certsDir;
    const r = await loadCertsDir(dir, this.#tlsPolicy());
    const problems = r.errors.map((e) => `${e.file}: ${e.message}`);
    for (const e of r.errors) this.#log.error({ file: e.file, err: e.message }, 'certificate not loaded');
    for (const w of r.warnings) this.#log.warn({ file: w.file, warning: w.message }, 'certificate warning');
    if (r.certs.length === 0) {
      problems.push(`${dir}: no usable certificate`);
      return problems;
    }
    this.#certs.install(r);
    this.#log.info({ certificates: r.certs.map((c) => ({ file: c.file, names: c.names, notAfter: c.notAfter })), default: this.#certs.defaultCert?.file }, 'certificates loaded');
    return problems;
  }

  /** Reloads the certificates (file change, SIGHUP, reload); concurrent calls share one load. */
  reloadCerts(): Promise<string[]> {
    this.#reloadingCerts ??= this.#loadCerts().finally(() => {
      this.#reloadingCerts = undefined;
    });
    return this.#reloadingCerts;
  }

  #limits() {
    const c = this.#config;
    return {
      clientHeader: c.timeouts.clientHeader,
      clientIdle: c.timeouts.clientIdle,
      maxHeaderSize: c.limits.maxHeaderSize,
      maxConnections: c.limits.maxConnections,
    };
  }

  #handlerOptions(scheme: 'http' | 'https', access: Logger | undefined) {
    const c = this.#config;
    return {
      scheme,
      runtime: () => this.#runtime,
      trusted: trustPredicate(c.trustedProxies),
      access,
      log: this.#log,
      bodyLimits: { retryBuffer: c.limits.retryBuffer, maxBodySize: c.limits.maxBodySize, idleTimeout: c.timeouts.clientIdle },
      writeIdleTimeout: c.timeouts.clientIdle,
      onAttempt: (pool: Pool, target: Target, err: GatewayError | undefined) => this.#attempted(pool, target, err),
      onDone: (route: string, pool: string, method: string, status: number, seconds: number) => this.#metrics.request(route, pool, method, status, seconds),
    };
  }

  #countConnections(server: Server | Http2SecureServer, listener: string): void {
    server.on('connection', (socket: import('node:net').Socket) => {
      this.#metrics.connections(listener, 1);
      socket.once('close', () => this.#metrics.connections(listener, -1));
    });
  }

  /**
   * Binds a public listener, behind a PROXY protocol front when the listener asks for one (a
   * connection without a valid header is then closed); returns the bound "host:port".
   */
  async #bind(server: Server | Http2SecureServer, addr: ListenAddress, proxyProtocol: boolean, tracked: TrackedConnections | undefined): Promise<string> {
    if (!proxyProtocol) {
      this.#servers.push({ server, tracked });
      return listen(server, addr);
    }
    const front = proxyProtocolFront(server, {
      timeout: this.#config.timeouts.clientHeader,
      // A balancer's TCP health check (connect, close) lands here too: debug, not warn.
      onReject: (reason, remote) => this.#log.debug({ remote, reason }, 'PROXY protocol header rejected'),
    });
    // emit('connection') bypasses the server's own limit: the front enforces it.
    front.maxConnections = this.#config.limits.maxConnections;
    this.#servers.push({ server, tracked, front });
    return listen(front, addr);
  }

  async #listen(access: Logger | undefined): Promise<void> {
    const c = this.#config;
    const l = c.listeners;
    // HTTPS first: the HTTP listener's redirect needs its bound port.
    let httpsPort: number | undefined;
    if (l.https.address !== null) {
      const generated = await ensureSelfSigned(c.certsDir);
      if (generated.length > 0) this.#log.warn({ files: generated }, `no certificate in ${c.certsDir}: generated a self-signed certificate for localhost; put real certificates there`);
      const problems = await this.#loadCerts();
      if (this.#certs.size === 0) throw new Error(`cannot start the HTTPS listener: ${problems.join('; ')}`);
      const store = this.#certs;
      const httpsOptions = {
        ...this.#handlerOptions('https', access),
        // 421 only when both names pick a certificate and they differ (RFC 9110 §15.5.20).
        misdirected: (sni: string | undefined, host: string) => sni !== undefined && host !== '' && store.certFor(sni) !== store.certFor(host),
        hsts: l.https.hsts ? 'max-age=31536000' : undefined,
      };
      const handler = createHandler(httpsOptions);
      const server = createHttpsServer(handler, this.#limits(), {
        secure: secureOptions(this.#tlsPolicy()) as unknown as Record<string, unknown>,
        defaultCert: store.defaultCert!.pem,
        sniCallback: store.sniCallback,
      });
      server.on('checkContinue', createContinueHandler(httpsOptions, handler) as never);
      store.attach(server, this.#tlsPolicy());
      const tracked = trackConnections(server);
      // Upgraded TLS sockets are already in tracked.sockets, which shutdown destroys at its deadline.
      server.on('upgrade', createUpgradeHandler({ ...httpsOptions, tunnels: tracked.sockets }));
      this.#countConnections(server, 'https');
      this.#addresses.https = await this.#bind(server, l.https.address, l.https.proxyProtocol, tracked);
      httpsPort = Number(this.#addresses.https.split(':').pop());
      this.#certWatch = watchCertsDir(c.certsDir, () => void this.reloadCerts());
    }
    if (l.http.address !== null) {
      if (l.http.redirectToHttps && httpsPort === undefined) this.#log.warn('redirectToHttps is on but the HTTPS listener is off; serving HTTP');
      const httpOptions = {
        ...this.#handlerOptions('http', access),
        redirectToHttps: l.http.redirectToHttps && httpsPort !== undefined ? { port: httpsPort } : undefined,
      };
      const handler = createHandler(httpOptions);
      const server = createHttpServer(handler, this.#limits());
      server.on('checkContinue', createContinueHandler(httpOptions, handler));
      // closeAllConnections no longer sees upgraded sockets: shutdown destroys the tunnels via `tracked`.
      const tunnels = new Set<import('node:net').Socket>();
      server.on('upgrade', createUpgradeHandler({ ...httpOptions, tunnels }));
      this.#countConnections(server, 'http');
      this.#addresses.http = await this.#bind(server, l.http.address, l.http.proxyProtocol, { sessions: new Set(), sockets: tunnels });
    }
    const admin = c.admin.address;
    if (admin !== null) {
      const token = this.#env.WAYGATE_ADMIN_TOKEN || undefined;
      if (token === undefined && !isLoopback(admin.host)) {
        throw new Error(`the admin listener ${admin.host}:${admin.port} is reachable beyond loopback: set WAYGATE_ADMIN_TOKEN (a bearer token), or bind it to 127.0.0.1`);
      }
      const server = createAdminServer(this.adminSource(), { token });
      this.#admin = server;
      this.#addresses.admin = await listen(server, admin as ListenAddress);
    }
  }

  /**
   * Reloads the routes directory: validates it whole and swaps it in atomically, or keeps the
   * routes in force and returns the errors. Concurrent calls share one reload.
   */
  reload(): Promise<ReloadResult> {
    this.#reloading ??= this.#doReload().finally(() => {
      this.#reloading = undefined;
    });
    return this.#reloading;
  }

  async #doReload(): Promise<ReloadResult> {
    const at = new Date().toISOString();
    // Certificates reload with the routes (SIGHUP, POST /reload); their problems are logged and
    // never block the routes.
    if (this.#config.listeners.https.address !== null && this.#certs.size > 0) await this.reloadCerts();
    const loaded = await loadRoutesDir(this.#config.routesDir, this.#env);
    if (!loaded.ok) return this.#rejectReload(at, loaded.errors.map((e: ConfigError) => formatConfigError(e)));
    // The routes files' own tests gate the swap like a syntax error (SPEC §3).
    const failed = runRouteTests(loaded.value);
    if (failed.length > 0) return this.#rejectReload(at, failed);
    const version = this.#runtime.version + 1;
    try {
      await this.#ensureSecret(loaded.value);
      await this.#dns.sync(discoveryHosts(loaded.value));
      this.#install(loaded.value, version, await readPoolTls(loaded.value));
    } catch (err) {
      return this.#rejectReload(at, [(err as Error).message]);
    }
    this.#lastReload = { at, ok: true, errors: [] };
    this.#metrics.reload(true);
    this.#log.info({ version, routes: this.#runtime.router.size }, 'routes reloaded');
    return { ok: true, version };
  }

  #rejectReload(at: string, errors: string[]): ReloadResult {
    this.#lastReload = { at, ok: false, errors };
    this.#metrics.reload(false);
    this.#log.error({ errors }, 'reload rejected; previous routes keep serving');
    return { ok: false, errors };
  }

  /**
   * Drains: stops accepting, lets in-flight requests finish for up to `graceMs`
   * (`timeouts.shutdown` by default), then closes upstream connections. Resolves when done.
   */
  async close(graceMs: number = this.#config.timeouts.shutdown): Promise<void> {
    // Readiness fails first and the admin API stays up while the public listeners drain, so
    // an orchestrator sees "not ready" rather than a refused connection.
    this.#ready = false;
    this.#dns.stop();
    this.#certWatch?.close();
    this.#routesWatch?.close();
    const probesStopped = this.#checker.stop();
    await Promise.all(this.#servers.map((s) => closeGracefully(s.server, graceMs, s.tracked, s.front)));
    await probesStopped;
    if (this.#admin !== undefined) await closeGracefully(this.#admin, 0);
    await this.#registry.closeAll();
  }
}

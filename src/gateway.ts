// Owns a running waygate's life: start (listeners, admin), reload (an atomic swap of the whole
// routing table built by runtime.ts), health and discovery feeding the targets, close (drain).
// With runtime.ts, the only module that reads config types.
import type { Server } from 'node:http';
import type { Http2SecureServer } from 'node:http2';
import type { Server as NetServer } from 'node:net';
import { adminAuth, createAdminServer } from './admin/admin.ts';
import type { AdminSource, ExplainQuery } from './admin/admin.ts';
import { explainRequest } from './admin/explain.ts';
import type { ListenAddress } from './config/address.ts';
import { formatConfigError, loadRoutesDir } from './config/load.ts';
import type { ConfigError, RoutesConfig } from './config/load.ts';
import type { StaticConfig } from './config/schema.ts';
import { resolveSecret } from './config/secret.ts';
import { routesFingerprint } from './config/watch.ts';
import { outcomeOf } from './errors.ts';
import type { GatewayError } from './errors.ts';
import { HealthChecker } from './health/checker.ts';
import type { ProbeConfig } from './health/checker.ts';
import { PassiveHealth } from './health/passive.ts';
import type { AccessLogger, Logger } from './observe/logger.ts';
import { Metrics } from './observe/metrics.ts';
import { runRouteTests } from './route/tests.ts';
import { buildRuntime, discoveryHosts, needsSecret, probeConfig, readPoolTls, targetList, trustPredicate } from './runtime.ts';
import type { PoolTlsFiles } from './runtime.ts';
import { CertStore, ensureSelfSigned, loadCertsDir, secureOptions, watchCertsDir } from './server/tls/index.ts';
import type { TlsPolicy } from './server/tls/index.ts';
import { createContinueHandler, createHandler } from './server/handler.ts';
import { createUpgradeHandler } from './server/upgrade.ts';
import type { Runtime } from './route/table.ts';
import { closeGracefully, createHttpServer, createHttpsServer, listen, trackConnections } from './server/listener.ts';
import type { TrackedConnections } from './server/listener.ts';
import { proxyProtocolFront } from './server/proxy-protocol.ts';
import { DnsDiscovery, systemResolver } from './upstream/dns.ts';
import type { Resolver } from './upstream/dns.ts';
import type { UpstreamPool, UpstreamPool as Pool } from './upstream/pool.ts';
import { TargetRegistry } from './upstream/registry.ts';
import type { Target } from './upstream/target.ts';

/** What a gateway starts from. */
export interface GatewayOptions {
  config: StaticConfig;
  routes: RoutesConfig;
  log: Logger;
  access: AccessLogger | undefined;
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

  /** Returns the JSON of GET /explain for the routing table in force (see admin/explain.ts). */
  explain(q: ExplainQuery): Record<string, unknown> {
    return explainRequest(this.#runtime, q, this.#config.security.ambiguousPaths);
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

  #handlerOptions(scheme: 'http' | 'https', access: AccessLogger | undefined) {
    const c = this.#config;
    return {
      scheme,
      runtime: () => this.#runtime,
      trusted: trustPredicate(c.trustedProxies),
      access,
      log: this.#log,
      bodyLimits: { retryBuffer: c.limits.retryBuffer, maxBodySize: c.limits.maxBodySize, idleTimeout: c.timeouts.clientIdle },
      writeIdleTimeout: c.timeouts.clientIdle,
      ambiguousPaths: c.security.ambiguousPaths,
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

  async #listen(access: AccessLogger | undefined): Promise<void> {
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
        secure: secureOptions(this.#tlsPolicy()),
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
      const server = createAdminServer(this.adminSource(), adminAuth(admin, this.#env));
      this.#admin = server;
      this.#addresses.admin = await listen(server, admin);
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
    const failed = runRouteTests(loaded.value, this.#config.security.ambiguousPaths);
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

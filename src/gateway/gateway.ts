// Owns a running waygate's life: start (the listeners of listeners.ts, the certificates of
// certs.ts), reload (an atomic swap of the whole routing table built by runtime.ts), health and
// discovery feeding the targets, close (drain). With runtime.ts, the only module that reads
// config types; GET /status is status.ts's.
import type { AdminSource, ExplainQuery } from '../admin/admin.ts';
import { explainRequest } from '../admin/explain.ts';
import { formatConfigError, loadRoutesDir } from '../config/load.ts';
import type { ConfigError, RoutesConfig } from '../config/load.ts';
import type { StaticConfig } from '../config/schema.ts';
import { resolveSecret } from '../config/secret.ts';
import { routesFingerprint } from '../config/watch.ts';
import { outcomeOf } from '../errors.ts';
import type { GatewayError } from '../errors.ts';
import { HealthChecker } from '../health/checker.ts';
import type { ProbeConfig } from '../health/checker.ts';
import { PassiveHealth } from '../health/passive.ts';
import type { AccessLogger, Logger } from '../observe/logger.ts';
import { Metrics } from '../observe/metrics.ts';
import type { Runtime } from '../runtime.ts';
import { verifyRoutes } from '../route/tests.ts';
import { closeMiddlewares, readMiddlewareFiles } from '../middleware/build.ts';
import { createLimitStores } from '../middleware/limits/index.ts';
import type { LimitStores } from '../middleware/limits/stores.ts';
import { buildRuntime, discoveryHosts, needsCertificates, needsSecret, probeConfig, readPoolTls, targetList } from '../runtime.ts';
import type { PoolTlsFiles } from '../runtime.ts';
import type { CertStore } from '../server/tls/index.ts';
import { watchCertsDir } from '../server/tls/index.ts';
import { DnsDiscovery, systemResolver } from '../upstream/dns.ts';
import type { Resolver } from '../upstream/dns.ts';
import type { UpstreamPool } from '../upstream/pool.ts';
import { TargetRegistry } from '../upstream/registry.ts';
import type { Target } from '../upstream/target.ts';
import { GatewayCerts } from './certs.ts';
import { Listeners } from './listeners.ts';
import { L4Listeners } from '../l4/listeners.ts';
import type { BoundAddresses } from './listeners.ts';
import { gatewayStatus } from './status.ts';
import type { LastReload } from './status.ts';

export type { BoundAddresses } from './listeners.ts';

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
  /** This process is one of several cluster workers binding the same addresses (UDP listeners share theirs). */
  shared?: boolean;
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
  /** The files the middlewares name, as read for the routes in force. */
  #mwFiles: ReadonlyMap<string, Buffer> = new Map();
  /** SPEC §8: rate-limit buckets and in-flight counters; outlive reloads. */
  readonly #limits: LimitStores;
  readonly #certs: GatewayCerts;
  readonly #listeners: Listeners;
  readonly #l4: L4Listeners;
  #routesWatch: { close(): void } | undefined;
  #runtime!: Runtime;
  #pools = new Map<string, UpstreamPool>();
  #ready = false;
  #reloading: Promise<ReloadResult> | undefined;
  #lastReload: LastReload | undefined;

  private constructor(o: GatewayOptions) {
    this.#config = o.config;
    this.#log = o.log;
    this.#env = o.env ?? {};
    this.#metrics = new Metrics(() => this.#registry.all());
    const redis = o.config.redis;
    this.#limits = createLimitStores({
      redis: redis === undefined ? undefined : { url: redis.url, failMode: redis.failMode, timeout: redis.timeout, keyPrefix: redis.keyPrefix },
      cluster: o.shared ?? false,
      log: o.log,
      onRedisState: (up) => this.#metrics.redisUp(up),
      onStoreFailure: (middleware, failMode) => this.#metrics.storeFailure(middleware, failMode),
    });
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
      if (target.setActiveHealth(healthy)) {
        this.#metrics.targetHealth(target.pool, target.url, target.available);
        if (!target.available) this.#targetDown(target);
      }
    });
    this.#certs = new GatewayCerts(o.config.certsDir, { minVersion: o.config.listeners.https.minTlsVersion }, o.log);
    this.#l4 = new L4Listeners(o.config, {
      log: o.log,
      access: o.access,
      metrics: this.#metrics,
      runtime: () => this.#runtime,
      certs: this.#certs,
      attempted: (pool, target, err) => this.#attempted(pool, target, err),
    }, o.shared ?? false);
    this.#listeners = new Listeners({
      config: o.config,
      log: o.log,
      access: o.access,
      env: this.#env,
      metrics: this.#metrics,
      certs: this.#certs,
      runtime: () => this.#runtime,
      attempted: (pool, target, err) => this.#attempted(pool, target, err),
      adminSource: () => this.adminSource(),
      httpsFront: (server) => this.#l4.httpsFront(server as never, o.config.timeouts.clientHeader),
    });
  }

  /** Builds the runtime and binds every listener that is on; rejects (closing what was opened) on a bind error. */
  static async start(o: GatewayOptions): Promise<Gateway> {
    const g = new Gateway(o);
    await g.#ensureSecret(o.routes);
    await g.#dns.sync(discoveryHosts(o.routes));
    try {
      g.#install(o.routes, 1, await readPoolTls(o.routes), await readMiddlewareFiles(o.routes), true);
    } catch (err) {
      await g.#limits.close();
      throw err;
    }
    try {
      // tls: terminate needs the certificates even when the HTTPS listener is off.
      if (needsCertificates(o.routes) && o.config.listeners.https.address === null) await g.#certs.first();
      await g.#listeners.listen();
      await g.#l4.listen();
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
    return { ...this.#listeners.addresses, tcp: this.#l4.addresses.tcp, udp: this.#l4.addresses.udp };
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
    return gatewayStatus({
      ready: this.#ready,
      listeners: this.addresses,
      runtime: this.#runtime,
      routesDir: this.#config.routesDir,
      lastReload: this.#lastReload,
      pools: this.#pools.values(),
      checkOf: (t) => this.#checker.status(t),
      certs: this.#certs.store,
    });
  }

  /** Returns the JSON of GET /explain for the routing table in force (see admin/explain.ts). */
  explain(q: ExplainQuery): Record<string, unknown> {
    return explainRequest(this.#runtime, q, this.#config.security.ambiguousPaths, { tcp: Object.keys(this.#config.listeners.tcp), udp: Object.keys(this.#config.listeners.udp) });
  }

  /** The last reload's time, result and errors; undefined before the first reload. */
  get lastReload(): LastReload | undefined {
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
    if (!available) this.#targetDown(target);
  }

  /** SPEC §7 onTargetDown: close lets no connection stay on a target that was taken out. */
  #targetDown(target: Target): void {
    const pool = this.#pools.get(target.pool);
    if (pool !== undefined && pool.settings.onTargetDown === 'close') this.#l4.targetDown(target, true);
  }

  /** Feeds one finished upstream attempt to the metrics and to passive health. */
  #attempted(pool: UpstreamPool, target: Target, err: GatewayError | undefined): void {
    this.#metrics.upstream(pool.name, target.url, err === undefined ? 'success' : outcomeOf(err));
    if (err === undefined) this.#passive.success(target);
    else if (err.code === 'upstream_connect' || err.code === 'upstream_reset' || (err.code === 'upstream_timeout' && err.beforeSend)) {
      this.#passive.failure(target, pool.targets, err.message);
    }
  }

  /** DNS answers changed: rebuild the pools from the routes in force (same version). */
  #rediscover(): void {
    this.#install(this.#routes, this.#runtime.version, this.#poolTls, this.#mwFiles);
    this.#log.info({ pools: [...this.#pools.values()].filter((p) => this.#routes.pools.get(p.name)?.discovery === 'dns').map((p) => ({ pool: p.name, targets: p.targets.map((t) => t.url) })) }, 'discovered targets changed');
  }

  #install(routes: RoutesConfig, version: number, tls: PoolTlsFiles, files: ReadonlyMap<string, Buffer>, first = false): void {
    const known = (pool: string, url: string): boolean => this.#registry.has(pool, url);
    const fresh = new Set<Target>();
    if (!first) {
      for (const [name, pc] of routes.pools) {
        if (pc.discovery !== 'dns' || pc.healthCheck === undefined) continue;
        for (const t of targetList(pc, (h) => this.#dns.addresses(h))) if (!known(name, t.url)) fresh.add(this.#registry.obtain(name, t.url, t.weight));
      }
    }
    const built = buildRuntime(routes, this.#registry, version, this.#secret, tls, (h) => this.#dns.addresses(h), { files, limits: this.#limits, log: this.#log });
    this.#routes = routes;
    this.#poolTls = tls;
    this.#mwFiles = files;
    const old = first ? undefined : this.#runtime;
    // The swap is one assignment: a request in flight keeps the runtime it captured.
    this.#runtime = built.runtime;
    if (old !== undefined) closeMiddlewares(old.middlewares.values());
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
    return this.#certs.store;
  }

  /** Reloads the certificates (file change, SIGHUP, reload); concurrent calls share one load. */
  reloadCerts(): Promise<string[]> {
    return this.#certs.reload();
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
    if (this.#config.listeners.https.address !== null && this.#certs.store.size > 0) await this.reloadCerts();
    const loaded = await loadRoutesDir(this.#config.routesDir, this.#env);
    if (!loaded.ok) return this.#rejectReload(at, loaded.errors.map((e: ConfigError) => formatConfigError(e)));
    // The routes files' own tests gate the swap like a syntax error (SPEC §3).
    const failed = verifyRoutes(loaded.value, this.#config);
    if (failed.length > 0) return this.#rejectReload(at, failed);
    const version = this.#runtime.version + 1;
    try {
      if (needsCertificates(loaded.value) && this.#certs.store.size === 0) await this.#certs.first();
      await this.#ensureSecret(loaded.value);
      await this.#dns.sync(discoveryHosts(loaded.value));
      this.#install(loaded.value, version, await readPoolTls(loaded.value), await readMiddlewareFiles(loaded.value));
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
    this.#certs.close();
    this.#routesWatch?.close();
    const probesStopped = this.#checker.stop();
    await Promise.all([this.#listeners.closePublic(graceMs), this.#l4.drain(graceMs)]);
    await probesStopped;
    await this.#listeners.closeAdmin();
    closeMiddlewares(this.#runtime?.middlewares.values() ?? []);
    await this.#limits.close();
    await this.#registry.closeAll();
  }
}

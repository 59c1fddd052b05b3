// Prometheus metrics (SPEC §6) with prom-client. Label values are bounded: route and pool names
// and configured target URLs come from config, methods outside the standard set become "OTHER",
// and status codes are three digits; no raw path ever becomes a label.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Metric } from 'prom-client';
import { CounterFamily, HistogramFamily } from './series.ts';
import type { CounterSeries, HistogramSeries } from './series.ts';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE'];
const METHOD_INDEX = new Map(METHODS.map((m, i) => [m, i]));
const OTHER = METHODS.length;

/** The per-request series of one route and pool: its duration, and its counters by method and code. */
interface RouteSeries {
  readonly duration: HistogramSeries;
  /** Keyed by code * 16 + method index (OTHER for a non-standard method). */
  readonly requests: Map<number, CounterSeries>;
}

/** What the in-flight gauge reads at scrape time. */
export interface TargetView {
  readonly pool: string;
  readonly url: string;
  readonly inFlight: number;
  readonly available: boolean;
}

/** The metrics of one waygate process. */
export class Metrics {
  readonly registry = new Registry();
  readonly #requests: CounterFamily;
  readonly #duration: HistogramFamily;
  readonly #upstream: CounterFamily;
  readonly #healthy: Gauge<'pool' | 'target'>;
  readonly #connections: Gauge<'listener'>;
  readonly #reloads: Counter<'result'>;
  // SPEC §7: L4. Connections end far less often than requests, so the key strings are fine here.
  readonly #tcpConnections: CounterFamily;
  readonly #tcpBytes: CounterFamily;
  readonly #tcpDuration: HistogramFamily;
  readonly #tcpOpen: Gauge<'listener' | 'route'>;
  readonly #udpSessions: Gauge<'listener' | 'route'>;
  // SPEC §8: middlewares.
  readonly #rejections: Counter<'route' | 'middleware' | 'kind'>;
  readonly #redisUp: Gauge;
  readonly #storeFailures: Counter<'middleware' | 'fail_mode'>;
  readonly #l4Series = new Map<string, CounterSeries | HistogramSeries>();
  // Series resolved once per label set, looked up by the names as given (no key strings built
  // per request): route → pool → series, and pool → target → outcome → series.
  readonly #byRoute = new Map<string, Map<string, RouteSeries>>();
  readonly #byPool = new Map<string, Map<string, Map<string, CounterSeries>>>();

  /** `targets` is read at every scrape for the in-flight and health gauges. */
  constructor(targets: () => Iterable<TargetView>) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.#requests = new CounterFamily('waygate_requests_total', 'Requests answered, by route, pool, method and status code.');
    this.#duration = new HistogramFamily(
      'waygate_request_duration_seconds',
      'Time from request arrival to the end of the response, by route and pool.',
      [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    );
    this.#upstream = new CounterFamily('waygate_upstream_requests_total', 'Upstream attempts by pool, target and outcome.');
    // The registry only calls get() on them (text exposition and getMetricsAsJSON).
    for (const f of [this.#requests, this.#duration, this.#upstream]) this.registry.registerMetric(f as unknown as Metric);
    this.#healthy = new Gauge({ name: 'waygate_target_healthy', help: '1 while a target takes traffic; 0 while it fails active checks or is passively ejected.', labelNames: ['pool', 'target'], registers });
    new Gauge({
      name: 'waygate_target_in_flight',
      help: 'In flight per target: HTTP requests, and for L4 targets open TCP connections and UDP sessions.',
      labelNames: ['pool', 'target'],
      registers,
      collect() {
        this.reset();
        for (const t of targets()) this.set({ pool: t.pool, target: t.url }, t.inFlight);
      },
    });
    this.#connections = new Gauge({ name: 'waygate_open_connections', help: 'Open client connections per listener.', labelNames: ['listener'], registers });
    this.#reloads = new Counter({ name: 'waygate_config_reloads_total', help: 'Configuration reloads by result.', labelNames: ['result'], registers });
    this.#tcpConnections = new CounterFamily('waygate_tcp_connections_total', 'TCP connections ended, by listener, route, pool and termination.');
    this.#tcpBytes = new CounterFamily('waygate_tcp_bytes_total', 'Bytes relayed by TCP routes; direction in = from the client.');
    this.#tcpDuration = new HistogramFamily(
      'waygate_tcp_connection_duration_seconds',
      'Lifetime of TCP connections, by route and pool.',
      [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600],
    );
    for (const f of [this.#tcpConnections, this.#tcpBytes, this.#tcpDuration]) this.registry.registerMetric(f as unknown as Metric);
    this.#tcpOpen = new Gauge({ name: 'waygate_tcp_open_connections', help: 'Open TCP connections per listener and route.', labelNames: ['listener', 'route'], registers });
    this.#udpSessions = new Gauge({ name: 'waygate_udp_sessions', help: 'UDP sessions (client addresses bound to a target) per listener and route.', labelNames: ['listener', 'route'], registers });
    this.#rejections = new Counter({ name: 'waygate_middleware_rejections_total', help: 'Requests a middleware answered with a refusal (401, 403, 429, 503…), by route, middleware and kind.', labelNames: ['route', 'middleware', 'kind'], registers });
    this.#redisUp = new Gauge({ name: 'waygate_redis_up', help: '1 while the Redis of waygate.yaml answers, 0 while it cannot be reached (absent without redis).', registers: [] });
    this.#storeFailures = new Counter({ name: 'waygate_rate_limit_store_failures_total', help: 'Rate-limit checks the store (Redis) could not answer, by middleware and the failMode that decided (open: let through; closed: 503).', labelNames: ['middleware', 'fail_mode'], registers });
    this.#reloads.inc({ result: 'success' }, 0);
    this.#reloads.inc({ result: 'failure' }, 0);
    this.syncTargets(targets());
  }

  /** Counts one answered request and its duration. */
  request(route: string, pool: string, method: string, code: number, seconds: number): void {
    let pools = this.#byRoute.get(route);
    if (pools === undefined) this.#byRoute.set(route, (pools = new Map()));
    let r = pools.get(pool);
    if (r === undefined) {
      r = { duration: this.#duration.series({ route, pool }), requests: new Map() };
      pools.set(pool, r);
    }
    const m = METHOD_INDEX.get(method) ?? OTHER;
    const key = code * 16 + m;
    let c = r.requests.get(key);
    if (c === undefined) {
      c = this.#requests.series({ route, pool, method: m === OTHER ? 'OTHER' : method, code: String(code) });
      r.requests.set(key, c);
    }
    c.value++;
    r.duration.observe(seconds);
  }

  /** Counts one upstream attempt. */
  upstream(pool: string, target: string, outcome: string): void {
    let targets = this.#byPool.get(pool);
    if (targets === undefined) this.#byPool.set(pool, (targets = new Map()));
    let outcomes = targets.get(target);
    if (outcomes === undefined) targets.set(target, (outcomes = new Map()));
    let c = outcomes.get(outcome);
    if (c === undefined) {
      c = this.#upstream.series({ pool, target, outcome });
      outcomes.set(outcome, c);
    }
    c.value++;
  }

  /** Sets the health gauge of one target. */
  targetHealth(pool: string, target: string, available: boolean): void {
    this.#healthy.labels(pool, target).set(available ? 1 : 0);
  }

  /** Makes the health gauge list exactly the targets in force (after a reload). */
  syncTargets(targets: Iterable<TargetView>): void {
    this.#healthy.reset();
    for (const t of targets) this.#healthy.labels(t.pool, t.url).set(t.available ? 1 : 0);
  }

  /** Adds `delta` to the open-connection gauge of a listener. */
  connections(listener: string, delta: number): void {
    this.#connections.labels(listener).inc(delta);
  }

  /** Adds `delta` to the open TCP connections of a route. */
  tcpOpen(listener: string, route: string, delta: number): void {
    this.#tcpOpen.labels(listener, route).inc(delta);
  }

  /** Counts one ended TCP connection, its bytes and its lifetime. */
  tcpEnded(listener: string, route: string, pool: string, termination: string, bytesIn: number, bytesOut: number, seconds: number): void {
    const key = (kind: string, ...labels: string[]): string => kind + '\u0000' + labels.join('\u0000');
    const counter = (family: CounterFamily, k: string, labels: Record<string, string>): CounterSeries => {
      let c = this.#l4Series.get(k) as CounterSeries | undefined;
      if (c === undefined) this.#l4Series.set(k, (c = family.series(labels)));
      return c;
    };
    counter(this.#tcpConnections, key('c', listener, route, pool, termination), { listener, route, pool, termination }).value++;
    if (route === '') return;
    counter(this.#tcpBytes, key('b', route, pool, 'in'), { route, pool, direction: 'in' }).value += bytesIn;
    counter(this.#tcpBytes, key('b', route, pool, 'out'), { route, pool, direction: 'out' }).value += bytesOut;
    const hk = key('d', route, pool);
    let h = this.#l4Series.get(hk) as HistogramSeries | undefined;
    if (h === undefined) this.#l4Series.set(hk, (h = this.#tcpDuration.series({ route, pool })));
    h.observe(seconds);
  }

  /** Adds `delta` to the UDP sessions of a route. */
  udpSessions(listener: string, route: string, delta: number): void {
    this.#udpSessions.labels(listener, route).inc(delta);
  }

  /** Counts one request a middleware refused. */
  middlewareRejection(route: string, middleware: string, kind: string): void {
    this.#rejections.labels(route, middleware, kind).inc();
  }

  /** Sets waygate_redis_up (registered on first use: a waygate without Redis shows none). */
  redisUp(up: boolean): void {
    if (this.registry.getSingleMetric('waygate_redis_up') === undefined) this.registry.registerMetric(this.#redisUp);
    this.#redisUp.set(up ? 1 : 0);
  }

  /** Counts one rate-limit check the store could not answer. */
  storeFailure(middleware: string, failMode: 'open' | 'closed'): void {
    this.#storeFailures.labels(middleware, failMode).inc();
  }

  /** Counts a reload. */
  reload(ok: boolean): void {
    this.#reloads.labels(ok ? 'success' : 'failure').inc();
  }

  /** Returns the Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** The content type of `text()`. */
  get contentType(): string {
    return this.registry.contentType;
  }
}

// Prometheus metrics (SPEC §6) with prom-client. Label values are bounded: route and pool names
// and configured target URLs come from config, methods outside the standard set become "OTHER",
// and status codes are three digits; no raw path ever becomes a label.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE']);

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
  readonly #requests: Counter<'route' | 'pool' | 'method' | 'code'>;
  readonly #duration: Histogram<'route' | 'pool'>;
  readonly #upstream: Counter<'pool' | 'target' | 'outcome'>;
  readonly #healthy: Gauge<'pool' | 'target'>;
  readonly #connections: Gauge<'listener'>;
  readonly #reloads: Counter<'result'>;
  // Label children resolved once per label set: prom-client's labels() hashes on every call.
  readonly #requestChildren = new Map<string, { inc(): void }>();
  readonly #durationChildren = new Map<string, { observe(v: number): void }>();
  readonly #upstreamChildren = new Map<string, { inc(): void }>();

  /** `targets` is read at every scrape for the in-flight and health gauges. */
  constructor(targets: () => Iterable<TargetView>) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.#requests = new Counter({ name: 'waygate_requests_total', help: 'Requests answered, by route, pool, method and status code.', labelNames: ['route', 'pool', 'method', 'code'], registers });
    this.#duration = new Histogram({
      name: 'waygate_request_duration_seconds',
      help: 'Time from request arrival to the end of the response, by route and pool.',
      labelNames: ['route', 'pool'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.#upstream = new Counter({ name: 'waygate_upstream_requests_total', help: 'Upstream attempts by pool, target and outcome.', labelNames: ['pool', 'target', 'outcome'], registers });
    this.#healthy = new Gauge({ name: 'waygate_target_healthy', help: '1 while a target takes traffic; 0 while it fails active checks or is passively ejected.', labelNames: ['pool', 'target'], registers });
    new Gauge({
      name: 'waygate_target_in_flight',
      help: 'Requests in flight per target.',
      labelNames: ['pool', 'target'],
      registers,
      collect() {
        this.reset();
        for (const t of targets()) this.set({ pool: t.pool, target: t.url }, t.inFlight);
      },
    });
    this.#connections = new Gauge({ name: 'waygate_open_connections', help: 'Open client connections per listener.', labelNames: ['listener'], registers });
    this.#reloads = new Counter({ name: 'waygate_config_reloads_total', help: 'Configuration reloads by result.', labelNames: ['result'], registers });
    this.#reloads.inc({ result: 'success' }, 0);
    this.#reloads.inc({ result: 'failure' }, 0);
    this.syncTargets(targets());
  }

  /** Counts one answered request and its duration. */
  request(route: string, pool: string, method: string, code: number, seconds: number): void {
    const m = METHODS.has(method) ? method : 'OTHER';
    const key = route + '\u0000' + pool + '\u0000' + m + '\u0000' + code;
    let c = this.#requestChildren.get(key);
    if (c === undefined) {
      c = this.#requests.labels(route, pool, m, String(code));
      this.#requestChildren.set(key, c);
    }
    c.inc();
    const dkey = route + '\u0000' + pool;
    let d = this.#durationChildren.get(dkey);
    if (d === undefined) {
      d = this.#duration.labels(route, pool);
      this.#durationChildren.set(dkey, d);
    }
    d.observe(seconds);
  }

  /** Counts one upstream attempt. */
  upstream(pool: string, target: string, outcome: string): void {
    const key = pool + '\u0000' + target + '\u0000' + outcome;
    let c = this.#upstreamChildren.get(key);
    if (c === undefined) {
      c = this.#upstream.labels(pool, target, outcome);
      this.#upstreamChildren.set(key, c);
    }
    c.inc();
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

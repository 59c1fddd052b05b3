// The cluster's /metrics: every serving worker's registry aggregated by prom-client, with the
// counters and histograms of exited workers kept in the sums (retirement).
import { AggregatorRegistry } from 'prom-client';
import type { Aggregator, MetricType } from 'prom-client';
import type { Logger } from '../observe/logger.ts';

/**
 * Cross-worker aggregation that differs from prom-client's default (sum): a target is healthy
 * only if no worker has it ejected, and every worker counts the same reloads (each one reloads
 * on every trigger), so the cluster's count is the longest-lived worker's.
 */
const AGGREGATORS: Record<string, Aggregator> = {
  waygate_target_healthy: 'min',
  waygate_config_reloads_total: 'max',
  // Redis is down for the cluster if any worker cannot reach it.
  waygate_redis_up: 'min',
};

/**
 * A metric as prom-client's getMetricsAsJSON gives it (only the fields read here). Its `type` is
 * a string such as 'counter' at run time; prom-client's typings call it the MetricType enum.
 */
export interface MetricJson {
  name: string;
  type: string | MetricType;
  aggregator?: Aggregator;
}

/** Applies AGGREGATORS to one worker's metrics. */
function withAggregators(set: MetricJson[]): MetricJson[] {
  return set.map((m) => (AGGREGATORS[m.name] === undefined ? m : { ...m, aggregator: AGGREGATORS[m.name] }));
}

/** The workers' metrics as of their last scrape, and what exited workers leave in the sums. */
export class ClusterMetrics {
  readonly #log: Logger;
  /** Each worker's metrics at the last scrape, by worker id. */
  readonly #lastMetrics = new Map<number, MetricJson[]>();
  /** Counters and histograms of exited workers as of their last scrape, merged into one set. */
  #retired: Promise<MetricJson[] | undefined> = Promise.resolve(undefined);

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Takes one worker's answer to a scrape; returns its metrics, or undefined for a malformed answer. */
  scraped(workerId: number, answer: unknown): MetricJson[] | undefined {
    if (!Array.isArray(answer)) return undefined;
    const set = withAggregators(answer as MetricJson[]);
    this.#lastMetrics.set(workerId, set);
    return set;
  }

  /**
   * Keeps an exited worker's counters and histograms, as of the last scrape, in the cluster's
   * sums: without them a sum would drop when a worker dies, which Prometheus reads as a counter
   * reset. Gauges describe the present and go with the worker.
   */
  retire(workerId: number): void {
    const last = this.#lastMetrics.get(workerId);
    this.#lastMetrics.delete(workerId);
    if (last === undefined) return;
    const kept = last.filter((m) => m.type === 'counter' || m.type === 'histogram');
    this.#retired = this.#retired.then(async (prev) => {
      if (prev === undefined) return kept;
      try {
        const merged = AggregatorRegistry.aggregate([prev, kept]);
        const json: MetricJson[] = await merged.getMetricsAsJSON();
        return json;
      } catch (err) {
        // Keep what was kept before: losing it would make the sums drop.
        this.#log.warn({ worker: workerId, err: (err as Error).message }, 'could not keep the metrics of an exited worker');
        return prev;
      }
    });
  }

  /** The Prometheus text of the serving workers' sets (as scraped) plus the retired one. */
  async text(sets: MetricJson[][]): Promise<string> {
    const retired = await this.#retired;
    if (retired !== undefined) sets.push(retired);
    return AggregatorRegistry.aggregate(sets).metrics();
  }
}

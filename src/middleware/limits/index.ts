// The LimitStores a Gateway makes once and keeps across reloads (stores.ts is the contract):
// `local` in this process (one process), or in the cluster primary (--workers N, cluster.ts);
// `redis` through the Redis of waygate.yaml (redis.ts). A set is looked up by its spec's id, so
// every route listing a middleware, and every reload that keeps its settings, gets the same one.
import type { Logger } from '../../observe/logger.ts';
import { ClusterBuckets, ClusterInFlight, primaryLink } from './cluster.ts';
import type { PrimaryLink } from './cluster.ts';
import { LocalLimits, MAX_KEYS } from './local.ts';
import type { LocalLimitsOptions } from './local.ts';
import { RedisLimits } from './redis.ts';
import type { BucketSpec, InFlightCounter, LimitStores, TokenBuckets } from './stores.ts';

export type { BucketSpec, InFlightCounter, LimitStores, TakeResult, TokenBuckets } from './stores.ts';

/** A store failure is logged at most this often (each one is counted by onStoreFailure). */
const FAILURE_LOG_EVERY_MS = 5_000;
/** The key prefix when waygate.yaml gives none. */
const DEFAULT_KEY_PREFIX = 'waygate:';
/** With no Redis configured, a store failure (the primary not answering) lets requests through. */
const DEFAULT_FAIL_MODE = 'open';

/** What createLimitStores needs: waygate.yaml `redis`, the process's place, and where to report. */
export interface LimitStoresOptions {
  readonly redis?: { readonly url: string; readonly failMode: 'open' | 'closed'; readonly timeout: number; readonly keyPrefix?: string };
  /** True in a cluster worker: `local` sets live in the primary. */
  readonly cluster: boolean;
  readonly log: Logger;
  /** Each flip of the Redis connection (a gauge). */
  onRedisState(up: boolean): void;
  /** Each check the store failed, and what failMode made of it (a counter). */
  onStoreFailure(middleware: string, failMode: 'open' | 'closed'): void;
}

/** Test seams: a link other than the process's, the local tables' clock and sizes. */
export interface LimitStoresInternals {
  readonly link?: PrimaryLink;
  readonly local?: LocalLimitsOptions;
}

/** Makes the LimitStores of one Gateway. */
export function createLimitStores(o: LimitStoresOptions, internals: LimitStoresInternals = {}): LimitStores {
  return new Stores(o, internals);
}

class Stores implements LimitStores {
  readonly #o: LimitStoresOptions;
  readonly #link: PrimaryLink;
  readonly #local: LocalLimits | undefined;
  #redis: RedisLimits | undefined;
  readonly #sets = new Map<string, TokenBuckets>();
  readonly #counters = new Map<string, InFlightCounter>();
  #lastLog = -Infinity;
  #unlogged = 0;
  #closed = false;

  constructor(o: LimitStoresOptions, internals: LimitStoresInternals) {
    this.#o = o;
    this.#link = internals.link ?? primaryLink;
    if (o.cluster && !this.#link.attached) throw new Error('cluster limit stores need the cluster primary link (cluster/worker.ts attaches it)');
    if (!o.cluster) {
      this.#local = new LocalLimits({
        onCap: (spec) => o.log.warn({ bucketSet: spec.id, maxKeys: internals.local?.maxKeys ?? MAX_KEYS }, 'rate limit table full: the oldest buckets are dropped for new keys'),
        ...internals.local,
      });
    }
  }

  get hasRedis(): boolean {
    return this.#o.redis !== undefined;
  }

  get failMode(): 'open' | 'closed' {
    return this.#o.redis?.failMode ?? DEFAULT_FAIL_MODE;
  }

  buckets(spec: BucketSpec, store: 'local' | 'redis'): TokenBuckets {
    const k = `${store}\0${spec.id}`;
    let set = this.#sets.get(k);
    if (set !== undefined) return set;
    if (store === 'redis') set = this.#redisLimits().buckets(spec);
    else if (this.#local !== undefined) set = this.#local.buckets(spec);
    else set = new ClusterBuckets(this.#link, spec);
    this.#sets.set(k, set);
    return set;
  }

  #redisLimits(): RedisLimits {
    const r = this.#o.redis;
    // The lead's config check (hasRedis) makes this unreachable from a routes file.
    if (r === undefined) throw new Error('store: redis needs `redis` in waygate.yaml');
    if (this.#closed) throw new Error('the limit stores are closed');
    // Connected on first use: a waygate.yaml `redis` no middleware uses costs no connection.
    this.#redis ??= new RedisLimits({ url: r.url, timeout: r.timeout, keyPrefix: r.keyPrefix ?? DEFAULT_KEY_PREFIX, log: this.#o.log, onState: (up) => this.#o.onRedisState(up) });
    return this.#redis;
  }

  inFlight(id: string, amount: number): InFlightCounter {
    let c = this.#counters.get(id);
    if (c === undefined) {
      c = this.#local !== undefined ? this.#local.inFlight(id, amount) : new ClusterInFlight(this.#link, id, amount);
      this.#counters.set(id, c);
    }
    return c;
  }

  storeFailed(middleware: string, err: Error): void {
    const failMode = this.failMode;
    this.#o.onStoreFailure(middleware, failMode);
    const now = Date.now();
    if (now - this.#lastLog < FAILURE_LOG_EVERY_MS) {
      this.#unlogged++;
      return;
    }
    this.#o.log.warn({ middleware, failMode, err: err.message, alsoFailedSinceLastLine: this.#unlogged }, failMode === 'open' ? 'rate limit store unavailable: requests let through' : 'rate limit store unavailable: requests answered 503');
    this.#lastLog = now;
    this.#unlogged = 0;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#local?.close();
    await this.#redis?.close();
  }
}

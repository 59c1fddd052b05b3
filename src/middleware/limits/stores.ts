// Where rate-limit state lives (SPEC §8): token buckets and in-flight counters, one set per
// middleware, shared by every route that lists it. `local` is one set per waygate instance — in
// this process, or, with --workers, in the primary that every worker asks (never ×workers);
// `redis` is one set shared by every replica that uses the same Redis.

/** One middleware's bucket set: `burst` tokens refilled at `average` per `periodMs`. */
export interface BucketSpec {
  /** The middleware's identity: its name plus its settings (a changed limit starts afresh). */
  readonly id: string;
  readonly average: number;
  readonly periodMs: number;
  readonly burst: number;
}

/** The outcome of taking one token. */
export interface TakeResult {
  readonly allowed: boolean;
  /** Whole tokens left after this take. */
  readonly remaining: number;
  /** When refused: milliseconds until a token is there. When allowed: until the bucket is full again. */
  readonly resetMs: number;
}

/** A bucket set, one bucket per key. */
export interface TokenBuckets {
  /** Takes one token from `key`'s bucket. Rejects (redis) when the store cannot be reached. */
  take(key: string): TakeResult | Promise<TakeResult>;
  /** What take() would say now, without taking; undefined when that needs a round trip (/explain). */
  peek(key: string): TakeResult | undefined;
}

/** In-flight counters of one middleware, one per key. */
export interface InFlightCounter {
  /** Counts one more request for `key` unless `amount` are in flight; true when counted. */
  acquire(key: string): boolean | Promise<boolean>;
  /** Ends one counted request of `key` (exactly once per acquire that returned true). */
  release(key: string): void;
  /** Requests of `key` in flight now, when known without a round trip (/explain). */
  peek(key: string): number | undefined;
}

/** What the middlewares ask for; one instance per Gateway, outliving reloads. */
export interface LimitStores {
  buckets(spec: BucketSpec, store: 'local' | 'redis'): TokenBuckets;
  inFlight(id: string, amount: number): InFlightCounter;
  /** True when waygate.yaml configures `redis` (a `store: redis` middleware needs it). */
  readonly hasRedis: boolean;
  /** waygate.yaml `redis.failMode`: with Redis unreachable, let requests through (open) or answer 503 (closed). */
  readonly failMode: 'open' | 'closed';
  /** Called by a middleware when the store failed it and failMode decided (metric + rate-limited log line). */
  storeFailed(middleware: string, err: Error): void;
  close(): Promise<void>;
}

// Limit state in this process's memory: the one-process store (workers: 1), and the table the
// cluster primary keeps for its workers (cluster.ts). A take is a Map lookup and a few
// arithmetic steps: no promise, no allocation but a new key's bucket.
//
// Memory stays bounded under a flood of distinct keys: a timer sweeps buckets that refilled to
// full (a missing bucket IS a full one, so dropping them changes nothing), a bounded number per
// tick so a large table never stalls the event loop; and a set never holds more than `maxKeys`
// buckets: at the cap the oldest bucket is dropped for the new one (its key starts again from
// a full bucket — the same as a key never seen, which a flood of fresh keys gets anyway).
import { fullBucket, isFull, peek, rateOf, take } from './bucket.ts';
import type { Bucket, Rate, TakeSlot } from './bucket.ts';
import type { BucketSpec, InFlightCounter, TakeResult, TokenBuckets } from './stores.ts';

/** Buckets one set keeps at most (~120 bytes each with an IPv6 key: ~12 MB). */
export const MAX_KEYS = 100_000;
/** How often the sweep runs. */
export const SWEEP_EVERY_MS = 1_000;
/** Buckets one sweep tick looks at, per set: a whole table of MAX_KEYS is visited every 10 s. */
export const SWEEP_BATCH = 10_000;

/** A monotonic millisecond clock, in whole ms (whole units keep the bucket arithmetic exact). */
export const monotonicMs = (): number => Math.floor(performance.now());

/** One middleware's buckets in memory. */
export class LocalBuckets implements TokenBuckets {
  readonly spec: BucketSpec;
  readonly #rate: Rate;
  readonly #now: () => number;
  readonly #maxKeys: number;
  readonly #onCap: () => void;
  readonly #map = new Map<string, Bucket>();
  readonly #slot: TakeSlot = { allowed: false, remaining: 0, resetMs: 0 };
  #sweep: Iterator<[string, Bucket]> | undefined;

  /** `onCap` is told when a key was dropped for room. */
  constructor(spec: BucketSpec, now: () => number, maxKeys = MAX_KEYS, onCap: () => void = () => {}) {
    this.spec = spec;
    this.#rate = rateOf(spec);
    this.#now = now;
    this.#maxKeys = maxKeys;
    this.#onCap = onCap;
  }

  /** Takes a token. The result is overwritten by the next take() of this set: read it at once. */
  take(key: string): TakeResult {
    const now = this.#now();
    let b = this.#map.get(key);
    if (b === undefined) {
      if (this.#map.size >= this.#maxKeys) {
        // Insertion order: the first key is the oldest bucket.
        this.#map.delete(this.#map.keys().next().value!);
        this.#onCap();
      }
      b = fullBucket(this.#rate, now);
      this.#map.set(key, b);
    }
    return take(b, this.#rate, now, this.#slot);
  }

  peek(key: string): TakeResult {
    return peek(this.#map.get(key), this.#rate, this.#now());
  }

  /** Buckets held now. */
  get size(): number {
    return this.#map.size;
  }

  /**
   * Drops full buckets among the next `budget` (resuming where the last call stopped; a call
   * that reaches the end stops there); returns how many it dropped.
   */
  sweep(budget = SWEEP_BATCH): number {
    const now = this.#now();
    let dropped = 0;
    // A Map iterator stays valid while entries are added and deleted.
    let it = this.#sweep ?? this.#map.entries();
    for (let seen = 0; seen < budget; seen++) {
      const n = it.next();
      if (n.done === true) {
        // The end of one pass: the next call starts the next one.
        it = this.#map.entries();
        break;
      }
      if (isFull(n.value[1], this.#rate, now)) {
        this.#map.delete(n.value[0]);
        dropped++;
      }
    }
    this.#sweep = it;
    return dropped;
  }
}

/** One middleware's in-flight counts in memory: an entry per key with requests in flight. */
export class LocalInFlight implements InFlightCounter {
  readonly amount: number;
  readonly #counts = new Map<string, number>();

  constructor(amount: number) {
    this.amount = amount;
  }

  acquire(key: string): boolean {
    const n = this.#counts.get(key) ?? 0;
    if (n >= this.amount) return false;
    this.#counts.set(key, n + 1);
    return true;
  }

  release(key: string): void {
    const n = this.#counts.get(key);
    if (n === undefined) return;
    if (n <= 1) this.#counts.delete(key);
    else this.#counts.set(key, n - 1);
  }

  peek(key: string): number {
    return this.#counts.get(key) ?? 0;
  }

  /** Keys with requests in flight. */
  get size(): number {
    return this.#counts.size;
  }
}

/** What a LocalLimits is made with; everything but the defaults is for tests. */
export interface LocalLimitsOptions {
  now?: () => number;
  maxKeys?: number;
  /** 0: no sweep timer (tests call sweep()). */
  sweepEveryMs?: number;
  /** Told when a set dropped a key for room (the first time, then at most once a minute). */
  onCap?: (spec: BucketSpec) => void;
}

/** How often a set that keeps hitting its cap is reported. */
const CAP_REPORT_EVERY_MS = 60_000;

/** Every bucket set and in-flight counter of one process, by id, with their sweep timer. */
export class LocalLimits {
  readonly #now: () => number;
  readonly #maxKeys: number;
  readonly #onCap: (spec: BucketSpec) => void;
  readonly #buckets = new Map<string, LocalBuckets>();
  readonly #inFlight = new Map<string, LocalInFlight>();
  readonly #timer: NodeJS.Timeout | undefined;

  constructor(o: LocalLimitsOptions = {}) {
    this.#now = o.now ?? monotonicMs;
    this.#maxKeys = o.maxKeys ?? MAX_KEYS;
    this.#onCap = o.onCap ?? (() => {});
    const every = o.sweepEveryMs ?? SWEEP_EVERY_MS;
    if (every > 0) {
      this.#timer = setInterval(() => this.sweep(), every);
      // The sweep only frees memory: it never keeps a process alive.
      this.#timer.unref();
    }
  }

  /** The set of `spec.id`, made on first use; the same object for as long as this lives. */
  buckets(spec: BucketSpec): LocalBuckets {
    let set = this.#buckets.get(spec.id);
    if (set === undefined) {
      let reported = -Infinity;
      const onCap = (): void => {
        const now = this.#now();
        if (now - reported < CAP_REPORT_EVERY_MS) return;
        reported = now;
        this.#onCap(spec);
      };
      set = new LocalBuckets(spec, this.#now, this.#maxKeys, onCap);
      this.#buckets.set(spec.id, set);
    }
    return set;
  }

  /** The in-flight counter of `id`, made on first use. */
  inFlight(id: string, amount: number): LocalInFlight {
    let c = this.#inFlight.get(id);
    if (c === undefined) {
      c = new LocalInFlight(amount);
      this.#inFlight.set(id, c);
    }
    return c;
  }

  /** One sweep tick over every set; returns the buckets dropped. */
  sweep(budget?: number): number {
    let dropped = 0;
    for (const set of this.#buckets.values()) dropped += set.sweep(budget);
    return dropped;
  }

  /** Stops the sweep timer. */
  close(): void {
    clearInterval(this.#timer);
  }
}

// Token-bucket arithmetic (SPEC §8 rateLimit), pure: no clock of its own, no I/O. A bucket holds
// `burst` tokens and gains `average` per `periodMs`. Levels are kept in integer units where one
// token is `periodMs` units and one millisecond adds `average` units, so with an integer-ms clock
// every step is exact (no float drift however long a bucket lives). The Redis script in redis.ts
// does the same arithmetic, unit for unit.
import type { BucketSpec, TakeResult } from './stores.ts';

/** One bucket: its level in units as of `at` (ms on the owner's clock). */
export interface Bucket {
  level: number;
  at: number;
}

/** A bucket set's numbers in units, derived once from its BucketSpec. */
export interface Rate {
  /** Units in a full bucket: burst × periodMs. */
  readonly cap: number;
  /** Units one token costs: periodMs. */
  readonly token: number;
  /** Units gained per millisecond: average. */
  readonly perMs: number;
}

/** A TakeResult the store owns and overwrites on its next take (no allocation per request). */
export interface TakeSlot {
  allowed: boolean;
  remaining: number;
  resetMs: number;
}

/** The unit arithmetic of a spec. */
export function rateOf(spec: Pick<BucketSpec, 'average' | 'periodMs' | 'burst'>): Rate {
  return { cap: spec.burst * spec.periodMs, token: spec.periodMs, perMs: spec.average };
}

/** A full bucket as of `now`. */
export function fullBucket(rate: Rate, now: number): Bucket {
  return { level: rate.cap, at: now };
}

/** The level of `b` at `now`: refilled, at most full. A clock that went back adds nothing. */
export function levelAt(b: Bucket, rate: Rate, now: number): number {
  const elapsed = now - b.at;
  if (elapsed <= 0) return b.level;
  const level = b.level + elapsed * rate.perMs;
  return level < rate.cap ? level : rate.cap;
}

/** Milliseconds until `level` reaches `target` units (0 when it is there). */
function msUntil(level: number, target: number, rate: Rate): number {
  return level >= target ? 0 : Math.ceil((target - level) / rate.perMs);
}

/**
 * Takes one token from `b` at `now` into `out` and returns `out`. Refused when less than one
 * token is there (the bucket is left as it was); resetMs is then the wait for one token, else
 * the wait until the bucket is full again.
 */
export function take(b: Bucket, rate: Rate, now: number, out: TakeSlot): TakeSlot {
  const level = levelAt(b, rate, now);
  if (level < rate.token) {
    out.allowed = false;
    out.remaining = 0;
    out.resetMs = msUntil(level, rate.token, rate);
    return out;
  }
  const left = level - rate.token;
  b.level = left;
  b.at = now;
  out.allowed = true;
  out.remaining = Math.floor(left / rate.token);
  out.resetMs = msUntil(left, rate.cap, rate);
  return out;
}

/** What take() would answer at `now`, without taking (a fresh object: /explain only). */
export function peek(b: Bucket | undefined, rate: Rate, now: number): TakeResult {
  const copy = b === undefined ? fullBucket(rate, now) : { level: b.level, at: b.at };
  return { ...take(copy, rate, now, { allowed: false, remaining: 0, resetMs: 0 }) };
}

/** True when `b` is full at `now`: dropping it changes nothing (a missing bucket is a full one). */
export function isFull(b: Bucket, rate: Rate, now: number): boolean {
  return levelAt(b, rate, now) >= rate.cap;
}

/** Whole seconds to tell a client to wait (retry-after, the RateLimit field's t): rounded up, at least 1. */
export function wholeSeconds(ms: number): number {
  return ms <= 1000 ? 1 : Math.ceil(ms / 1000);
}

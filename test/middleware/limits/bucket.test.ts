// Token-bucket arithmetic with a clock the test moves by hand.
import { describe, expect, test } from 'vitest';
import { fullBucket, isFull, levelAt, peek, rateOf, take, wholeSeconds } from '../../../src/middleware/limits/bucket.ts';
import type { TakeSlot } from '../../../src/middleware/limits/bucket.ts';

const slot = (): TakeSlot => ({ allowed: false, remaining: 0, resetMs: 0 });

describe('a bucket of burst 3 refilled at 2 per second', () => {
  const rate = rateOf({ average: 2, periodMs: 1000, burst: 3 });

  test('starts full: three takes pass, remaining counts down, the fourth is refused', () => {
    const b = fullBucket(rate, 0);
    const seen = [1, 2, 3, 4].map(() => ({ ...take(b, rate, 0, slot()) }));
    expect(seen.map((r) => r.allowed)).toEqual([true, true, true, false]);
    expect(seen.map((r) => r.remaining)).toEqual([2, 1, 0, 0]);
  });

  test('a refusal says when the next token comes; that token is there then, not a millisecond before', () => {
    const b = fullBucket(rate, 0);
    for (let i = 0; i < 3; i++) take(b, rate, 0, slot());
    const refused = { ...take(b, rate, 0, slot()) };
    // 2 per second: one token every 500 ms.
    expect(refused).toEqual({ allowed: false, remaining: 0, resetMs: 500 });
    expect(take(b, rate, 499, slot()).allowed).toBe(false);
    expect(take(b, rate, 500, slot()).allowed).toBe(true);
    expect(take(b, rate, 500, slot()).allowed).toBe(false);
  });

  test('a refusal leaves the bucket as it was (refused requests cost nothing)', () => {
    const b = fullBucket(rate, 0);
    for (let i = 0; i < 3; i++) take(b, rate, 0, slot());
    for (let t = 0; t < 500; t += 50) take(b, rate, t, slot());
    expect(take(b, rate, 500, slot()).allowed).toBe(true);
  });

  test('an allowed take says how long until the bucket is full again', () => {
    const b = fullBucket(rate, 0);
    expect(take(b, rate, 0, slot()).resetMs).toBe(500);
    expect(take(b, rate, 0, slot()).resetMs).toBe(1000);
    expect(take(b, rate, 250, slot()).resetMs).toBe(1250);
  });

  test('refill never goes past burst, however long the bucket was idle', () => {
    const b = fullBucket(rate, 0);
    take(b, rate, 0, slot());
    expect(isFull(b, rate, 499)).toBe(false);
    expect(isFull(b, rate, 500)).toBe(true);
    expect(levelAt(b, rate, 10_000_000)).toBe(rate.cap);
    const after = [1, 2, 3, 4].map(() => take(b, rate, 10_000_000, slot()).allowed);
    expect(after).toEqual([true, true, true, false]);
  });

  test('a clock that goes back adds nothing and takes nothing', () => {
    const b = fullBucket(rate, 1000);
    take(b, rate, 1000, slot());
    expect(levelAt(b, rate, 0)).toBe(b.level);
  });

  test('peek says what take would, without taking', () => {
    const b = fullBucket(rate, 0);
    take(b, rate, 0, slot());
    expect(peek(b, rate, 0)).toEqual({ allowed: true, remaining: 1, resetMs: 1000 });
    expect(peek(b, rate, 0)).toEqual({ allowed: true, remaining: 1, resetMs: 1000 });
    expect(peek(undefined, rate, 0)).toEqual({ allowed: true, remaining: 2, resetMs: 500 });
  });
});

test('over a long run the admitted count is burst + average × elapsed / period, exactly', () => {
  // 7 per 3 s: one token every 428.57… ms, so exactness rests on the integer units.
  const rate = rateOf({ average: 7, periodMs: 3000, burst: 5 });
  const b = fullBucket(rate, 0);
  let admitted = 0;
  const end = 3000 * 1000;
  for (let t = 0; t <= end; t += 13) if (take(b, rate, t, slot()).allowed) admitted++;
  const lastT = end - (end % 13);
  expect(admitted).toBe(5 + Math.floor((7 * lastT) / 3000));
});

test('a sub-second period: 5 per 100 ms is 50 per second', () => {
  const rate = rateOf({ average: 5, periodMs: 100, burst: 1 });
  const b = fullBucket(rate, 0);
  let admitted = 0;
  for (let t = 0; t < 1000; t++) if (take(b, rate, t, slot()).allowed) admitted++;
  expect(admitted).toBe(50);
});

test('whole seconds round up and are at least 1', () => {
  expect([0, 1, 999, 1000, 1001, 2000, 2001].map(wholeSeconds)).toEqual([1, 1, 1, 1, 2, 2, 3]);
});

// The in-process store: buckets per key, the sweep of idle full buckets, the cap on a set's
// size, in-flight counts, and the same set for the same spec id. The clock is the test's.
import { afterEach, expect, test, vi } from 'vitest';
import { LocalBuckets, LocalInFlight, LocalLimits } from '../../../src/middleware/limits/local.ts';
import type { BucketSpec } from '../../../src/middleware/limits/stores.ts';

const spec: BucketSpec = { id: 'api|2/1000ms|burst=2|by=client-ip', average: 2, periodMs: 1000, burst: 2 };

function clock(): { now: () => number; advance(ms: number): void } {
  let t = 0;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

afterEach(() => {
  vi.useRealTimers();
});

test('each key has its own bucket', () => {
  const c = clock();
  const set = new LocalBuckets(spec, c.now);
  expect([set.take('a').allowed, set.take('a').allowed, set.take('a').allowed]).toEqual([true, true, false]);
  expect(set.take('b').allowed).toBe(true);
  expect(set.size).toBe(2);
});

test('the sweep drops buckets that refilled to full and keeps the others; a dropped key starts full, as before', () => {
  const c = clock();
  const set = new LocalBuckets(spec, c.now);
  set.take('idle');
  set.take('busy');
  set.take('busy');
  c.advance(500);
  // idle: 1 + 1 = full; busy: 0 + 1 = not full.
  expect(set.sweep()).toBe(1);
  expect(set.size).toBe(1);
  expect(set.peek('busy')).toMatchObject({ allowed: true, remaining: 0 });
  expect(set.peek('idle')).toMatchObject({ allowed: true, remaining: 1 });
  c.advance(500);
  expect(set.sweep()).toBe(1);
  expect(set.size).toBe(0);
});

test('the sweep looks at a bounded number of buckets per call and resumes where it stopped', () => {
  const c = clock();
  const set = new LocalBuckets(spec, c.now);
  for (let i = 0; i < 25; i++) set.take(`k${i}`);
  c.advance(10_000);
  expect(set.sweep(10)).toBe(10);
  expect(set.size).toBe(15);
  expect(set.sweep(10)).toBe(10);
  expect(set.sweep(10)).toBe(5);
  expect(set.size).toBe(0);
});

test('at the cap, a new key drops the oldest bucket: the table never grows past it and the new key is limited', () => {
  const c = clock();
  const onCap = vi.fn();
  const set = new LocalBuckets(spec, c.now, 100, onCap);
  // A flood of distinct keys, none of them idle long enough to be swept.
  for (let i = 0; i < 1000; i++) set.take(`flood-${i}`);
  expect(set.size).toBe(100);
  expect(onCap).toHaveBeenCalledTimes(900);
  // The newest buckets are the ones kept, and they still limit.
  expect(set.take('flood-999').allowed).toBe(true);
  expect(set.take('flood-999').allowed).toBe(false);
  // The oldest was dropped: it starts again from a full bucket.
  expect(set.peek('flood-0')).toMatchObject({ allowed: true, remaining: 1 });
});

test('LocalLimits gives the same set for the same id, reports the cap at most once a minute, and sweeps on its timer', async () => {
  vi.useFakeTimers();
  const c = clock();
  const capped: string[] = [];
  const limits = new LocalLimits({ now: c.now, maxKeys: 10, sweepEveryMs: 1000, onCap: (s) => capped.push(s.id) });
  const a = limits.buckets(spec);
  expect(limits.buckets({ ...spec })).toBe(a);
  expect(limits.buckets({ ...spec, id: 'other' })).not.toBe(a);
  for (let i = 0; i < 50; i++) a.take(`k${i}`);
  expect(capped).toEqual([spec.id]);
  c.advance(60_000);
  a.take('one-more');
  expect(capped).toEqual([spec.id, spec.id]);
  expect(a.size).toBe(10);
  // A second later everything is full again: the timer's sweep empties the set.
  c.advance(1000);
  await vi.advanceTimersByTimeAsync(1000);
  expect(a.size).toBe(0);
  limits.close();
  expect(vi.getTimerCount()).toBe(0);
});

test('in flight: at most `amount` per key; a release frees one; an extra release frees nothing', () => {
  const f = new LocalInFlight(2);
  expect([f.acquire('a'), f.acquire('a'), f.acquire('a')]).toEqual([true, true, false]);
  expect(f.acquire('b')).toBe(true);
  expect(f.peek('a')).toBe(2);
  f.release('a');
  expect(f.peek('a')).toBe(1);
  expect(f.acquire('a')).toBe(true);
  f.release('a');
  f.release('a');
  f.release('a');
  expect(f.peek('a')).toBe(0);
  // A key with nothing in flight holds no entry.
  f.release('b');
  expect(f.size).toBe(0);
  expect(f.acquire('a')).toBe(true);
});

test('LocalLimits gives the same counter for the same id', () => {
  const limits = new LocalLimits({ sweepEveryMs: 0 });
  const f = limits.inFlight('fair|amount=1', 1);
  expect(limits.inFlight('fair|amount=1', 1)).toBe(f);
  expect(f.acquire('x')).toBe(true);
  expect(limits.inFlight('fair|amount=1', 1).acquire('x')).toBe(false);
  limits.close();
});

// The conformance table (ARCHITECTURE rule 1): every balancing policy, round-robin included, must
// pass every case here. Policy-specific behaviour lives in <policy>.test.ts.
import { describe, expect, test } from 'vitest';
import { POLICIES, type BalanceName } from '../../src/balance/index.ts';
import { isAvailable, type Policy } from '../../src/balance/policy.ts';
import { FakeTarget, fakeTargets, randomIps, seeded, tally } from './fake-target.ts';

const PICKS = 10_000;

/**
 * How far (in share of picks, absolute) a target may stray from weight / total weight over
 * 10,000 picks. Round-robin is exact; the random policies are binomial (3 σ at p = 0.5 is 1.5
 * points); ip-hash is bounded by the ring's arc-length variance with 160 points per weight unit.
 */
const WEIGHT_TOLERANCE: Record<BalanceName, number> = {
  'round-robin': 0.001,
  'least-connections': 0.02,
  'random-two': 0.02,
  'ip-hash': 0.04,
};

const names = Object.keys(POLICIES) as BalanceName[];

describe.each(names)('%s', (name) => {
  const build = (targets: readonly FakeTarget[], seed = 1): Policy<FakeTarget> => POLICIES[name](targets, { random: seeded(seed) });
  const ips = randomIps(PICKS, seeded(42));
  const pickAll = (policy: Policy<FakeTarget>, eligible = isAvailable): (FakeTarget | undefined)[] =>
    ips.map((clientIp) => policy.pick({ clientIp }, eligible));

  test('returns undefined for an empty target list', () => {
    expect(build([]).pick({ clientIp: '10.1.1.1' }, isAvailable)).toBeUndefined();
  });

  test('returns undefined when no target is available', () => {
    const targets = fakeTargets(4);
    for (const t of targets) t.available = false;
    expect(new Set(pickAll(build(targets)).slice(0, 500))).toEqual(new Set([undefined]));
  });

  test('returns undefined when the predicate accepts no target, even available ones', () => {
    expect(new Set(pickAll(build(fakeTargets(4)), () => false).slice(0, 500))).toEqual(new Set([undefined]));
  });

  test('never returns an unavailable target, and still uses every available one', () => {
    const targets = fakeTargets([1, 2, 1, 3, 1]);
    targets[1].available = false;
    targets[3].available = false;
    const counts = tally(targets, pickAll(build(targets)));
    expect(counts[1] + counts[3]).toBe(0);
    expect(counts.filter((c) => c > 0)).toHaveLength(3);
  });

  test('on a retry never returns the target already tried, nor an unavailable one', () => {
    const targets = fakeTargets([1, 3, 2, 1]);
    targets[2].available = false;
    const policy = build(targets);
    for (const clientIp of ips.slice(0, 2_000)) {
      const first = policy.pick({ clientIp }, isAvailable);
      expect(first?.available).toBe(true);
      const second = policy.pick({ clientIp }, (t) => t.available && t !== first);
      expect(second).toBeDefined();
      expect(second).not.toBe(first);
      expect(second?.available).toBe(true);
    }
  });

  test('a retry with only the tried target available gets undefined', () => {
    const targets = fakeTargets(3);
    targets[0].available = false;
    targets[2].available = false;
    const policy = build(targets);
    const first = policy.pick({ clientIp: '10.9.9.9' }, isAvailable);
    expect(first).toBe(targets[1]);
    expect(policy.pick({ clientIp: '10.9.9.9' }, (t) => t.available && t !== first)).toBeUndefined();
  });

  test('always returns the single eligible target', () => {
    const targets = fakeTargets([2, 1, 5, 1]);
    for (const t of targets) t.available = t === targets[3];
    targets[3].inFlight = 50; // however loaded it is
    const counts = tally(targets, pickAll(build(targets)).slice(0, 2_000));
    expect(counts).toEqual([0, 0, 0, 2_000]);
  });

  test('a single-target pool returns that target while it is available, then undefined', () => {
    const [only] = fakeTargets(1);
    const policy = build([only]);
    expect(policy.pick({ clientIp: '10.0.0.1' }, isAvailable)).toBe(only);
    only.available = false;
    expect(policy.pick({ clientIp: '10.0.0.1' }, isAvailable)).toBeUndefined();
  });

  test(`honours weights 3:1:2 over ${PICKS} picks (distinct client IPs) within ±${WEIGHT_TOLERANCE[name] * 100} points`, () => {
    const targets = fakeTargets([3, 1, 2]);
    const shares = tally(targets, pickAll(build(targets))).map((c) => c / PICKS);
    const expected = [3 / 6, 1 / 6, 2 / 6];
    shares.forEach((share, i) => expect(Math.abs(share - expected[i])).toBeLessThanOrEqual(WEIGHT_TOLERANCE[name]));
  });

  test('honours weights among the eligible targets only', () => {
    const targets = fakeTargets([3, 5, 1]);
    targets[1].available = false;
    const shares = tally(targets, pickAll(build(targets))).map((c) => c / PICKS);
    expect(shares[1]).toBe(0);
    expect(Math.abs(shares[0] - 0.75)).toBeLessThanOrEqual(WEIGHT_TOLERANCE[name]);
  });

  test('spreads requests across equal-weight targets when all have the same in-flight count', () => {
    const targets = fakeTargets(4);
    for (const t of targets) t.inFlight = 7;
    const shares = tally(targets, pickAll(build(targets))).map((c) => c / PICKS);
    for (const share of shares) expect(Math.abs(share - 0.25)).toBeLessThanOrEqual(WEIGHT_TOLERANCE[name]);
  });
});

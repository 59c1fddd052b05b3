import { describe, expect, test } from 'vitest';
import { isAvailable } from '../../src/balance/policy.ts';
import { randomTwo } from '../../src/balance/random-two.ts';
import { fakeTargets, seeded, tally } from './fake-target.ts';

const ctx = { clientIp: '10.0.0.1' };
const PICKS = 10_000;

describe('randomTwo', () => {
  test('of two targets always takes the less loaded one (the two choices are distinct)', () => {
    const targets = fakeTargets(2);
    targets[0].inFlight = 10;
    const policy = randomTwo(targets, { random: seeded(1) });
    expect(tally(targets, Array.from({ length: 1_000 }, () => policy.pick(ctx, isAvailable)))).toEqual([0, 1_000]);
  });

  test('prefers the less loaded of its two samples: the most loaded never wins, the least wins whenever sampled (2/3 of 3)', () => {
    const targets = fakeTargets(3);
    [1, 5, 9].forEach((n, i) => (targets[i].inFlight = n));
    const policy = randomTwo(targets, { random: seeded(2) });
    const shares = tally(targets, Array.from({ length: PICKS }, () => policy.pick(ctx, isAvailable))).map((c) => c / PICKS);
    expect(shares[2]).toBe(0);
    // Least-connections would give 100%; two random choices give P(target 0 is one of the two) = 2/3.
    expect(Math.abs(shares[0] - 2 / 3)).toBeLessThanOrEqual(0.02);
  });

  test('compares load relative to weight: 4 in flight on weight 4 beats 2 on weight 1', () => {
    const targets = fakeTargets([1, 4]);
    targets[0].inFlight = 2;
    targets[1].inFlight = 4;
    const policy = randomTwo(targets, { random: seeded(3) });
    expect(tally(targets, Array.from({ length: 500 }, () => policy.pick(ctx, isAvailable)))).toEqual([0, 500]);
  });

  test('is reproducible with an injected random, and follows it', () => {
    const targets = fakeTargets([1, 2, 3, 1, 2]);
    [3, 1, 4, 1, 5].forEach((n, i) => (targets[i].inFlight = n));
    const run = (seed: number): string[] => {
      const policy = randomTwo(targets, { random: seeded(seed) });
      return Array.from({ length: 50 }, () => policy.pick(ctx, isAvailable)!.url);
    };
    expect(run(21)).toEqual(run(21));
    expect(run(21)).not.toEqual(run(22));
  });

  test('samples exactly by weight among eligible targets when a heavy target is ineligible (fallback scan)', () => {
    // Nearly every draw lands on the ineligible weight-1000 target, forcing the exact scan.
    const targets = fakeTargets([1_000, 1, 3]);
    targets[0].available = false;
    const policy = randomTwo(targets, { random: seeded(4) });
    const counts = tally(targets, Array.from({ length: PICKS }, () => policy.pick(ctx, isAvailable)));
    expect(counts[0]).toBe(0);
    // Idle ties keep the first (weighted) sample: 1:3.
    expect(Math.abs(counts[2] / PICKS - 0.75)).toBeLessThanOrEqual(0.02);
  });

  test('takes the only eligible target even when it is the most loaded', () => {
    const targets = fakeTargets(4);
    targets[2].inFlight = 100;
    const policy = randomTwo(targets, { random: seeded(5) });
    for (let k = 0; k < 100; k++) expect(policy.pick(ctx, (t) => t === targets[2])).toBe(targets[2]);
  });
});

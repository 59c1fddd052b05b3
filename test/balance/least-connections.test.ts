import { describe, expect, test } from 'vitest';
import { leastConnections } from '../../src/balance/least-connections.ts';
import { isAvailable } from '../../src/balance/policy.ts';
import { fakeTargets, seeded, tally } from './fake-target.ts';

const ctx = { clientIp: '10.0.0.1' };

describe('leastConnections', () => {
  test('sends to the target with the fewest requests in flight', () => {
    const targets = fakeTargets(3);
    [5, 2, 7].forEach((n, i) => (targets[i].inFlight = n));
    const policy = leastConnections(targets, { random: seeded(1) });
    const counts = tally(targets, Array.from({ length: 200 }, () => policy.pick(ctx, isAvailable)));
    expect(counts).toEqual([0, 200, 0]);
  });

  test('every pick is a least-loaded target while requests are acquired, held and released', () => {
    const targets = fakeTargets(4);
    const random = seeded(3);
    const policy = leastConnections(targets, { random });
    const held: (() => void)[] = [];
    for (let k = 0; k < 5_000; k++) {
      const t = policy.pick(ctx, isAvailable);
      expect(t).toBeDefined();
      expect(t!.inFlight).toBe(Math.min(...targets.map((x) => x.inFlight)));
      held.push(t!.acquire());
      // Release a random held request about half the time: some requests stay long.
      if (random() < 0.5) held.splice(Math.floor(random() * held.length), 1)[0]();
    }
  });

  test('balances in-flight requests in proportion to weight (1:3)', () => {
    const targets = fakeTargets([1, 3]);
    const policy = leastConnections(targets, { random: seeded(1) });
    for (let k = 0; k < 400; k++) policy.pick(ctx, isAvailable)!.acquire();
    expect(Math.abs(targets[1].inFlight - 3 * targets[0].inFlight)).toBeLessThanOrEqual(3);
  });

  test('a heavier target at the same load per weight is not "more loaded": inFlight 2/weight 1 ties 6/weight 3', () => {
    const targets = fakeTargets([1, 3, 1]);
    [2, 6, 3].forEach((n, i) => (targets[i].inFlight = n));
    const policy = leastConnections(targets, { random: seeded(5) });
    const shares = tally(targets, Array.from({ length: 10_000 }, () => policy.pick(ctx, isAvailable))).map((c) => c / 10_000);
    // Tied targets share the pick by weight: 1/4 and 3/4 (± 2 points); the 3/1 one never wins.
    expect(shares[2]).toBe(0);
    expect(Math.abs(shares[1] - 0.75)).toBeLessThanOrEqual(0.02);
  });

  test('breaks ties at random with Math.random by default', () => {
    const targets = fakeTargets(3);
    const policy = leastConnections(targets);
    const counts = tally(targets, Array.from({ length: 300 }, () => policy.pick(ctx, isAvailable)));
    for (const c of counts) expect(c).toBeGreaterThan(0);
  });

  test('the tie-break follows the injected random: same seed, same choices; another seed, others', () => {
    const targets = fakeTargets(5);
    const run = (seed: number): string[] => {
      const policy = leastConnections(targets, { random: seeded(seed) });
      return Array.from({ length: 50 }, () => policy.pick(ctx, isAvailable)!.url);
    };
    expect(run(11)).toEqual(run(11));
    expect(run(11)).not.toEqual(run(12));
  });

  test('the least-loaded target wins over an ineligible idle one', () => {
    const targets = fakeTargets(3);
    [0, 4, 9].forEach((n, i) => (targets[i].inFlight = n));
    targets[0].available = false;
    const policy = leastConnections(targets, { random: seeded(1) });
    expect(policy.pick(ctx, isAvailable)).toBe(targets[1]);
    expect(policy.pick(ctx, (t) => t.available && t !== targets[1])).toBe(targets[2]);
  });
});

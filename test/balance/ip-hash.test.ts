import { describe, expect, test } from 'vitest';
import { ipHash } from '../../src/balance/ip-hash.ts';
import { isAvailable, type Policy } from '../../src/balance/policy.ts';
import { FakeTarget, fakeTargets, randomIps, seeded, tally } from './fake-target.ts';

const ips = randomIps(10_000, seeded(7));

/** Returns the url each client maps to under `policy`. */
const mapping = (policy: Policy<FakeTarget>, eligible = isAvailable): string[] =>
  ips.map((clientIp) => policy.pick({ clientIp }, eligible)?.url ?? 'none');

describe('ipHash', () => {
  test('sends the same client IP to the same target on every pick', () => {
    const policy = ipHash(fakeTargets(4));
    const first = mapping(policy);
    expect(mapping(policy)).toEqual(first);
    expect(new Set(first).size).toBe(4);
  });

  test('maps a client identically on another replica, even with the targets listed in another order', () => {
    const targets = fakeTargets([1, 2, 1, 3]);
    expect(mapping(ipHash([...targets].reverse()))).toEqual(mapping(ipHash(targets)));
  });

  test('keeps a fixed client → target mapping across versions (a hash change would reshuffle every client on deploy)', () => {
    const targets = fakeTargets(4);
    const policy = ipHash(targets);
    const golden: [string, number][] = [
      ['203.0.113.7', 2],
      ['192.0.2.1', 0],
      ['2001:db8::1', 3],
      ['8.8.8.8', 1],
      ['1.1.1.1', 3],
    ];
    for (const [clientIp, index] of golden) expect(policy.pick({ clientIp }, isAvailable)).toBe(targets[index]);
  });

  test('hashes an IPv4-mapped IPv6 client like its IPv4 address', () => {
    const targets = fakeTargets(8);
    const policy = ipHash(targets);
    for (const ip of ips.slice(0, 500)) {
      expect(policy.pick({ clientIp: `::ffff:${ip}` }, isAvailable)).toBe(policy.pick({ clientIp: ip }, isAvailable));
    }
  });

  test('removing one of 4 targets moves exactly the clients of the removed one', () => {
    const targets = fakeTargets(4);
    const before = mapping(ipHash(targets));
    const after = mapping(ipHash(targets.filter((_, i) => i !== 2)));
    const removed = targets[2].url;
    let movedOthers = 0;
    ips.forEach((_, k) => {
      if (before[k] === removed) expect(after[k]).not.toBe(removed);
      else if (after[k] !== before[k]) movedOthers++;
    });
    expect(movedOthers).toBe(0);
    expect(before.filter((u) => u === removed).length).toBeGreaterThan(1_500);
  });

  test('adding a 5th target to 4 moves about 1/5 of the clients (0.15–0.25), all of them to the new one', () => {
    const targets = fakeTargets(5);
    const before = mapping(ipHash(targets.slice(0, 4)));
    const after = mapping(ipHash(targets));
    const moved = ips.filter((_, k) => after[k] !== before[k]);
    expect(moved.length / ips.length).toBeGreaterThanOrEqual(0.15);
    expect(moved.length / ips.length).toBeLessThanOrEqual(0.25);
    ips.forEach((_, k) => {
      if (after[k] !== before[k]) expect(after[k]).toBe(targets[4].url);
    });
  });

  test('raising one weight moves clients only onto that target', () => {
    const targets = fakeTargets(4);
    const before = mapping(ipHash(targets));
    targets[1].weight = 2;
    const after = mapping(ipHash(targets));
    const moved = ips.filter((_, k) => after[k] !== before[k]).length;
    expect(moved).toBeGreaterThan(1_000);
    ips.forEach((_, k) => {
      if (after[k] !== before[k]) expect(after[k]).toBe(targets[1].url);
    });
  });

  test("an unavailable target's clients go to the next target on the ring, and come back when it recovers", () => {
    const targets = fakeTargets(4);
    const policy = ipHash(targets);
    const healthy = mapping(policy);
    targets[0].available = false;
    const degraded = mapping(policy);
    // The next target clockwise is where they would go if the target were removed.
    expect(degraded).toEqual(mapping(ipHash(targets.slice(1))));
    ips.forEach((_, k) => {
      if (healthy[k] !== targets[0].url) expect(degraded[k]).toBe(healthy[k]);
    });
    expect(new Set(degraded.filter((_, k) => healthy[k] === targets[0].url)).size).toBe(3);
    targets[0].available = true;
    expect(mapping(policy)).toEqual(healthy);
  });

  test('a retry excluding the tried target goes where the client would go without it', () => {
    const targets = fakeTargets(4);
    const policy = ipHash(targets);
    for (const clientIp of ips.slice(0, 1_000)) {
      const tried = policy.pick({ clientIp }, isAvailable);
      const without = ipHash(targets.filter((t) => t !== tried));
      expect(policy.pick({ clientIp }, (t) => t.available && t !== tried)).toBe(without.pick({ clientIp }, isAvailable));
    }
  });

  test.each([4, 10])('spreads clients within ±20%% of the fair share over %i equal-weight targets', (n) => {
    const targets = fakeTargets(n);
    const policy = ipHash(targets);
    const counts = tally(targets, ips.map((clientIp) => policy.pick({ clientIp }, isAvailable)));
    for (const c of counts) expect(Math.abs(c / ips.length - 1 / n)).toBeLessThanOrEqual(0.2 / n);
  });

  test('keeps weight ratios when the ring is capped for large weights (1500:500 → 75%/25% ± 4 points)', () => {
    // 2000 weight units × 160 points would be 320,000 points; the ring is capped well below that.
    const targets = fakeTargets([1_500, 500]);
    const started = performance.now();
    const policy = ipHash(targets);
    expect(performance.now() - started).toBeLessThan(1_000);
    const counts = tally(targets, ips.map((clientIp) => policy.pick({ clientIp }, isAvailable)));
    expect(Math.abs(counts[0] / ips.length - 0.75)).toBeLessThanOrEqual(0.04);
  });
});

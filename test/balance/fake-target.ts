// Test doubles for the balancing policies: a mutable target and a seeded PRNG, so every
// statistical test sees the same numbers on every run.
import type { Balanceable } from '../../src/balance/policy.ts';

/** A target whose fields tests flip between picks. */
export class FakeTarget implements Balanceable {
  url: string;
  weight: number;
  available = true;
  inFlight = 0;
  constructor(url: string, weight = 1) {
    this.url = url;
    this.weight = weight;
  }
  /** Mirrors Target.acquire(): counts one more request in flight; returns its release. */
  acquire(): () => void {
    this.inFlight++;
    return () => {
      this.inFlight--;
    };
  }
}

/** Targets http://10.0.0.1:3000 … with the given weights (weight 1 each when given a count). */
export function fakeTargets(weights: number | readonly number[]): FakeTarget[] {
  const ws = typeof weights === 'number' ? Array.from({ length: weights }, () => 1) : weights;
  return ws.map((w, i) => new FakeTarget(`http://10.0.0.${i + 1}:3000`, w));
}

/** mulberry32: returns a deterministic uniform [0, 1) generator for `seed`. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Returns `count` distinct random IPv4 addresses drawn from `random`. */
export function randomIps(count: number, random: () => number): string[] {
  const ips = new Set<string>();
  const octet = (): number => Math.floor(random() * 256);
  while (ips.size < count) ips.add(`${octet()}.${octet()}.${octet()}.${octet()}`);
  return [...ips];
}

/** Counts how often each target was returned; `undefined` counted under -1. */
export function tally<T>(targets: readonly T[], picks: Iterable<T | undefined>): number[] {
  const counts = targets.map(() => 0);
  for (const p of picks) {
    const i = p === undefined ? -1 : targets.indexOf(p);
    if (i === -1) throw new Error('pick returned undefined or a foreign target');
    counts[i]++;
  }
  return counts;
}

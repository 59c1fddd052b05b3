import type { Balanceable, Policy } from './policy.ts';
import { SmoothWeighted } from './weighted.ts';

const isAvailable = (t: Balanceable): boolean => t.available;

/** Smooth weighted round-robin over the available targets. */
export function roundRobin<T extends Balanceable>(targets: readonly T[]): Policy<T> {
  const sw = new SmoothWeighted(targets, targets.map((t) => t.weight));
  return { pick: () => sw.next(isAvailable) };
}

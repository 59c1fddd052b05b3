// Smooth weighted round-robin (nginx): over every sum(weights) picks each target gets exactly its
// weight, spread out rather than in bursts.
import type { Balanceable, Eligible, Policy } from './policy.ts';
import { SmoothWeighted } from './weighted.ts';

/** Smooth weighted round-robin over the eligible targets. */
export function roundRobin<T extends Balanceable>(targets: readonly T[]): Policy<T> {
  const sw = new SmoothWeighted(targets, targets.map((t) => t.weight));
  return { pick: (_ctx, eligible: Eligible<T>) => sw.next(eligible), peek: (_ctx, eligible: Eligible<T>) => sw.peek(eligible) };
}

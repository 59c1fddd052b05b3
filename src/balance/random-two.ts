// Power of two random choices (Mitzenmacher; Traefik/Envoy p2c): sample two distinct eligible
// targets, weighted by weight, and send to the one with less in flight relative to its weight.
// Nearly as good as least-connections at spreading load, but O(log n) instead of a scan of the
// pool, and without herding every new request onto the same momentarily-idle target.
import type { Balanceable, BalanceContext, Eligible, Policy, PolicyOptions } from './policy.ts';

/**
 * Draws from the weighted distribution over all targets that land on an ineligible (or already
 * chosen) one are retried this many times before falling back to an exact scan. Rejection sampling
 * with a fallback that samples the same conditional distribution keeps the result exact: each
 * eligible target is still chosen with probability weight / (sum of eligible weights).
 */
const MAX_DRAWS = 4;

/** Power-of-two-choices policy: `pick` returns the less loaded (inFlight/weight) of two distinct weighted-random eligible targets, the only one when one is eligible, undefined when none is. */
export function randomTwo<T extends Balanceable>(targets: readonly T[], options: PolicyOptions = {}): Policy<T> {
  const random = options.random ?? Math.random;
  const n = targets.length;
  // Weights are fixed for a policy's life (a weight change is a reload, which builds a new policy).
  const weights = Float64Array.from(targets, (t) => t.weight);
  // cumulative[i] = weights[0] + … + weights[i]: a weighted draw is one binary search.
  const cumulative = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) cumulative[i] = total += weights[i];

  /** Index of a weighted-random target over the whole list (eligible or not). */
  const draw = (): number => {
    const r = random() * total;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cumulative[mid] > r) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };

  /** Weighted-random eligible index other than `exclude` by one reservoir pass; -1 when there is none. */
  const scan = (eligible: Eligible<T>, exclude: number): number => {
    let chosen = -1;
    let seen = 0;
    for (let i = 0; i < n; i++) {
      if (i === exclude || !eligible(targets[i])) continue;
      seen += weights[i];
      if (random() * seen < weights[i]) chosen = i;
    }
    return chosen;
  };

  /** Weighted-random eligible index other than `exclude`; -1 when there is none. */
  const choose = (eligible: Eligible<T>, exclude: number): number => {
    for (let k = 0; k < MAX_DRAWS; k++) {
      const i = draw();
      if (i !== exclude && eligible(targets[i])) return i;
    }
    return scan(eligible, exclude);
  };

  return {
    pick(_ctx: BalanceContext, eligible: Eligible<T>): T | undefined {
      if (n === 0) return undefined;
      const a = choose(eligible, -1);
      if (a === -1) return undefined;
      const b = choose(eligible, a);
      if (b === -1) return targets[a];
      // Lower inFlight/weight wins, cross-multiplied; on a tie keep the first draw, which is
      // weighted, so an idle pool still honours weights.
      return targets[b].inFlight * weights[a] < targets[a].inFlight * weights[b] ? targets[b] : targets[a];
    },
  };
}

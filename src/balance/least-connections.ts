// Least connections (Caddy `least_conn`, Envoy least-request): the target with the fewest requests
// in flight relative to its weight, so a weight-3 target carries three times the concurrent load.
// Ties are broken at random *weighted by weight*: an idle pool (every inFlight 0, which is the usual
// state at low traffic) then still honours weights instead of splitting evenly, and a uniform
// tie-break is just the equal-weights case of it.
import type { Balanceable, BalanceContext, Eligible, Policy, PolicyOptions } from './policy.ts';

/** Least-connections policy: `pick` returns the eligible target with the lowest inFlight/weight (random weighted tie-break), undefined when none is eligible. */
export function leastConnections<T extends Balanceable>(targets: readonly T[], options: PolicyOptions = {}): Policy<T> {
  const random = options.random ?? Math.random;
  return {
    pick(_ctx: BalanceContext, eligible: Eligible<T>): T | undefined {
      let best: T | undefined;
      // Sum of the weights tied at the best ratio so far (the reservoir's total).
      let tiedWeight = 0;
      for (let i = 0; i < targets.length; i++) {
        const t = targets[i];
        if (!eligible(t)) continue;
        if (best === undefined) {
          best = t;
          tiedWeight = t.weight;
          continue;
        }
        // inFlight/weight compared by cross-multiplying: exact on integers and no division.
        const mine = t.inFlight * best.weight;
        const theirs = best.inFlight * t.weight;
        if (mine < theirs) {
          best = t;
          tiedWeight = t.weight;
        } else if (mine === theirs) {
          // Weighted reservoir sampling: one pass, no array of the tied targets, and each tied
          // target ends up kept with probability weight / (sum of tied weights).
          tiedWeight += t.weight;
          if (random() * tiedWeight < t.weight) best = t;
        }
      }
      return best;
    },
  };
}

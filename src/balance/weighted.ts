// Smooth weighted round-robin (nginx's algorithm): over any window of sum(weights) picks each
// item appears exactly `weight` times and the heavy item's picks are spread out, not bursted.
// It is the one weighted primitive: the round-robin policy and route `split` both use it.

/** Picks items in smooth weighted round-robin order, skipping those the filter rejects. */
export class SmoothWeighted<T> {
  readonly #items: readonly T[];
  readonly #weights: Float64Array;
  readonly #current: Float64Array;

  /** `weights[i]` is the weight of `items[i]` (positive). */
  constructor(items: readonly T[], weights: readonly number[]) {
    this.#items = items;
    this.#weights = Float64Array.from(weights);
    this.#current = new Float64Array(items.length);
  }

  /** Returns the item `next` would return now, without moving the rotation; undefined when none is eligible. */
  peek(eligible?: (item: T) => boolean): T | undefined {
    const items = this.#items;
    let best = -1;
    let bestValue = 0;
    for (let i = 0; i < items.length; i++) {
      if (eligible !== undefined && !eligible(items[i])) continue;
      const v = this.#current[i] + this.#weights[i];
      if (best === -1 || v > bestValue) {
        best = i;
        bestValue = v;
      }
    }
    return best === -1 ? undefined : items[best];
  }

  /** Returns the next item among those `eligible` accepts, or undefined when none does. */
  next(eligible?: (item: T) => boolean): T | undefined {
    const items = this.#items;
    const weights = this.#weights;
    const current = this.#current;
    let best = -1;
    let total = 0;
    for (let i = 0; i < items.length; i++) {
      if (eligible !== undefined && !eligible(items[i])) continue;
      current[i] += weights[i];
      total += weights[i];
      if (best === -1 || current[i] > current[best]) best = i;
    }
    if (best === -1) return undefined;
    current[best] -= total;
    return items[best];
  }
}

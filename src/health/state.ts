// The rise/fall state machine of one target's active health (ARCHITECTURE rule 4): probe results
// go in, and the caller learns only when the state flipped, so only flips are logged and counted
// (Pingora `observe_health`, HAProxy `rise`/`fall`). Pure: no I/O, timers or clock.

/** Consecutive results needed to change state. */
export interface Thresholds {
  /** Consecutive failures that turn a healthy target unhealthy (HAProxy `fall`). */
  unhealthyAfter: number;
  /** Consecutive successes that turn an unhealthy target healthy again (HAProxy `rise`). */
  healthyAfter: number;
}

/** Healthy/unhealthy with the current streak of identical probe results. */
export class HealthState {
  #thresholds: Thresholds;
  #healthy: boolean;
  // Only one streak exists at a time: a success ends a failure streak and vice versa.
  #streak = 0;
  #streakOk = true;

  constructor(thresholds: Thresholds, healthy: boolean = true) {
    this.#thresholds = checked(thresholds);
    this.#healthy = healthy;
  }

  /** Returns true while the target may receive traffic as far as active checks know. */
  get healthy(): boolean {
    return this.#healthy;
  }

  /** Returns the number of consecutive identical results so far (0 before the first). */
  get streak(): number {
    return this.#streak;
  }

  /** Returns the thresholds in force. */
  get thresholds(): Thresholds {
    return { ...this.#thresholds };
  }

  /** Records one probe result; returns true when this result flipped the state. */
  observe(ok: boolean): boolean {
    if (ok === this.#streakOk) this.#streak++;
    else {
      this.#streakOk = ok;
      this.#streak = 1;
    }
    // A result agreeing with the current state only lengthens the streak; `>=` rather than `===`
    // so that a threshold lowered mid-streak by setThresholds() flips on the next result.
    if (ok && !this.#healthy && this.#streak >= this.#thresholds.healthyAfter) {
      this.#healthy = true;
      return true;
    }
    if (!ok && this.#healthy && this.#streak >= this.#thresholds.unhealthyAfter) {
      this.#healthy = false;
      return true;
    }
    return false;
  }

  /**
   * Replaces the thresholds, keeping state and the current streak. Never flips by itself (there is
   * no result to report a flip with): a streak already past a lowered threshold flips on the next
   * agreeing result; a raised threshold simply needs more of them.
   */
  setThresholds(t: Thresholds): void {
    this.#thresholds = checked(t);
  }
}

// Thresholds come validated from config (rule 7); this only guards against a programming error
// that would make a target flip on nothing (0) or never (NaN).
function checked(t: Thresholds): Thresholds {
  for (const key of ['unhealthyAfter', 'healthyAfter'] as const) {
    if (!Number.isInteger(t[key]) || t[key] < 1) throw new RangeError(`${key} must be an integer >= 1, got ${t[key]}`);
  }
  return { unhealthyAfter: t.unhealthyAfter, healthyAfter: t.healthyAfter };
}

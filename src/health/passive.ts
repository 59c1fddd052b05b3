// Passive health (SPEC §4): a target that fails `failures` consecutive connects or resets is
// ejected for `ejectFor` even between active probes — but never the last available target of its
// pool: with nothing else to send to, a flaky target is better than a certain 503.
import type { Target } from '../upstream/target.ts';

/** Consecutive connect failures or resets that eject a target (SPEC §4). */
export const PASSIVE_FAILURES = 5;
/** How long a passively ejected target stays out (SPEC §4). */
export const PASSIVE_EJECT_MS = 30_000;

/** Reports a change of a target's availability with its reason. */
export type AvailabilityChange = (target: Target, available: boolean, reason: string) => void;

/** Counts consecutive failures per target and ejects on the threshold. */
export class PassiveHealth {
  readonly #failures: number;
  readonly #ejectFor: number;
  readonly #onChange: AvailabilityChange;

  constructor(onChange: AvailabilityChange, options: { failures?: number; ejectFor?: number } = {}) {
    this.#onChange = onChange;
    this.#failures = options.failures ?? PASSIVE_FAILURES;
    this.#ejectFor = options.ejectFor ?? PASSIVE_EJECT_MS;
  }

  /** Records a successful attempt on `target`. */
  success(target: Target): void {
    target.recordSuccess();
  }

  /**
   * Records a connect failure or reset on `target`, one of `poolTargets`; ejects it when the
   * streak reaches the threshold and another target of the pool is still available.
   */
  failure(target: Target, poolTargets: readonly Target[], reason: string): void {
    const streak = target.recordFailure();
    if (streak < this.#failures || target.ejected) return;
    if (!poolTargets.some((t) => t !== target && t.available)) return;
    const ejectFor = this.#ejectFor;
    if (target.eject(ejectFor, () => this.#onChange(target, true, `passive ejection of ${ejectFor}ms ended`))) {
      this.#onChange(target, false, `ejected for ${ejectFor}ms after ${streak} consecutive failures: ${reason}`);
    }
  }
}

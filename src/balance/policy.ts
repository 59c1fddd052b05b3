// The balancing-policy interface (ARCHITECTURE rule 2): a policy picks among targets and never
// decides eligibility itself beyond the one predicate `available`.

/** What a policy may read of a target. */
export interface Balanceable {
  readonly weight: number;
  readonly available: boolean;
  readonly inFlight: number;
}

/** What a policy may read of the request. */
export interface BalanceContext {
  readonly clientIp: string;
}

/** A balancing policy over one pool's targets (the same array on every call). */
export interface Policy<T extends Balanceable> {
  /** Returns an available target, or undefined when none is available. */
  pick(ctx: BalanceContext): T | undefined;
}

/** Builds a policy for a fixed list of targets. */
export type PolicyFactory = <T extends Balanceable>(targets: readonly T[]) => Policy<T>;

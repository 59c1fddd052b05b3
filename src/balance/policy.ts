// The balancing-policy interface (ARCHITECTURE rule 2): a policy picks among the targets the
// `eligible` predicate accepts — `available` normally, `available` and not yet tried on a retry —
// and never decides eligibility itself.

/** What a policy may read of a target. */
export interface Balanceable {
  /** Stable identity (the configured URL): what ip-hash hashes. */
  readonly url: string;
  readonly weight: number;
  readonly available: boolean;
  /** Requests in flight right now. */
  readonly inFlight: number;
}

/** What a policy may read of the request. */
export interface BalanceContext {
  /** The client address balancing uses (the trusted forwarded address behind a trusted proxy). */
  readonly clientIp: string;
}

/** Which targets may be picked for this request. */
export type Eligible<T> = (target: T) => boolean;

/** A balancing policy over one pool's targets (the same array on every call). */
export interface Policy<T extends Balanceable> {
  /** Returns an eligible target, or undefined when none is eligible. */
  pick(ctx: BalanceContext, eligible: Eligible<T>): T | undefined;
  /**
   * Returns what `pick` would return now without changing any state (for /explain). Policies
   * without state between picks omit it and `pick` is used.
   */
  peek?(ctx: BalanceContext, eligible: Eligible<T>): T | undefined;
}

/** Options every policy factory accepts; `random` is injectable so tests are deterministic. */
export interface PolicyOptions {
  /** Uniform in [0, 1); Math.random when omitted. */
  random?: () => number;
}

/** Builds a policy for a fixed list of targets. */
export type PolicyFactory = <T extends Balanceable>(targets: readonly T[], options?: PolicyOptions) => Policy<T>;

/** The eligibility used when nothing else is asked: the target is available. */
export const isAvailable = (t: Balanceable): boolean => t.available;

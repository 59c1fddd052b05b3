// A pool: the targets of one `pools:` entry, the policy that picks among them and the
// per-request settings the forwarder needs. Rebuilt on every reload; its Targets are not.
import { isAvailable } from '../balance/policy.ts';
import type { BalanceContext, Eligible, Policy, PolicyFactory } from '../balance/policy.ts';
import type { StickyPins } from '../balance/sticky.ts';
import { SmoothWeighted } from '../balance/weighted.ts';
import { GatewayError } from '../errors.ts';
import type { Target, TargetConnectOptions } from './target.ts';

/** Per-pool settings used on the request path. */
export interface PoolSettings {
  /** Upstream response-header timeout (ms): past it the client gets 504. */
  responseTimeout: number;
  /** Idle time between upstream body chunks (ms). */
  idleTimeout: number;
  /** Extra attempts on other targets. */
  retries: number;
  /** Seconds sent in `retry-after` with a 503 `no healthy upstream`. */
  retryAfter: number;
  connect: TargetConnectOptions;
  /** The pool speaks HTTP/2 to its targets (`h2: true`). */
  h2: boolean;
  /** tcp:// pools: close the connections to a target health checks evict (`close`) or let them run (`keep`). */
  onTargetDown: 'keep' | 'close';
}

/** A named pool of targets with its balancing policy. */
export class UpstreamPool {
  readonly name: string;
  readonly targets: readonly Target[];
  readonly settings: PoolSettings;
  /** Cookie affinity, when the pool has `sticky`. */
  readonly sticky: StickyPins<Target> | undefined;
  readonly #policy: Policy<Target>;

  constructor(name: string, targets: readonly Target[], policy: PolicyFactory, settings: PoolSettings, sticky?: StickyPins<Target>) {
    this.name = name;
    this.targets = targets;
    this.settings = settings;
    this.sticky = sticky;
    this.#policy = policy(targets);
  }

  /** The name of the balancing policy (for /status and /explain). */
  balance = 'round-robin';

  /** Returns the target a request would get now, without moving any balancing state; undefined when none is available. */
  preview(ctx: BalanceContext): Target | undefined {
    const p = this.#policy;
    return p.peek !== undefined ? p.peek(ctx, isAvailable) : p.pick(ctx, isAvailable);
  }

  /**
   * The first target of a request or WebSocket handshake: the sticky pin when it is available;
   * when it is not, a new pick (`onDown: rebalance`) or 503 (`onDown: fail`). Returns the error
   * to answer with when there is no target.
   */
  first(ctx: BalanceContext, stickyToken: string | undefined): Target | GatewayError {
    const sticky = this.sticky;
    if (sticky !== undefined) {
      const pinned = sticky.target(stickyToken);
      if (pinned !== undefined && pinned.available) return pinned;
      if (pinned !== undefined && sticky.options.onDown === 'fail') {
        return new GatewayError('no_healthy_upstream', `the pinned target of pool "${this.name}" is down`);
      }
    }
    return this.select(ctx) ?? new GatewayError('no_healthy_upstream', `no healthy upstream in pool "${this.name}"`);
  }

  /** Picks a target among those `eligible` accepts (available ones by default); undefined when none is. */
  select(ctx: BalanceContext, eligible: Eligible<Target> = isAvailable): Target | undefined {
    return this.#policy.pick(ctx, eligible);
  }
}

const hasAvailableTarget = (p: UpstreamPool): boolean => p.targets.some((t) => t.available);

/** Returns the pool chooser of a route (HTTP or L4) with one pool or a weighted split: by weight, preferring a pool with an available target. */
export function poolChooser(pools: readonly UpstreamPool[], weights: readonly number[]): () => UpstreamPool {
  if (pools.length === 1) {
    const only = pools[0];
    return () => only;
  }
  const sw = new SmoothWeighted(pools, weights);
  return () => sw.next(hasAvailableTarget) ?? sw.next()!;
}

// One upstream target of one pool: its connection pool and its state. State changes only
// through the methods here (ARCHITECTURE rule 3): in-flight through acquire()/release, health
// through setHealthy() (driven by the health state machine).
import { Pool as UndiciPool } from 'undici';
import type { Dispatcher } from 'undici';

/** Connection settings of a target; a change of any of them replaces its connection pool. */
export interface TargetConnectOptions {
  connectTimeout: number;
  /** Idle keep-alive time of pooled upstream connections. */
  keepAliveTimeout: number;
}

/** A target's identity within the registry: its pool's name and its configured URL. */
export function targetKey(pool: string, url: string): string {
  return pool + '\u0000' + url;
}

/** An upstream target with health, counters and a keep-alive connection pool. */
export class Target {
  /** The target URL as configured (the `target` label of metrics and logs). */
  readonly url: string;
  readonly pool: string;
  /** scheme://host:port, what undici connects to. */
  readonly origin: string;
  weight: number;

  #inFlight = 0;
  #requests = 0;
  #failures = 0;
  #healthy = true;
  #lastCheck: number | null = null;
  #dispatcher: Dispatcher | undefined;
  #connectKey = '';
  #releaseFn: () => void;

  constructor(pool: string, url: string, weight: number) {
    this.pool = pool;
    this.url = url;
    this.origin = new URL(url).origin;
    this.weight = weight;
    this.#releaseFn = () => {
      this.#inFlight--;
    };
  }

  /** True when the target may receive new requests. */
  get available(): boolean {
    return this.#healthy;
  }

  /** Requests in flight right now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Requests sent to this target since it was first configured. */
  get requests(): number {
    return this.#requests;
  }

  /** Failed attempts (connect errors, resets, timeouts, bad responses) since first configured. */
  get failures(): number {
    return this.#failures;
  }

  get healthy(): boolean {
    return this.#healthy;
  }

  /** Epoch ms of the last health check, or null when never checked. */
  get lastCheck(): number | null {
    return this.#lastCheck;
  }

  /** Counts a request in flight; returns the release function, to be called exactly once in `finally`. */
  acquire(): () => void {
    this.#inFlight++;
    this.#requests++;
    return this.#releaseFn;
  }

  /** Records a failed attempt. */
  recordFailure(): void {
    this.#failures++;
  }

  /** Sets health (only the health state machine calls this); returns true when it flipped. */
  setHealthy(healthy: boolean, at: number = Date.now()): boolean {
    this.#lastCheck = at;
    const flipped = healthy !== this.#healthy;
    this.#healthy = healthy;
    return flipped;
  }

  /** The connection pool for this target, created on first use or when `opts` changed. */
  dispatcher(opts: TargetConnectOptions): Dispatcher {
    const key = `${opts.connectTimeout}/${opts.keepAliveTimeout}`;
    if (this.#dispatcher === undefined || key !== this.#connectKey) {
      const old = this.#dispatcher;
      this.#dispatcher = new UndiciPool(this.origin, {
        connect: { timeout: opts.connectTimeout },
        keepAliveTimeout: opts.keepAliveTimeout,
        // Timeouts are set per request (pool timeouts); these are only the defaults.
        headersTimeout: 0,
        bodyTimeout: 0,
      });
      this.#connectKey = key;
      // In-flight requests on the old pool finish; it closes once they have.
      if (old !== undefined) void old.close().catch(() => {});
    }
    return this.#dispatcher;
  }

  /** Closes the connection pool gracefully (in-flight requests finish); resolves when closed. */
  async close(): Promise<void> {
    const d = this.#dispatcher;
    this.#dispatcher = undefined;
    if (d !== undefined) await d.close().catch(() => {});
  }
}

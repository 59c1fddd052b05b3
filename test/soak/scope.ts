// A task's scope: the context it runs with, the resources it registered, and the abort signal
// that ends it. Ending the scope destroys everything the task opened, whatever state it is in,
// so no client socket outlives its task and skews the gateway's connection counts.
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { ClientContext, ConnectionLine, Disposable, GatewayAddress, PoolSpec, SoakTimeouts } from './types.ts';

// Shorter than the gateway's clientIdle: the client drops an idle kept-alive connection before
// the gateway would (a request on a connection the server is closing is the client's race).
const AGENT_FREE_SOCKET_MS = 1000;
const AGENT_MAX_SOCKETS = 32;

/** What every task shares. */
export interface Shared {
  gateway: GatewayAddress;
  pools: readonly PoolSpec[];
  timeouts: SoakTimeouts;
  agents: { http: HttpAgent; https: HttpsAgent };
  /** The running gateway's connection line for a client port (ClientContext.connectionLine). */
  connectionLine: (port: number, since: number, ms: number, udp?: boolean, listener?: string) => Promise<ConnectionLine | undefined>;
}

/** Keep-alive agents for the tasks' well-behaved HTTP/1.1 requests. */
export function makeAgents(): Shared['agents'] {
  const o = { keepAlive: true, timeout: AGENT_FREE_SOCKET_MS, maxSockets: AGENT_MAX_SOCKETS };
  return { http: new HttpAgent(o), https: new HttpsAgent({ ...o, rejectUnauthorized: false }) };
}

/** A task's context and what it owns. */
export class Scope {
  readonly ctx: ClientContext;
  readonly #controller = new AbortController();
  readonly #owned = new Set<Disposable>();

  constructor(shared: Shared) {
    const owned = this.#owned;
    this.ctx = {
      gateway: shared.gateway,
      pools: shared.pools,
      timeouts: shared.timeouts,
      agents: shared.agents,
      signal: this.#controller.signal,
      connectionLine: shared.connectionLine,
      own<T extends Disposable>(r: T): T {
        owned.add(r);
        return r;
      },
    };
  }

  /** Aborts the task's waits (its deadline passed, or the run is over). */
  abort(): void {
    this.#controller.abort();
  }

  /** Aborts and destroys everything the task registered. */
  end(): void {
    this.#controller.abort();
    for (const r of this.#owned) {
      try {
        r.destroy();
      } catch {
        // already gone
      }
    }
    this.#owned.clear();
  }
}

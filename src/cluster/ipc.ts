// The primary ↔ worker protocol over node:cluster's IPC channel: the messages each side sends,
// and the primary's calls to one worker (an admin question and its answer, or a timeout). The
// other direction, a worker's questions to the primary about shared rate limits, is
// `waygate:limits` and its answer (middleware/limits/cluster.ts asks and answers them).
import type { Worker } from 'node:cluster';
import type { RoutesConfig } from '../config/load.ts';
import type { StaticConfig } from '../config/schema.ts';
import type { BoundAddresses } from '../gateway/gateway.ts';
import type { LimitAnswer, LimitAsk } from '../middleware/limits/cluster.ts';

/** How long the primary waits for a worker's answer to an admin question. */
const CALL_TIMEOUT_MS = 5_000;

/** What the primary asks a worker. */
export type Op = 'status' | 'reload' | 'explain' | 'metrics';

/** Primary → worker. */
export type ToWorker =
  | { type: 'waygate:start'; worker: number; config: StaticConfig; routes: RoutesConfig; fromDisk: boolean }
  | { type: 'waygate:call'; id: number; op: Op; arg?: unknown }
  | { type: 'waygate:drain' }
  | ({ type: 'waygate:limits-answer' } & LimitAnswer);

/** Worker → primary. */
export type FromWorker =
  | { type: 'waygate:hello' }
  | { type: 'waygate:listening'; addresses: BoundAddresses }
  | { type: 'waygate:failed'; error: string }
  | { type: 'waygate:reply'; id: number; ok: true; value: unknown }
  | { type: 'waygate:reply'; id: number; ok: false; error: string }
  | ({ type: 'waygate:limits' } & LimitAsk);

/** True for a message of this protocol (node:cluster's own messages share the channel). */
export function isFromWorker(m: unknown): m is FromWorker {
  return typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string' && (m as { type: string }).type.startsWith('waygate:');
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
  worker: number;
}

/** The primary's calls in flight, each to one worker, settled by its reply, a timeout, or its exit. */
export class WorkerCalls {
  readonly #send: (worker: Worker, m: ToWorker) => void;
  readonly #pending = new Map<number, Pending>();
  #nextCall = 1;

  /** `send` writes a message to a worker (nothing when its channel is closed). */
  constructor(send: (worker: Worker, m: ToWorker) => void) {
    this.#send = send;
  }

  /** Asks one worker; rejects when it does not answer in time or exits first. */
  call(worker: Worker, op: Op, arg?: unknown): Promise<unknown> {
    const id = this.#nextCall++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`worker ${worker.id} did not answer ${op} within ${CALL_TIMEOUT_MS} ms`));
      }, CALL_TIMEOUT_MS);
      this.#pending.set(id, { resolve, reject, timer, worker: worker.id });
      this.#send(worker, { type: 'waygate:call', id, op, arg });
    });
  }

  /** Settles the call a reply answers (a reply to a call that timed out is dropped). */
  settle(m: Extract<FromWorker, { type: 'waygate:reply' }>): void {
    const p = this.#pending.get(m.id);
    if (p === undefined) return;
    this.#pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.ok) p.resolve(m.value);
    else p.reject(new Error(m.error));
  }

  /** Rejects every call to a worker that exited. */
  exited(workerId: number): void {
    for (const [id, p] of this.#pending) {
      if (p.worker !== workerId) continue;
      this.#pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new Error(`worker ${workerId} exited`));
    }
  }
}

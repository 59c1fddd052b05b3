// `store: local` with --workers N (SPEC §8: one bucket set per instance, never ×workers): the
// buckets and in-flight counts live in the cluster primary, and every worker asks it over the
// node:cluster IPC channel. Both halves are here: PrimaryLink (a worker's side: batches its
// questions and settles the answers) and LimitHost (the primary's side: answers from a
// LocalLimits). What goes over the wire is LimitAsk / LimitAnswer, wrapped by src/cluster/ipc.ts.
//
// A worker's questions of one event-loop turn go as one message (setImmediate), so a busy worker
// sends a message per turn, not per request. The primary answers a message synchronously with a
// few Map operations per question and sweeps its tables a bounded number of buckets at a time:
// limit traffic never stalls its supervision or its admin API.
import { LocalLimits } from './local.ts';
import type { BucketSpec, InFlightCounter, TakeResult, TokenBuckets } from './stores.ts';

/** One question to the primary. */
export type LimitOp =
  | { readonly op: 'take'; readonly spec: BucketSpec; readonly key: string }
  | { readonly op: 'acquire'; readonly id: string; readonly amount: number; readonly key: string }
  | { readonly op: 'release'; readonly id: string; readonly key: string };

/** One answer, in the order of the questions: a take's result, an acquire's grant, null for a release. */
export type LimitResult = TakeResult | boolean | null;

/** Worker → primary: a batch of questions; `id` 0 when none needs an answer (releases only). */
export interface LimitAsk {
  readonly id: number;
  readonly ops: readonly LimitOp[];
}

/** Primary → worker: the answers to batch `id`. */
export interface LimitAnswer {
  readonly id: number;
  readonly results: readonly LimitResult[];
}

/** How long a worker waits for the primary's answer before the check counts as a store failure. */
export const ASK_TIMEOUT_MS = 2_000;
/** Batches a worker remembers after their timeout (to give back what a late answer granted). */
const MAX_LATE = 10_000;

interface Waiter {
  resolve(v: LimitResult): void;
  reject(e: Error): void;
}

interface Pending {
  readonly ops: readonly LimitOp[];
  readonly waiters: readonly (Waiter | undefined)[];
  readonly timer: NodeJS.Timeout;
  late: boolean;
}

/** A worker's questions to the primary: batched per event-loop turn, answered or timed out. */
export class PrimaryLink {
  #send: ((ask: LimitAsk) => void) | undefined;
  readonly #pending = new Map<number, Pending>();
  #ops: LimitOp[] = [];
  #waiters: (Waiter | undefined)[] = [];
  #needsAnswer = false;
  #flushing = false;
  #nextId = 1;
  #late = 0;

  /** Connects the link to the IPC channel (cluster/worker.ts, once). */
  attach(send: (ask: LimitAsk) => void): void {
    this.#send = send;
  }

  /** True once attach() ran: this process is a cluster worker. */
  get attached(): boolean {
    return this.#send !== undefined;
  }

  /** Asks one question; resolves with its answer, rejects when the primary does not answer in time. */
  ask(op: LimitOp): Promise<LimitResult> {
    return new Promise((resolve, reject) => {
      this.#queue(op, { resolve, reject });
    });
  }

  /** Tells the primary something that needs no answer (a release). */
  tell(op: LimitOp): void {
    this.#queue(op, undefined);
  }

  #queue(op: LimitOp, w: Waiter | undefined): void {
    this.#ops.push(op);
    this.#waiters.push(w);
    if (w !== undefined) this.#needsAnswer = true;
    if (!this.#flushing) {
      this.#flushing = true;
      setImmediate(() => this.#flush());
    }
  }

  #flush(): void {
    this.#flushing = false;
    const ops = this.#ops;
    const waiters = this.#waiters;
    const needsAnswer = this.#needsAnswer;
    this.#ops = [];
    this.#waiters = [];
    this.#needsAnswer = false;
    const send = this.#send;
    if (send === undefined) {
      const err = new Error('not a cluster worker: no primary to ask');
      for (const w of waiters) w?.reject(err);
      return;
    }
    if (!needsAnswer) {
      send({ id: 0, ops });
      return;
    }
    const id = this.#nextId++;
    const timer = setTimeout(() => this.#timedOut(id), ASK_TIMEOUT_MS);
    // A question never keeps a closing worker alive: its gateway is gone, the answer is moot.
    timer.unref();
    this.#pending.set(id, { ops, waiters, timer, late: false });
    send({ id, ops });
  }

  #timedOut(id: number): void {
    const p = this.#pending.get(id);
    if (p === undefined) return;
    const err = new Error(`the cluster primary did not answer within ${ASK_TIMEOUT_MS} ms`);
    for (const w of p.waiters) w?.reject(err);
    // Kept, so that an acquire the primary granted after all is given back when its answer comes.
    p.late = true;
    this.#late++;
    if (this.#late > MAX_LATE) {
      for (const [lateId, lp] of this.#pending) {
        if (!lp.late) continue;
        this.#pending.delete(lateId);
        this.#late--;
        if (this.#late <= MAX_LATE / 2) break;
      }
    }
  }

  /** Settles the batch an answer is for (an answer to a forgotten batch is dropped). */
  settle(a: LimitAnswer): void {
    const p = this.#pending.get(a.id);
    if (p === undefined) return;
    this.#pending.delete(a.id);
    clearTimeout(p.timer);
    if (p.late) {
      this.#late--;
      p.ops.forEach((op, i) => {
        if (op.op === 'acquire' && a.results[i] === true) this.tell({ op: 'release', id: op.id, key: op.key });
      });
      return;
    }
    p.waiters.forEach((w, i) => w?.resolve(a.results[i] ?? null));
  }

  /** Fails every question still waiting (the gateway closes). */
  close(): void {
    const err = new Error('the limit store is closed');
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      if (!p.late) for (const w of p.waiters) w?.reject(err);
    }
    this.#pending.clear();
    this.#late = 0;
  }
}

/**
 * This process's link to the primary. One per process because the IPC channel is: attached by
 * cluster/worker.ts before the Gateway starts, used by every LimitStores the worker makes.
 */
export const primaryLink = new PrimaryLink();

/** A bucket set kept by the primary: each take is a question to it. */
export class ClusterBuckets implements TokenBuckets {
  readonly #link: PrimaryLink;
  readonly #spec: BucketSpec;

  constructor(link: PrimaryLink, spec: BucketSpec) {
    this.#link = link;
    this.#spec = spec;
  }

  take(key: string): Promise<TakeResult> {
    return this.#link.ask({ op: 'take', spec: this.#spec, key }) as Promise<TakeResult>;
  }

  peek(): undefined {
    return undefined;
  }
}

/** An in-flight counter kept by the primary. */
export class ClusterInFlight implements InFlightCounter {
  readonly #link: PrimaryLink;
  readonly #id: string;
  readonly #amount: number;

  constructor(link: PrimaryLink, id: string, amount: number) {
    this.#link = link;
    this.#id = id;
    this.#amount = amount;
  }

  acquire(key: string): Promise<boolean> {
    return this.#link.ask({ op: 'acquire', id: this.#id, amount: this.#amount, key }) as Promise<boolean>;
  }

  release(key: string): void {
    this.#link.tell({ op: 'release', id: this.#id, key });
  }

  peek(): undefined {
    return undefined;
  }
}

/** The primary's side: one LocalLimits for the whole instance, and what each worker holds. */
export class LimitHost {
  readonly #limits: LocalLimits;
  /** Worker id → "counter id \0 key" → requests it has in flight there. */
  readonly #held = new Map<number, Map<string, number>>();

  /** `limits`: the tables (a LocalLimits with its sweep timer by default). */
  constructor(limits: LocalLimits = new LocalLimits()) {
    this.#limits = limits;
  }

  /** Answers one worker's batch, synchronously; undefined when it needs no answer. */
  answer(worker: number, ask: LimitAsk): LimitAnswer | undefined {
    const results: LimitResult[] = new Array<LimitResult>(ask.ops.length);
    for (let i = 0; i < ask.ops.length; i++) results[i] = this.#one(worker, ask.ops[i]);
    return ask.id === 0 ? undefined : { id: ask.id, results };
  }

  #one(worker: number, op: LimitOp): LimitResult {
    switch (op.op) {
      case 'take': {
        const r = this.#limits.buckets(op.spec).take(op.key);
        // The set's result object is reused by its next take: copy it out.
        return { allowed: r.allowed, remaining: r.remaining, resetMs: r.resetMs };
      }
      case 'acquire': {
        const ok = this.#limits.inFlight(op.id, op.amount).acquire(op.key);
        if (ok) this.#hold(worker, `${op.id}\0${op.key}`, 1);
        return ok;
      }
      case 'release': {
        // Only what this worker holds: a stray release never frees another worker's count.
        if (this.#hold(worker, `${op.id}\0${op.key}`, -1)) this.#limits.inFlight(op.id, 1).release(op.key);
        return null;
      }
    }
  }

  /** Adds `delta` to what `worker` holds under `k`; false when a release found nothing held. */
  #hold(worker: number, k: string, delta: 1 | -1): boolean {
    let held = this.#held.get(worker);
    if (held === undefined) {
      if (delta < 0) return false;
      held = new Map();
      this.#held.set(worker, held);
    }
    const n = (held.get(k) ?? 0) + delta;
    if (n < 0) return false;
    if (n === 0) held.delete(k);
    else held.set(k, n);
    return true;
  }

  /** Gives back every count a worker that exited still held (its requests ended with it). */
  forget(worker: number): void {
    const held = this.#held.get(worker);
    this.#held.delete(worker);
    if (held === undefined) return;
    for (const [k, n] of held) {
      const at = k.indexOf('\0');
      const counter = this.#limits.inFlight(k.slice(0, at), 1);
      const key = k.slice(at + 1);
      for (let i = 0; i < n; i++) counter.release(key);
    }
  }

  /** Stops the sweep timer. */
  close(): void {
    this.#limits.close();
  }
}

// The cluster primary (SPEC §1 `--workers N|auto`): forks N workers with node:cluster and
// supervises them (a worker that dies is replaced, with a backoff for quick deaths in a row). It
// binds no public listener: it serves the admin API itself (one address, one answer) from what
// its workers report over IPC (ipc.ts, metrics.ts), and fans reloads and the drain out to them.
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import type { Server } from 'node:http';
import { availableParallelism } from 'node:os';
import { Registry } from 'prom-client';
import { adminAuth, createAdminServer } from '../admin/admin.ts';
import type { AdminSource, ExplainQuery } from '../admin/admin.ts';
import type { RoutesConfig } from '../config/load.ts';
import type { StaticConfig } from '../config/schema.ts';
import { ensureCertificates } from '../gateway/certs.ts';
import type { BoundAddresses } from '../gateway/gateway.ts';
import { LimitHost } from '../middleware/limits/cluster.ts';
import type { Logger } from '../observe/logger.ts';
import { closeGracefully, listen } from '../server/listener.ts';
import { WorkerCalls, isFromWorker } from './ipc.ts';
import type { FromWorker, ToWorker } from './ipc.ts';
import { ClusterMetrics } from './metrics.ts';
import type { MetricJson } from './metrics.ts';
import { reserveUdpPorts } from './udp-ports.ts';

/** First respawn delay after a worker died; doubles per quick death in a row. */
const RESPAWN_MIN_MS = 100;
/** The respawn delay never grows past this: a crash loop costs one fork per 10 s, never a spin. */
const RESPAWN_MAX_MS = 10_000;
/** A worker that lived this long was healthy: the next death starts the backoff over. */
const STABLE_MS = 10_000;
/** Beyond timeouts.shutdown, how long a draining worker gets before it is killed. */
const DRAIN_SLACK_MS = 5_000;

/** Returns the number of worker processes for `workers` (`auto`: one per CPU the process may use). */
export function workerCount(workers: number | 'auto'): number {
  return workers === 'auto' ? availableParallelism() : workers;
}

/** What the primary starts from: the validated config and routes, the worker count, loggers. */
export interface ClusterOptions {
  config: StaticConfig;
  routes: RoutesConfig;
  workers: number;
  log: Logger;
  /** Writes at info whatever the level (worker deaths, reload results). */
  lifecycle: Logger;
  env: NodeJS.ProcessEnv;
}

interface Slot {
  readonly index: number;
  worker: Worker | undefined;
  state: 'starting' | 'ready' | 'draining' | 'dead';
  startedAt: number;
  /** Quick deaths in a row, for the respawn backoff. */
  streak: number;
  respawn: NodeJS.Timeout | undefined;
}

/** The cluster primary: forks, supervises and speaks for the workers; it is the admin API's source. */
export class ClusterPrimary implements AdminSource {
  readonly #o: ClusterOptions;
  readonly #slots: Slot[] = [];
  readonly #calls = new WorkerCalls((worker, m) => this.#send(worker, m));
  readonly #metrics: ClusterMetrics;
  /** The instance's `store: local` buckets and in-flight counts, shared by every worker. */
  readonly #limits = new LimitHost();
  #admin: Server | undefined;
  #addresses: BoundAddresses = { http: null, https: null, admin: null, tcp: {}, udp: {} };
  #addressesKnown = false;
  #closing: Promise<void> | undefined;
  #reloading: Promise<{ ok: boolean } & Record<string, unknown>> | undefined;
  #explainTurn = 0;
  /** Settled by the start phase: every worker listening, or the first failure. */
  #startup: { resolve(): void; reject(e: Error): void } | undefined;

  private constructor(o: ClusterOptions) {
    this.#o = o;
    this.#metrics = new ClusterMetrics(o.log);
  }

  /**
   * Forks the workers and resolves once every one listens and the admin API is bound; on any
   * failure, stops what was started and rejects with the first worker's error.
   */
  static async start(options: ClusterOptions): Promise<ClusterPrimary> {
    // UDP listeners on port 0: one port for every worker, picked here (udp-ports.ts).
    const udpPorts = await reserveUdpPorts(options.config);
    const o: ClusterOptions = { ...options, config: udpPorts.config };
    const p = new ClusterPrimary(o);
    // Round-robin in the primary, not the OS. With SCHED_NONE the kernel hands a shared accept
    // socket's connections to whichever worker wakes first, which Node's docs report as badly
    // skewed (70% on two of eight workers). On this 2-core VM (2 workers, wrk -c64 keep-alive,
    // shared machine) both spread evenly enough and their req/s were within the noise, so the
    // primary's accept-and-pass, paid once per connection and amortized by keep-alive, buys an
    // even, predictable spread. NODE_CLUSTER_SCHED_POLICY=none still opts out.
    if (o.env.NODE_CLUSTER_SCHED_POLICY === undefined) cluster.schedulingPolicy = cluster.SCHED_RR;
    // 'advanced' (structured clone): the routes carry Maps and the metrics carry +Inf bucket bounds.
    cluster.setupPrimary({ serialization: 'advanced' });
    // Workers generating the self-signed certificate side by side could read each other's half
    // written pair; one generation before forking leaves them nothing to generate.
    const https = o.config.listeners.https.address;
    if (https !== null) await ensureCertificates(o.config.certsDir, o.log);
    const admin = o.config.admin.address;
    const adminOpts = admin === null ? {} : adminAuth(admin, o.env);
    const started = new Promise<void>((resolve, reject) => (p.#startup = { resolve, reject }));
    for (let i = 0; i < o.workers; i++) {
      const slot: Slot = { index: i, worker: undefined, state: 'starting', startedAt: 0, streak: 0, respawn: undefined };
      p.#slots.push(slot);
      p.#fork(slot, false);
    }
    try {
      await started.finally(() => udpPorts.release());
      if (admin !== null) {
        p.#admin = createAdminServer(p, adminOpts);
        p.#addresses.admin = await listen(p.#admin, admin);
      }
    } catch (err) {
      await p.close(0);
      throw err;
    }
    return p;
  }

  /** The public addresses the workers share, and the primary's admin address. */
  get addresses(): BoundAddresses {
    return this.#addresses;
  }

  /** The workers' process ids (live ones only). */
  get pids(): number[] {
    return this.#slots.flatMap((s) => (s.worker?.process.pid === undefined || s.state === 'dead' ? [] : [s.worker.process.pid]));
  }

  #fork(slot: Slot, replacement: boolean): void {
    slot.respawn = undefined;
    const worker = cluster.fork();
    slot.worker = worker;
    slot.state = 'starting';
    slot.startedAt = Date.now();
    const id = worker.id;
    this.#o.log.info({ worker: id, pid: worker.process.pid, slot: slot.index }, replacement ? 'worker replacing a dead one' : 'worker forked');
    worker.on('message', (m: unknown) => {
      if (isFromWorker(m)) this.#onMessage(slot, worker, m);
    });
    worker.on('exit', (code: number | null, signal: string | null) => this.#onExit(slot, worker, code, signal));
    // A send on a channel that just closed errors here; the 'exit' handler does the cleanup.
    worker.on('error', (err: Error) => this.#o.log.debug({ worker: id, err: err.message }, 'worker channel error'));
  }

  #onMessage(slot: Slot, worker: Worker, m: FromWorker): void {
    if (slot.worker !== worker) return;
    switch (m.type) {
      case 'waygate:hello':
        // Sent when the worker listens on its channel: a message sent before that could be lost,
        // a drain included.
        if (this.#closing !== undefined) this.#send(worker, { type: 'waygate:drain' });
        else this.#send(worker, { type: 'waygate:start', worker: worker.id, config: this.#o.config, routes: this.#o.routes, fromDisk: this.#startup === undefined });
        return;
      case 'waygate:listening':
        this.#listening(slot, worker, m.addresses);
        return;
      case 'waygate:failed':
        if (this.#startup !== undefined) {
          const s = this.#startup;
          this.#startup = undefined;
          s.reject(new Error(m.error));
        } else this.#o.log.error({ worker: worker.id, pid: worker.process.pid, err: m.error }, 'replacement worker failed to start');
        return;
      case 'waygate:reply':
        this.#calls.settle(m);
        return;
      case 'waygate:limits': {
        // Answered at once, a few Map operations per question: it never waits on anything.
        const a = this.#limits.answer(worker.id, m);
        if (a !== undefined) this.#send(worker, { type: 'waygate:limits-answer', ...a });
        return;
      }
    }
  }

  #listening(slot: Slot, worker: Worker, addresses: BoundAddresses): void {
    if (this.#closing !== undefined) return;
    slot.state = 'ready';
    if (!this.#addressesKnown) {
      this.#addressesKnown = true;
      this.#addresses.http = addresses.http;
      this.#addresses.https = addresses.https;
      this.#addresses.tcp = addresses.tcp;
      this.#addresses.udp = addresses.udp;
    } else if (addresses.http !== this.#addresses.http || addresses.https !== this.#addresses.https || !sameAddresses(addresses.tcp, this.#addresses.tcp) || !sameAddresses(addresses.udp, this.#addresses.udp)) {
      // node:cluster binds each listener once in the primary and shares it, so this means a bug.
      this.#o.log.error({ worker: worker.id, addresses, expected: this.#addresses }, 'worker bound different addresses than its siblings');
    }
    this.#o.log.info({ worker: worker.id, pid: worker.process.pid, http: addresses.http, https: addresses.https, tcp: addresses.tcp, udp: addresses.udp }, 'worker listening');
    if (this.#startup !== undefined && this.#slots.every((s) => s.state === 'ready')) {
      const s = this.#startup;
      this.#startup = undefined;
      s.resolve();
    }
  }

  #onExit(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    // An exited worker's counters stay in the sums; its calls in flight fail now.
    this.#metrics.retire(worker.id);
    this.#calls.exited(worker.id);
    // Its requests in flight ended with it.
    this.#limits.forget(worker.id);
    if (slot.worker !== worker) return;
    const draining = slot.state === 'draining';
    slot.state = 'dead';
    if (this.#closing !== undefined || draining) return;
    const info = { worker: worker.id, pid: worker.process.pid, code, signal };
    if (this.#startup !== undefined) {
      const s = this.#startup;
      this.#startup = undefined;
      s.reject(new Error(`worker ${worker.id} exited (code ${code}, signal ${signal}) before listening`));
      return;
    }
    const lived = Date.now() - slot.startedAt;
    slot.streak = lived >= STABLE_MS ? 0 : slot.streak + 1;
    const delay = Math.min(RESPAWN_MAX_MS, RESPAWN_MIN_MS * 2 ** Math.max(0, slot.streak - 1));
    this.#o.log.error({ ...info, livedMs: lived, respawnInMs: delay }, 'worker died; replacing it');
    slot.respawn = setTimeout(() => this.#fork(slot, true), delay);
  }

  #send(worker: Worker, m: ToWorker): void {
    if (!worker.isConnected()) return;
    worker.send(m, (err: Error | null) => {
      if (err !== null) this.#o.log.debug({ worker: worker.id, err: err.message }, 'message to worker not sent');
    });
  }

  /** The workers that run a gateway and can answer. */
  #serving(): { slot: Slot; worker: Worker }[] {
    return this.#slots.flatMap((slot) => (slot.worker !== undefined && (slot.state === 'ready' || slot.state === 'draining') && slot.worker.isConnected() ? [{ slot, worker: slot.worker }] : []));
  }

  /** Ready when every worker serves and the primary is not draining. */
  ready(): boolean {
    return this.#closing === undefined && this.#slots.length > 0 && this.#slots.every((s) => s.state === 'ready');
  }

  /** Every serving worker's registry, aggregated by prom-client (counters and histograms summed). */
  readonly metrics = {
    text: async (): Promise<string> => {
      // Asked over our own IPC call, not AggregatorRegistry.clusterMetrics(): that one asks every
      // connected worker, so one still booting (no handler yet) times the whole scrape out, and it
      // answers from prom-client's global registry, not each Gateway's own.
      const answers = await Promise.all(this.#serving().map(({ worker }) => this.#calls.call(worker, 'metrics').then(
        (a) => this.#metrics.scraped(worker.id, a),
        () => undefined,
      )));
      const sets: MetricJson[][] = answers.filter((a) => a !== undefined);
      return this.#metrics.text(sets);
    },
    contentType: Registry.PROMETHEUS_CONTENT_TYPE as string,
  };

  /** `{ workers: [{ id, pid, state, status }] }`, each status the worker's own Gateway status. */
  async status(): Promise<unknown> {
    const workers = await Promise.all(this.#slots.map(async (slot) => {
      const w = slot.worker;
      const serving = w !== undefined && (slot.state === 'ready' || slot.state === 'draining') && w.isConnected();
      let status: unknown = null;
      if (serving) status = await this.#calls.call(w, 'status').catch((err: Error) => ({ error: err.message }));
      return { id: w?.id ?? null, pid: slot.state === 'dead' ? null : (w?.process.pid ?? null), state: slot.state, status };
    }));
    return { workers };
  }

  /** Reloads every serving worker; `ok` only when every one accepted the new routes. Concurrent calls share one. */
  reload(): Promise<{ ok: boolean } & Record<string, unknown>> {
    this.#reloading ??= this.#doReload().finally(() => {
      this.#reloading = undefined;
    });
    return this.#reloading;
  }

  async #doReload(): Promise<{ ok: boolean } & Record<string, unknown>> {
    const serving = this.#serving().filter(({ slot }) => slot.state === 'ready');
    const workers = await Promise.all(serving.map(async ({ worker }) => {
      const r = await this.#calls.call(worker, 'reload').catch((err: Error) => ({ ok: false, errors: [err.message] }));
      return { id: worker.id, pid: worker.process.pid, ...(r as { ok: boolean }) };
    }));
    const ok = workers.length > 0 && workers.every((w) => w.ok);
    const errors = [...new Set(workers.flatMap((w) => ((w as { errors?: unknown }).errors as string[] | undefined) ?? []))];
    const result = ok ? { ok, workers } : { ok, errors: errors.length > 0 ? errors : ['no worker is serving'], workers };
    if (ok) this.#o.lifecycle.info({ workers: workers.map((w) => w.id) }, 'workers reloaded');
    else this.#o.log.error({ errors: result.errors }, 'reload failed in some workers');
    return result;
  }

  /** Explains with one worker (round-robin): every worker holds the same routes. */
  async explain(q: ExplainQuery): Promise<unknown> {
    const serving = this.#serving().filter(({ slot }) => slot.state === 'ready');
    if (serving.length === 0) throw new Error('no worker is ready');
    const { worker } = serving[this.#explainTurn++ % serving.length];
    return this.#calls.call(worker, 'explain', q);
  }

  /**
   * Drains: readiness fails, no worker is replaced any more, every worker closes its listeners
   * and finishes in-flight requests (timeouts.shutdown, or `graceMs`); one still running after
   * that plus a slack is killed. The admin API closes last. Resolves when every worker exited.
   */
  close(graceMs: number = this.#o.config.timeouts.shutdown): Promise<void> {
    this.#closing ??= this.#doClose(graceMs);
    return this.#closing;
  }

  async #doClose(graceMs: number): Promise<void> {
    const exits: Promise<void>[] = [];
    for (const slot of this.#slots) {
      clearTimeout(slot.respawn);
      const w = slot.worker;
      if (w === undefined || slot.state === 'dead' || w.process.exitCode !== null || w.process.signalCode !== null) continue;
      exits.push(new Promise<void>((r) => w.once('exit', () => r())));
      slot.state = 'draining';
      if (w.isConnected()) this.#send(w, { type: 'waygate:drain' });
      else w.process.kill('SIGTERM');
    }
    const deadline = setTimeout(() => {
      for (const s of this.#slots) {
        const w = s.worker;
        if (w !== undefined && w.process.exitCode === null && w.process.signalCode === null) {
          this.#o.log.warn({ worker: w.id, pid: w.process.pid }, 'worker still draining after the deadline; killing it');
          w.process.kill('SIGKILL');
        }
      }
    }, graceMs + DRAIN_SLACK_MS);
    await Promise.all(exits);
    clearTimeout(deadline);
    this.#limits.close();
    if (this.#admin !== undefined) await closeGracefully(this.#admin, 0);
  }
}

/** True when two listener-name → address maps are the same. */
function sameAddresses(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

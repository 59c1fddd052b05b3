// The soak's side of the upstream host (upstream-host.ts): spawns it, hands it the TLS
// material and timeouts, and asks it how many sockets the gateway holds open to the upstreams
// and which faults it actually served.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { FromHost, ToHost } from './upstream-host.ts';
import type { PoolSpec, SoakTimeouts } from './types.ts';

const HOST_ENTRY = fileURLToPath(new URL('upstream-host.ts', import.meta.url));
const START_TIMEOUT_MS = 20_000;
const STATS_TIMEOUT_MS = 5_000;

/** What the upstream host reports. */
export interface UpstreamStats {
  /** Sockets open on the upstream servers (every one from the gateway). */
  sockets: number;
  /** The same, by the server's port (a target URL's port). */
  byPort: Record<string, number>;
  /** Faults served, by "fault/variant". */
  hits: Record<string, number>;
}

/** A running upstream host. */
export class UpstreamHost {
  readonly pools: PoolSpec[];
  readonly #proc: ChildProcess;
  readonly #stderr: { text: string };
  #nextId = 1;
  readonly #waiting = new Map<number, (s: UpstreamStats) => void>();

  private constructor(proc: ChildProcess, pools: PoolSpec[], stderr: { text: string }) {
    this.#proc = proc;
    this.pools = pools;
    this.#stderr = stderr;
    proc.on('message', (m: FromHost) => {
      if (m.type !== 'stats') return;
      this.#waiting.get(m.id)?.({ sockets: m.sockets, byPort: m.byPort, hits: m.hits });
      this.#waiting.delete(m.id);
    });
  }

  /** Starts the host and its faults; resolves once every pool is listening. */
  static async start(o: { caFile: string; cert: string; key: string; timeouts: SoakTimeouts; dir: string }): Promise<UpstreamHost> {
    const proc = spawn(process.execPath, [HOST_ENTRY], { stdio: ['ignore', 'inherit', 'pipe', 'ipc'] });
    const reap = (): void => void proc.kill('SIGKILL');
    process.once('exit', reap);
    proc.once('exit', () => process.off('exit', reap));
    const stderr = { text: '' };
    proc.stderr!.on('data', (c: Buffer) => {
      if (stderr.text.length < 1_000_000) stderr.text += c;
    });
    const pools = await new Promise<PoolSpec[]>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`upstream host not ready within ${START_TIMEOUT_MS} ms: ${stderr.text}`)), START_TIMEOUT_MS);
      const settle = (f: () => void): void => {
        clearTimeout(timer);
        f();
      };
      proc.on('message', (m: FromHost) => {
        if (m.type === 'ready') settle(() => resolve(m.pools));
        else if (m.type === 'failed') settle(() => reject(new Error(`upstream host failed to start: ${m.error}`)));
      });
      proc.once('exit', (code) => settle(() => reject(new Error(`upstream host exited (${code}) before it was ready: ${stderr.text}`))));
      proc.send({ type: 'start', ...o } satisfies ToHost);
    }).catch((err: Error) => {
      proc.kill('SIGKILL');
      throw err;
    });
    return new UpstreamHost(proc, pools, stderr);
  }

  /** Whether the host is still running (it exiting is a harness failure, not the gateway's). */
  get alive(): boolean {
    return this.#proc.exitCode === null && this.#proc.signalCode === null;
  }

  /** The host's stderr so far. */
  stderr(): string {
    return this.#stderr.text;
  }

  /** Asks the host for its socket count and fault counts. */
  stats(): Promise<UpstreamStats> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new Error('upstream host did not answer a stats request'));
      }, STATS_TIMEOUT_MS);
      this.#waiting.set(id, (s) => {
        clearTimeout(timer);
        resolve(s);
      });
      this.#proc.send({ type: 'stats', id } satisfies ToHost);
    });
  }

  /** Stops the host (its servers and every socket). */
  async close(): Promise<void> {
    if (!this.alive) return;
    const exited = new Promise<void>((r) => this.#proc.once('exit', () => r()));
    this.#proc.send({ type: 'close' } satisfies ToHost);
    const timer = setTimeout(() => this.#proc.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }
}

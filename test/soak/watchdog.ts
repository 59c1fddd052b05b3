// Watches waygate during the chaos from outside: GET /healthz on the admin listener every
// second and VmRSS. A process that stops answering for HANG_MS (a blocked event loop: a busy
// loop, a runaway allocation) is a failure as grave as an exit: the watchdog kills it, so the
// soak records it like a crash, with the tasks that started just before it stopped answering.
import { readFile } from 'node:fs/promises';
import { sleep } from './kit/time.ts';
import type { WaygateProcess } from './waygate-process.ts';

/** How often the watchdog pings. */
const PING_EVERY_MS = 1000;
/** How long one ping may take. */
const PING_TIMEOUT_MS = 2000;
/** Unresponsive this long (every timeout of the soak is shorter) counts as hung. */
export const HANG_MS = 8000;

/** What the watchdog saw of one process. */
export interface Hang {
  /** When the first unanswered ping went out (ms since the epoch). */
  since: number;
  /** RSS when it was declared hung (bytes). */
  rss: number;
}

/** Watches one waygate process until stopped or it exits. */
export class Watchdog {
  /** Highest RSS seen (bytes). */
  peakRss = 0;
  /** The last RSS read (bytes). */
  rss = 0;
  /** Every RSS read: [ms since the epoch, bytes]. */
  readonly samples: [number, number][] = [];
  /** Set when the process hung (and was killed). */
  hang: Hang | undefined;
  #stopped = false;
  readonly #done: Promise<void>;

  constructor(gw: WaygateProcess, onHang: (gw: WaygateProcess) => void) {
    this.#done = this.#watch(gw, onHang);
  }

  /** Stops watching. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#done;
  }

  async #watch(gw: WaygateProcess, onHang: (gw: WaygateProcess) => void): Promise<void> {
    let since: number | undefined;
    while (!this.#stopped && gw.alive) {
      const sent = Date.now();
      const ok = await gw.adminGet('/healthz', PING_TIMEOUT_MS).then((r) => r.status === 200, () => false);
      const rss = await readFile(`/proc/${gw.pid}/status`, 'utf8').then((s) => Number(/VmRSS:\s+(\d+) kB/.exec(s)?.[1] ?? 0) * 1024, () => 0);
      this.peakRss = Math.max(this.peakRss, rss);
      if (rss > 0) {
        this.rss = rss;
        this.samples.push([Date.now(), rss]);
      }
      if (ok) since = undefined;
      else since ??= sent;
      if (since !== undefined && Date.now() - since >= HANG_MS && gw.alive) {
        this.hang = { since, rss };
        onHang(gw);
        gw.kill();
        await gw.exited();
        return;
      }
      await sleep(Math.max(0, PING_EVERY_MS - (Date.now() - sent)));
    }
  }
}

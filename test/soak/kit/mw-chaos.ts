// The soak's Redis in trouble during the chaos (SPEC §8 `store: redis`, failMode open): paused
// (SIGSTOP, so every check waits for redis.timeout) at 15 % of the run for up to 2 s, killed at
// 40 %, started again at 65 %. Each time, a burst under a fresh key on the Redis route must get
// nothing but 200s (no limit while the store cannot answer, and never a 503 or 429) and move
// waygate_rate_limit_store_failures_total; while Redis is down, waygate_redis_up says 0, and once
// it runs again, 1. What is seen becomes checks; stop() ends the plan early (a short replay) and
// leaves Redis running.
import type { Check } from '../checks.ts';
import type { Shared } from '../scope.ts';
import { Scope } from '../scope.ts';
import type { WaygateProcess } from '../waygate-process.ts';
import { KEY_HEADER, MW, middlewareOf } from './mw.ts';
import { REDIS_UP_MS, metricSum, redisUp } from './mw-checks.ts';
import { burst } from './mw-http.ts';
import type { SoakRedis } from './mw-redis.ts';
import { pollUntil, sleep } from './time.ts';

const PAUSE_AT = 0.15;
const PAUSE_MAX_MS = 2000;
const KILL_AT = 0.4;
const RESTART_AT = 0.65;
/** How long waygate may take to notice Redis died (the connection's close). */
const DOWN_SEEN_MS = 5000;
const FAILURES = 'waygate_rate_limit_store_failures_total';

/** Drives Redis through the chaos and reports what waygate did about it. */
export class MwChaos {
  readonly checks: Check[] = [];
  readonly #redis: SoakRedis;
  readonly #gw: () => WaygateProcess;
  readonly #shared: () => Shared;
  readonly #log: (line: string) => void;
  readonly #stop = new AbortController();
  #done: Promise<void> | undefined;

  /** `shared`: a fresh Shared for each probe (agents of its own). */
  constructor(redis: SoakRedis, gw: () => WaygateProcess, shared: () => Shared, log: (line: string) => void) {
    this.#redis = redis;
    this.#gw = gw;
    this.#shared = shared;
    this.#log = log;
  }

  /** Starts the plan over a chaos of `ms`, from now. */
  start(ms: number): void {
    this.#done = this.#run(ms).catch((err: Error) => void this.checks.push({ name: 'Redis outage plan', ok: false, detail: `the plan itself failed: ${err.stack ?? err.message}` }));
  }

  /** Ends the plan (what is left of it is skipped), leaves Redis running, and returns the checks. */
  async stop(): Promise<Check[]> {
    this.#stop.abort();
    await this.#done;
    this.#redis.resume();
    if (this.#redis.state === 'down') await this.#redis.restart();
    return this.checks;
  }

  async #run(ms: number): Promise<void> {
    const t0 = Date.now();
    const signal = this.#stop.signal;
    const at = async (fraction: number): Promise<boolean> => {
      await sleep(Math.max(0, t0 + ms * fraction - Date.now()), signal);
      return !signal.aborted;
    };
    if (!(await at(PAUSE_AT))) return;
    const pauseMs = Math.min(PAUSE_MAX_MS, ms * 0.1);
    this.#log(`Redis paused (SIGSTOP) for ${pauseMs} ms`);
    const pausedAt = Date.now();
    this.#redis.pause();
    try {
      await this.#open('Redis paused (SIGSTOP): requests flow, each check given up at redis.timeout');
    } finally {
      await sleep(Math.max(0, pausedAt + pauseMs - Date.now()), signal);
      this.#redis.resume();
    }
    if (!(await at(KILL_AT))) return;
    this.#log('Redis killed (SIGKILL)');
    await this.#redis.kill();
    const killed = Date.now();
    const down = await pollUntil(async () => (await redisUp(this.#gw()).catch(() => NaN)) === 0, DOWN_SEEN_MS, 100);
    this.checks.push({ name: 'waygate_redis_up says Redis is down', ok: down, detail: down ? `0 within ${Date.now() - killed} ms of the kill` : `still ${await redisUp(this.#gw()).catch((e: Error) => e.message)} ${DOWN_SEEN_MS} ms after the kill` });
    await this.#open('Redis down (killed): requests flow');
    if (!(await at(RESTART_AT))) return;
    this.#log('Redis started again');
    await this.#redis.restart();
    const restarted = Date.now();
    const up = await pollUntil(async () => (await redisUp(this.#gw()).catch(() => NaN)) === 1, REDIS_UP_MS, 100);
    this.checks.push({ name: 'waygate_redis_up says Redis is back', ok: up, detail: up ? `1 within ${Date.now() - restarted} ms of the restart` : `still ${await redisUp(this.#gw()).catch((e: Error) => e.message)} ${REDIS_UP_MS} ms after the restart` });
  }

  /** A burst of 3 × burst under a fresh key: all 200, and the store failures counter moved by at least as many. */
  async #open(name: string): Promise<void> {
    const shared = this.#shared();
    const pool = shared.pools.find((p) => p.name === MW.redis);
    if (pool === undefined) return;
    const m = middlewareOf(pool, 'rateLimit');
    const n = (m.options as { burst: number }).burst * 3;
    const gw = this.#gw();
    const scope = new Scope(shared);
    try {
      const before = await metricSum(gw, FAILURES, { middleware: m.name, fail_mode: 'open' });
      const t0 = Date.now();
      const got = await burst(scope.ctx, 'h2', Array.from({ length: n }, () => ({ method: 'GET', path: `/${pool.name}/echo`, headers: { [KEY_HEADER]: `outage-${t0}` } })));
      const ms = Date.now() - t0;
      const after = await metricSum(gw, FAILURES, { middleware: m.name, fail_mode: 'open' });
      const statuses: Record<string, number> = {};
      for (const g of got) {
        const k = g instanceof Error ? g.message : String(g.status);
        statuses[k] = (statuses[k] ?? 0) + 1;
      }
      const text = Object.entries(statuses).map(([k, v]) => `${k} ×${v}`).join(', ');
      const ok = statuses['200'] === n && after - before >= n;
      this.checks.push({ name, ok, detail: `${n} requests under one fresh key (bucket ${(m.options as { burst: number }).burst}) in ${ms} ms: ${text}; ${FAILURES}{middleware="${m.name}",fail_mode="open"} ${before} → ${after}${ok ? '' : ` (expected all 200 and +${n} at least)`}` });
    } finally {
      scope.end();
      shared.agents.http.destroy();
      shared.agents.https.destroy();
    }
  }
}

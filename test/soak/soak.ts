// The chaos soak (issue 12): waygate as a child process, real upstreams in another, and for N
// seconds a random mix of client behaviours (clients/*.ts) against pools of upstream faults
// (faults/*.ts), HTTP and L4 (tcp pools behind tcpRoutes, udp pools behind udpRoutes, SPEC §7) alike, at most `concurrency`
// at once and at most `maxTasks` in all. The choices come
// from one seeded PRNG: task i is the same for a given seed (and set of files) on every run;
// which tasks overlap, and how many fit in N seconds, depends on timing and is not reproducible.
// Meanwhile the Redis of the `store: redis` rate limit is paused, killed and restarted
// (kit/mw-chaos.ts). Then the checks of checks.ts and kit/mw-checks.ts, and a report (report.ts).
import { rm } from 'node:fs/promises';
import * as checks from './checks.ts';
import type { Check, Rest } from './checks.ts';
import { sendAll } from './clients/normal.ts';
import { echoOnce, tcpPools } from './kit/l4.ts';
import { udpEchoOnce, udpPools } from './kit/udp.ts';
import { MwChaos } from './kit/mw-chaos.ts';
import * as mwChecks from './kit/mw-checks.ts';
import { wsSession } from './clients/websocket.ts';
import { asTask, nameClients } from './ports.ts';
import { Rng } from './prng.ts';
import { loadBehaviours } from './registry.ts';
import { makeAgents, Scope } from './scope.ts';
import type { Shared } from './scope.ts';
import { prepare, SHUTDOWN_MS, SOAK_TIMEOUTS } from './setup.ts';
import { pollUntil, sleep } from './kit/time.ts';
import type { ClientBehaviour, Outcome, PoolSpec, Task } from './types.ts';
import { HANG_MS, Watchdog } from './watchdog.ts';
import { WaygateProcess } from './waygate-process.ts';

/** How long one task may take before it counts as stuck (past every timeout of the soak). */
export const TASK_DEADLINE_MS = 15_000;
/** The most tasks at once. */
export const MAX_CONCURRENCY = 64;
const DEFAULT_CONCURRENCY = 48;
/** Tasks per second of run time at most (the count bound). */
const MAX_TASKS_PER_SECOND = 400;
/** Tasks before a crash that may have caused it: the longest delayed effect is an idle timer of clientIdle. */
const SUSPECT_WINDOW_MS = SOAK_TIMEOUTS.clientIdle + SOAK_TIMEOUTS.response + 2000;
/** Tasks started this long before a hang began are its suspects. */
const HANG_SUSPECT_MS = 3000;
const FAILURES_KEPT = 200;
/** A task ending this close before the gateway went down (or after) is counted as lost, not judged. */
const DOWN_MARGIN_MS = 1000;
/** In --isolate mode, how long in-flight and connection counts may take to return to what they were before a task (past clientIdle). */
const ISOLATE_DRAIN_MS = SOAK_TIMEOUTS.clientIdle + SOAK_TIMEOUTS.response + 1000;
const PROGRESS_EVERY_MS = 5000;

/** How to run. */
export interface SoakOptions {
  seconds: number;
  seed: number;
  concurrency?: number;
  maxTasks?: number;
  /** Only these behaviours (names). */
  only?: string[];
  /** Only these pools (names). */
  pools?: string[];
  /** Run only these tasks of the seed's sequence (a reproduction), in order, then the checks. */
  tasks?: number[];
  /** Start the seed's sequence at task `from` (the tasks before it are drawn, not run). */
  from?: number;
  /** One task at a time, and after each in-flight and open connections must return to what they were (names a leak's task). */
  isolate?: boolean;
  /** After a crash, start waygate again and go on (to collect distinct crashes); the verdict stays a failure. */
  keepGoing?: boolean;
  /** Keep the temp dir. */
  keep?: boolean;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** A task as recorded. */
export interface TaskRecord {
  index: number;
  behaviour: string;
  label: string;
  pool?: string;
  start: number;
  end?: number;
  outcome?: Outcome;
}

/** The gateway exited, or stopped answering, during the run. */
export interface Crash {
  /** `exit`: the process exited; `hang`: it stopped answering its admin API (watchdog.ts) and was killed. */
  kind: 'exit' | 'hang';
  /** Seconds into the run (for a hang: when it stopped answering). */
  at: number;
  /** For a hang: the RSS when it was declared hung. */
  rss?: number;
  code: number | null;
  signal: string | null;
  stderr: string;
  /** The first line of stderr that names an error, for telling crashes apart. */
  signature: string;
  /** Tasks running at the exit or ended within SUSPECT_WINDOW_MS before it (newest first). */
  suspects: TaskRecord[];
}

/** Everything the soak found. */
export interface SoakReport {
  ok: boolean;
  seed: number;
  seconds: number;
  /** Wall time of the chaos phase (ms). */
  ranMs: number;
  tasks: number;
  failedTasks: number;
  /** Tasks that ended while the gateway was down (after a crash or hang): not judged. */
  lostTasks: number;
  /** Behaviour → note → count. */
  byBehaviour: Record<string, Record<string, number>>;
  /** Pool → tasks aimed at it. */
  tasksByPool: Record<string, number>;
  /** Pool → status → count, from waygate's access log. */
  statusesByPool: Record<string, Record<string, number>>;
  /** Faults actually served, from the upstream host. */
  faultHits: Record<string, number>;
  /** L4 connections by route (or `listener NAME` when none matched), then termination, from waygate's connection lines. */
  terminations: Record<string, Record<string, number>>;
  /** Upstream attempts that failed on a refused HTTP/2 stream, by pool (waygate's warn lines). */
  refusals: Record<string, number>;
  /** The first failed tasks. */
  failures: TaskRecord[];
  crashes: Crash[];
  checks: Check[];
  baseline?: Rest & { rss: number };
  /** Highest RSS the watchdog saw during the chaos (bytes). */
  peakRss?: number;
  after?: Rest & { rss: number };
  /** waygate log lines by level, and its first error lines. */
  logLevels: Record<string, number>;
  /** The first access lines per pool and 5xx status, and warn lines per pool and code. */
  samples: Record<string, string[]>;
  /** The pools that must answer 200 (expect `ok`). */
  okPools: string[];
  /** The last gateway's listener ports, to read the socket lists by. */
  listeners?: string;
  errorLines: string[];
  /** A harness failure (the soak itself broke), if any. */
  harnessError?: string;
  options: SoakOptions;
}

function count(map: Record<string, Record<string, number>>, a: string, b: string): void {
  const inner = (map[a] ??= {});
  inner[b] = (inner[b] ?? 0) + 1;
}

function signatureOf(stderr: string, exit: { code: number | null; signal: string | null }): string {
  const line = stderr.split('\n').find((l) => /Error|error|code:|Uncaught/.test(l));
  return line?.trim().slice(0, 200) ?? `exit ${exit.code ?? exit.signal} with nothing on stderr`;
}

/**
 * Warm-up: normal requests to every healthy pool over every protocol, and echo exchanges with
 * every healthy tcp pool (a failure there means the soak cannot judge anything: thrown), then a
 * WebSocket round trip per ws pool and listener (returned as problems: a finding like any other).
 */
async function warmUp(shared: Shared): Promise<string[]> {
  const scope = new Scope(shared);
  try {
    for (const pool of shared.pools.filter((p) => p.kind === 'http' && p.expect === 'ok')) {
      for (const proto of ['h1', 'h1s', 'h2'] as const) {
        const reqs = [{ method: 'GET', path: `/${pool.name}/echo` }, { method: 'GET', path: `/${pool.name}/data?size=16384&chunked=1` }, { method: 'POST', path: `/${pool.name}/echo`, body: { size: 1000, declared: true, pieces: 2 } }];
        const r = await sendAll(scope.ctx, proto, reqs);
        if (!r.ok) throw new Error(`waygate does not serve the healthy pools before any chaos: ${pool.name} ${proto}: ${r.detail}`);
      }
    }
    for (const pool of tcpPools(shared.pools, 'ok')) {
      for (const size of [1, 16_384, 300_000]) {
        const p = await echoOnce(scope.ctx, pool, size, size, 5000);
        if (p !== undefined) throw new Error(`waygate does not serve the healthy tcp pools before any chaos: ${pool.name} ${size}B: ${p}`);
      }
    }
    for (const pool of udpPools(shared.pools, 'ok')) {
      const r = await udpEchoOnce(scope.ctx, pool, 1, 4, 1200, 5000);
      if (r.problem !== undefined) throw new Error(`waygate does not serve the healthy udp pools before any chaos: ${pool.name}: ${r.problem}`);
      // Its session must be over before the baseline (its upstream socket is a descriptor).
      const line = await scope.ctx.connectionLine(r.client.port, r.client.since, 3 * shared.timeouts.sessionIdle, true);
      if (line === undefined) throw new Error(`waygate did not end the warm-up's UDP session to ${pool.name} within ${3 * shared.timeouts.sessionIdle} ms`);
    }
    const problems: string[] = [];
    // ws:// through the HTTP listener to the plain upstream, wss:// through the HTTPS one to the TLS upstream.
    for (const pool of shared.pools.filter((p) => p.kind === 'ws')) {
      for (const tls of [pool.targets[0].startsWith('https:')]) {
        const r = await wsSession(scope.ctx, { pool, tls, kill: 'client-close', how: 'close', message: 'warm-up', cutAt: 0.5 });
        if (!r.ok) problems.push(`${pool.name} via ${tls ? 'wss' : 'ws'}: ${r.detail}`);
      }
    }
    return problems;
  } finally {
    scope.end();
  }
}

/** Draws tasks from the seed: task i is the i-th draw, whatever ran before it. */
class Planner {
  readonly #rng: Rng;
  readonly #behaviours: ClientBehaviour[];
  readonly #pools: Shared['pools'];
  next = 0;
  constructor(seed: number, behaviours: ClientBehaviour[], pools: Shared['pools']) {
    this.#rng = new Rng(seed);
    this.#behaviours = behaviours;
    this.#pools = pools;
  }
  draw(): { index: number; behaviour: string; task: Task } {
    for (let tries = 0; tries < 1000; tries++) {
      const b = this.#rng.weighted(this.#behaviours, (x) => x.weight);
      const task = b.plan(this.#rng.fork(), this.#pools);
      if (task !== undefined) return { index: this.next++, behaviour: b.name, task };
    }
    throw new Error('no client behaviour fits the chosen pools');
  }
}

/** The labels of the seed's first `n` tasks (no gateway is started): the plan a run follows. */
export async function planOnly(options: SoakOptions, n: number): Promise<string[]> {
  const behaviours = await selectBehaviours(options);
  const world = await prepare(SOAK_TIMEOUTS);
  try {
    const planner = new Planner(options.seed, behaviours, selectPools(options, world.pools));
    return Array.from({ length: n }, () => {
      const p = planner.draw();
      return `#${p.index} ${p.task.label}`;
    });
  } finally {
    await world.upstreams.close();
    await world.redis?.close();
    await rm(world.dir, { recursive: true, force: true });
  }
}

async function selectBehaviours(options: SoakOptions): Promise<ClientBehaviour[]> {
  const behaviours = await loadBehaviours();
  if (options.only === undefined) return behaviours;
  const unknown = options.only.filter((n) => !behaviours.some((b) => b.name === n));
  if (unknown.length > 0) throw new Error(`unknown behaviour(s) ${unknown.join(', ')}; known: ${behaviours.map((b) => b.name).join(', ')}`);
  return behaviours.filter((b) => options.only!.includes(b.name));
}

function selectPools(options: SoakOptions, all: PoolSpec[]): PoolSpec[] {
  if (options.pools === undefined) return all;
  const unknown = options.pools.filter((n) => !all.some((p) => p.name === n));
  if (unknown.length > 0) throw new Error(`unknown pool(s) ${unknown.join(', ')}; known: ${all.map((p) => p.name).join(', ')}`);
  return all.filter((p) => options.pools!.includes(p.name));
}

/** Adds a (dead or finished) gateway process's log counts to the report's, so a restart loses none. */
function absorb(report: SoakReport, p: WaygateProcess): void {
  for (const [pool, statuses] of Object.entries(p.poolStatuses)) for (const [k, n] of Object.entries(statuses)) (report.statusesByPool[pool] ??= {})[k] = (report.statusesByPool[pool][k] ?? 0) + n;
  for (const [k, n] of Object.entries(p.levels)) report.logLevels[k] = (report.logLevels[k] ?? 0) + n;
  for (const [k, n] of Object.entries(p.refusals)) report.refusals[k] = (report.refusals[k] ?? 0) + n;
  for (const [route, ends] of Object.entries(p.terminations)) for (const [k, n] of Object.entries(ends)) (report.terminations[route] ??= {})[k] = (report.terminations[route][k] ?? 0) + n;
  for (const [k, lines] of Object.entries(p.samples)) report.samples[k] ??= lines;
  report.errorLines.push(...p.errorLines.slice(0, Math.max(0, 20 - report.errorLines.length)));
}

/** Runs the soak; never throws for what it finds (that is in the report), only for bad options. */
export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const log = options.log ?? ((): void => {});
  const concurrency = options.isolate === true ? 1 : Math.min(MAX_CONCURRENCY, Math.max(1, options.concurrency ?? DEFAULT_CONCURRENCY));
  const maxTasks = options.maxTasks ?? Math.ceil(options.seconds * MAX_TASKS_PER_SECOND);
  const behaviours = await selectBehaviours(options);
  const report: SoakReport = {
    ok: false, seed: options.seed, seconds: options.seconds, ranMs: 0, tasks: 0, failedTasks: 0, lostTasks: 0, byBehaviour: {}, tasksByPool: {}, statusesByPool: {},
    faultHits: {}, terminations: {}, refusals: {}, failures: [], crashes: [], checks: [], logLevels: {}, samples: {}, okPools: [], errorLines: [], options,
  };
  const world = await prepare(SOAK_TIMEOUTS);
  let gw: WaygateProcess | undefined;
  let chaos: MwChaos | undefined;
  const agents = makeAgents();
  try {
    const pools = selectPools(options, world.pools);
    report.okPools = world.pools.filter((p) => p.expect === 'ok').map((p) => p.name);
    gw = await WaygateProcess.start(world.configFile);
    // A task reads its connection lines from whichever gateway runs now (a restart replaces it).
    const shared: Shared = { gateway: { ...gw.address }, pools, timeouts: SOAK_TIMEOUTS, agents, connectionLine: (port, since, ms, udp, listener) => gw!.connectionLine(port, since, ms, udp, listener) };
    // Warm-up and probes use every pool, whatever the filters, and agents of their own (closed
    // before the baseline, so it counts no client connection).
    const baseShared = (): Shared => ({ ...shared, pools: world.pools, agents: makeAgents() });
    const warmUpOnce = async (httpOnly = false): Promise<string[]> => {
      const own = baseShared();
      if (httpOnly) own.pools = world.pools.filter((p) => p.kind === 'http');
      try {
        return await warmUp(own);
      } finally {
        own.agents.http.destroy();
        own.agents.https.destroy();
      }
    };
    const warm = await warmUpOnce();
    if (warm.length > 0) report.checks.push({ name: 'warm-up WebSocket round trips', ok: false, detail: warm.join('; ') });
    let base = { ...(await checks.measureStable(gw, world.upstreams)), rss: await gw.rss(), memory: await gw.memory() };
    report.baseline = base;
    log(`baseline: ${base.fds} fds (${base.conns} client, ${base.tcp} L4 client, ${base.upstream} upstream, ${base.other} other), RSS ${(base.rss / 1048576).toFixed(1)} MB`);

    // ---- chaos ----
    const planner = new Planner(options.seed, behaviours, pools);
    const running = new Map<number, TaskRecord>();
    const records: TaskRecord[] = [];
    /** Periods the gateway was down (ms since the epoch), from a crash or hang to its restart. */
    const down: { from: number; to: number }[] = [];
    let failedSoFar = 0;
    let wake: (() => void) | undefined;
    const started = Date.now();
    const stopAt = started + options.seconds * 1000;
    let lastProgress = started;
    const scopes = new Set<Scope>();
    if (world.redis !== undefined) {
      chaos = new MwChaos(world.redis, () => gw!, baseShared, log);
      chaos.start(options.seconds * 1000);
    }

    const finish = (rec: TaskRecord, outcome: Outcome): void => {
      rec.end = Date.now();
      rec.outcome = outcome;
      running.delete(rec.index);
      records.push(rec);
      if (!outcome.ok) failedSoFar++;
      wake?.();
    };

    /** In-flight per target, keyed "pool url". */
    const inFlight = async (p: WaygateProcess): Promise<Map<string, number>> => new Map((await p.targets()).map((t) => [`${t.pool} ${t.url}`, t.inFlight]));
    /** What grew between two in-flight readings. */
    const grown = (before: Map<string, number>, after: Map<string, number>): string[] =>
      [...after].filter(([k, v]) => v > (before.get(k) ?? 0)).map(([k, v]) => `${k}: ${before.get(k) ?? 0} → ${v}`);

    const launch = (p: { index: number; behaviour: string; task: Task }, current: WaygateProcess): void => {
      const rec: TaskRecord = { index: p.index, behaviour: p.behaviour, label: p.task.label, pool: p.task.pool, start: Date.now() };
      running.set(p.index, rec);
      report.tasks++;
      if (p.task.pool !== undefined) report.tasksByPool[p.task.pool] = (report.tasksByPool[p.task.pool] ?? 0) + 1;
      const scope = new Scope(shared);
      scopes.add(scope);
      const deadline = setTimeout(() => scope.abort(), TASK_DEADLINE_MS);
      const aborted = new Promise<Outcome>((resolve) => scope.ctx.signal.addEventListener('abort', () => resolve({ ok: false, note: 'stuck', detail: `not ended within ${TASK_DEADLINE_MS} ms` }), { once: true }));
      void (async () => {
        const before = options.isolate === true ? await inFlight(current).catch(() => new Map<string, number>()) : undefined;
        const connsBefore = options.isolate === true ? await current.openConnections().catch(() => 0) : 0;
        const tcpBefore = options.isolate === true ? await checks.tcpOpenTotal(current).catch(() => 0) : 0;
        let outcome = await Promise.race([asTask(`#${p.index} ${p.task.label}`, () => p.task.run(scope.ctx)).catch((err: Error): Outcome => ({ ok: false, note: 'threw', detail: err.stack ?? String(err) })), aborted]);
        clearTimeout(deadline);
        scope.end();
        scopes.delete(scope);
        if (before !== undefined && current.alive) {
          // Its own client sockets are gone: whatever it left in the gateway must go too.
          let left: string[] = [];
          let conns = 0;
          let tcp = 0;
          await pollUntil(async () => {
            left = grown(before, await inFlight(current).catch(() => before));
            conns = await current.openConnections().catch(() => connsBefore);
            tcp = await checks.tcpOpenTotal(current).catch(() => tcpBefore);
            return left.length === 0 && conns <= connsBefore && tcp <= tcpBefore;
          }, ISOLATE_DRAIN_MS, 200);
          if (left.length > 0) outcome = { ok: false, note: 'in-flight leak', detail: `${ISOLATE_DRAIN_MS} ms after the task ended: ${left.join(', ')} (task outcome: ${outcome.note})` };
          else if (conns > connsBefore || tcp > tcpBefore) {
            const sockets = nameClients(await current.sockets().catch(() => []), checks.clientPorts(current));
            const tcpPorts = Object.entries(current.address.tcp).map(([n, p]) => `${n} :${p}`).join(', ');
            outcome = { ok: false, note: 'connection leak', detail: `${ISOLATE_DRAIN_MS} ms after the task ended: waygate_open_connections ${connsBefore} → ${conns}, L4 ${tcpBefore} → ${tcp}; sockets ${sockets.join(', ')} (https :${current.address.https}, http :${current.address.http}${tcpPorts === '' ? '' : `, ${tcpPorts}`}; task outcome: ${outcome.note})` };
          }
        }
        finish(rec, outcome);
      })();
    };

    /** Counts every finished task, except those that ended while the gateway was down. */
    const tally = (): void => {
      for (const rec of records) {
        const outcome = rec.outcome!;
        if (down.some((d) => rec.end! >= d.from - DOWN_MARGIN_MS && rec.start <= d.to)) {
          report.lostTasks++;
          count(report.byBehaviour, rec.behaviour, 'lost to a crash');
          continue;
        }
        count(report.byBehaviour, rec.behaviour, outcome.ok ? outcome.note : `FAIL ${outcome.note}`);
        if (!outcome.ok) {
          report.failedTasks++;
          if (report.failures.length < FAILURES_KEPT) report.failures.push(rec);
        }
      }
    };

    const crashed = new Set<WaygateProcess>();
    const watchdogs = new Map<WaygateProcess, Watchdog>();
    const onCrash = (dead: WaygateProcess): void => {
      if (crashed.has(dead)) return;
      crashed.add(dead);
      const e = dead.exit!;
      const hang = watchdogs.get(dead)?.hang;
      down.push({ from: hang?.since ?? e.at, to: Infinity });
      const all = [...running.values(), ...records];
      const suspects = hang === undefined
        ? all.filter((r) => r.end === undefined || r.end >= e.at - SUSPECT_WINDOW_MS)
        // The loop blocked at `since`: what started shortly before it and had not ended.
        : all.filter((r) => r.start >= hang.since - HANG_SUSPECT_MS && r.start <= hang.since && (r.end === undefined || r.end >= hang.since));
      suspects.sort((a, b) => b.start - a.start);
      const crash: Crash = hang === undefined
        ? { kind: 'exit', at: (e.at - started) / 1000, code: e.code, signal: e.signal, stderr: dead.stderr(), signature: signatureOf(dead.stderr(), e), suspects }
        : { kind: 'hang', at: (hang.since - started) / 1000, code: e.code, signal: e.signal, stderr: dead.stderr(), rss: hang.rss, signature: `stopped answering /healthz for ${HANG_MS} ms (RSS then ${(hang.rss / 1048576).toFixed(0)} MB)`, suspects };
      report.crashes.push(crash);
      log(`${crash.kind === 'hang' ? 'HANG' : 'CRASH'} at ${crash.at.toFixed(1)} s: ${crash.kind === 'exit' ? `exit ${e.code ?? e.signal}: ` : ''}${crash.signature}`);
    };
    const watch = (p: WaygateProcess): void => {
      watchdogs.set(p, new Watchdog(p, () => log(`waygate stopped answering for ${HANG_MS} ms: killing it`)));
    };
    watch(gw);

    const exitWatch = (p: WaygateProcess): Promise<void> => p.exited().then(() => wake?.());
    void exitWatch(gw);
    while (Date.now() < stopAt && planner.next < maxTasks) {
      if (!gw.alive) {
        onCrash(gw);
        for (const s of scopes) s.end();
        if (options.keepGoing !== true || options.tasks !== undefined) break;
        absorb(report, gw);
        gw = await WaygateProcess.start(world.configFile);
        Object.assign(shared.gateway, gw.address);
        void exitWatch(gw);
        watch(gw);
        // HTTP only: the WebSocket round trips were judged once already.
        await warmUpOnce(true).catch(() => []);
        base = { ...(await checks.measureStable(gw, world.upstreams)), rss: await gw.rss(), memory: await gw.memory() };
        report.baseline = base;
        down[down.length - 1].to = Date.now();
        continue;
      }
      if (Date.now() - lastProgress >= PROGRESS_EVERY_MS) {
        lastProgress = Date.now();
        log(`${((lastProgress - started) / 1000).toFixed(0)} s: ${report.tasks} tasks, ${running.size} running, ${failedSoFar} failed, ${report.crashes.length} crashes, RSS ${((watchdogs.get(gw)?.rss ?? 0) / 1048576).toFixed(0)} MB`);
      }
      if (running.size >= concurrency) {
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, Math.max(1, Math.min(PROGRESS_EVERY_MS, stopAt - Date.now())));
        });
        wake = undefined;
        continue;
      }
      const p = planner.draw();
      if (options.from !== undefined && p.index < options.from) continue;
      if (options.tasks !== undefined) {
        if (!options.tasks.includes(p.index)) {
          if (p.index > Math.max(...options.tasks)) break;
          continue;
        }
        log(`task #${p.index}: ${p.task.label}`);
      }
      launch(p, gw);
      // Let the event loop breathe between launches (a task's first step is synchronous).
      if (planner.next % 8 === 0) await new Promise<void>((r) => setImmediate(r));
    }
    // Let running tasks end by themselves (each within its deadline).
    while (running.size > 0) {
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 1000);
      });
      wake = undefined;
      if (!gw.alive) onCrash(gw);
    }
    report.ranMs = Date.now() - started;
    if (chaos !== undefined) report.checks.push(...(await chaos.stop()));
    agents.http.destroy();
    agents.https.destroy();
    if (options.tasks !== undefined && gw.alive) {
      // A replayed task's delayed effects (an idle timer) come up to clientIdle after it.
      await Promise.race([sleep(SUSPECT_WINDOW_MS), gw.exited()]);
    }
    for (const w of watchdogs.values()) await w.stop();
    report.peakRss = Math.max(0, ...[...watchdogs.values()].map((w) => w.peakRss));
    if (!gw.alive) onCrash(gw);
    tally();

    // ---- checks ----
    if (gw.alive) {
      try {
        report.checks.push(await checks.checkInFlight(gw));
        report.checks.push(await checks.checkTcpOpen(gw));
        if (udpPools(world.pools).length > 0) report.checks.push(await checks.checkUdpSessions(gw, SOAK_TIMEOUTS.sessionIdle));
        const drained = await checks.checkDrained(gw, world.upstreams, base);
        report.checks.push(...drained.checks);
        for (const [pool, proto, n] of [['healthy', 'h1', 4], ['healthy', 'h2', 8], ['tls', 'h1', 4], ['h2c', 'h2', 8], ['mw-ip-allow', 'h2', 8]] as const) {
          if (!world.pools.some((p) => p.name === pool)) continue;
          const own = baseShared();
          report.checks.push(await checks.probe(own, pool, proto, n));
          own.agents.http.destroy();
          own.agents.https.destroy();
        }
        if (tcpPools(world.pools, 'ok').length > 0) {
          const own = baseShared();
          report.checks.push(await checks.probeL4(own));
          own.agents.http.destroy();
          own.agents.https.destroy();
        }
        if (udpPools(world.pools, 'ok').length > 0) {
          const own = baseShared();
          report.checks.push(await checks.probeUdp(own));
          own.agents.http.destroy();
          own.agents.https.destroy();
        }
        if (world.pools.some((p) => p.middlewares !== undefined)) {
          report.checks.push(await mwChecks.checkViolations(world.upstreams));
          report.checks.push(await mwChecks.checkRejections(gw, world.pools, records, gw.rejectedBy, crashed.size === 0));
          const own = baseShared();
          report.checks.push(await mwChecks.checkRedisLimitsAgain(gw, own));
          own.agents.http.destroy();
          own.agents.https.destroy();
        }
        const rss = await checks.checkRss(gw, base.rss, base.memory);
        report.checks.push(rss.check);
        const dog = watchdogs.get(gw);
        if (options.seconds >= checks.LEVEL_OFF_MIN_SECONDS && dog !== undefined && crashed.size === 0) report.checks.push(checks.checkLevelOff(dog.samples, started, started + report.ranMs));
        report.after = { ...drained.rest, rss: rss.rss };
      } catch (err) {
        // The gateway stopped answering its admin API or /proc: that is a finding, not the harness's failure.
        report.checks.push({ name: 'waygate answers its admin API after the chaos', ok: false, detail: (err as Error).message });
      }
    }
    report.checks.push(checks.checkAlive(gw, report.crashes.at(-1)?.kind === 'hang'));
    if (report.crashes.length === 0 && gw.alive) report.checks.push(await checks.checkStop(gw, SHUTDOWN_MS));
    report.faultHits = (await world.upstreams.stats()).hits;
  } catch (err) {
    report.harnessError = (err as Error).stack ?? String(err);
  } finally {
    if (gw !== undefined) {
      absorb(report, gw);
      report.listeners = [`http :${gw.address.http}`, `https :${gw.address.https}`, ...Object.entries(gw.address.tcp).map(([n, p]) => `${n} :${p}`), ...Object.entries(gw.address.udp).map(([n, p]) => `${n} udp :${p}`)].join(', ');
      gw.kill();
    }
    agents.http.destroy();
    agents.https.destroy();
    if (!world.upstreams.alive) report.harnessError ??= `the upstream host exited: ${world.upstreams.stderr()}`;
    await chaos?.stop().catch(() => []);
    await world.upstreams.close();
    await world.redis?.close();
    if (options.keep !== true) await rm(world.dir, { recursive: true, force: true });
  }
  report.ok = report.harnessError === undefined && report.crashes.length === 0 && report.failedTasks === 0 && report.checks.every((c) => c.ok);
  return report;
}

// The soak's verdict, read from outside the gateway after the chaos: it still runs with a clean
// stderr, every target's in-flight is back to 0 (L4 targets' too: their open connections),
// every L4 route's open connections are back to 0, client and upstream connections and file
// descriptors are back to their baseline, RSS grew less than a stated bound, the healthy pools
// answer 100 requests each over HTTP/1.1 and HTTP/2 with 200 quickly, fresh L4 clients of the
// healthy tcp pools are served, every UDP session has expired (waygate_udp_sessions 0 on every
// route within 3 × sessionIdle) and a fresh UDP client of the echo pool is served, and SIGTERM
// drains it.
import { nameClients } from './ports.ts';
import type { Proto } from './kit/http-client.ts';
import { h1, h2, h2Session } from './kit/http-client.ts';
import { wrongAnswer } from './clients/normal.ts';
import { echoOnce, tcpPools } from './kit/l4.ts';
import { udpEchoOnce, udpPools } from './kit/udp.ts';
import type { RequestSpec } from './kit/http-client.ts';
import { pollUntil, sleep } from './kit/time.ts';
import { Scope } from './scope.ts';
import type { Shared } from './scope.ts';
import type { UpstreamHost } from './upstreams.ts';
import type { WaygateProcess } from './waygate-process.ts';

/** How long in-flight counts may take to drain once the last client is gone. */
export const IN_FLIGHT_DEADLINE_MS = 15_000;
/** How long connections may take to close: the gateway's upstream keep-alive (4 s) and clientIdle, with room. */
export const DRAIN_DEADLINE_MS = 20_000;
/** File descriptors the gateway may hold over its baseline once at rest (lazily opened files, a late admin socket). */
export const FD_SLACK = 3;
/**
 * RSS growth over the post-warm-up baseline that counts as a leak. Measured: the heavy mix of
 * 1–4 MiB bodies levels off about 105–110 MB over its baseline within 30 s and stays there
 * (malloc's high-water mark; the V8 heap returns to within ~12 MB), so the bound is above that.
 */
export const RSS_GROWTH_BOUND = 160 * 1024 * 1024;
/** Growth over the second half of a run of at least LEVEL_OFF_MIN_SECONDS: a leak keeps growing, a high-water mark does not. */
export const LATE_GROWTH_BOUND = 32 * 1024 * 1024;
/** Runs this long are checked for RSS levelling off. */
export const LEVEL_OFF_MIN_SECONDS = 60;
/** Requests of the final probe, per pool and protocol. */
export const PROBE_REQUESTS = 100;
/** The slowest answer the final probe accepts (under the pools' 2 s response timeout, so a poisoned connection cannot hide). */
export const PROBE_MAX_MS = 1500;

/** One check's result. */
export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

/** The gateway at rest: file descriptors, open client connections (HTTP and L4), sockets to the upstreams. */
export interface Rest {
  fds: number;
  /** waygate_open_connections: the HTTP listeners' client connections. */
  conns: number;
  /** waygate_tcp_open_connections summed: L4 client connections routed and not ended. */
  tcp: number;
  upstream: number;
  /** fds − conns − tcp − upstream: what the gateway holds besides its sockets. */
  other: number;
}

/** The sum of a gateway's L4 open connections. */
export async function tcpOpenTotal(gw: WaygateProcess): Promise<number> {
  return Object.values(await gw.tcpOpen()).reduce((a, b) => a + b, 0);
}

/** Every port a client of the soak connects to on the gateway (its socket list names their tasks). */
export function clientPorts(gw: WaygateProcess): number[] {
  return [gw.address.http, gw.address.https, ...Object.values(gw.address.tcp)];
}

/** One reading. */
export async function measure(gw: WaygateProcess, up: UpstreamHost): Promise<Rest> {
  const conns = await gw.openConnections();
  const tcp = await tcpOpenTotal(gw);
  const { sockets } = await up.stats();
  const fds = await gw.fds();
  return { fds, conns, tcp, upstream: sockets, other: fds - conns - tcp - sockets };
}

/** A reading that holds still (two equal in a row, 250 ms apart; at most 5 s). */
export async function measureStable(gw: WaygateProcess, up: UpstreamHost): Promise<Rest> {
  let last = await measure(gw, up);
  for (let i = 0; i < 20; i++) {
    await sleep(250);
    const now = await measure(gw, up);
    if (now.fds === last.fds && now.conns === last.conns && now.tcp === last.tcp && now.upstream === last.upstream) return now;
    last = now;
  }
  return last;
}

/** Every target's in-flight back to 0 within the deadline (an L4 target's in-flight is its open connections). */
export async function checkInFlight(gw: WaygateProcess): Promise<Check> {
  let busy: string[] = [];
  let l4 = 0;
  const ok = await pollUntil(async () => {
    const targets = await gw.targets();
    l4 = targets.filter((t) => t.url.startsWith('tcp:') || t.url.startsWith('udp:')).length;
    busy = targets.filter((t) => t.inFlight !== 0).map((t) => `${t.pool} ${t.url}: ${t.inFlight}`);
    return busy.length === 0;
  }, IN_FLIGHT_DEADLINE_MS, 250);
  return { name: 'in-flight back to 0', ok, detail: ok ? `every target at 0 (${l4} of them L4)` : `after ${IN_FLIGHT_DEADLINE_MS} ms: ${busy.join(', ')}` };
}

/** Every L4 route's waygate_tcp_open_connections back to 0 within the deadline. */
export async function checkTcpOpen(gw: WaygateProcess): Promise<Check> {
  let open: [string, number][] = [];
  let series = 0;
  const ok = await pollUntil(async () => {
    const all = Object.entries(await gw.tcpOpen());
    series = all.length;
    open = all.filter(([, n]) => n !== 0);
    return open.length === 0;
  }, IN_FLIGHT_DEADLINE_MS, 250);
  const left = ok ? '' : `; sockets waygate holds: ${nameClients(await gw.sockets(), clientPorts(gw)).join(', ') || 'none'}`;
  return { name: 'L4 open connections back to 0', ok, detail: ok ? `waygate_tcp_open_connections 0 on every listener/route (${series} series)` : `after ${IN_FLIGHT_DEADLINE_MS} ms: ${open.map(([k, n]) => `${k} ${n}`).join(', ')}${left}` };
}

/** Every UDP route's waygate_udp_sessions back to 0 within 3 × sessionIdle (and the sweep's quarter). */
export async function checkUdpSessions(gw: WaygateProcess, sessionIdle: number): Promise<Check> {
  const ms = 3 * sessionIdle + sessionIdle / 4;
  let open: [string, number][] = [];
  let series = 0;
  const started = Date.now();
  const ok = await pollUntil(async () => {
    const all = Object.entries(await gw.udpSessions());
    series = all.length;
    open = all.filter(([, n]) => n !== 0);
    return open.length === 0;
  }, ms, 100);
  return { name: 'UDP sessions back to 0', ok, detail: ok ? `waygate_udp_sessions 0 on every listener/route (${series} series) ${Date.now() - started} ms after the last client` : `after ${ms} ms: ${open.map(([k, n]) => `${k} ${n}`).join(', ')}` };
}

/** UDP clients per healthy udp pool in the final probe. */
export const UDP_PROBE_CLIENTS = 8;

/** Fresh well-behaved UDP clients of every `ok` udp pool: each gets its 4 datagrams echoed exactly, none slower than PROBE_MAX_MS. */
export async function probeUdp(shared: Shared): Promise<Check> {
  const pools = udpPools(shared.pools, 'ok');
  const scope = new Scope(shared);
  const problems: string[] = [];
  let slowest = 0;
  try {
    for (const pool of pools) {
      await Promise.all(Array.from({ length: UDP_PROBE_CLIENTS }, async (_, i) => {
        const started = Date.now();
        const r = await udpEchoOnce(scope.ctx, pool, 0x2000 + i, 4, 1200, PROBE_MAX_MS);
        const ms = Date.now() - started;
        slowest = Math.max(slowest, ms);
        if (r.problem !== undefined) problems.push(`${pool.name} #${i}: ${r.problem} after ${ms} ms`);
        else if (ms > PROBE_MAX_MS) problems.push(`${pool.name} #${i}: echoed, but after ${ms} ms`);
      }));
    }
  } finally {
    scope.end();
  }
  return {
    name: `${UDP_PROBE_CLIENTS} UDP clients of each of ${pools.map((p) => p.name).join(', ') || 'no udp pool'}`,
    ok: problems.length === 0,
    detail: problems.length === 0 ? `all got 4 datagrams echoed exactly from the listener's address, slowest ${slowest} ms` : `${problems.length} bad: ${problems.slice(0, 5).join('; ')}`,
  };
}

/** L4 exchanges per healthy tcp pool in the final probe, and how many at once. */
export const L4_PROBE_CONNECTIONS = 16;
const L4_PROBE_CONCURRENCY = 4;
const L4_PROBE_BYTES = 65_536;

/** Fresh well-behaved L4 clients of every `ok` tcp pool: each echo exact and closed cleanly, none slower than PROBE_MAX_MS. */
export async function probeL4(shared: Shared): Promise<Check> {
  const pools = tcpPools(shared.pools, 'ok');
  const scope = new Scope(shared);
  const problems: string[] = [];
  let slowest = 0;
  try {
    for (const pool of pools) {
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < L4_PROBE_CONNECTIONS) {
          const i = next++;
          const started = Date.now();
          const p = await echoOnce(scope.ctx, pool, 0x1000 + i, L4_PROBE_BYTES, PROBE_MAX_MS * 2);
          const ms = Date.now() - started;
          slowest = Math.max(slowest, ms);
          if (p !== undefined) problems.push(`${pool.name} #${i}: ${p} after ${ms} ms`);
          else if (ms > PROBE_MAX_MS) problems.push(`${pool.name} #${i}: echoed, but after ${ms} ms`);
        }
      };
      await Promise.all(Array.from({ length: L4_PROBE_CONCURRENCY }, worker));
    }
  } finally {
    scope.end();
  }
  return {
    name: `${L4_PROBE_CONNECTIONS} L4 connections to each of ${pools.map((p) => p.name).join(', ') || 'no tcp pool'}`,
    ok: problems.length === 0,
    detail: problems.length === 0 ? `all echoed ${L4_PROBE_BYTES} bytes exactly and closed cleanly, slowest ${slowest} ms` : `${problems.length} bad: ${problems.slice(0, 5).join('; ')}`,
  };
}

/** Client connections, upstream sockets and other descriptors back to the baseline within the deadline. */
export async function checkDrained(gw: WaygateProcess, up: UpstreamHost, base: Rest): Promise<{ checks: Check[]; rest: Rest }> {
  let rest = await measure(gw, up);
  const started = Date.now();
  await pollUntil(async () => {
    rest = await measure(gw, up);
    return rest.conns <= base.conns && rest.tcp <= base.tcp && rest.upstream <= base.upstream && rest.other <= base.other + FD_SLACK;
  }, DRAIN_DEADLINE_MS, 500);
  const took = `${Date.now() - started} ms after the last client`;
  const ok = rest.conns <= base.conns && rest.tcp <= base.tcp && rest.upstream <= base.upstream && rest.other <= base.other + FD_SLACK;
  // Name what is left (ports: the listeners' and the upstreams' are in the report).
  const left = ok ? '' : `; sockets waygate holds: ${nameClients(await gw.sockets(), clientPorts(gw)).join(', ') || 'none'}`;
  return {
    rest,
    checks: [
      { name: 'client connections back to baseline', ok: rest.conns <= base.conns && rest.tcp <= base.tcp, detail: `waygate_open_connections ${rest.conns} (baseline ${base.conns}), L4 ${rest.tcp} (baseline ${base.tcp}), ${took}${rest.conns > base.conns || rest.tcp > base.tcp ? left : ''}` },
      { name: 'upstream sockets back to baseline', ok: rest.upstream <= base.upstream, detail: `${rest.upstream} sockets open on the upstreams (baseline ${base.upstream})${rest.upstream > base.upstream ? `${left}; open on the upstream host by target: ${await upstreamSockets(up)}` : ''}` },
      {
        name: 'file descriptors back to baseline',
        ok: rest.other <= base.other + FD_SLACK,
        detail: `${rest.fds} fds = ${rest.conns} client + ${rest.tcp} L4 client + ${rest.upstream} upstream + ${rest.other} other (baseline ${base.fds} = ${base.conns} + ${base.tcp} + ${base.upstream} + ${base.other}; slack ${FD_SLACK})${rest.other > base.other + FD_SLACK ? left : ''}`,
      },
    ],
  };
}

/** The upstream host's open sockets by target, named by the pools that route to it. */
async function upstreamSockets(up: UpstreamHost): Promise<string> {
  const { byPort } = await up.stats();
  return Object.entries(byPort).map(([port, n]) => {
    const pools = up.pools.filter((p) => p.targets.some((t) => new URL(t).port === port)).map((p) => p.name);
    return `:${port} (${pools.join(', ') || '?'}) ${n}`;
  }).join(', ') || 'none';
}

const PROBE_PATHS = ['echo', 'data?size=16384&chunked=1', 'data?size=262144&chunked=1&burst=1', 'data?size=100'];

/** `PROBE_REQUESTS` normal requests to `pool` over `proto`, `concurrency` at a time: all 200, none slower than PROBE_MAX_MS. */
export async function probe(shared: Shared, pool: string, proto: Proto, concurrency: number): Promise<Check> {
  const scope = new Scope(shared);
  const problems: string[] = [];
  let slowest = 0;
  const session = proto === 'h2' ? h2Session(scope.ctx) : undefined;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < PROBE_REQUESTS) {
      const i = next++;
      const spec: RequestSpec = { method: 'GET', path: `/${pool}/${PROBE_PATHS[i % PROBE_PATHS.length]}` };
      const started = Date.now();
      try {
        const got = session === undefined ? await h1(scope.ctx, proto === 'h1s', spec) : await h2(scope.ctx, session, spec);
        const ms = Date.now() - started;
        slowest = Math.max(slowest, ms);
        const wrong = wrongAnswer(spec, got);
        if (wrong !== undefined) problems.push(`#${i} ${spec.path}: ${wrong} after ${ms} ms`);
        else if (ms > PROBE_MAX_MS) problems.push(`#${i} ${spec.path}: 200 but after ${ms} ms`);
      } catch (err) {
        problems.push(`#${i} ${spec.path}: ${(err as Error).message} after ${Date.now() - started} ms`);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  session?.close();
  scope.end();
  return {
    name: `${PROBE_REQUESTS} requests to ${pool} over ${proto === 'h2' ? 'HTTP/2' : proto === 'h1s' ? 'HTTPS' : 'HTTP/1.1'}`,
    ok: problems.length === 0,
    detail: problems.length === 0 ? `all 200, slowest ${slowest} ms` : `${problems.length} bad: ${problems.slice(0, 5).join('; ')}`,
  };
}

/** RSS over the baseline within RSS_GROWTH_BOUND. */
export async function checkRss(gw: WaygateProcess, base: number, baseMemory: Memory): Promise<{ check: Check; rss: number }> {
  const rss = await gw.rss();
  const m = await gw.memory();
  const mb = (n: number): string => `${(n / 1048576).toFixed(1)} MB`;
  const parts = `V8 heap ${mb(m.heapUsed)} used of ${mb(m.heapTotal)} (baseline ${mb(baseMemory.heapUsed)} of ${mb(baseMemory.heapTotal)}), external ${mb(m.external)} (baseline ${mb(baseMemory.external)})`;
  return { rss, check: { name: 'RSS growth within bound', ok: rss - base <= RSS_GROWTH_BOUND, detail: `${mb(rss)} now, ${mb(base)} at baseline: ${rss >= base ? '+' : ''}${mb(rss - base)} (bound +${mb(RSS_GROWTH_BOUND)}); ${parts}` } };
}

/** RSS at the end of the chaos within LATE_GROWTH_BOUND of RSS at its half-way point (`samples`: [ms, bytes]). */
export function checkLevelOff(samples: readonly [number, number][], from: number, to: number): Check {
  const mid = from + (to - from) / 2;
  const half = samples.find(([t]) => t >= mid)?.[1];
  const end = samples.at(-1)?.[1];
  const mb = (n: number): string => `${(n / 1048576).toFixed(1)} MB`;
  if (half === undefined || end === undefined) return { name: 'RSS levels off', ok: true, detail: 'too few samples' };
  return { name: 'RSS levels off', ok: end - half <= LATE_GROWTH_BOUND, detail: `${mb(half)} half-way through the chaos, ${mb(end)} at its end: ${end >= half ? '+' : ''}${mb(end - half)} (bound +${mb(LATE_GROWTH_BOUND)})` };
}

/** What the process metrics say about memory. */
export type Memory = Awaited<ReturnType<WaygateProcess['memory']>>;

/** The lines of stderr that are not Node's process warnings. */
export function stderrProblems(text: string): string[] {
  const notice = /^\(node:\d+\) \w*Warning|^\(Use `node --trace-/;
  return text.split('\n').filter((l) => l.trim() !== '' && !notice.test(l));
}

/** The process is running and wrote nothing but warnings to stderr. */
export function checkAlive(gw: WaygateProcess, hung: boolean): Check {
  if (!gw.alive && hung) return { name: 'waygate never hung', ok: false, detail: 'it stopped answering and the soak killed it (see the hang below)' };
  if (!gw.alive) return { name: 'waygate never exited', ok: false, detail: `exited (code ${gw.exit!.code}, signal ${gw.exit!.signal}): ${gw.stderr().slice(0, 2000)}` };
  const bad = stderrProblems(gw.stderr());
  return { name: 'waygate never exited, stderr clean', ok: bad.length === 0, detail: bad.length === 0 ? 'running, nothing on stderr' : `running, but stderr has: ${bad.slice(0, 20).join('\n')}` };
}

/** SIGTERM drains and exits 0 within the shutdown timeout and some room. */
export async function checkStop(gw: WaygateProcess, shutdownMs: number): Promise<Check> {
  const started = Date.now();
  const e = await gw.stop(shutdownMs + 5000);
  const ms = Date.now() - started;
  const ok = e.code === 0 && !e.killed;
  return { name: 'SIGTERM exits 0', ok, detail: e.killed ? `still running ${ms} ms after SIGTERM: killed` : `exit code ${e.code}${e.signal === null ? '' : `, signal ${e.signal}`} after ${ms} ms` };
}

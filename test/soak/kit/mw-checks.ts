// The middleware soak's end-of-run checks (SPEC §8), read from outside like the others: no
// upstream saw what a middleware must keep from it (the `/!` fault hits: a forged or denied
// x-user, an unlisted field at the auth service); waygate_middleware_rejections_total moved for
// every middleware route its clients reached (and stayed 0 where the clients are always let in),
// agreeing with the access log's `rejectedBy`; and once Redis is back, the Redis rate limit limits
// again: a burst under a fresh key gets a 429.
import type { Check } from '../checks.ts';
import type { Shared } from '../scope.ts';
import { Scope } from '../scope.ts';
import type { TaskRecord } from '../soak.ts';
import type { PoolSpec } from '../types.ts';
import type { UpstreamHost } from '../upstreams.ts';
import type { WaygateProcess } from '../waygate-process.ts';
import { KEY_HEADER, MW, middlewareOf } from './mw.ts';
import { burst } from './mw-http.ts';
import { pollUntil } from './time.ts';

/** A fault hit whose name has this after its fault's name is a violation (faults/mw-*.ts). */
export const VIOLATION = '/!';
/** How long Redis may take to be seen up again (ioredis retries at most every 2 s). */
export const REDIS_UP_MS = 10_000;
/** Bursts the final Redis check tries before it gives up on seeing a 429. */
const REDIS_BURSTS = 3;

/** One Prometheus series: its labels and value. */
export interface Series {
  labels: Record<string, string>;
  value: number;
}

/** Every series of metric `name` in a /metrics text. */
export function seriesOf(text: string, name: string): Series[] {
  const out: Series[] = [];
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)$`, 'gm'))) {
    const labels: Record<string, string> = {};
    for (const l of (m[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)) labels[l[1]] = l[2];
    out.push({ labels, value: Number(m[2]) });
  }
  return out;
}

/** The sum of metric `name` over the series whose labels include `match`. */
export async function metricSum(gw: WaygateProcess, name: string, match: Record<string, string> = {}): Promise<number> {
  const text = (await gw.adminGet('/metrics')).body;
  return seriesOf(text, name).filter((s) => Object.entries(match).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
}

/** waygate_redis_up now (NaN when absent). */
export async function redisUp(gw: WaygateProcess): Promise<number> {
  const s = seriesOf((await gw.adminGet('/metrics')).body, 'waygate_redis_up');
  return s.length === 0 ? NaN : s[0].value;
}

/** Nothing a middleware must keep from an upstream reached one. */
export async function checkViolations(up: UpstreamHost): Promise<Check> {
  const hits = (await up.stats()).hits;
  const bad = Object.entries(hits).filter(([k]) => k.includes(VIOLATION));
  const auth = Object.entries(hits).filter(([k]) => k.startsWith('mw-auth/') && !k.includes(VIOLATION) && !k.includes('upstream')).reduce((a, [, n]) => a + n, 0);
  return {
    name: 'no forged or denied identity reached an upstream',
    ok: bad.length === 0,
    detail: bad.length === 0 ? `the auth upstream saw only x-user values the auth service issued for an allowing answer (${auth} checks answered)` : bad.map(([k, n]) => `${k.replace(VIOLATION, ': ')} ×${n}`).join('; '),
  };
}

/**
 * For each middleware with `rejects`: `some` — the counter moved, once a middleware client's task
 * reached its route; `never` — it stayed 0. Each must agree with the access log's rejectedBy
 * (`logged`: "route middleware" → lines), when one process served the whole run.
 */
export async function checkRejections(gw: WaygateProcess, pools: readonly PoolSpec[], records: readonly TaskRecord[], logged: Record<string, number>, oneProcess: boolean): Promise<Check> {
  const text = (await gw.adminGet('/metrics')).body;
  const series = seriesOf(text, 'waygate_middleware_rejections_total');
  const problems: string[] = [];
  const seen: string[] = [];
  for (const p of pools) {
    for (const m of p.middlewares ?? []) {
      if (m.rejects === undefined) continue;
      const n = series.filter((s) => s.labels.route === p.name && s.labels.middleware === m.name).reduce((a, s) => a + s.value, 0);
      const kind = series.find((s) => s.labels.route === p.name && s.labels.middleware === m.name)?.labels.kind;
      if (kind !== undefined && kind !== m.kind) problems.push(`${p.name}/${m.name}: counted under kind ${kind}, not ${m.kind}`);
      const tasks = records.filter((r) => r.pool === p.name && r.behaviour.startsWith('mw-')).length;
      const log = logged[`${p.name} ${m.name}`] ?? 0;
      seen.push(`${p.name}/${m.name} ${n}`);
      if (m.rejects === 'never' && n !== 0) problems.push(`${p.name}/${m.name}: ${n} rejections of clients it must let in`);
      if (m.rejects === 'some' && tasks > 0 && n === 0) problems.push(`${p.name}/${m.name}: no rejection counted after ${tasks} middleware client tasks`);
      if (oneProcess && log !== n) problems.push(`${p.name}/${m.name}: the counter says ${n}, the access log names it in rejectedBy ${log} times`);
    }
  }
  return { name: 'waygate_middleware_rejections_total per middleware route', ok: problems.length === 0, detail: problems.length === 0 ? `${seen.join(', ')} (agreeing with the access log's rejectedBy)` : problems.join('; ') };
}

/** After the chaos (Redis killed and restarted): waygate sees Redis up, and a burst under a fresh key on the Redis route gets a 429 again. */
export async function checkRedisLimitsAgain(gw: WaygateProcess, shared: Shared): Promise<Check> {
  const name = 'the Redis rate limit limits again after Redis came back';
  const pool = shared.pools.find((p) => p.name === MW.redis);
  if (pool === undefined) return { name, ok: true, detail: 'no Redis route' };
  const started = Date.now();
  const up = await pollUntil(async () => (await redisUp(gw)) === 1, REDIS_UP_MS, 200);
  if (!up) return { name, ok: false, detail: `waygate_redis_up is ${await redisUp(gw)} ${REDIS_UP_MS} ms after the chaos (Redis runs)` };
  const upMs = Date.now() - started;
  const o = middlewareOf(pool, 'rateLimit').options as { burst: number };
  const n = o.burst * 3;
  const scope = new Scope(shared);
  const tries: string[] = [];
  try {
    for (let i = 0; i < REDIS_BURSTS; i++) {
      const t0 = Date.now();
      const got = await burst(scope.ctx, 'h2', Array.from({ length: n }, () => ({ method: 'GET', path: `/${pool.name}/echo`, headers: { [KEY_HEADER]: `after-${started}-${i}` } })));
      const statuses: Record<string, number> = {};
      for (const g of got) {
        const k = g instanceof Error ? g.message : String(g.status);
        statuses[k] = (statuses[k] ?? 0) + 1;
      }
      const text = Object.entries(statuses).map(([k, v]) => `${k} ×${v}`).join(', ');
      tries.push(`${text} in ${Date.now() - t0} ms`);
      const odd = Object.keys(statuses).filter((k) => k !== '200' && k !== '429');
      if (odd.length > 0) return { name, ok: false, detail: `a burst of ${n} got ${text}: only 200 and 429 may answer` };
      if ((statuses['429'] ?? 0) > 0) return { name, ok: true, detail: `waygate_redis_up 1 within ${upMs} ms; a burst of ${n} under a fresh key (bucket ${o.burst}): ${tries.join('; then ')}` };
    }
  } finally {
    scope.end();
  }
  return { name, ok: false, detail: `waygate_redis_up 1, yet ${REDIS_BURSTS} bursts of ${n} under fresh keys (bucket ${o.burst}) got no 429: ${tries.join('; ')}` };
}

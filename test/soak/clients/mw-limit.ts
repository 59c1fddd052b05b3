// Burst clients of the rate-limited routes (SPEC §8): more requests than the bucket holds, all at
// once (fresh HTTP/1.1 connections, or one HTTP/2 session), under a key of the task's own or none
// (then every such client shares the client IP's bucket). Every answer is the upstream's 200 or a
// 429 `rate limited` with a whole-seconds retry-after (and on the local route the RateLimit
// fields), never a 5xx: with Redis paused or down (kit/mw-chaos.ts) failMode open lets requests
// through. With its own key on the local route, a burst gets at most the bucket plus what refilled
// while it ran (so a fast one is refused some): the bound grows with the time taken, nothing here
// depends on the machine's speed.
import { PROTOS } from '../kit/http-client.ts';
import { KEY_HEADER, MW, middlewareOf, mwPools } from '../kit/mw.ts';
import { burst, describeGot, field } from '../kit/mw-http.ts';
import type { MwGot } from '../kit/mw-http.ts';
import type { ClientBehaviour, Outcome, PoolSpec } from '../types.ts';

/** A limit as its middleware's options say. */
interface Limit {
  name: string;
  average: number;
  periodMs: number;
  burst: number;
  headers: boolean;
}

function limitOf(pool: PoolSpec): Limit {
  const m = middlewareOf(pool, 'rateLimit');
  const o = m.options as { average: number; period: string; burst: number; headers?: boolean };
  return { name: m.name, average: o.average, periodMs: Number(/^(\d+)ms$/.exec(o.period)?.[1] ?? 1000), burst: o.burst, headers: o.headers === true };
}

/** Why one answer of a burst is wrong, or undefined. */
export function wrongLimited(limit: Limit, got: MwGot): string | undefined {
  if (got.status === 200) {
    if (limit.headers) {
      const policy = field(got, 'ratelimit-policy');
      const m = new RegExp(`^"${limit.name}";r=(\\d+);t=(\\d+)$`).exec(field(got, 'ratelimit'));
      if (!policy.startsWith(`"${limit.name}";q=${limit.burst};w=`) || m === null || Number(m[1]) >= limit.burst) return 'a 200 without the RateLimit-Policy and RateLimit fields of its bucket';
    }
    return undefined;
  }
  if (got.status !== 429) return 'expected 200 or 429';
  if (got.body.toString() !== 'rate limited') return 'a 429 whose body is not "rate limited"';
  if (!/^\d+$/.test(field(got, 'retry-after'))) return 'a 429 without a whole-seconds retry-after';
  if (limit.headers && !new RegExp(`^"${limit.name}";r=0;t=\\d+$`).test(field(got, 'ratelimit'))) return 'a 429 without RateLimit r=0';
  return undefined;
}

const mwLimit: ClientBehaviour = {
  name: 'mw-limit',
  weight: 6,
  plan(rng, pools) {
    const candidates = mwPools(pools, MW.redis, MW.local);
    if (candidates.length === 0) return undefined;
    const pool = rng.pick(candidates);
    const limit = limitOf(pool);
    const proto = rng.pick(PROTOS);
    const keyed = rng.chance(0.7);
    const key = `burst-${rng.u32().toString(16)}`;
    const n = limit.burst + rng.int(2, 15);
    const path = `/${pool.name}/${rng.pick(['echo', 'data?size=100'])}`;
    return {
      label: `mw-limit pool=${pool.name} ${proto} ${n} at once ${keyed ? `key ${key}` : 'by client ip'} GET ${path}`,
      pool: pool.name,
      async run(ctx): Promise<Outcome> {
        const started = Date.now();
        const got = await burst(ctx, proto, Array.from({ length: n }, () => ({ method: 'GET', path, headers: keyed ? { [KEY_HEADER]: key } : {} })));
        const seconds = (Date.now() - started) / 1000;
        const problems: string[] = [];
        let ok = 0;
        let limited = 0;
        for (const [i, g] of got.entries()) {
          if (g instanceof Error) {
            problems.push(`#${i}: no answer: ${ctx.signal.aborted ? 'cut at the task deadline' : g.message}`);
            continue;
          }
          const why = wrongLimited(limit, g);
          if (why !== undefined) problems.push(`#${i}: ${why}; got ${describeGot(g)}`);
          else if (g.status === 200) ok++;
          else limited++;
        }
        // The local bucket is waygate's alone: its own key's burst passes at most what the bucket held and refilled meanwhile.
        const bound = Math.floor(limit.burst + (limit.average * seconds * 1000) / limit.periodMs) + 1;
        if (keyed && pool.name === MW.local && ok > bound) problems.push(`${ok} of ${n} passed in ${seconds.toFixed(2)} s: a bucket of ${limit.burst} refilled at ${limit.average}/${limit.periodMs}ms admits at most ${bound}`);
        if (problems.length > 0) return { ok: false, note: 'wrong answer', detail: problems.slice(0, 4).join('; ') };
        return { ok: true, note: limited > 0 ? 'limited' : keyed && n > bound ? 'not limited (store down?)' : 'not limited' };
      },
    };
  },
};
export default mwLimit;

// Normal requests to the healthy pools over HTTP/1.1, HTTPS and HTTP/2: GET and HEAD of
// pattern bodies (sized, chunked, in one burst), POST uploads (declared and chunked, streamed in
// pieces) to the echo. Every one must answer 200 with the right bytes, whatever else is going on.
import { h1, h2, h2Session, PROTOS } from '../kit/http-client.ts';
import type { Got, Proto, RequestSpec } from '../kit/http-client.ts';
import { httpPools, pathOf, sizeOf } from '../kit/plan.ts';
import type { Echo } from '../kit/content.ts';
import type { Rng } from '../prng.ts';
import type { ClientBehaviour, ClientContext, Outcome, PoolSpec } from '../types.ts';

const UPLOAD_SIZES = [0, 1, 1000, 70_000, 300_000];

/** Plans one well-formed request to `pool`. */
export function normalRequest(rng: Rng, pool: PoolSpec): RequestSpec {
  const data = pool.variants.filter((v) => v.startsWith('data'));
  switch (rng.int(0, 3)) {
    case 0:
      return { method: 'GET', path: pathOf(pool, rng.pick(data)) };
    case 1:
      return { method: 'HEAD', path: pathOf(pool, rng.pick(data)) };
    case 2:
      return { method: 'GET', path: pathOf(pool, 'echo') };
    default:
      return { method: 'POST', path: pathOf(pool, 'echo'), body: { size: rng.pick(UPLOAD_SIZES), declared: rng.chance(0.5), pieces: rng.int(1, 8) } };
  }
}

/** Describes a request for a label. */
export function describe(r: RequestSpec): string {
  const body = r.body === undefined ? '' : ` ${r.body.size}B ${r.body.declared ? 'declared' : 'chunked'}/${r.body.pieces}`;
  return `${r.method} ${r.path}${body}`;
}

/** Why a healthy answer is wrong, or undefined when it is right. */
export function wrongAnswer(r: RequestSpec, got: Got): string | undefined {
  if (got.status !== 200) return `status ${got.status}`;
  const size = sizeOf(r.path);
  if (r.method === 'HEAD') return got.bytes === 0 ? undefined : `HEAD answered ${got.bytes} body bytes`;
  if (size !== undefined) {
    if (got.bytes !== size) return `body of ${got.bytes} bytes, expected ${size}`;
    if (got.patternBad !== -1) return `body differs from the pattern at byte ${got.patternBad}`;
    return undefined;
  }
  let echo: Echo;
  try {
    echo = JSON.parse(got.text) as Echo;
  } catch {
    return `echo body is not JSON: ${JSON.stringify(got.text.slice(0, 80))}`;
  }
  if (echo.method !== r.method || echo.url !== r.path) return `echo of ${echo.method} ${echo.url}, expected ${r.method} ${r.path}`;
  const sent = r.body?.size ?? 0;
  return echo.bytes === sent ? undefined : `upstream got ${echo.bytes} body bytes, expected ${sent}`;
}

/** Sends `reqs` over `proto` (one after another on HTTP/1.1, concurrently on one HTTP/2 session) and checks every answer. */
export async function sendAll(ctx: ClientContext, proto: Proto, reqs: RequestSpec[]): Promise<Outcome> {
  const check = async (r: RequestSpec, go: () => Promise<Got>): Promise<string | undefined> => {
    try {
      return wrongAnswer(r, await go());
    } catch (err) {
      return ctx.signal.aborted ? 'cut at the task deadline' : `${(err as Error).message}`;
    }
  };
  const problems: string[] = [];
  if (proto === 'h2') {
    const session = h2Session(ctx);
    const results = await Promise.all(reqs.map((r) => check(r, () => h2(ctx, session, r))));
    session.close();
    results.forEach((p, i) => p !== undefined && problems.push(`${describe(reqs[i])}: ${p}`));
  } else {
    for (const r of reqs) {
      const p = await check(r, () => h1(ctx, proto === 'h1s', r));
      if (p !== undefined) problems.push(`${describe(r)}: ${p}`);
    }
  }
  return problems.length === 0 ? { ok: true, note: '200' } : { ok: false, note: 'wrong answer', detail: problems.join('; ') };
}

const normal: ClientBehaviour = {
  name: 'normal',
  weight: 20,
  plan(rng, pools) {
    const healthy = httpPools(pools, 'ok');
    if (healthy.length === 0) return undefined;
    const pool = rng.pick(healthy);
    const proto = rng.pick(PROTOS);
    const reqs = Array.from({ length: rng.int(1, 3) }, () => normalRequest(rng, pool));
    return {
      label: `normal pool=${pool.name} ${proto} ${reqs.map(describe).join(', ')}`,
      pool: pool.name,
      run: (ctx) => sendAll(ctx, proto, reqs),
    };
  },
};
export default normal;

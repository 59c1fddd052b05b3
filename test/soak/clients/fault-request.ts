// Ordinary requests to the fault pools (refusing, hanging, resetting, badly framed, closing
// early, pausing, slow, retried): any answer will do, or a closed connection, as long as the
// exchange ends; the retried pool must answer GET and HEAD with 200 (SPEC §4).
import { codeOf, PROTOS, send } from '../kit/http-client.ts';
import { anyPath, httpPools } from '../kit/plan.ts';
import type { ClientBehaviour } from '../types.ts';

const faultRequest: ClientBehaviour = {
  name: 'fault-request',
  weight: 20,
  plan(rng, pools) {
    const faulty = httpPools(pools, 'any', 'ok-idempotent');
    if (faulty.length === 0) return undefined;
    const pool = rng.pick(faulty);
    const proto = rng.pick(PROTOS);
    const method = rng.pick(['GET', 'GET', 'HEAD', 'POST']);
    const path = anyPath(rng, pool);
    const body = method === 'POST' ? { size: rng.pick([10, 5000, 100_000]), declared: rng.chance(0.5), pieces: rng.int(1, 4) } : undefined;
    const mustSucceed = pool.expect === 'ok-idempotent' && method !== 'POST';
    return {
      label: `fault-request pool=${pool.name} ${proto} ${method} ${path}${body === undefined ? '' : ` ${body.size}B ${body.declared ? 'declared' : 'chunked'}`}`,
      pool: pool.name,
      async run(ctx) {
        try {
          const got = await send(ctx, proto, { method, path, body });
          if (mustSucceed && got.status !== 200) return { ok: false, note: String(got.status), detail: `${method} ${path} on a retried pool answered ${got.status}, expected 200` };
          return { ok: true, note: String(got.status) };
        } catch (err) {
          if (ctx.signal.aborted) return { ok: false, note: 'stuck', detail: 'no answer and no close by the task deadline' };
          const code = codeOf(err);
          if (mustSucceed) return { ok: false, note: 'error', detail: `${method} ${path} on a retried pool failed: ${code}` };
          return { ok: true, note: `error ${code.replace(/\d+/g, 'N')}` };
        }
      },
    };
  },
};
export default faultRequest;

// Clients that abort an upload part-way: a body declared with Content-Length or chunked, some of
// it sent, then after 0–1500 ms (long enough to land while the upstream connect or TLS
// handshake is pending, issue 12 defect 2) a FIN, a reset or a plain close.
import { bodyBytes, httpPools, pathOf } from '../kit/plan.ts';
import { sleep } from '../kit/time.ts';
import { firstStatus, requestHead, Wire } from '../kit/wire.ts';
import type { ClientBehaviour } from '../types.ts';

const abortMidBody: ClientBehaviour = {
  name: 'abort-mid-body',
  weight: 7,
  plan(rng, pools) {
    const candidates = httpPools(pools);
    if (candidates.length === 0) return undefined;
    const pool = rng.pick(candidates);
    const tls = rng.chance(0.4);
    const declared = rng.chance(0.6);
    const total = rng.pick([10_000, 200_000, 300_000]);
    const sent = rng.int(0, Math.floor(total * 0.9));
    const delay = rng.int(0, 1500);
    const how = rng.pick(['fin', 'rst', 'destroy'] as const);
    const method = rng.pick(['POST', 'PUT']);
    const path = pathOf(pool, pool.variants.includes('echo') ? 'echo' : rng.pick(pool.variants));
    return {
      label: `abort-mid-body pool=${pool.name}${tls ? ' tls' : ''} ${method} ${declared ? `declared ${total}` : 'chunked'} sent ${sent} then ${how} after ${delay}ms`,
      pool: pool.name,
      async run(ctx) {
        const wire = new Wire(ctx, { tls });
        try {
          await wire.ready;
        } catch (err) {
          return { ok: false, note: 'connect failed', detail: (err as Error).message };
        }
        await wire.write(requestHead(method, path, declared ? { 'content-length': total } : { 'transfer-encoding': 'chunked' }));
        for (const b of bodyBytes(total, sent, declared)) {
          if (wire.isEnded || ctx.signal.aborted) break;
          await wire.write(b);
        }
        await sleep(delay, ctx.signal);
        const status = firstStatus(wire.text());
        if (how === 'fin') wire.end();
        else if (how === 'rst') wire.reset();
        else wire.destroy();
        return { ok: true, note: `${how}, ${status === 0 ? 'no answer yet' : `after ${status}`}` };
      },
    };
  },
};
export default abortMidBody;

// Clients that go away as soon as the response head arrives (before any body byte is read),
// with a reset or a plain close.
import { anyPath, httpPools } from '../kit/plan.ts';
import { firstStatus, requestHead, Wire } from '../kit/wire.ts';
import type { ClientBehaviour } from '../types.ts';

/** Longest wait for a head (past every gateway timeout of the soak). */
const HEAD_WAIT_MS = 12_000;

const abortAfterHead: ClientBehaviour = {
  name: 'abort-after-head',
  weight: 5,
  plan(rng, pools) {
    const candidates = httpPools(pools);
    if (candidates.length === 0) return undefined;
    const pool = rng.pick(candidates);
    const tls = rng.chance(0.4);
    const path = anyPath(rng, pool);
    const how = rng.pick(['rst', 'destroy'] as const);
    return {
      label: `abort-after-head pool=${pool.name}${tls ? ' tls' : ''} GET ${path} then ${how}`,
      pool: pool.name,
      async run(ctx) {
        const wire = new Wire(ctx, { tls });
        try {
          await wire.ready;
        } catch (err) {
          return { ok: false, note: 'connect failed', detail: (err as Error).message };
        }
        await wire.write(requestHead('GET', path));
        const got = await wire.until((t) => t.includes('\r\n\r\n'), HEAD_WAIT_MS, ctx.signal);
        if (!got) {
          if (wire.isEnded) return { ok: true, note: 'closed before a head' };
          return { ok: false, note: 'no head', detail: `no response head and no close within ${HEAD_WAIT_MS} ms` };
        }
        const status = firstStatus(wire.text());
        if (how === 'rst') wire.reset();
        else wire.destroy();
        return { ok: true, note: `${status} then ${how}` };
      },
    };
  },
};
export default abortAfterHead;

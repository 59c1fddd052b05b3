// Clients that stop in the middle of a request head: cut at a random byte, then a FIN, a reset,
// or silence until the gateway gives up (it must, within clientHeader).
import { anyPath, httpPools } from '../kit/plan.ts';
import { requestHead, firstStatus, Wire } from '../kit/wire.ts';
import type { ClientBehaviour } from '../types.ts';

const SILENT_SLACK = 4;

const abortMidHeaders: ClientBehaviour = {
  name: 'abort-mid-headers',
  weight: 5,
  plan(rng, pools) {
    const candidates = httpPools(pools);
    if (candidates.length === 0) return undefined;
    const pool = rng.pick(candidates);
    const tls = rng.chance(0.4);
    const head = requestHead(rng.pick(['GET', 'POST', 'PUT']), anyPath(rng, pool), { 'user-agent': 'soak', 'x-filler': 'x'.repeat(rng.int(0, 2000)) });
    const cut = rng.int(1, head.length - 2);
    const how = rng.pick(['fin', 'rst', 'stall'] as const);
    return {
      label: `abort-mid-headers pool=${pool.name}${tls ? ' tls' : ''} cut at ${cut}/${head.length} then ${how}`,
      pool: pool.name,
      async run(ctx) {
        const wire = new Wire(ctx, { tls });
        try {
          await wire.ready;
        } catch (err) {
          return { ok: false, note: 'connect failed', detail: (err as Error).message };
        }
        await wire.write(head.slice(0, cut));
        if (how === 'fin') wire.end();
        if (how === 'rst') wire.reset();
        if (how !== 'stall') return { ok: true, note: how };
        const bound = ctx.timeouts.clientHeader * SILENT_SLACK;
        const ending = await wire.endedWithin(bound, ctx.signal);
        if (ending === 'open') return { ok: false, note: 'kept open', detail: `a connection stalled mid-head was still open after ${bound} ms (clientHeader ${ctx.timeouts.clientHeader} ms)` };
        return { ok: true, note: `stall: ${firstStatus(wire.text()) || 'no status'}, ${ending}` };
      },
    };
  },
};
export default abortMidHeaders;

// Clients that go away in the middle of a response body, after reading a random number of
// bytes of a large answer (healthy pools) or of a paused or slow one.
import { httpPools, pathOf } from '../kit/plan.ts';
import { firstStatus, parseHead, requestHead, Wire } from '../kit/wire.ts';
import type { ClientBehaviour } from '../types.ts';

const BODY_WAIT_MS = 12_000;
const LARGE = ['data?size=1048576', 'data?size=1048576&chunked=1&burst=1', 'data?size=262144&chunked=1&burst=1'];

const abortMidResponse: ClientBehaviour = {
  name: 'abort-mid-response',
  weight: 5,
  plan(rng, pools) {
    const candidates = httpPools(pools).filter((p) => p.expect === 'ok' || p.name === 'pause' || p.name === 'slow' || p.name === 'h2-calm');
    if (candidates.length === 0) return undefined;
    const pool = rng.pick(candidates);
    const tls = rng.chance(0.4);
    const path = pathOf(pool, pool.expect === 'ok' ? rng.pick(LARGE) : rng.pick(pool.variants));
    const after = rng.int(1, 200_000);
    const how = rng.pick(['rst', 'destroy', 'fin'] as const);
    return {
      label: `abort-mid-response pool=${pool.name}${tls ? ' tls' : ''} GET ${path} ${how} after ${after} body bytes`,
      pool: pool.name,
      async run(ctx) {
        const wire = new Wire(ctx, { tls });
        try {
          await wire.ready;
        } catch (err) {
          return { ok: false, note: 'connect failed', detail: (err as Error).message };
        }
        await wire.write(requestHead('GET', path));
        await wire.until((t) => {
          const h = parseHead(t);
          return h !== undefined && t.length - h.bodyStart >= after;
        }, BODY_WAIT_MS, ctx.signal);
        const status = firstStatus(wire.text());
        const ended = wire.isEnded;
        if (how === 'rst') wire.reset();
        else if (how === 'fin') wire.end();
        else wire.destroy();
        return { ok: true, note: ended ? `${status || 'no status'}, ended before the cut` : `${status} then ${how}` };
      },
    };
  },
};
export default abortMidResponse;

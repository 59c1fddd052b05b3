// Streamed uploads whose client vanishes: a body declared (up to 2 MB, over limits.maxBodySize
// included) or chunked, a part of it sent in pieces, then either a reset soon after, a close
// once the answer arrives, or silence. A silent client must be closed by the gateway (issue 12,
// defect 1: after a 502 from a refusing pool its idle timer crashed the process instead).
import { bodyBytes, httpPools, pathOf } from '../kit/plan.ts';
import { sleep } from '../kit/time.ts';
import { firstStatus, requestHead, Wire } from '../kit/wire.ts';
import type { ClientBehaviour } from '../types.ts';

/** How long a silent uploader may stay connected: past clientIdle, the response and idle timeouts, with room for a busy machine. */
const STALL_BOUND_MS = 12_000;
const ANSWER_WAIT_MS = 8_000;

const uploadVanish: ClientBehaviour = {
  name: 'upload-vanish',
  weight: 8,
  plan(rng, pools) {
    const candidates = httpPools(pools);
    if (candidates.length === 0) return undefined;
    const pool = rng.pick(candidates);
    const tls = rng.chance(0.4);
    const declared = rng.chance(0.6);
    const total = rng.pick([300_000, 300_000, 2_000_000]);
    const sent = rng.pick([2048, 16_384, 65_536]);
    const then = rng.pick(['rst-soon', 'close-after-answer', 'stall'] as const);
    const soon = rng.int(0, 500);
    const path = pathOf(pool, pool.variants.includes('echo') ? 'echo' : rng.pick(pool.variants));
    return {
      label: `upload-vanish pool=${pool.name}${tls ? ' tls' : ''} POST ${declared ? `declared ${total}` : 'chunked'} sent ${sent} then ${then}${then === 'rst-soon' ? ` ${soon}ms` : ''}`,
      pool: pool.name,
      async run(ctx) {
        const wire = new Wire(ctx, { tls });
        try {
          await wire.ready;
        } catch (err) {
          return { ok: false, note: 'connect failed', detail: (err as Error).message };
        }
        await wire.write(requestHead('POST', path, declared ? { 'content-length': total } : { 'transfer-encoding': 'chunked' }));
        for (const b of bodyBytes(total, sent, declared, 1024)) {
          if (wire.isEnded || ctx.signal.aborted) break;
          await wire.write(b);
        }
        if (then === 'rst-soon') {
          await sleep(soon, ctx.signal);
          const status = firstStatus(wire.text());
          wire.reset();
          return { ok: true, note: `rst ${status === 0 ? 'before an answer' : `after ${status}`}` };
        }
        if (then === 'close-after-answer') {
          await wire.until((t) => t.includes('\r\n\r\n'), ANSWER_WAIT_MS, ctx.signal);
          const status = firstStatus(wire.text());
          wire.destroy();
          return { ok: true, note: `closed after ${status || 'no answer'}` };
        }
        const ending = await wire.endedWithin(STALL_BOUND_MS, ctx.signal);
        const status = firstStatus(wire.text());
        if (ending === 'open') {
          return { ok: false, note: 'kept open', detail: `a stalled upload (answer: ${status || 'none'}) was still connected after ${STALL_BOUND_MS} ms (clientIdle ${ctx.timeouts.clientIdle} ms)` };
        }
        return { ok: true, note: `stall: ${status || 'no answer'}, ${ending}` };
      },
    };
  },
};
export default uploadVanish;

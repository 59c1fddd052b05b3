// Clients that connect and go away before sending a request: a FIN, a reset, a TLS handshake cut
// after a few bytes, or silence until the gateway gives up (it must, within clientHeader).
import { Wire } from '../kit/wire.ts';
import { sleep } from '../kit/time.ts';
import type { ClientBehaviour } from '../types.ts';

/** How much longer than clientHeader a silent connection may stay open before it counts as kept. */
const SILENT_SLACK = 4;

const abortBeforeHeaders: ClientBehaviour = {
  name: 'abort-before-headers',
  weight: 5,
  plan(rng) {
    const how = rng.pick(['fin', 'rst', 'silent', 'cut-tls-hello'] as const);
    const tls = how === 'cut-tls-hello' ? false : rng.chance(0.4);
    const delay = rng.int(0, 300);
    const hello = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]), rng.bytes(rng.int(0, 40))]);
    return {
      label: `abort-before-headers ${how}${tls ? ' tls' : ''} after ${delay}ms`,
      async run(ctx) {
        const wire = new Wire(ctx, { tls, port: how === 'cut-tls-hello' ? ctx.gateway.https : undefined });
        try {
          await wire.ready;
        } catch (err) {
          return { ok: false, note: 'connect failed', detail: (err as Error).message };
        }
        if (how === 'cut-tls-hello') await wire.write(hello);
        await sleep(delay, ctx.signal);
        if (how === 'silent') {
          const bound = ctx.timeouts.clientHeader * SILENT_SLACK;
          const ending = await wire.endedWithin(bound, ctx.signal);
          if (ending === 'open') return { ok: false, note: 'kept open', detail: `a silent connection was still open after ${bound} ms (clientHeader ${ctx.timeouts.clientHeader} ms)` };
          return { ok: true, note: `gateway ${ending}` };
        }
        if (how === 'rst' || how === 'cut-tls-hello') wire.reset();
        else wire.end();
        return { ok: true, note: how };
      },
    };
  },
};
export default abortBeforeHeaders;

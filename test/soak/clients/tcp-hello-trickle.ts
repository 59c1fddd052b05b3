// Clients that never finish their ClientHello on the SNI listener (SPEC §7): one byte at a time,
// too slowly to be done within peekTimeout, or a part of it and then silence. peekTimeout is an
// absolute deadline: waygate must close the connection by then (with room for a busy machine),
// send nothing, reach no pool, and log peek_timeout.
import { checkLine, dial, helloFor, tcpPools, onPeekingListener } from '../kit/l4.ts';
import { sleep } from '../kit/time.ts';
import type { ClientBehaviour } from '../types.ts';

/** Times peekTimeout a connection may live: the deadline is absolute, the rest is a loaded machine. */
const PEEK_SLACK = 3;

const tcpHelloTrickle: ClientBehaviour = {
  name: 'tcp-hello-trickle',
  weight: 3,
  plan(rng, pools) {
    const sni = tcpPools(pools).filter(onPeekingListener);
    if (sni.length === 0) return undefined;
    const pool = rng.pick(sni);
    const seed = rng.u32();
    const how = rng.pick(['trickle', 'stall'] as const);
    const tick = rng.int(15, 60);
    // Long enough that a byte per tick cannot finish it within PEEK_SLACK × peekTimeout.
    const size = rng.pick([1800, 6000]);
    const stallAt = rng.int(0, 500);
    return {
      label: `tcp-hello-trickle pool=${pool.name} ${how === 'trickle' ? `a byte every ${tick}ms of a ${size}B hello` : `${stallAt} bytes of a hello then silence`}`,
      pool: pool.name,
      async run(ctx) {
        const hello = helloFor(pool, seed, { size });
        const wire = dial(ctx, pool);
        try {
          await wire.ready;
        } catch (err) {
          return { ok: false, note: 'connect failed', detail: (err as Error).message };
        }
        const started = Date.now();
        const bound = ctx.timeouts.peek * PEEK_SLACK;
        if (how === 'stall') {
          if (stallAt > 0) await wire.write(hello.subarray(0, stallAt));
        } else {
          for (let i = 0; i < hello.length && !wire.isEnded && !ctx.signal.aborted && Date.now() - started < bound; i++) {
            void wire.write(hello.subarray(i, i + 1));
            await sleep(tick, ctx.signal);
          }
        }
        const ending = await wire.endedWithin(Math.max(0, bound - (Date.now() - started)), ctx.signal);
        if (ending === 'open') return { ok: false, note: 'kept open', detail: `an incomplete hello (${how}) was still connected ${Date.now() - started} ms after it began (peekTimeout ${ctx.timeouts.peek} ms)` };
        const lived = Date.now() - started;
        if (lived < ctx.timeouts.peek - 200) return { ok: false, note: 'closed early', detail: `an incomplete hello (${how}) was closed after ${lived} ms, before peekTimeout (${ctx.timeouts.peek} ms)` };
        if (wire.received > 0) return { ok: false, note: 'answered', detail: `an incomplete hello was answered with ${wire.received} bytes: ${JSON.stringify(wire.text().slice(0, 80))}` };
        const line = await checkLine(ctx, wire, { route: null, target: null, terminations: ['peek_timeout'] });
        if (line.problem !== undefined) return { ok: false, note: 'connection line wrong', detail: line.problem };
        return { ok: true, note: `${how}: closed at the peek deadline, ${ending}` };
      },
    };
  },
};
export default tcpHelloTrickle;

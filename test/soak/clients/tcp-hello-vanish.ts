// Clients that vanish mid-hello on the SNI listener (SPEC §7): a ClientHello naming a route, cut
// at a random byte (written whole or in pieces), then a FIN, a close or a reset. Nothing may
// reach a pool, and the connection line must say so (no route, no target; bad_hello for a
// client that sent its FIN before a complete hello).
import { piecesOf } from '../kit/hello.ts';
import { checkLine, dial, helloFor, tcpPools, writePieces, onPeekingListener } from '../kit/l4.ts';
import type { ClientBehaviour } from '../types.ts';

const tcpHelloVanish: ClientBehaviour = {
  name: 'tcp-hello-vanish',
  weight: 3,
  plan(rng, pools) {
    const sni = tcpPools(pools).filter(onPeekingListener);
    if (sni.length === 0) return undefined;
    const pool = rng.pick(sni);
    const seed = rng.u32();
    const size = rng.pick([undefined, 1800, 6000]);
    const records = rng.pick([1, 2, 3]);
    const length = helloFor(pool, seed, { size, records }).length;
    const cut = rng.int(1, length - 1);
    const pieces = rng.pick([1, 1, 4]);
    const how = rng.pick(['fin', 'close', 'reset'] as const);
    return {
      label: `tcp-hello-vanish pool=${pool.name} hello ${length}B in ${records} record(s) cut at ${cut} (${pieces} pieces) then ${how}`,
      pool: pool.name,
      async run(ctx) {
        const wire = dial(ctx, pool);
        try {
          await wire.ready;
        } catch (err) {
          return { ok: false, note: 'connect failed', detail: (err as Error).message };
        }
        await writePieces(ctx, wire, piecesOf(helloFor(pool, seed, { size, records }).subarray(0, cut), pieces, seed));
        if (how === 'reset') wire.reset();
        else if (how === 'close') wire.destroy();
        else {
          wire.end();
          const bound = ctx.timeouts.peek * 2;
          const ending = await wire.endedWithin(bound, ctx.signal);
          if (ending === 'open') return { ok: false, note: 'kept open', detail: `a client that sent its FIN mid-hello was still connected ${bound} ms later` };
          if (wire.received > 0) return { ok: false, note: 'answered', detail: `a half hello was answered with ${wire.received} bytes` };
        }
        // A FIN or a close reaches waygate as the end of the stream: bad_hello; a reset as an error.
        const line = await checkLine(ctx, wire, { route: null, target: null, terminations: how === 'reset' ? ['client_close', 'bad_hello'] : ['bad_hello'] });
        // A reset that beats waygate's accept leaves it no peer address: that line carries clientPort 0.
        if (how === 'reset' && line.line === undefined) return { ok: true, note: 'reset mid-hello: (reset before the accept)' };
        if (line.problem !== undefined) return { ok: false, note: 'connection line wrong', detail: line.problem };
        return { ok: true, note: `${how} mid-hello: ${line.termination}` };
      },
    };
  },
};
export default tcpHelloVanish;

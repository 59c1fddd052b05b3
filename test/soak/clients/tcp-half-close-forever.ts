// L4 clients that never finish (SPEC §7), against every tcp pool: they write, then send their
// FIN and never read the rest (or read it, and never close), or go silent without a FIN and
// without reading. The route's halfCloseTimeout (after a FIN) and idleTimeout (no byte either
// way) must end each one: waygate closes within them (with room for a busy machine), and writes
// its connection line.
import { seededBytes } from '../kit/hello.ts';
import { bySni, checkLine, closedWhilePaused, dial, helloFor, tcpPools } from '../kit/l4.ts';
import type { ClientBehaviour } from '../types.ts';

const SIZES = [0, 100, 65_536, 1_048_576];
const MODES = ['fin-never-read', 'fin-read-never-close', 'silent-never-read'] as const;

const tcpHalfCloseForever: ClientBehaviour = {
  name: 'tcp-half-close-forever',
  weight: 4,
  plan(rng, pools) {
    const all = tcpPools(pools);
    if (all.length === 0) return undefined;
    const pool = rng.pick(all);
    const size = rng.pick(SIZES);
    const mode = rng.pick(MODES);
    const seed = rng.u32();
    const tls = pool.l4!.target === 'tls-echo';
    return {
      label: `tcp-half-close-forever pool=${pool.name}${tls ? ' tls' : ''} ${size}B then ${mode}`,
      pool: pool.name,
      async run(ctx) {
        // Not half-open: the gateway's FIN ends this side too (the client never closes by itself).
        const wire = dial(ctx, pool, { tls, servername: tls ? pool.l4!.sni![0] : undefined });
        const reads = mode === 'fin-read-never-close';
        try {
          await wire.ready;
        } catch (err) {
          return { ok: true, note: `gone before it was up: ${(err as Error).message.replace(/\d+/g, 'N')}` };
        }
        if (!reads) wire.socket.pause();
        if (bySni(pool) && !tls) void wire.write(helloFor(pool, seed));
        if (size > 0) void wire.write(seededBytes(seed, size));
        if (mode !== 'silent-never-read') wire.end();
        // A FIN stuck behind unread bytes never arrives: then it is the idle timeout's job.
        const { tcpIdle, halfClose } = ctx.timeouts;
        const bound = 2 * Math.max(tcpIdle, halfClose) + 1000;
        const ending = reads ? await wire.endedWithin(bound, ctx.signal) : await closedWhilePaused(ctx, wire, bound);
        if (ending === 'open') return { ok: false, note: 'kept open', detail: `${mode}: still connected ${bound} ms on (idleTimeout ${tcpIdle} ms, halfCloseTimeout ${halfClose} ms)` };
        const line = await checkLine(ctx, wire, { route: pool.name });
        if (line.problem !== undefined) return { ok: false, note: 'connection line wrong', detail: line.problem };
        return { ok: true, note: `${mode}: ${line.termination}` };
      },
    };
  },
};
export default tcpHalfCloseForever;

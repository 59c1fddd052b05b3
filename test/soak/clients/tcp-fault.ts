// Ordinary L4 clients of the faulty targets (SPEC §7): a refusing port (with and without health
// checks), a target that resets mid-stream, one that black-holes, one that stops reading (the
// writes back up to the client), one that half-closes first. The client writes, sends its FIN
// and waits: whatever the target does, waygate must end the connection within its idle and
// half-close timeouts, and its connection line must give a termination that fits. The
// half-closing target is talked to the way it asks: read its banner and its FIN, then keep
// writing (every byte must still reach it: bytesIn), then FIN.
import { HALF_CLOSE_BANNER } from '../faults/l4.ts';
import { piecesOf, seededBytes } from '../kit/hello.ts';
import { checkLine, dial, tcpPools, writePieces } from '../kit/l4.ts';
import { within } from '../kit/time.ts';
import type { ClientBehaviour, ClientContext, L4Target, Outcome, PoolSpec } from '../types.ts';
import type { Wire } from '../kit/wire.ts';

const SIZES = [10, 4096, 100_000, 1_048_576];
/** Terminations a connection line may give, by target (the client FINs after writing). */
const ENDINGS: Partial<Record<L4Target, readonly string[]>> = {
  refuse: ['connect_error'],
  reset: ['upstream_close', 'client_close'],
  blackhole: ['idle_timeout', 'client_close'],
  'stop-reading': ['idle_timeout', 'client_close'],
  'half-close': ['upstream_close'],
};

/** The longest a fault connection may stay open: its writes back up until the idle timeout, then a FIN and the half-close timeout, with room. */
function boundOf(ctx: ClientContext): number {
  return ctx.timeouts.tcpIdle * 2 + ctx.timeouts.halfClose + 2000;
}

async function halfCloseFirst(ctx: ClientContext, pool: PoolSpec, payload: Buffer, pieces: number, seed: number): Promise<Outcome> {
  const wire = dial(ctx, pool, { allowHalfOpen: true });
  const eof = new Promise<number>((r) => wire.socket.once('end', () => r(Date.now())));
  try {
    await wire.ready;
  } catch (err) {
    return { ok: false, note: 'connect failed', detail: (err as Error).message };
  }
  const eofAt = await within(eof, boundOf(ctx), undefined, ctx.signal);
  if (eofAt === undefined) return { ok: false, note: 'no FIN', detail: `the target half-closed at once; the client saw no FIN within ${boundOf(ctx)} ms (got ${wire.received} bytes)` };
  if (wire.text() !== HALF_CLOSE_BANNER) return { ok: false, note: 'banner wrong', detail: `before the FIN the client got ${JSON.stringify(wire.text().slice(0, 120))}` };
  const sent = await within(writePieces(ctx, wire, piecesOf(payload, pieces, seed)), boundOf(ctx), -1, ctx.signal);
  const finAt = Date.now();
  wire.end();
  const ending = await wire.endedWithin(boundOf(ctx), ctx.signal);
  if (ending === 'open') return { ok: false, note: 'kept open', detail: `both sides sent their FIN, the connection was still open ${boundOf(ctx)} ms later` };
  const line = await checkLine(ctx, wire, { route: pool.name, terminations: ENDINGS['half-close'], bytesOut: HALF_CLOSE_BANNER.length });
  if (line.problem !== undefined) return { ok: false, note: 'connection line wrong', detail: line.problem };
  // The half-close timeout may cut a client slower than it; one within it must have got every byte through.
  const cut = line.line!.detail === 'half-close timeout';
  if (cut && finAt - eofAt < ctx.timeouts.halfClose / 2) return { ok: false, note: 'cut early', detail: `the client finished ${finAt - eofAt} ms after the target's FIN (halfCloseTimeout ${ctx.timeouts.halfClose} ms), yet waygate cut it: ${JSON.stringify(line.line)}` };
  if (!cut && line.line!.bytesIn !== payload.length) return { ok: false, note: 'bytes lost after FIN', detail: `the client wrote ${payload.length} bytes after the target's FIN (${sent} handed to the kernel), waygate forwarded ${line.line!.bytesIn}` };
  return { ok: true, note: cut ? 'half-closed, cut by halfCloseTimeout' : `half-closed, ${ending}` };
}

const tcpFault: ClientBehaviour = {
  name: 'tcp-fault',
  weight: 8,
  plan(rng, pools) {
    const faulty = tcpPools(pools, 'any');
    if (faulty.length === 0) return undefined;
    const pool = rng.pick(faulty);
    const target = pool.l4!.target;
    // After the target's FIN the client has halfCloseTimeout: a megabyte fits, on a loaded machine not always.
    const size = rng.pick(target === 'half-close' ? SIZES.slice(0, 3) : SIZES);
    const pieces = rng.int(1, 8);
    const seed = rng.u32();
    return {
      label: `tcp-fault pool=${pool.name} ${size}B in ${pieces} pieces then FIN`,
      pool: pool.name,
      async run(ctx) {
        const payload = seededBytes(seed, size);
        if (target === 'half-close') return halfCloseFirst(ctx, pool, payload, pieces, seed);
        const wire: Wire = dial(ctx, pool);
        try {
          await wire.ready;
        } catch (err) {
          return { ok: false, note: 'connect failed', detail: (err as Error).message };
        }
        const started = Date.now();
        // Against a target that does not read, the writes stall until waygate gives up.
        await within(writePieces(ctx, wire, piecesOf(payload, pieces, seed)), boundOf(ctx), -1, ctx.signal);
        wire.end();
        const ending = await wire.endedWithin(Math.max(1000, boundOf(ctx) - (Date.now() - started)), ctx.signal);
        if (ending === 'open') return { ok: false, note: 'kept open', detail: `to a ${target} target, the connection was still open ${Date.now() - started} ms after it began (idleTimeout ${ctx.timeouts.tcpIdle} ms, halfCloseTimeout ${ctx.timeouts.halfClose} ms)` };
        const allowed = pool.options?.healthCheck !== undefined && target === 'refuse' ? ['no_healthy_upstream', 'connect_error'] : ENDINGS[target];
        const line = await checkLine(ctx, wire, { route: pool.name, terminations: allowed, ...(target === 'refuse' ? { target: null, bytesOut: 0 } : {}) });
        if (line.problem !== undefined) return { ok: false, note: 'connection line wrong', detail: line.problem };
        return { ok: true, note: `${line.termination}, ${ending}` };
      },
    };
  },
};
export default tcpFault;

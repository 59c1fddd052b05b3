// Well-behaved L4 clients (SPEC §7) of the echo targets: through a plain TCP listener, or through
// the SNI listener behind a ClientHello naming the echo route (made by hand: up to 15 KB, over
// one to three records, written whole, in pieces or one byte per write, so the peek must
// reassemble it; the bytes after it may share its first segment). Then a seeded payload (up to
// 4 MiB) in pieces, and either read it all back then FIN, or FIN first and read the rest
// (half-close). Everything sent must come back byte for byte, the connection must close cleanly,
// and waygate's connection line must say where it went and count every byte both ways.
import { clientHello, piecesOf, seededBytes } from '../kit/hello.ts';
import { bySni, checkLine, dial, EchoCheck, tcpPools, writePieces } from '../kit/l4.ts';
import type { ClientBehaviour } from '../types.ts';

const SIZES = [0, 1, 100, 4096, 65_536, 300_000, 1_048_576, 4_194_304];
const HELLO_SIZES = [undefined, 600, 1800, 6000, 15_000];
/** How long the whole echo may take (4 MiB through a loaded gateway). */
const ECHO_MS = 8000;
const CLOSE_MS = 4000;

const tcpEcho: ClientBehaviour = {
  name: 'tcp-echo',
  weight: 8,
  plan(rng, pools) {
    const echo = tcpPools(pools, 'ok').filter((p) => p.l4!.target === 'echo');
    if (echo.length === 0) return undefined;
    const pool = rng.pick(echo);
    const size = rng.pick(SIZES);
    const pieces = rng.int(1, 16);
    const mode = rng.pick(['read-then-fin', 'fin-first'] as const);
    const seed = rng.u32();
    const sni = bySni(pool);
    const helloSize = rng.pick(HELLO_SIZES);
    const records = rng.pick([1, 1, 2, 3]);
    const helloWrite = rng.pick((helloSize ?? 0) <= 2000 ? (['whole', 'pieces', 'bytes'] as const) : (['whole', 'pieces'] as const));
    const hello = sni ? ` after a ${helloSize === undefined ? 'minimal' : `${helloSize}-byte`} hello in ${records} record(s) written ${helloWrite}` : '';
    return {
      label: `tcp-echo pool=${pool.name}${hello} ${size}B in ${pieces} pieces, ${mode}`,
      pool: pool.name,
      async run(ctx) {
        const wire = dial(ctx, pool);
        try {
          await wire.ready;
        } catch (err) {
          return { ok: false, note: 'connect failed', detail: (err as Error).message };
        }
        const first = sni ? clientHello(seed, { sni: pool.l4!.sni![0], size: helloSize, records }) : Buffer.alloc(0);
        const payload = seededBytes(seed ^ 0x5a5a5a5a, size);
        const all = Buffer.concat([first, payload]);
        const check = new EchoCheck(wire, all);
        if (sni) await writePieces(ctx, wire, helloWrite === 'whole' ? [first] : piecesOf(first, helloWrite === 'bytes' ? 'bytes' : 6, seed));
        await writePieces(ctx, wire, piecesOf(payload, pieces, seed + 1));
        if (mode === 'fin-first') wire.end();
        const complete = await check.complete(wire, ECHO_MS, ctx.signal);
        if (!complete) return { ok: false, note: 'echo lost', detail: `${check.problem() ?? 'incomplete'}; connection ${wire.isEnded ? 'closed' : 'still open'} ${ECHO_MS} ms on` };
        if (mode === 'read-then-fin') wire.end();
        const ending = await wire.endedWithin(CLOSE_MS, ctx.signal);
        if (ending === 'open') return { ok: false, note: 'not closed', detail: `both sides sent their FIN (${mode}), the connection was still open ${CLOSE_MS} ms later` };
        const wrong = check.problem();
        if (wrong !== undefined) return { ok: false, note: 'echo wrong', detail: wrong };
        if (ending !== 'closed') return { ok: false, note: `ended ${ending}`, detail: `a clean exchange (${mode}) ended with ${ending}, not a FIN` };
        const line = await checkLine(ctx, wire, { route: pool.name, terminations: ['client_close'], sni: sni ? pool.l4!.sni![0] : undefined, bytesIn: all.length, bytesOut: all.length });
        if (line.problem !== undefined) return { ok: false, note: 'connection line wrong', detail: line.problem };
        return { ok: true, note: `echoed, ${mode}` };
      },
    };
  },
};
export default tcpEcho;

// TLS passthrough by SNI (SPEC §7): a real TLS client (Node's) through the SNI listener to the
// route `soak.test`, offering ALPN or not. waygate must not terminate it: the client must see
// the target's own certificate (faults/l4.ts), the plaintext must echo byte for byte, the close
// must be clean, and the connection line must name the route and the SNI. The same through the
// shared HTTPS port (`listener: https`); there also an HTTP request over TLS terminated by
// waygate (SNI localhost) whose Host is the passthrough name, which must get 421.
import { piecesOf, seededBytes } from '../kit/hello.ts';
import { checkLine, dial, EchoCheck, peerFingerprint, tcpPools, writePieces } from '../kit/l4.ts';
import { HTTPS_LISTENER } from '../faults/l4.ts';
import { firstStatus, Wire } from '../kit/wire.ts';
import type { ClientBehaviour } from '../types.ts';

const SIZES = [0, 1, 1000, 65_536, 1_048_576];
const ALPN = [undefined, ['h2', 'http/1.1'], ['soak/1']];
const ECHO_MS = 8000;
const CLOSE_MS = 4000;
const ANSWER_MS = 4000;

const tcpPassthrough: ClientBehaviour = {
  name: 'tcp-passthrough',
  weight: 5,
  plan(rng, pools) {
    const tls = tcpPools(pools, 'ok').filter((p) => p.l4!.target === 'tls-echo');
    if (tls.length === 0) return undefined;
    const pool = rng.pick(tls);
    const size = rng.pick(SIZES);
    const pieces = rng.int(1, 8);
    const alpn = rng.pick(ALPN);
    const seed = rng.u32();
    const name = pool.l4!.sni![0];
    if (pool.l4!.listener === HTTPS_LISTENER && rng.chance(0.25)) {
      return {
        label: `tcp-passthrough pool=${pool.name} HTTP over TLS to localhost with host: ${name} (421)`,
        pool: pool.name,
        async run(ctx) {
          const wire = new Wire(ctx, { tls: true });
          try {
            await wire.ready;
          } catch (err) {
            return { ok: false, note: 'handshake failed', detail: (err as Error).message };
          }
          await wire.write(`GET /${pool.name}/echo HTTP/1.1\r\nhost: ${name}\r\n\r\n`);
          await wire.until((t) => t.includes('\r\n\r\n'), ANSWER_MS, ctx.signal);
          const status = firstStatus(wire.text());
          wire.destroy();
          if (status !== 421) return { ok: false, note: `answered ${status || 'nothing'}`, detail: `an HTTP request for the passthrough name ${name} was answered ${JSON.stringify(wire.text().slice(0, 120))}, not 421` };
          return { ok: true, note: '421 for a passthrough name' };
        },
      };
    }
    return {
      label: `tcp-passthrough pool=${pool.name} sni=${name}${alpn === undefined ? '' : ` alpn=${alpn.join(',')}`} ${size}B in ${pieces} pieces`,
      pool: pool.name,
      async run(ctx) {
        const wire = dial(ctx, pool, { tls: true, servername: pool.l4!.sni![0], alpn });
        try {
          await wire.ready;
        } catch (err) {
          return { ok: false, note: 'handshake failed', detail: (err as Error).message };
        }
        const seen = peerFingerprint(wire);
        if (seen !== pool.l4!.fingerprint) return { ok: false, note: 'wrong certificate', detail: `the client saw certificate ${seen ?? 'none'}, not the target's ${pool.l4!.fingerprint} (was TLS terminated?)` };
        const payload = seededBytes(seed, size);
        const check = new EchoCheck(wire, payload);
        await writePieces(ctx, wire, piecesOf(payload, pieces, seed));
        const complete = await check.complete(wire, ECHO_MS, ctx.signal);
        if (!complete) return { ok: false, note: 'echo lost', detail: `${check.problem() ?? 'incomplete'}; connection ${wire.isEnded ? 'closed' : 'still open'}` };
        wire.end();
        const ending = await wire.endedWithin(CLOSE_MS, ctx.signal);
        if (ending === 'open') return { ok: false, note: 'not closed', detail: `the client closed (close_notify and FIN), the connection was still open ${CLOSE_MS} ms later` };
        const line = await checkLine(ctx, wire, { route: pool.name, terminations: ['client_close', 'upstream_close'], sni: pool.l4!.sni![0] });
        if (line.problem !== undefined) return { ok: false, note: 'connection line wrong', detail: line.problem };
        return { ok: true, note: 'target certificate, echoed' };
      },
    };
  },
};
export default tcpPassthrough;

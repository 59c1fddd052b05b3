// L4 clients that vanish mid-stream (SPEC §7), against every tcp pool: a TCP (or, for the
// passthrough target, TLS) connection, a ClientHello first where the route is chosen by SNI,
// some bytes (written at once, however little the target reads), then, once some of the echo is
// back or after a few milliseconds, a close or a reset. Only the end-of-run checks judge: the
// open connections, the targets' in-flight and the sockets must all come back.
import { seededBytes } from '../kit/hello.ts';
import { bySni, dial, helloFor, tcpPools } from '../kit/l4.ts';
import { sleep } from '../kit/time.ts';
import type { ClientBehaviour } from '../types.ts';

const SIZES = [1, 1000, 65_536, 1_048_576];
const ECHO_WAIT_MS = 1500;

const tcpVanishMidStream: ClientBehaviour = {
  name: 'tcp-vanish-mid-stream',
  weight: 4,
  plan(rng, pools) {
    const all = tcpPools(pools);
    if (all.length === 0) return undefined;
    const pool = rng.pick(all);
    const size = rng.pick(SIZES);
    const when = rng.pick(['after-some-echo', 'after-ms'] as const);
    const ms = rng.int(0, 300);
    const how = rng.pick(['close', 'reset'] as const);
    const seed = rng.u32();
    const tls = pool.l4!.target === 'tls-echo';
    return {
      label: `tcp-vanish-mid-stream pool=${pool.name}${tls ? ' tls' : ''} ${size}B then ${how} ${when === 'after-ms' ? `after ${ms}ms` : 'after some echo'}`,
      pool: pool.name,
      async run(ctx) {
        const wire = dial(ctx, pool, { tls, servername: tls ? pool.l4!.sni![0] : undefined });
        try {
          await wire.ready;
        } catch (err) {
          // Refused targets close before a TLS handshake can finish; that is the fault, not a failure.
          return { ok: true, note: `gone before it was up: ${(err as Error).message.replace(/\d+/g, 'N')}` };
        }
        if (bySni(pool) && !tls) void wire.write(helloFor(pool, seed));
        void wire.write(seededBytes(seed, size));
        if (when === 'after-ms') await sleep(ms, ctx.signal);
        else await wire.until(() => wire.received >= Math.min(size, 512), ECHO_WAIT_MS, ctx.signal);
        const got = wire.received;
        if (how === 'reset') wire.reset();
        else wire.destroy();
        return { ok: true, note: `${how} ${got > 0 ? 'after some bytes back' : 'before any byte back'}` };
      },
    };
  },
};
export default tcpVanishMidStream;

// Clients that send the SNI listener what is not a ClientHello it can route (SPEC §7): HTTP, an
// SSH banner, random bytes, a TLS record of another type, a bad record version, a ServerHello,
// an empty record, a hello declaring more than the 16 KiB limit, one that cannot end within it
// (small records), or a well-formed hello without SNI or with a name no route claims. waygate
// must close the connection at once (bad_hello, or no_route), send nothing, and reach no pool.
import { clientHello, HELLO_LIMIT } from '../kit/hello.ts';
import { checkLine, dial, tcpPools, onPeekingListener } from '../kit/l4.ts';
import { SNI } from '../faults/l4.ts';
import type { Rng } from '../prng.ts';
import type { ClientBehaviour } from '../types.ts';

/** Small records of one handshake message that claims (nearly) the whole limit: the record headers push it over. */
function overLimit(seed: number): Buffer {
  const body = clientHello(seed, { sni: SNI.echo, size: HELLO_LIMIT - 200 }).subarray(5);
  const out: Buffer[] = [];
  for (let at = 0; at < body.length; at += 100) {
    const part = body.subarray(at, at + 100);
    out.push(Buffer.from([0x16, 0x03, 0x01, 0, part.length]), part);
  }
  return Buffer.concat(out);
}

function inputs(rng: Rng, seed: number): Record<string, { bytes: Buffer; termination: string }> {
  const random = rng.bytes(rng.int(1, 3000));
  if (random[0] === 0x16) random[0] = 0x15;
  const bad = (bytes: Buffer | string): { bytes: Buffer; termination: string } => ({ bytes: Buffer.from(bytes as string, typeof bytes === 'string' ? 'latin1' : undefined), termination: 'bad_hello' });
  return {
    http: bad('GET / HTTP/1.1\r\nhost: soak.test\r\n\r\n'),
    ssh: bad('SSH-2.0-OpenSSH_9.6\r\n'),
    random: bad(random),
    'application-data-record': bad(Buffer.from([0x17, 0x03, 0x03, 0x00, 0x04, 1, 2, 3, 4])),
    'record-version-2': bad(Buffer.from([0x16, 0x02, 0x00, 0x00, 0x04, 1, 0, 0, 0])),
    'server-hello': bad(Buffer.from([0x16, 0x03, 0x03, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00])),
    'empty-record': bad(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00])),
    'hello-over-16k': bad(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x4e, 0x20])),
    'hello-cannot-fit': bad(overLimit(seed)),
    'no-sni': { bytes: clientHello(seed, { alpn: ['h2'] }), termination: 'no_route' },
    'unknown-sni': { bytes: clientHello(seed, { sni: SNI.unknown, size: rng.pick([undefined, 1800]) }), termination: 'no_route' },
  };
}

const tcpNotTls: ClientBehaviour = {
  name: 'tcp-not-tls',
  weight: 3,
  plan(rng, pools) {
    const sni = tcpPools(pools).filter(onPeekingListener);
    if (sni.length === 0) return undefined;
    // Any SNI route's pool: they share the listener, none of them may get these.
    const pool = rng.pick(sni);
    const seed = rng.u32();
    const all = inputs(rng, seed);
    const kind = rng.pick(Object.keys(all));
    const { bytes, termination } = all[kind];
    return {
      label: `tcp-not-tls listener=${pool.l4!.listener} ${kind} (${bytes.length}B)`,
      async run(ctx) {
        const wire = dial(ctx, pool);
        try {
          await wire.ready;
        } catch (err) {
          return { ok: false, note: 'connect failed', detail: (err as Error).message };
        }
        void wire.write(bytes);
        const bound = ctx.timeouts.peek;
        const ending = await wire.endedWithin(bound, ctx.signal);
        if (ending === 'open') return { ok: false, note: 'kept open', detail: `after ${kind} the connection was still open ${bound} ms later (it is decided by the bytes, not by peekTimeout)` };
        if (wire.received > 0) return { ok: false, note: 'answered', detail: `${kind} was answered with ${wire.received} bytes: ${JSON.stringify(wire.text().slice(0, 80))}` };
        const line = await checkLine(ctx, wire, { route: null, target: null, terminations: [termination] });
        if (line.problem !== undefined) return { ok: false, note: 'connection line wrong', detail: line.problem };
        return { ok: true, note: `${termination}, ${ending}` };
      },
    };
  },
};
export default tcpNotTls;

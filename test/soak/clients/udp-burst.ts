// A burst of UDP clients at once (SPEC §7): up to 20 sockets each send one to three small
// datagrams to the echo pool, all together; each must get back exactly its own echoes (a session
// per client address: none sees another's), from the listener's address.
import { datagram, echoProblem, UdpClient, udpPools, udpPort } from '../kit/udp.ts';
import type { ClientBehaviour } from '../types.ts';

/** The most client sockets of one burst. */
export const BURST_MAX = 20;
const ECHO_MS = 3000;

const udpBurst: ClientBehaviour = {
  name: 'udp-burst',
  weight: 1,
  plan(rng, pools) {
    const echo = udpPools(pools, 'ok');
    if (echo.length === 0) return undefined;
    const pool = rng.pick(echo);
    const clients = rng.int(5, BURST_MAX);
    const each = rng.int(1, 3);
    const size = rng.pick([8, 64, 512]);
    const seed = rng.u32();
    return {
      label: `udp-burst pool=${pool.name} ${clients} clients × ${each} datagrams of ${size}B`,
      pool: pool.name,
      async run(ctx) {
        const all = await Promise.all(Array.from({ length: clients }, () => UdpClient.open(ctx, pool)));
        const sent = all.map((c) => Array.from({ length: each }, (_, n) => datagram(seed, c.port, n, size)));
        await Promise.all(all.flatMap((c, i) => sent[i].map((d) => c.send(ctx, pool, d))));
        const done = await Promise.all(all.map((c) => c.receivedAtLeast(each, ECHO_MS, ctx.signal)));
        const port = udpPort(ctx, pool);
        const problems = all.map((c, i) => {
          const p = echoProblem(c, sent[i], port);
          return p === undefined ? undefined : `client ${i} (port ${c.port})${done[i] ? '' : ` after ${ECHO_MS} ms`}: ${p}`;
        }).filter((p) => p !== undefined);
        if (problems.length > 0) return { ok: false, note: 'echo wrong', detail: `${problems.length} of ${clients} clients: ${problems.slice(0, 5).join('; ')}` };
        return { ok: true, note: 'every client got its own echoes' };
      },
    };
  },
};
export default udpBurst;

// A UDP client that sends one datagram and vanishes (SPEC §7): it closes its socket at once
// (the echo goes to a closed port) or keeps it and never reads nor sends again. Its session must
// expire after sessionIdle: a connection line with idle_timeout.
import { datagram, UdpClient, udpPools } from '../kit/udp.ts';
import type { ClientBehaviour } from '../types.ts';
import { sessionEndMs, udpLineProblem } from './udp-echo.ts';

const udpVanish: ClientBehaviour = {
  name: 'udp-vanish',
  weight: 2,
  plan(rng, pools) {
    const echo = udpPools(pools, 'ok');
    if (echo.length === 0) return undefined;
    const pool = rng.pick(echo);
    const size = rng.pick([8, 500, 9000]);
    const how = rng.pick(['close', 'silent'] as const);
    const seed = rng.u32();
    return {
      label: `udp-vanish pool=${pool.name} one ${size}B datagram then ${how}`,
      pool: pool.name,
      async run(ctx) {
        const client = await UdpClient.open(ctx, pool);
        await client.send(ctx, pool, datagram(seed, client.port, 0, size));
        if (how === 'close') client.close();
        const ms = sessionEndMs(ctx);
        const line = await ctx.connectionLine(client.port, client.since, ms, true);
        if (ctx.signal.aborted && line === undefined) return { ok: false, note: 'stuck', detail: 'cut at the task deadline before its connection line' };
        // bytesOut: the echo went back whether or not the socket was still there to take it.
        const wrong = udpLineProblem(line, client.port, ms, { route: pool.name, terminations: ['idle_timeout'], bytesIn: Math.max(8, size) });
        if (wrong !== undefined) return { ok: false, note: 'session not expired', detail: wrong };
        return { ok: true, note: `${how}: session expired` };
      },
    };
  },
};
export default udpVanish;

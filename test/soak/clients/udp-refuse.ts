// UDP clients of the route whose target is a closed port (SPEC §7): one to three datagrams, and
// no reply may come; the session is refused (connect_error once the ICMP unreachable is back, or
// idle_timeout if it never was) and nothing else may suffer for it (the end-of-run checks).
import { datagram, UdpClient, udpPools } from '../kit/udp.ts';
import { sleep } from '../kit/time.ts';
import type { ClientBehaviour } from '../types.ts';
import { sessionEndMs, udpLineProblem } from './udp-echo.ts';

const udpRefuse: ClientBehaviour = {
  name: 'udp-refuse',
  weight: 1,
  plan(rng, pools) {
    const refusing = udpPools(pools).filter((p) => p.udp!.target === 'refuse');
    if (refusing.length === 0) return undefined;
    const pool = rng.pick(refusing);
    const count = rng.int(1, 3);
    const gap = rng.pick([0, 20, 200]);
    const seed = rng.u32();
    return {
      label: `udp-refuse pool=${pool.name} ${count} datagrams ${gap} ms apart`,
      pool: pool.name,
      async run(ctx) {
        const client = await UdpClient.open(ctx, pool);
        for (let n = 0; n < count; n++) {
          await client.send(ctx, pool, datagram(seed, client.port, n, 64));
          if (gap > 0) await sleep(gap, ctx.signal);
        }
        const ms = sessionEndMs(ctx);
        const line = await ctx.connectionLine(client.port, client.since, ms, true);
        if (client.received.length > 0) return { ok: false, note: 'answered', detail: `${client.received.length} replies came from a route whose target is a closed port` };
        if (ctx.signal.aborted && line === undefined) return { ok: false, note: 'stuck', detail: 'cut at the task deadline before its connection line' };
        const wrong = udpLineProblem(line, client.port, ms, { route: pool.name, terminations: ['connect_error', 'idle_timeout'], bytesOut: 0 });
        if (wrong !== undefined) return { ok: false, note: 'connection line wrong', detail: wrong };
        return { ok: true, note: `no reply: ${line!.termination}` };
      },
    };
  },
};
export default udpRefuse;

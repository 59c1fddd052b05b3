// Well-behaved UDP clients (SPEC §7) of the echo pool: a few datagrams (8 B to 8 KiB), one after
// the other, each echoed exactly and from the listener's address; then silence, and the session
// must expire (idle_timeout) with a connection line that counts at least its bytes both ways.
import { udpEchoOnce, udpPools } from '../kit/udp.ts';
import type { ClientBehaviour, ClientContext, ConnectionLine } from '../types.ts';

// Up to 8 KiB: a loaded loopback drops large datagrams when a socket buffer fills (normal UDP
// loss, seen with 60 KB ones under concurrency 48), which would make the check flaky.
const SIZES = [8, 100, 1200, 8192];
/** How long one echo may take. */
const ECHO_MS = 2000;

/** How long after a client's last datagram its session's line may take: the session expires after sessionIdle, seen by a sweep of sessionIdle / 4. */
export function sessionEndMs(ctx: ClientContext): number {
  return 3 * ctx.timeouts.sessionIdle;
}

/** What is wrong with a UDP session's line, or undefined. */
export function udpLineProblem(line: ConnectionLine | undefined, port: number, ms: number, want: { route: string; terminations: readonly string[]; bytesIn?: number; bytesOut?: number }): string | undefined {
  if (line === undefined) return `waygate wrote no "connection" line for the UDP session of client port ${port} within ${ms} ms of its last datagram`;
  const wrong: string[] = [];
  if (line.transport !== 'udp') wrong.push(`transport ${JSON.stringify(line.transport)}, expected "udp"`);
  if (line.route !== want.route) wrong.push(`route ${JSON.stringify(line.route)}, expected ${want.route}`);
  if (!want.terminations.includes(line.termination)) wrong.push(`termination ${line.termination}${line.detail === undefined ? '' : ` (${line.detail})`}, expected ${want.terminations.join(' or ')}`);
  // At least: another client may get the same port while this session is alive (its bytes join the session).
  if (want.bytesIn !== undefined && line.bytesIn < want.bytesIn) wrong.push(`bytesIn ${line.bytesIn}, the client sent ${want.bytesIn}`);
  if (want.bytesOut !== undefined && line.bytesOut < want.bytesOut) wrong.push(`bytesOut ${line.bytesOut}, the client received ${want.bytesOut}`);
  return wrong.length === 0 ? undefined : `connection line (UDP port ${port}): ${wrong.join('; ')}: ${JSON.stringify(line)}`;
}

const udpEcho: ClientBehaviour = {
  name: 'udp-echo',
  weight: 4,
  plan(rng, pools) {
    const echo = udpPools(pools, 'ok');
    if (echo.length === 0) return undefined;
    const pool = rng.pick(echo);
    const count = rng.int(1, 6);
    const size = rng.pick(SIZES);
    const seed = rng.u32();
    return {
      label: `udp-echo pool=${pool.name} ${count} datagrams of ${size}B`,
      pool: pool.name,
      async run(ctx) {
        const r = await udpEchoOnce(ctx, pool, seed, count, size, ECHO_MS);
        if (r.problem !== undefined) return { ok: false, note: 'echo wrong', detail: r.problem };
        const bytes = r.client.received.reduce((a, d) => a + d.msg.length, 0);
        const ms = sessionEndMs(ctx);
        // The socket stays bound until the line came: no other client can take its port (and session) meanwhile.
        const line = await ctx.connectionLine(r.client.port, r.client.since, ms, true);
        if (ctx.signal.aborted && line === undefined) return { ok: false, note: 'stuck', detail: 'cut at the task deadline before its connection line' };
        const wrong = udpLineProblem(line, r.client.port, ms, { route: pool.name, terminations: ['idle_timeout'], bytesIn: bytes, bytesOut: bytes });
        if (wrong !== undefined) return { ok: false, note: 'connection line wrong', detail: wrong };
        return { ok: true, note: 'echoed, session expired' };
      },
    };
  },
};
export default udpEcho;

// WebSocket handshakes through forwardAuth (SPEC §8: the chain runs for upgrades too, and answers
// on the raw socket): a handshake with an auth plan and a forged identity, as clients/mw-auth.ts
// sends requests. An allowing answer must bring the upstream's 101, whose fields say the
// handshake carried exactly the x-user the auth service issued (or none); any other answer is the
// auth service's own or forwardAuth's 503, written on the socket before the upgrade.
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { ALLOWING, AUTH_PLAN_HEADER, MW, WS_ISSUED_HEADER, WS_USERS_HEADER, mwPools } from '../kit/mw.ts';
import type { MwGot } from '../kit/mw-http.ts';
import { describeGot } from '../kit/mw-http.ts';
import { parseHead, Wire } from '../kit/wire.ts';
import type { ClientBehaviour, Outcome } from '../types.ts';
import { forgedHeaders, planOne, wrongAuth } from './mw-auth.ts';
import type { Planned } from './mw-auth.ts';

/** The longest a handshake's answer may take: past forwardAuth's timeout and a dead auth service's, with room. */
const ANSWER_MS = 8000;

function handshake(p: Planned): string {
  const lines = [`GET ${p.path} HTTP/1.1`, 'host: soak.test', 'upgrade: websocket', 'connection: Upgrade', `sec-websocket-key: ${randomBytes(16).toString('base64')}`, 'sec-websocket-version: 13', `${AUTH_PLAN_HEADER}: ${p.plan}`];
  for (const [name, v] of Object.entries(forgedHeaders(p))) for (const one of [v].flat()) lines.push(`${name}: ${one}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** The answer as an MwGot: the head, and the body its content-length announces (none on a 101). */
function answerOf(text: string): MwGot | undefined {
  const head = parseHead(text);
  if (head === undefined) return undefined;
  const length = head.status === 101 ? 0 : Number(head.headers['content-length'] ?? 0);
  const body = Buffer.from(text.slice(head.bodyStart), 'latin1');
  if (body.length < length) return undefined;
  return { status: head.status, headers: head.headers as IncomingHttpHeaders, body: body.subarray(0, length), cut: false, ms: 0 };
}

const mwAuthWs: ClientBehaviour = {
  name: 'mw-auth-ws',
  weight: 3,
  plan(rng, pools) {
    const [pool] = mwPools(pools, MW.authWs);
    if (pool === undefined) return undefined;
    const tls = rng.chance(0.5);
    const p: Planned = { ...planOne(rng, pool, 'socket'), method: 'GET', body: 0 };
    return {
      label: `mw-auth-ws${tls ? ' wss' : ' ws'} ${p.path} ${p.plan} forged=${p.forgery}`,
      pool: pool.name,
      async run(ctx): Promise<Outcome> {
        const wire = new Wire(ctx, { tls });
        try {
          await wire.ready;
        } catch (err) {
          return { ok: false, note: 'connect failed', detail: (err as Error).message };
        }
        await wire.write(handshake(p));
        const complete = await wire.until((t) => answerOf(t) !== undefined, ANSWER_MS, ctx.signal);
        const got = answerOf(wire.text());
        wire.destroy();
        if (!complete || got === undefined) return { ok: false, note: 'no answer', detail: `no whole answer to the handshake within ${ANSWER_MS} ms (connection ${wire.isEnded ? 'closed' : 'open'}; got ${JSON.stringify(wire.text().slice(0, 200))})` };
        if (ALLOWING.includes(p.plan) && got.status === 101) {
          const users = JSON.parse(String(got.headers[WS_USERS_HEADER] ?? '[]')) as string[];
          const issued = JSON.parse(String(got.headers[WS_ISSUED_HEADER] ?? '[]')) as boolean[];
          const want = p.plan === 'allow-anonymous' ? 0 : 1;
          if (users.some((u) => u.startsWith(p.forged))) return { ok: false, note: 'forged identity passed', detail: `the handshake reached the upstream with the forged x-user: ${JSON.stringify(users)}` };
          if (users.length !== want || !issued.every(Boolean)) return { ok: false, note: 'wrong identity', detail: `the handshake reached the upstream with x-user ${JSON.stringify(users)} (issued: ${JSON.stringify(issued)}); the auth service set ${want === 0 ? 'none' : 'one'}` };
          return { ok: true, note: '101' };
        }
        // Not upgraded: an allowing plan then only with forwardAuth's 503, the others as for a request.
        const why = got.status === 101 ? `upgraded, though the auth service's plan was ${p.plan}` : wrongAuth(pool, p, got);
        return why === undefined ? { ok: true, note: String(got.status) } : { ok: false, note: 'wrong answer', detail: `${why}; got ${describeGot(got)}` };
      },
    };
  },
};
export default mwAuthWs;

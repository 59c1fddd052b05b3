// Clients of the forwardAuth routes (SPEC §8): one to three requests, each telling the auth
// service what to answer (faults/mw-auth.ts) and most carrying a forged identity — x-user in any
// case, twice, next to an x_user — with or without a body. Every answer must be the auth
// service's own (status, body and the fields it set), forwardAuth's 503 (the service was slow,
// broken or gone — always allowed: it may have died under another task), or, for an allowing
// answer, the upstream's: and then the upstream got exactly the identity the auth service issued,
// never the forged one (the upstream checks that for every request, this client's or not).
import { PROTOS } from '../kit/http-client.ts';
import type { Proto } from '../kit/http-client.ts';
import { ALLOWING, AUTH_CHALLENGE, AUTH_PLAN_HEADER, AUTH_REASON_HEADER, AUTH_UNAVAILABLE, EMAIL_HEADER, MW, OVERSIZE_BYTES, UNAVAILABLE_PLANS, USER_HEADER, authAnswerBody, loginLocation, mwPools } from '../kit/mw.ts';
import type { AuthPlan, Whoami } from '../kit/mw.ts';
import { describeGot, field, mwSend } from '../kit/mw-http.ts';
import type { MwGot, MwRequest } from '../kit/mw-http.ts';
import { h2Session } from '../kit/http-client.ts';
import { patternBody } from '../kit/pattern.ts';
import type { Rng } from '../prng.ts';
import type { ClientBehaviour, ClientContext, Outcome, PoolSpec } from '../types.ts';

const PLANS: [AuthPlan, number][] = [['allow', 30], ['allow-anonymous', 6], ['allow-204', 5], ['slow-allow', 5], ['deny-401', 12], ['deny-302', 8], ['deny-403', 5], ['error-500', 4], ['oversize', 3], ['hang', 5], ['reset', 5], ['reset-mid', 5], ['die', 1]];
/** How a request forges its identity. */
const FORGERIES = ['none', 'x-user', 'X-User', 'twice', 'underscore'] as const;
type Forgery = (typeof FORGERIES)[number];
/** Bodies: a denial comes before waygate reads the body, which it must then drop (or close the connection), never forward. */
const ALLOW_BODIES = [0, 0, 100, 70_000, 300_000];
const DENY_BODIES = [0, 0, 10, 2000, 70_000, 300_000];

/** One planned request of a forwardAuth client. */
export interface Planned {
  plan: AuthPlan;
  forgery: Forgery;
  method: string;
  body: number;
  path: string;
  forged: string;
}

/** The forged identity fields a request carries. */
export function forgedHeaders(p: Planned): Record<string, string | string[]> {
  switch (p.forgery) {
    case 'none':
      return {};
    case 'x-user':
      return { [USER_HEADER]: p.forged, [EMAIL_HEADER]: `${p.forged}@evil.test` };
    case 'X-User':
      return { 'X-User': p.forged };
    case 'twice':
      return { [USER_HEADER]: [p.forged, `${p.forged}-2`] };
    case 'underscore':
      return { [USER_HEADER]: p.forged, 'x_user': p.forged };
  }
}

/** Why `got` is not an answer `p` allows, or undefined. */
export function wrongAuth(pool: PoolSpec, p: Planned, got: MwGot): string | undefined {
  const text = got.body.toString('utf8');
  if (got.status === AUTH_UNAVAILABLE.status && text === AUTH_UNAVAILABLE.body) return undefined;
  if (UNAVAILABLE_PLANS.includes(p.plan)) {
    if (p.plan === 'reset-mid' && got.status === 200) return 'a 2xx head the auth service reset mid-body let the request through';
    return `expected forwardAuth's 503 (the auth service ${p.plan === 'hang' ? 'stayed silent past the timeout' : p.plan === 'die' ? 'died' : 'reset'})`;
  }
  if (ALLOWING.includes(p.plan)) {
    if (got.status !== 200) return 'expected the upstream\'s 200';
    let who: Whoami;
    try {
      who = JSON.parse(text) as Whoami;
    } catch {
      return 'the upstream\'s answer is not its JSON';
    }
    if (who.url !== p.path || who.method !== p.method) return `the upstream got ${who.method} ${who.url}`;
    if (who.bytes !== p.body) return `the upstream got ${who.bytes} body bytes of ${p.body}`;
    if (who.users.some((u) => u.startsWith(p.forged))) return `the forged x-user reached the upstream: ${JSON.stringify(who.users)}`;
    if (p.plan === 'allow-anonymous') return who.users.length === 0 ? undefined : `the auth service set no x-user, the upstream got ${JSON.stringify(who.users)}`;
    if (who.users.length !== 1 || !who.issued[0]) return `the upstream got x-user ${JSON.stringify(who.users)} (issued by the auth service: ${JSON.stringify(who.issued)}), expected the one it issued`;
    // x-email is an identity field on the listed route only; elsewhere the client's own goes through.
    if (pool.name === MW.authListed && JSON.stringify(who.emails) !== JSON.stringify([`${who.users[0]}@soak.test`])) return `the upstream got x-email ${JSON.stringify(who.emails)}, expected the auth service's ${who.users[0]}@soak.test`;
    return undefined;
  }
  const body = authAnswerBody(p.plan, p.method, p.path);
  switch (p.plan) {
    case 'deny-401':
      if (got.status !== 401 || text !== body || field(got, 'www-authenticate') !== AUTH_CHALLENGE) return 'expected the auth service\'s 401 with its challenge and body';
      return undefined;
    case 'deny-302':
      if (got.status !== 302 || text !== body || field(got, 'location') !== loginLocation(p.path)) return 'expected the auth service\'s 302 to the login page with its body';
      return undefined;
    case 'deny-403':
      if (got.status !== 403 || text !== body || field(got, AUTH_REASON_HEADER) !== 'soak says no') return 'expected the auth service\'s 403 with its body and x-auth-reason';
      return undefined;
    case 'error-500':
      return got.status === 500 && text === body ? undefined : 'expected the auth service\'s 500 and its body';
    case 'oversize':
      return got.status === 401 && got.body.length === OVERSIZE_BYTES ? undefined : 'expected forwardAuth\'s 503 (or the whole 2 MiB denial)';
    default:
      return `unexpected plan ${p.plan}`;
  }
}

/** Plans one request to `pool` (on `variant`). */
export function planOne(rng: Rng, pool: PoolSpec, variant = 'whoami'): Planned {
  const plan = rng.weighted(PLANS, ([, w]) => w)[0];
  const method = rng.pick(['GET', 'GET', 'POST']);
  const body = method === 'POST' ? rng.pick(ALLOWING.includes(plan) ? ALLOW_BODIES : DENY_BODIES) : 0;
  return { plan, forgery: rng.pick(FORGERIES), method, body, path: `/${pool.name}/${variant}?t=${rng.u32()}`, forged: `forged-${rng.u32().toString(16)}` };
}

async function runOne(ctx: ClientContext, pool: PoolSpec, proto: Proto, p: Planned, session: ReturnType<typeof h2Session> | undefined, statuses: number[]): Promise<string | undefined> {
  const spec: MwRequest = { method: p.method, path: p.path, headers: { [AUTH_PLAN_HEADER]: p.plan, ...forgedHeaders(p) }, ...(p.body === 0 && p.method === 'GET' ? {} : { body: patternBody(p.body) }) };
  try {
    const got = await mwSend(ctx, proto, spec, session);
    statuses.push(got.status);
    const why = wrongAuth(pool, p, got);
    return why === undefined ? undefined : `${why}; got ${describeGot(got)}`;
  } catch (err) {
    return ctx.signal.aborted ? 'cut at the task deadline' : `no answer: ${(err as Error).message}`;
  }
}

const mwAuth: ClientBehaviour = {
  name: 'mw-auth',
  weight: 8,
  plan(rng, pools) {
    const candidates = mwPools(pools, MW.auth, MW.authListed);
    if (candidates.length === 0) return undefined;
    const pool = rng.pick(candidates);
    const proto = rng.pick(PROTOS);
    const reqs = Array.from({ length: rng.int(1, 3) }, () => planOne(rng, pool));
    return {
      label: `mw-auth pool=${pool.name} ${proto} ${reqs.map((r) => `${r.method}${r.body > 0 ? `+${r.body}B` : ''} ${r.plan} forged=${r.forgery}`).join(', ')}`,
      pool: pool.name,
      async run(ctx): Promise<Outcome> {
        // HTTP/2: the requests share one session, at once; HTTP/1.1: one after another.
        const session = proto === 'h2' ? h2Session(ctx) : undefined;
        const statuses: number[] = [];
        const results: (string | undefined)[] = [];
        if (session === undefined) for (const r of reqs) results.push(await runOne(ctx, pool, proto, r, undefined, statuses));
        else results.push(...(await Promise.all(reqs.map((r) => runOne(ctx, pool, proto, r, session, statuses)))));
        session?.close();
        const problems = results.map((w, i) => (w === undefined ? undefined : `#${i} ${reqs[i].plan} ${reqs[i].method} ${reqs[i].path}: ${w}`)).filter((x) => x !== undefined);
        if (problems.length > 0) return { ok: false, note: 'wrong answer', detail: problems.join('; ') };
        return { ok: true, note: statuses.sort().join('+') };
      },
    };
  },
};
export default mwAuth;

// Clients of the access-control routes (SPEC §8). basicAuth: the right credentials of each user
// (bcrypt $2y$/$2b$/$2a$ and apr1, a password with colons, one in UTF-8), a wrong password, an
// unknown user, garbage Authorization values and none. The right ones reach the upstream without
// their authorization field; every other is a 401 with the realm's challenge; a hash check may be
// refused 503 `authentication busy` when too many wait (never for a value that is not even Basic).
// ipAllowList: the clients' 127.0.0.1 passes one list and is refused 403 `forbidden` by the other,
// whatever x-forwarded-for or forwarded it claims (no proxy is trusted).
import { PROTOS } from '../kit/http-client.ts';
import { MW, REALM, USERS, mwPools } from '../kit/mw.ts';
import type { Seen } from '../kit/mw.ts';
import { describeGot, field, mwSend } from '../kit/mw-http.ts';
import type { MwGot } from '../kit/mw-http.ts';
import type { Rng } from '../prng.ts';
import type { ClientBehaviour, Outcome } from '../types.ts';

const BUSY_BODY = 'authentication busy';
type Credentials = { what: string; value: string | undefined; right: boolean; hashed: boolean };

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;

function credentials(rng: Rng): Credentials {
  const u = rng.pick(USERS);
  const kind = rng.weighted(['right', 'right', 'right', 'wrong', 'unknown', 'garbage', 'none'] as const, () => 1);
  switch (kind) {
    case 'right':
      return { what: `right ${u.name} (${u.scheme})`, value: rng.chance(0.2) ? basic(u.name, u.password).replace('Basic', 'basic') : basic(u.name, u.password), right: true, hashed: true };
    case 'wrong':
      return { what: `wrong password for ${u.name}`, value: basic(u.name, `${u.password}x`), right: false, hashed: true };
    case 'unknown':
      return { what: 'unknown user', value: basic(`nobody${rng.int(0, 99)}`, u.password), right: false, hashed: true };
    case 'none':
      return { what: 'no authorization', value: undefined, right: false, hashed: false };
    case 'garbage': {
      const g = rng.pick(['Basic', 'Basic !!!!', 'Bearer abc.def.ghi', `Basic ${Buffer.from('no-colon').toString('base64')}`, `Basic ${'A'.repeat(5000)}`, 'Basic =', 'Digest username="alice"', `Basic ${Buffer.from(`${u.name}:${u.password}`).toString('base64')}%%`]);
      return { what: `garbage ${JSON.stringify(g.slice(0, 24))}`, value: g, right: false, hashed: false };
    }
  }
}

function wrongBasic(c: Credentials, got: MwGot): string | undefined {
  if (got.status === 503 && c.hashed && got.body.toString() === BUSY_BODY) return undefined;
  if (c.right) {
    if (got.status !== 200) return 'expected the upstream\'s 200 for the right credentials';
    const seen = JSON.parse(got.body.toString()) as Seen;
    return seen.authorization === null ? undefined : 'the authorization field reached the upstream (forwardHeader is off)';
  }
  if (got.status !== 401 || got.body.toString() !== 'unauthorized') return 'expected 401 "unauthorized"';
  if (!field(got, 'www-authenticate').startsWith(`Basic realm="${REALM}"`)) return 'a 401 without the Basic challenge of the realm';
  return undefined;
}

const SPOOFS = [{}, { 'x-forwarded-for': '10.1.2.3' }, { forwarded: 'for=10.1.2.3' }, { 'x-forwarded-for': '10.0.0.1, 127.0.0.1', 'x-real-ip': '10.0.0.1' }];

const mwAccess: ClientBehaviour = {
  name: 'mw-access',
  weight: 6,
  plan(rng, pools) {
    const candidates = mwPools(pools, MW.basic, MW.basic, MW.ipAllow, MW.ipDeny);
    if (candidates.length === 0) return undefined;
    const pool = rng.pick(candidates);
    const proto = rng.pick(PROTOS);
    if (pool.name === MW.basic) {
      const creds = Array.from({ length: rng.int(1, 4) }, () => credentials(rng));
      const post = rng.chance(0.3);
      return {
        label: `mw-access pool=${pool.name} ${proto} ${post ? 'POST' : 'GET'} ${creds.map((c) => c.what).join(', ')}`,
        pool: pool.name,
        async run(ctx): Promise<Outcome> {
          const problems: string[] = [];
          const notes: number[] = [];
          for (const c of creds) {
            try {
              const got = await mwSend(ctx, proto, { method: post ? 'POST' : 'GET', path: `/${pool.name}/seen`, headers: c.value === undefined ? {} : { authorization: c.value }, ...(post ? { body: Buffer.from('a small body') } : {}) });
              notes.push(got.status);
              const why = wrongBasic(c, got);
              if (why !== undefined) problems.push(`${c.what}: ${why}; got ${describeGot(got)}`);
            } catch (err) {
              problems.push(`${c.what}: no answer: ${ctx.signal.aborted ? 'cut at the task deadline' : (err as Error).message}`);
            }
          }
          return problems.length === 0 ? { ok: true, note: notes.sort().join('+') } : { ok: false, note: 'wrong answer', detail: problems.join('; ') };
        },
      };
    }
    const spoof = rng.pick(SPOOFS);
    const allowed = pool.name === MW.ipAllow;
    const path = `/${pool.name}/${rng.pick(['seen', 'echo'])}`;
    return {
      label: `mw-access pool=${pool.name} ${proto} GET ${path} claiming ${JSON.stringify(spoof)}`,
      pool: pool.name,
      async run(ctx): Promise<Outcome> {
        try {
          const got = await mwSend(ctx, proto, { method: 'GET', path, headers: spoof });
          if (allowed ? got.status !== 200 : got.status !== 403 || got.body.toString() !== 'forbidden') {
            return { ok: false, note: 'wrong answer', detail: `127.0.0.1 is ${allowed ? 'in' : 'not in'} the list: expected ${allowed ? 'the upstream\'s 200' : '403 "forbidden"'}; got ${describeGot(got)}` };
          }
          return { ok: true, note: String(got.status) };
        } catch (err) {
          return { ok: false, note: 'no answer', detail: ctx.signal.aborted ? 'cut at the task deadline' : (err as Error).message };
        }
      },
    };
  },
};
export default mwAccess;

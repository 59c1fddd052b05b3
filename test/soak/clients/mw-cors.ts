// Clients of the cors route (SPEC §8): preflights (OPTIONS with Origin and
// Access-Control-Request-Method) from the allowed origin and another, answered 204 by waygate with
// the policy's fields for the allowed one and no access-control-* field for the other; and
// ordinary requests with either origin or none to an upstream that answers with permissive
// access-control-* fields of its own (`leaky`): the client sees the route's policy, never the
// upstream's, and a `vary` naming origin. An OPTIONS that is not a preflight goes to the upstream.
import { PROTOS } from '../kit/http-client.ts';
import { KEY_HEADER, MW, ORIGINS, mwPools } from '../kit/mw.ts';
import { describeGot, field, mwSend } from '../kit/mw-http.ts';
import type { MwGot } from '../kit/mw-http.ts';
import type { ClientBehaviour, Outcome } from '../types.ts';

const MAX_AGE_SECONDS = '600';

function corsFields(got: MwGot): string[] {
  return Object.keys(got.headers).filter((k) => k.startsWith('access-control-'));
}

const variesOnOrigin = (got: MwGot): boolean => /(^|,)\s*origin\s*(,|$)/i.test(field(got, 'vary'));

const mwCors: ClientBehaviour = {
  name: 'mw-cors',
  weight: 4,
  plan(rng, pools) {
    const [pool] = mwPools(pools, MW.cors);
    if (pool === undefined) return undefined;
    const proto = rng.pick(PROTOS);
    const kind = rng.pick(['preflight', 'preflight', 'request', 'request', 'options'] as const);
    const origin = rng.pick([ORIGINS.allowed, ORIGINS.other, undefined, ORIGINS.allowed.toUpperCase()]);
    const method = kind === 'preflight' ? rng.pick(['GET', 'POST', 'DELETE']) : kind === 'options' ? 'OPTIONS' : rng.pick(['GET', 'POST']);
    const variant = rng.pick(['leaky', 'seen']);
    // A preflight needs an Origin; an OPTIONS without Access-Control-Request-Method is no preflight.
    const from = kind === 'preflight' ? (origin ?? ORIGINS.other) : origin;
    const allowed = from !== undefined && from.toLowerCase() === ORIGINS.allowed;
    return {
      label: `mw-cors ${proto} ${kind} ${method} origin=${from ?? 'none'} /${pool.name}/${variant}`,
      pool: pool.name,
      async run(ctx): Promise<Outcome> {
        const headers: Record<string, string> = {};
        if (from !== undefined) headers.origin = from;
        if (kind === 'preflight') {
          headers['access-control-request-method'] = method;
          headers['access-control-request-headers'] = `content-type, ${KEY_HEADER}`;
        }
        let got: MwGot;
        try {
          got = await mwSend(ctx, proto, { method: kind === 'request' ? method : 'OPTIONS', path: `/${pool.name}/${variant}`, headers, ...(method === 'POST' && kind === 'request' ? { body: Buffer.from('{}') } : {}) });
        } catch (err) {
          return { ok: false, note: 'no answer', detail: ctx.signal.aborted ? 'cut at the task deadline' : (err as Error).message };
        }
        const fail = (why: string): Outcome => ({ ok: false, note: 'wrong answer', detail: `${why}; got ${describeGot(got)} fields ${corsFields(got).join(', ')}` });
        if (kind === 'preflight') {
          if (got.status !== 204) return fail('a preflight is answered 204 by waygate');
          if (!allowed) return corsFields(got).length === 0 ? { ok: true, note: 'preflight, other origin' } : fail('a preflight from an origin not allowed got access-control-* fields');
          if (field(got, 'access-control-allow-origin') !== from || field(got, 'access-control-allow-credentials') !== 'true' || field(got, 'access-control-allow-methods') !== 'GET, POST' || field(got, 'access-control-max-age') !== MAX_AGE_SECONDS) return fail('a preflight from the allowed origin without the policy\'s fields');
          return { ok: true, note: 'preflight, allowed' };
        }
        if (got.status !== 200) return fail('expected the upstream\'s 200');
        if (!variesOnOrigin(got)) return fail('an answer of the cors route without vary: origin');
        if (!allowed) return corsFields(got).length === 0 ? { ok: true, note: `${kind}, ${from === undefined ? 'no origin' : 'other origin'}` } : fail('the answer to a request not from the allowed origin carries access-control-* fields (the upstream\'s leaked through?)');
        if (field(got, 'access-control-allow-origin') !== from || field(got, 'access-control-allow-credentials') !== 'true' || field(got, 'access-control-expose-headers') !== 'x-soak-trace' || got.headers['access-control-allow-methods'] !== undefined) return fail('the answer to the allowed origin does not carry exactly the policy\'s fields');
        return { ok: true, note: `${kind}, allowed` };
      },
    };
  },
};
export default mwCors;

// Burst clients of the inFlightLimit route (SPEC §8). With a key of its own: amount + k requests
// at once to an upstream that holds them (faults/mw-limits.ts), so exactly `amount` get through
// and are held, and the other k must be refused 429 at once; then a release (on the route without
// middlewares) lets the held ones answer 200, and says how many the upstream ever held at once —
// never more than `amount`. Without a key (the client IP's count, shared with every such client):
// a few requests, each a 200 or a 429, never a 5xx.
import { h2Session, PROTOS } from '../kit/http-client.ts';
import { KEY_HEADER, MW, middlewareOf, mwPools } from '../kit/mw.ts';
import { burst, describeGot, mwH1, mwH2, mwSend } from '../kit/mw-http.ts';
import type { MwGot } from '../kit/mw-http.ts';
import { within } from '../kit/time.ts';
import type { HoldAnswer, ReleaseAnswer } from '../faults/mw-limits.ts';
import { HOLD_MAX_MS } from '../faults/mw-limits.ts';
import type { ClientBehaviour, Outcome } from '../types.ts';

const REFUSED_BODY = 'too many requests in flight';
/** How long the refusals may take to come back: short of the upstream's hold limit, so the held ones are still held. */
const REFUSALS_WAIT_MS = HOLD_MAX_MS - 1500;

function wrongInFlight(got: MwGot): string | undefined {
  if (got.status === 200) return undefined;
  if (got.status === 429 && got.body.toString() === REFUSED_BODY) return undefined;
  return `expected 200 or 429 "${REFUSED_BODY}"`;
}

const mwInFlight: ClientBehaviour = {
  name: 'mw-inflight',
  weight: 4,
  plan(rng, pools) {
    const [pool] = mwPools(pools, MW.inFlight);
    const [plain] = mwPools(pools, MW.plain);
    if (pool === undefined) return undefined;
    const amount = (middlewareOf(pool, 'inFlightLimit').options as { amount: number }).amount;
    const proto = rng.pick(PROTOS);
    const keyed = plain !== undefined && rng.chance(0.8);
    const key = `held-${rng.u32().toString(16)}`;
    const extra = rng.int(1, 5);
    const n = keyed ? amount + extra : rng.int(2, 8);
    return {
      label: `mw-inflight ${proto} ${keyed ? `${amount}+${extra} held under key ${key}` : `${n} at once by client ip`}`,
      pool: pool.name,
      async run(ctx): Promise<Outcome> {
        if (!keyed) {
          const got = await burst(ctx, proto, Array.from({ length: n }, () => ({ method: 'GET', path: `/${pool.name}/echo` })));
          const problems = got.map((g, i) => (g instanceof Error ? `#${i}: no answer: ${g.message}` : wrongInFlight(g) === undefined ? undefined : `#${i}: ${wrongInFlight(g)}; got ${describeGot(g)}`)).filter((x) => x !== undefined);
          if (problems.length > 0) return { ok: false, note: 'wrong answer', detail: problems.join('; ') };
          return { ok: true, note: got.some((g) => !(g instanceof Error) && g.status === 429) ? 'some refused' : 'none refused' };
        }
        const session = proto === 'h2' ? h2Session(ctx) : undefined;
        let settled = 0;
        let wake: (() => void) | undefined;
        const spec = { method: 'GET', path: `/${pool.name}/hold?id=${key}`, headers: { [KEY_HEADER]: key } };
        const all = Array.from({ length: n }, () => (session === undefined ? mwH1(ctx, proto === 'h1s', spec, true) : mwH2(ctx, session, spec)).catch((err: Error) => err).finally(() => {
          settled++;
          wake?.();
        }));
        // The refusals come at once; the held ones only after the release.
        await within(new Promise<void>((resolve) => {
          wake = () => settled >= extra && resolve();
          wake();
        }), REFUSALS_WAIT_MS, undefined, ctx.signal);
        const early = settled;
        let release: ReleaseAnswer | undefined;
        let releaseProblem: string | undefined;
        try {
          const r = await mwSend(ctx, proto === 'h2' ? 'h1' : proto, { method: 'GET', path: `/${plain!.name}/release?id=${key}&expect=${amount}` });
          release = JSON.parse(r.body.toString()) as ReleaseAnswer;
        } catch (err) {
          releaseProblem = (err as Error).message;
        }
        const got = await Promise.all(all);
        session?.close();
        const problems: string[] = [];
        let passed = 0;
        let refused = 0;
        let timedOut = 0;
        for (const [i, g] of got.entries()) {
          if (g instanceof Error) {
            problems.push(`#${i}: no answer: ${ctx.signal.aborted ? 'cut at the task deadline' : g.message}`);
            continue;
          }
          const why = wrongInFlight(g);
          if (why !== undefined) {
            problems.push(`#${i}: ${why}; got ${describeGot(g)}`);
          } else if (g.status === 429) {
            refused++;
          } else {
            passed++;
            if ((JSON.parse(g.body.toString()) as HoldAnswer).by === 'timeout') timedOut++;
          }
        }
        if (releaseProblem !== undefined) problems.push(`the release failed: ${releaseProblem}`);
        if (release !== undefined && release.maxHeld > amount) problems.push(`the upstream held ${release.maxHeld} requests of one key at once (inFlightLimit amount ${amount})`);
        // A machine slow enough that a hold ran out could let one more through: then only the maximum above is judged.
        if (timedOut === 0 && problems.length === 0 && (passed !== amount || refused !== extra)) {
          problems.push(`${passed} passed and ${refused} were refused (${early} answered before the release, which freed ${release?.released}); with ${amount} held, exactly ${extra} must be refused`);
        }
        if (problems.length > 0) return { ok: false, note: 'wrong answer', detail: problems.join('; ') };
        return { ok: true, note: timedOut > 0 ? 'held until the upstream gave up (slow machine)' : `${amount} held, ${extra} refused` };
      },
    };
  },
};
export default mwInFlight;

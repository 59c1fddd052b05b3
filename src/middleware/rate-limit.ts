// rateLimit (SPEC §8): a token bucket of `burst` tokens refilled at `average` per `period`, one
// bucket per key (`by`). Over the limit: 429 `rate limited` with retry-after. The buckets belong
// to the middleware, not to a route: one set per name and settings, shared by every route that
// lists it and kept across reloads that leave its settings alone (unlike Traefik, whose
// per-router buckets multiply a shared middleware's limit, traefik#13706). With `store: local`
// the set is this instance's (in the primary under --workers, so never ×workers); with
// `store: redis` it is every replica's. The local check is synchronous and allocates nothing.
//
// `headers: true` adds the RateLimit-Policy and RateLimit fields of
// draft-ietf-httpapi-ratelimit-headers (-09/-10: Structured Field lists, `"name";q=…;w=…` and
// `"name";r=…;t=…`). A token bucket has no fixed window, so the policy says "q = burst tokens,
// refilled from empty in w seconds", r is the tokens left and t the seconds until the bucket is
// full again (on a 429: until the next token, like retry-after). Then r ≤ q and t ≤ w, always.
import { z } from 'zod';
import { int, strict } from '../config/fields.ts';
import { duration } from '../config/units.ts';
import { wholeSeconds } from './limits/bucket.ts';
import { DEFAULT_BY, keyFunction, limitBy } from './limits/key.ts';
import type { BucketSpec, TakeResult } from './limits/stores.ts';
import type { Answer, MiddlewareKind, MiddlewareRequest, ResponseHead, Verdict } from './types.ts';

/** `period` when none is given. */
const DEFAULT_PERIOD = '1s';
const TEXT = 'text/plain; charset=utf-8';

const options = strict({
  average: int(1),
  period: duration().refine((ms) => ms >= 1, 'must be at least 1ms').prefault(DEFAULT_PERIOD),
  burst: int(1).optional(),
  by: limitBy().prefault(DEFAULT_BY),
  store: z.enum(['local', 'redis']).default('local'),
  headers: z.boolean().default(false),
}).superRefine((o, ctx) => {
  // Levels are kept in units of burst × period (limits/bucket.ts): they must stay exact integers.
  if ((o.burst ?? o.average) * o.period > Number.MAX_SAFE_INTEGER) {
    ctx.addIssue({ code: 'custom', path: [o.burst === undefined ? 'average' : 'burst'], message: 'burst × period is too large (lower burst or period)' });
  }
}).transform((o) => ({ ...o, burst: o.burst ?? o.average }));

/** rateLimit's options as validated (period in ms, burst filled in). */
export type RateLimitOptions = z.output<typeof options>;

/** The identity of a rateLimit's bucket set: its name and every setting that shapes its buckets. */
export function bucketSpec(name: string, o: RateLimitOptions): BucketSpec {
  return { id: `${name}|${o.average}/${o.period}ms|burst=${o.burst}|by=${o.by.text}`, average: o.average, periodMs: o.period, burst: o.burst };
}

/** An sf-string (RFC 8941 §3.3.3): the name between quotes, `"` and `\` escaped. */
function sfString(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** The rateLimit middleware kind. */
export const rateLimit: MiddlewareKind<typeof options> = {
  kind: 'rateLimit',
  options,
  build(o, deps) {
    const { name, limits } = deps;
    if (o.store === 'redis' && !limits.hasRedis) throw new Error(`rateLimit "${name}": store: redis needs \`redis\` in waygate.yaml`);
    const spec = bucketSpec(name, o);
    const buckets = limits.buckets(spec, o.store);
    const keyOf = keyFunction(o.by);
    const label = sfString(name);
    const refillSeconds = wholeSeconds((o.burst * o.period) / o.average);
    const policy = `${label};q=${o.burst};w=${refillSeconds}`;
    const field = (remaining: number, resetMs: number): string => `${label};r=${remaining};t=${wholeSeconds(resetMs)}`;

    const refuse = (t: TakeResult): Answer => {
      const headers = [
        'content-type', TEXT,
        'retry-after', String(wholeSeconds(t.resetMs)),
      ];
      if (o.headers) headers.push('ratelimit-policy', policy, 'ratelimit', field(0, t.resetMs));
      return { status: 429, headers, body: 'rate limited', rejection: true };
    };
    const unavailable: Answer = { status: 503, headers: ['content-type', TEXT], body: 'rate limit store unavailable', rejection: true };

    const decide = (r: MiddlewareRequest, t: TakeResult): Verdict => {
      if (!t.allowed) return refuse(t);
      if (o.headers) {
        // Copied now: a local set's result object is reused by its next take.
        const value = field(t.remaining, t.resetMs);
        r.onResponse({ head: (h: ResponseHead) => void h.headers.push('ratelimit-policy', policy, 'ratelimit', value) });
      }
      return undefined;
    };
    const failed = (err: unknown): Verdict => {
      limits.storeFailed(name, err instanceof Error ? err : new Error(String(err)));
      return limits.failMode === 'open' ? undefined : unavailable;
    };

    return {
      name,
      kind: 'rateLimit',
      request(r) {
        let t: TakeResult | Promise<TakeResult>;
        try {
          t = buckets.take(keyOf(r));
        } catch (err) {
          return failed(err);
        }
        if (t instanceof Promise) return t.then((v) => decide(r, v), failed);
        return decide(r, t);
      },
      explain(r) {
        const t = buckets.peek(keyOf(r));
        if (t === undefined) return { result: 'unknown', why: `the buckets are ${o.store === 'redis' ? 'in Redis' : 'in the cluster primary'}: telling would need a round trip` };
        if (!t.allowed) return { result: 'rejects', status: 429, why: `the bucket for this ${o.by.text} is empty (a token in ${wholeSeconds(t.resetMs)}s)` };
        return { result: 'passes', why: `${t.remaining + 1} of ${o.burst} tokens left for this ${o.by.text}` };
      },
      describe() {
        return { average: o.average, periodMs: o.period, burst: o.burst, by: o.by.text, store: o.store, headers: o.headers };
      },
    };
  },
};

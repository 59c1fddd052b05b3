// inFlightLimit (SPEC §8): at most `amount` requests in flight per key (`by`, as rateLimit's);
// one more is answered 429 `too many requests in flight`. A request counts from its check until
// its exchange ends, however it ends (onDone). Like rateLimit's buckets, the counts belong to
// the middleware (one counter per name and settings, shared by the routes that list it and kept
// across reloads) and to the instance: under --workers they live in the primary, which forgets
// the counts of a worker that exits.
import { int, strict } from '../config/fields.ts';
import { DEFAULT_BY, keyFunction, limitBy } from './limits/key.ts';
import type { Answer, MiddlewareKind, MiddlewareRequest, Verdict } from './types.ts';

const options = strict({
  amount: int(1),
  by: limitBy().prefault(DEFAULT_BY),
});

const REFUSED: Answer = { status: 429, headers: ['content-type', 'text/plain; charset=utf-8'], body: 'too many requests in flight', rejection: true };
const UNAVAILABLE: Answer = { status: 503, headers: ['content-type', 'text/plain; charset=utf-8'], body: 'rate limit store unavailable', rejection: true };

/** The inFlightLimit middleware kind. */
export const inFlightLimit: MiddlewareKind<typeof options> = {
  kind: 'inFlightLimit',
  options,
  build(o, deps) {
    const { name, limits } = deps;
    const counter = limits.inFlight(`${name}|amount=${o.amount}|by=${o.by.text}`, o.amount);
    const keyOf = keyFunction(o.by);

    const counted = (r: MiddlewareRequest, key: string, ok: boolean): Verdict => {
      if (!ok) return REFUSED;
      // Runs at once when the exchange already ended (the client left while the primary answered).
      r.onDone(() => counter.release(key));
      return undefined;
    };
    const failed = (err: unknown): Verdict => {
      limits.storeFailed(name, err instanceof Error ? err : new Error(String(err)));
      return limits.failMode === 'open' ? undefined : UNAVAILABLE;
    };

    return {
      name,
      kind: 'inFlightLimit',
      request(r) {
        const key = keyOf(r);
        const ok = counter.acquire(key);
        if (ok instanceof Promise) return ok.then((v) => counted(r, key, v), failed);
        return counted(r, key, ok);
      },
      explain(r) {
        const n = counter.peek(keyOf(r));
        if (n === undefined) return { result: 'unknown', why: 'the counts are in the cluster primary: telling would need a round trip' };
        if (n >= o.amount) return { result: 'rejects', status: 429, why: `${n} of ${o.amount} requests already in flight for this ${o.by.text}` };
        return { result: 'passes', why: `${n} of ${o.amount} requests in flight for this ${o.by.text}` };
      },
      describe() {
        return { amount: o.amount, by: o.by.text };
      },
    };
  },
};

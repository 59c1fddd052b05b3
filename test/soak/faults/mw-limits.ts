// rateLimit and inFlightLimit (SPEC §8) in front of one healthy upstream: a token bucket in Redis
// (the soak pauses, kills and restarts that Redis mid-run: kit/mw-chaos.ts), one in waygate with
// the RateLimit fields, and an in-flight limit. Keys come from `x-soak-key`, so a burst client
// owns its bucket and can tell exactly what the limit must do; without the header every client
// shares the client IP's.
//
// The upstream holds `hold?id=K` requests until `release?id=K&expect=N` (on the pool without
// middlewares) or a safety timeout: with A requests held, an inFlightLimit of A must refuse every
// other request of that key, and the release says how many it held at most at once.
import { createServer } from 'node:http';
import type { ServerResponse } from 'node:http';
import { content } from '../kit/content.ts';
import { KEY_HEADER, MW } from '../kit/mw.ts';
import type { UpstreamFault } from '../types.ts';

/** rateLimit on Redis: 10 tokens, 5 a second. */
export const REDIS_LIMIT = { average: 5, periodMs: 1000, burst: 10 } as const;
/** rateLimit in waygate: 5 tokens, 10 a second. */
export const LOCAL_LIMIT = { average: 10, periodMs: 1000, burst: 5 } as const;
/** inFlightLimit's amount. */
export const IN_FLIGHT_AMOUNT = 3;
/** A held request is answered anyway after this (under the pool's response timeout). */
export const HOLD_MAX_MS = 5000;
/** The in-flight pool's response timeout: past the longest hold. */
const IN_FLIGHT_RESPONSE_MS = 8000;
/** How long a release waits for the held requests it expects to arrive. */
const RELEASE_WAIT_MS = 3000;

/** What a held request is answered with. */
export interface HoldAnswer {
  id: string;
  /** `released`, or `timeout` when no release came in time. */
  by: 'released' | 'timeout';
}

/** What a release answers. */
export interface ReleaseAnswer {
  id: string;
  /** Requests released now. */
  released: number;
  /** The most held at once under this id. */
  maxHeld: number;
}

interface Holding {
  waiting: Set<ServerResponse>;
  maxHeld: number;
  /** Called when a request arrives, for a release waiting for its count. */
  onArrive?: () => void;
}

const VARIANTS = ['echo', 'data?size=100', 'data?size=20000&chunked=1'];

const mwLimits: UpstreamFault = {
  name: 'mw-limits',
  async start(ctx) {
    const held = new Map<string, Holding>();
    const finish = (res: ServerResponse, answer: HoldAnswer): void => {
      if (res.destroyed) return;
      const body = JSON.stringify(answer);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    const server = createServer((req, res) => {
      req.on('error', () => {});
      res.on('error', () => {});
      const url = new URL(req.url ?? '/', 'http://upstream');
      const variant = url.pathname.slice(url.pathname.lastIndexOf('/') + 1);
      const id = url.searchParams.get('id') ?? req.headers[KEY_HEADER]?.toString() ?? '';
      if (variant === 'hold') {
        req.resume();
        ctx.hit('mw-limits/hold');
        const h = held.get(id) ?? { waiting: new Set(), maxHeld: 0 };
        held.set(id, h);
        h.waiting.add(res);
        h.maxHeld = Math.max(h.maxHeld, h.waiting.size);
        h.onArrive?.();
        const timer = setTimeout(() => {
          h.waiting.delete(res);
          ctx.hit('mw-limits/hold released by timeout');
          finish(res, { id, by: 'timeout' });
        }, HOLD_MAX_MS);
        res.once('close', () => {
          clearTimeout(timer);
          h.waiting.delete(res);
        });
        return;
      }
      if (variant === 'release') {
        req.resume();
        const expect = Number(url.searchParams.get('expect') ?? 0);
        const h = held.get(id) ?? { waiting: new Set(), maxHeld: 0 };
        held.set(id, h);
        const go = (): void => {
          clearTimeout(timer);
          h.onArrive = undefined;
          const list = [...h.waiting];
          h.waiting.clear();
          for (const r of list) finish(r, { id, by: 'released' });
          held.delete(id);
          ctx.hit('mw-limits/release');
          const body = JSON.stringify({ id, released: list.length, maxHeld: h.maxHeld } satisfies ReleaseAnswer);
          if (res.destroyed) return;
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
          res.end(body);
        };
        // The requests the limit let through may still be on their way here: wait for them.
        const timer = setTimeout(go, RELEASE_WAIT_MS);
        if (h.waiting.size >= expect) return go();
        h.onArrive = () => {
          if (h.waiting.size >= expect) go();
        };
        return;
      }
      content(req, res, (what) => ctx.hit(`mw-limits/${what}`));
    });
    server.keepAliveTimeout = 10_000;
    const port = await ctx.listen(server);
    const targets = [`http://127.0.0.1:${port}`];
    const by = `header:${KEY_HEADER}`;
    return [
      {
        name: MW.redis, targets, variants: VARIANTS, expect: 'any', kind: 'http',
        middlewares: [{ name: 'soak-redis-limit', kind: 'rateLimit', options: { average: REDIS_LIMIT.average, period: `${REDIS_LIMIT.periodMs}ms`, burst: REDIS_LIMIT.burst, by, store: 'redis' }, rejects: 'some' }],
      },
      {
        name: MW.local, targets, variants: VARIANTS, expect: 'any', kind: 'http',
        middlewares: [{ name: 'soak-local-limit', kind: 'rateLimit', options: { average: LOCAL_LIMIT.average, period: `${LOCAL_LIMIT.periodMs}ms`, burst: LOCAL_LIMIT.burst, by, store: 'local', headers: true }, rejects: 'some' }],
      },
      {
        name: MW.inFlight, targets, variants: VARIANTS, expect: 'any', kind: 'http',
        options: { timeouts: { connect: `${ctx.timeouts.connect}ms`, response: `${IN_FLIGHT_RESPONSE_MS}ms`, idle: `${ctx.timeouts.idle}ms` } },
        middlewares: [{ name: 'soak-in-flight', kind: 'inFlightLimit', options: { amount: IN_FLIGHT_AMOUNT, by }, rejects: 'some' }],
      },
      { name: MW.plain, targets, variants: ['echo'], expect: 'any', kind: 'http' },
    ];
  },
};
export default mwLimits;

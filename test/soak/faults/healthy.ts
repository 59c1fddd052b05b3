// The healthy pools every normal request must get a 200 from: three HTTP/1.1 targets, two
// https:// targets (private CA) and two h2c targets (`h2: true`), all serving kit/content.ts.
import { createServer } from 'node:http';
import { createServer as createH2cServer } from 'node:http2';
import { createServer as createHttpsServer } from 'node:https';
import { content } from '../kit/content.ts';
import type { UpstreamFault } from '../types.ts';

/** The healthy pools' variants (kit/content.ts): echo, small to large, sized and chunked, burst. */
export const HEALTHY_VARIANTS = [
  'echo',
  'data?size=0',
  'data?size=100',
  'data?size=16384&chunked=1',
  'data?size=262144&chunked=1&burst=1',
  'data?size=1048576',
  'data?size=1048576&chunked=1&burst=1',
];

// Longer than the gateway's upstream keep-alive (4 s), so the healthy pools never race it.
const KEEP_ALIVE_MS = 10_000;

const healthy: UpstreamFault = {
  name: 'healthy',
  async start(ctx) {
    const hit = (pool: string) => (what: string): void => ctx.hit(`${pool}/${what}`);
    const h1 = await Promise.all([0, 1, 2].map(() => {
      const s = createServer((req, res) => content(req, res, hit('healthy')));
      s.keepAliveTimeout = KEEP_ALIVE_MS;
      return ctx.listen(s);
    }));
    const tls = await Promise.all([0, 1].map(() => {
      const s = createHttpsServer({ cert: ctx.tls.cert, key: ctx.tls.key }, (req, res) => content(req, res, hit('tls')));
      s.keepAliveTimeout = KEEP_ALIVE_MS;
      return ctx.listen(s);
    }));
    // Node's default maxSessionMemory (10 MB) is the upstream's own overload limit: past it the
    // server refuses new streams, and the soak's slow readers of 1 MB responses can reach it on
    // one session. waygate spreads streams over sessions (8 each) so that it rarely happens, but a
    // streamed upload refused there gets a 502 (its body cannot be sent twice): a healthy pool
    // does not refuse, so these have room. Refusing targets are faults/h2-calm.ts.
    const h2c = await Promise.all([0, 1].map(() => ctx.listen(createH2cServer({ maxSessionMemory: 64 }, (req, res) => content(req, res, hit('h2c'))))));
    return [
      { name: 'healthy', targets: h1.map((p) => `http://127.0.0.1:${p}`), variants: HEALTHY_VARIANTS, expect: 'ok', kind: 'http' },
      { name: 'tls', targets: tls.map((p) => `https://127.0.0.1:${p}`), options: { tls: { ca: ctx.caFile } }, variants: HEALTHY_VARIANTS, expect: 'ok', kind: 'http' },
      { name: 'h2c', targets: h2c.map((p) => `http://127.0.0.1:${p}`), options: { h2: true }, variants: HEALTHY_VARIANTS, expect: 'ok', kind: 'http' },
    ];
  },
};
export default healthy;

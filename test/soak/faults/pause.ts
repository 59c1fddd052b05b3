// An upstream that pauses mid-response: after the head, or after half the body (sized or
// chunked), for longer than the pool's `timeouts.idle` (the gateway must abort the exchange),
// or for less (the response should still complete; timing is not asserted).
import { createServer } from 'node:http';
import { patternBody } from '../kit/pattern.ts';
import { variantOf } from '../kit/raw-server.ts';
import type { UpstreamFault } from '../types.ts';

const BODY = 64 * 1024;
const VARIANTS = ['head-long', 'mid-body-long', 'mid-chunked-long', 'mid-body-short'];

const pause: UpstreamFault = {
  name: 'pause',
  async start(ctx) {
    const pauseOf = (variant: string): number => Math.round(ctx.timeouts.idle * (variant.endsWith('-short') ? 0.4 : 1.5));
    const server = createServer((req, res) => {
      req.on('error', () => {});
      res.on('error', () => {});
      req.resume();
      const asked = variantOf(req.url ?? '');
      const v = VARIANTS.includes(asked) ? asked : 'mid-body-long';
      ctx.hit(`pause/${v}`);
      const body = patternBody(BODY);
      res.writeHead(200, v === 'mid-chunked-long' ? {} : { 'content-length': BODY });
      const half = v === 'head-long' ? 0 : BODY / 2;
      if (half === 0) res.flushHeaders();
      else res.write(body.subarray(0, half));
      const timer = setTimeout(() => {
        if (!res.destroyed) res.end(body.subarray(half));
      }, pauseOf(v));
      res.on('close', () => clearTimeout(timer));
    });
    const port = await ctx.listen(server);
    return [{ name: 'pause', targets: [`http://127.0.0.1:${port}`], variants: VARIANTS, expect: 'any', kind: 'http' }];
  },
};
export default pause;

// An upstream that answers slowly: its head after a delay under, near or past the pool's
// response timeout (then the gateway answers 504), or a body trickled in small pieces spaced
// under the idle timeout (which must then complete).
import { createServer } from 'node:http';
import { variantOf } from '../kit/raw-server.ts';
import type { UpstreamFault } from '../types.ts';

const VARIANTS = ['answer-soon', 'answer-near-timeout', 'answer-past-timeout', 'trickle'];
const TRICKLE_PIECES = 8;

const slow: UpstreamFault = {
  name: 'slow',
  async start(ctx) {
    const { response, idle } = ctx.timeouts;
    const delays: Record<string, number> = { 'answer-soon': Math.round(response * 0.1), 'answer-near-timeout': Math.round(response * 0.75), 'answer-past-timeout': Math.round(response * 1.25) };
    const server = createServer((req, res) => {
      req.on('error', () => {});
      res.on('error', () => {});
      req.resume();
      const asked = variantOf(req.url ?? '');
      const v = VARIANTS.includes(asked) ? asked : 'answer-soon';
      ctx.hit(`slow/${v}`);
      const timers = new Set<NodeJS.Timeout>();
      res.on('close', () => timers.forEach(clearTimeout));
      const later = (ms: number, f: () => void): void => {
        const t = setTimeout(() => {
          timers.delete(t);
          if (!res.destroyed) f();
        }, ms);
        timers.add(t);
      };
      if (v !== 'trickle') {
        later(delays[v], () => {
          res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
          res.end('ok');
        });
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' });
      let n = 0;
      const piece = (): void => {
        res.write(`piece ${n}\n`);
        if (++n === TRICKLE_PIECES) res.end();
        else later(Math.round(idle * 0.3), piece);
      };
      piece();
    });
    const port = await ctx.listen(server);
    return [{ name: 'slow', targets: [`http://127.0.0.1:${port}`], variants: VARIANTS, expect: 'any', kind: 'http' }];
  },
};
export default slow;

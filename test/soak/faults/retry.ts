// A pool with `retries: 2` over a refusing target, one that resets every request before
// answering, and a healthy one: a GET or HEAD must always reach the healthy one in time and
// answer 200 (SPEC §4: idempotent, nothing of the response sent yet).
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { content } from '../kit/content.ts';
import { readRequests, reset } from '../kit/raw-server.ts';
import type { UpstreamFault } from '../types.ts';

const retry: UpstreamFault = {
  name: 'retry',
  async start(ctx) {
    const refused = await ctx.closedPort();
    const resetting = await ctx.listen(createServer((socket) => readRequests(socket, () => {
      ctx.hit('retry/reset-before-head');
      reset(socket);
    })));
    const good = createHttpServer((req, res) => content(req, res, (what) => ctx.hit(`retry/healthy-${what}`)));
    good.keepAliveTimeout = 10_000;
    const healthy = await ctx.listen(good);
    return [{
      name: 'retry',
      targets: [`http://127.0.0.1:${refused}`, `http://127.0.0.1:${resetting}`, `http://127.0.0.1:${healthy}`],
      options: { retries: 2 },
      variants: ['echo', 'data?size=100', 'data?size=16384&chunked=1'],
      expect: 'ok-idempotent',
      kind: 'http',
    }];
  },
};
export default retry;

// Upstreams that close kept-alive connections early: one answers without `Connection: close`
// and then closes at once (or a moment later), or keeps the connection for a random 1–30 ms and
// closes it idle just as the next request may arrive; the other is node:http with a 15 ms
// keep-alive timeout (as gunicorn's 2 s, only sooner). Either may race the gateway's reuse.
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import type { Socket } from 'node:net';
import { content } from '../kit/content.ts';
import { readRequests, put, variantOf } from '../kit/raw-server.ts';
import type { UpstreamFault } from '../types.ts';

const VARIANTS = ['close-now', 'close-soon', 'idle-close'];
const OK = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok';
// Small, but not a fixed pattern: a little jitter makes the closes land on both sides of reuse.
const IDLE_CLOSE_MS: [number, number] = [1, 30];
const NODE_KEEP_ALIVE_MS = 15;

const earlyClose: UpstreamFault = {
  name: 'early-close',
  async start(ctx) {
    let jitter = 0;
    const raw = createServer((socket: Socket) => {
      let idleTimer: NodeJS.Timeout | undefined;
      socket.on('close', () => clearTimeout(idleTimer));
      readRequests(socket, (req) => {
        clearTimeout(idleTimer);
        const v = VARIANTS.includes(variantOf(req.path)) ? variantOf(req.path) : 'idle-close';
        ctx.hit(`early-close/${v}`);
        put(socket, OK, () => {
          if (v === 'close-now' || req.chunked) socket.end();
          else if (v === 'close-soon') setTimeout(() => socket.end(), 2);
          else {
            jitter = (jitter + 7) % (IDLE_CLOSE_MS[1] - IDLE_CLOSE_MS[0] + 1);
            idleTimer = setTimeout(() => socket.end(), IDLE_CLOSE_MS[0] + jitter);
          }
        });
      });
    });
    const node = createHttpServer((req, res) => content(req, res, (what) => ctx.hit(`early-close/node-keepalive-${what}`)));
    node.keepAliveTimeout = NODE_KEEP_ALIVE_MS;
    const a = await ctx.listen(raw);
    const b = await ctx.listen(node);
    return [{ name: 'early-close', targets: [`http://127.0.0.1:${a}`, `http://127.0.0.1:${b}`], variants: VARIANTS, expect: 'any', kind: 'http' }];
  },
};
export default earlyClose;

// An upstream that resets the connection (TCP RST) at a chosen point: right after the request
// head, in the middle of its status line, mid-body (sized and chunked), or closes with a FIN
// mid-body. The gateway must end the client's exchange and never reuse the connection.
import { createServer } from 'node:net';
import { readRequests, put, reset, variantOf } from '../kit/raw-server.ts';
import { patternBody } from '../kit/pattern.ts';
import type { UpstreamFault } from '../types.ts';

const VARIANTS = ['before-head', 'mid-head', 'mid-body', 'mid-chunked', 'fin-mid-body'];

const resets: UpstreamFault = {
  name: 'reset',
  async start(ctx) {
    const server = createServer((socket) => {
      readRequests(socket, (req) => {
        const v = variantOf(req.path);
        ctx.hit(`reset/${VARIANTS.includes(v) ? v : 'before-head'}`);
        switch (v) {
          case 'mid-head':
            return put(socket, 'HTTP/1.1 200 OK\r\nContent-Le', () => reset(socket));
          case 'mid-body':
            return put(socket, Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n'), patternBody(20_000)]), () => reset(socket));
          case 'mid-chunked':
            return put(socket, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n', () => reset(socket));
          case 'fin-mid-body':
            return put(socket, Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n'), patternBody(20_000)]), () => socket.end());
          default:
            return reset(socket);
        }
      });
    });
    const port = await ctx.listen(server);
    return [{ name: 'reset', targets: [`http://127.0.0.1:${port}`], variants: VARIANTS, expect: 'any', kind: 'http' }];
  },
};
export default resets;

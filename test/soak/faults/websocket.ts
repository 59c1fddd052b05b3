// WebSocket upstreams (`ws`), plain and TLS, that greet each client as soon as the upgrade
// completes (issue 12, defect 7: that first message could be lost) and echo what they receive;
// the text "close please" makes the upstream close the connection itself.
import { createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Server } from 'node:net';
import { WebSocketServer } from 'ws';
import type { RawData } from 'ws';
import type { UpstreamFault } from '../types.ts';

/** The greeting every WebSocket upstream sends first. */
export const GREETING = 'hello from upstream';
/** A message asking the upstream to close. */
export const CLOSE_PLEASE = 'close please';

const websocket: UpstreamFault = {
  name: 'websocket',
  async start(ctx) {
    const serve = (server: Server, what: string): Server => {
      const wss = new WebSocketServer({ server: server as never, maxPayload: 4 * 1024 * 1024 });
      wss.on('error', () => {});
      wss.on('connection', (ws) => {
        ctx.hit(`websocket/${what}`);
        ws.on('error', () => {});
        ws.send(GREETING);
        ws.on('message', (data: RawData, isBinary: boolean) => {
          if (!isBinary && data.toString() === CLOSE_PLEASE) ws.close(4000, 'as asked');
          else ws.send(data as Buffer, { binary: isBinary });
        });
      });
      return server;
    };
    const plain = await ctx.listen(serve(createServer(), 'ws'));
    const tls = await ctx.listen(serve(createHttpsServer({ cert: ctx.tls.cert, key: ctx.tls.key }), 'wss'));
    return [
      { name: 'ws', targets: [`http://127.0.0.1:${plain}`], variants: ['chat'], expect: 'ok', kind: 'ws' },
      { name: 'wss', targets: [`https://127.0.0.1:${tls}`], options: { tls: { ca: ctx.caFile } }, variants: ['chat'], expect: 'ok', kind: 'ws' },
    ];
  },
};
export default websocket;

// A WebSocket handshake pipelined behind a request still being answered (SPEC §4: pipelined
// requests are served one at a time, in order). node:http emits 'upgrade' as soon as it parses the
// handshake; started at once, the 101 and the upstream's first frame went out while the earlier
// response was held, and that response was then written into the WebSocket stream.
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { connect } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startGateway } from '../helpers.ts';
import type { TestGateway } from '../helpers.ts';

const GREETING = Buffer.from([0x81, 0x05, ...Buffer.from('hello')]); // one unmasked text frame
const events: string[] = [];
let release: (() => void) | undefined;
const server = createServer((req, res) => {
  events.push(`request ${req.url}`);
  release = () => {
    res.end('slow-done');
    events.push(`answered ${req.url}`);
  };
});
server.on('upgrade', (req, socket: Socket) => {
  events.push(`upgrade ${req.url}`);
  socket.on('error', () => {});
  socket.write(Buffer.concat([Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n', 'latin1'), GREETING]));
});
let gw: TestGateway;

beforeAll(async () => {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  gw = await startGateway(`pools: { p: { targets: ["${url}"] } }\nroutes: [ { name: r, pool: p } ]\n`);
});

afterAll(async () => {
  await gw.close();
  server.closeAllConnections();
  server.close();
});

test('the 101 and the first frame follow the earlier response, and the upstream sees the handshake only after it', async () => {
  const sock = connect(gw.port, '127.0.0.1');
  sock.on('error', () => {});
  await once(sock, 'connect');
  let got = Buffer.alloc(0);
  const arrived: (() => void)[] = [];
  sock.on('data', (c: Buffer) => {
    got = Buffer.concat([got, c]);
    for (const w of arrived.splice(0)) w();
  });
  const until = async (pred: () => boolean): Promise<void> => {
    while (!pred()) await new Promise<void>((r) => arrived.push(r));
  };
  sock.write(
    'GET /slow HTTP/1.1\r\nHost: a\r\n\r\n' +
      'GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
  );
  while (release === undefined) await new Promise((r) => setImmediate(r));
  // Proving an absence takes time: long enough for a handshake let through to reach the upstream.
  for (let i = 0; i < 30 && !events.includes('upgrade /ws'); i++) await new Promise((r) => setTimeout(r, 10));
  // Held: nothing of the handshake may have gone anywhere yet.
  expect(events).toEqual(['request /slow']);
  expect(got.length).toBe(0);
  release();
  await until(() => got.includes(GREETING));
  const text = got.toString('latin1');
  const slow = text.indexOf('slow-done');
  const switching = text.indexOf('HTTP/1.1 101');
  expect(text.startsWith('HTTP/1.1 200 ')).toBe(true);
  expect(slow).toBeGreaterThan(0);
  expect(switching).toBeGreaterThan(slow);
  expect(got.subarray(got.length - GREETING.length).equals(GREETING)).toBe(true);
  expect(events).toEqual(['request /slow', 'answered /slow', 'upgrade /ws']);
  sock.destroy();
});

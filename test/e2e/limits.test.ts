// Client limits the listener enforces today (README "Security and limits"), over raw sockets.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { rawExchange, send, startGateway, startUpstream } from '../helpers.ts';
import type { TestGateway, Upstream } from '../helpers.ts';

let up: Upstream;
let gw: TestGateway;

beforeAll(async () => {
  up = await startUpstream();
  gw = await startGateway(`pools: { p: { targets: ["${up.url}"] } }\nroutes: [ { name: r, pool: p } ]\n`, (c) => {
    c.timeouts.clientHeader = 500;
    c.limits.maxHeaderSize = 1024;
  });
});
afterAll(async () => {
  await gw.close();
  await up.close();
});

test('a connection that sends nothing is answered 408 and closed after timeouts.clientHeader', async () => {
  expect(await rawExchange(gw.port, Buffer.alloc(0))).toMatch(/^HTTP\/1\.1 408 /);
});

test('headers that trickle in past timeouts.clientHeader get 408, and nothing is forwarded', async () => {
  const before = up.seen.length;
  expect(await rawExchange(gw.port, 'GET / HTTP/1.1\r\nHost: a\r\n')).toMatch(/^HTTP\/1\.1 408 /);
  expect(up.seen.length).toBe(before);
});

test('headers over limits.maxHeaderSize get 431', async () => {
  const reply = await rawExchange(gw.port, `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(2000)}\r\n\r\n`);
  expect(reply).toMatch(/^HTTP\/1\.1 431 /);
});

test('Content-Length together with Transfer-Encoding is refused with 400 and nothing is forwarded', async () => {
  const before = up.seen.length;
  const reply = await rawExchange(gw.port, 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
  expect(reply).toMatch(/^HTTP\/1\.1 400 /);
  expect(up.seen.length).toBe(before);
});

test('readyz answers 503 while the public listeners drain, then the gateway closes', async () => {
  // A separate gateway, so closing it does not disturb the tests above.
  const slow = await startUpstream((_req, res) => setTimeout(() => res.end('late'), 300));
  const g = await startGateway(`pools: { p: { targets: ["${slow.url}"] } }\nroutes: [ { name: r, pool: p } ]\n`);
  const inFlight = send(`${g.url}/`);
  await new Promise<void>((r) => slow.server.once('request', () => r()));
  const closing = g.gateway.close(5000);
  const ready = await send(`${g.admin}/readyz`);
  expect(ready.status).toBe(503);
  expect((await inFlight).body).toBe('late');
  await closing;
  await slow.close();
});

// PROXY protocol on a listener (SPEC §4, §5): the header's source address is the client for
// x-forwarded-for, the access log and ip-hash; a connection without a valid header is closed.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { rawExchange, startGateway, startUpstream } from '../helpers.ts';
import type { TestGateway, Upstream } from '../helpers.ts';

let up: Upstream;
let gw: TestGateway;

beforeAll(async () => {
  up = await startUpstream();
  gw = await startGateway(`pools: { p: { targets: ["${up.url}"] } }\nroutes: [ { name: r, pool: p } ]\n`, (c) => {
    c.listeners.http.proxyProtocol = true;
    c.timeouts.clientHeader = 1000;
  });
});
afterAll(async () => {
  await gw.close();
  await up.close();
});

const body = (reply: string) => JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4));

test('PROXY v1: the header source is the client address upstream and in the access log', async () => {
  const reply = await rawExchange(gw.port, 'PROXY TCP4 203.0.113.9 10.0.0.1 51234 80\r\nGET /v1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
  expect(reply).toMatch(/^HTTP\/1\.1 200 /);
  expect(body(reply).headers['x-forwarded-for']).toBe('203.0.113.9');
  const lines = await gw.waitForAccessLogs(1);
  expect(lines.find((l) => l.path === '/v1')?.clientIp).toBe('203.0.113.9');
});

test('PROXY v2 (binary, IPv6): the header source is the client address', async () => {
  const sig = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
  const addr = Buffer.alloc(36);
  Buffer.from('20010db8000000000000000000000042', 'hex').copy(addr, 0); // src 2001:db8::42
  Buffer.from('20010db8000000000000000000000001', 'hex').copy(addr, 16); // dst 2001:db8::1
  addr.writeUInt16BE(40000, 32);
  addr.writeUInt16BE(443, 34);
  const header = Buffer.concat([sig, Buffer.from([0x21, 0x21, 0x00, 36]), addr]);
  const reply = await rawExchange(gw.port, Buffer.concat([header, Buffer.from('GET /v2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')]));
  expect(reply).toMatch(/^HTTP\/1\.1 200 /);
  expect(body(reply).headers['x-forwarded-for']).toBe('2001:db8::42');
});

test('a connection without a PROXY header is closed and nothing is forwarded', async () => {
  const before = up.seen.length;
  const reply = await rawExchange(gw.port, 'GET /no-header HTTP/1.1\r\nHost: a\r\n\r\n');
  expect(reply).toBe('');
  expect(up.seen.length).toBe(before);
});

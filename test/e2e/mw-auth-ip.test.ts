// ipAllowList end to end (SPEC §8): the client address as waygate resolved it — the peer, over
// IPv4 and IPv6; x-forwarded-for only from a peer in `trustedProxies`; the PROXY protocol's
// source — is checked against sourceRange; outside it, 403 `forbidden` and nothing forwarded.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { echoed, rawExchange, send, startGateway, startUpstream } from '../helpers.ts';
import type { Reply, TestGateway, Upstream } from '../helpers.ts';

let up: Upstream;
/** On 127.0.0.1, trusting only ::1: the IPv4 peer's x-forwarded-for does not count. */
let v4: TestGateway;
/** On ::1, trusting ::1: x-forwarded-for from it counts. */
let v6: TestGateway;
let v6url: string;
/** On 127.0.0.1 with the PROXY protocol on the listener. */
let proxied: TestGateway;

const routes = (): string => `
pools:
  app: { targets: ["${up.url}"] }
middlewares:
  loopback4: { ipAllowList: { sourceRange: [127.0.0.0/8] } }
  loopback6: { ipAllowList: { sourceRange: ["::1"] } }
  office:    { ipAllowList: { sourceRange: [10.0.0.0/8, "2001:db8::/32"] } }
routes:
  - { name: lo4, match: { path: /lo4/* }, middlewares: [loopback4], pool: app }
  - { name: lo6, match: { path: /lo6/* }, middlewares: [loopback6], pool: app }
  - { name: office, match: { path: /office/* }, middlewares: [office], pool: app }
`;

beforeAll(async () => {
  up = await startUpstream();
  v4 = await startGateway(routes(), (c) => {
    c.trustedProxies = ['::1/128'];
  });
  v6 = await startGateway(routes(), (c) => {
    c.listeners.http.address = { host: '::1', port: 0 };
    c.trustedProxies = ['::1/128'];
  });
  v6url = `http://[::1]:${Number(v6.gateway.addresses.http!.split(':').pop())}`;
  proxied = await startGateway(routes(), (c) => {
    c.listeners.http.proxyProtocol = true;
  });
});
afterAll(async () => {
  await v4?.close();
  await v6?.close();
  await proxied?.close();
  await up?.close();
});

function expectForbidden(r: Reply): void {
  expect(r.status).toBe(403);
  expect(r.body).toBe('forbidden');
  expect(r.headers['content-type']).toBe('text/plain; charset=utf-8');
}

/** Sends GET `path` on a raw connection that starts with a PROXY v1 header from `source`. */
async function viaProxyProtocol(source: string, path: string): Promise<{ status: number; body: string }> {
  const family = source.includes(':') ? 'TCP6' : 'TCP4';
  const dest = family === 'TCP6' ? '2001:db8::1' : '10.0.0.1';
  const reply = await rawExchange(proxied.port, `PROXY ${family} ${source} ${dest} 51234 80\r\nGET ${path} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n`);
  return { status: Number(reply.split(' ')[1]), body: reply.slice(reply.indexOf('\r\n\r\n') + 4) };
}

describe('the peer address', () => {
  test('an IPv4 client: in range passes, out of range gets 403 and nothing is forwarded', async () => {
    expect((await send(`${v4.url}/lo4/x`)).status).toBe(200);
    const before = up.seen.length;
    expectForbidden(await send(`${v4.url}/lo6/x`));
    expectForbidden(await send(`${v4.url}/office/x`));
    expect(up.seen.length).toBe(before);
    const lines = await v4.waitForAccessLogs(3);
    expect(lines.filter((l) => l.status === 403).map((l) => l.rejectedBy).sort()).toEqual(['loopback6', 'office']);
  });

  test('an IPv6 client: in range passes, out of range gets 403', async () => {
    const r = await send(`${v6url}/lo6/x`);
    expect(r.status).toBe(200);
    expect(echoed(r).headers['x-forwarded-for']).toBe('::1');
    expectForbidden(await send(`${v6url}/lo4/x`));
    expectForbidden(await send(`${v6url}/office/x`));
  });

  test('a WebSocket handshake from outside the range is refused the same way', async () => {
    const before = up.seen.length;
    const reply = await rawExchange(v4.port, 'GET /office/ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    expect(reply).toMatch(/^HTTP\/1\.1 403 /);
    expect(up.seen.length).toBe(before);
  });
});

describe('behind trustedProxies', () => {
  test('x-forwarded-for from a trusted peer names the client', async () => {
    expect((await send(`${v6url}/office/x`, { headers: { 'x-forwarded-for': '10.1.2.3' } })).status).toBe(200);
    expect((await send(`${v6url}/office/x`, { headers: { 'x-forwarded-for': '2001:db8::7' } })).status).toBe(200);
    // An IPv4-mapped address matches the IPv4 range.
    expect((await send(`${v6url}/office/x`, { headers: { 'x-forwarded-for': '::ffff:10.1.2.3' } })).status).toBe(200);
    expectForbidden(await send(`${v6url}/office/x`, { headers: { 'x-forwarded-for': '192.0.2.1' } }));
    // The peer is ::1, but the client is the address the proxy names: not ::1.
    expectForbidden(await send(`${v6url}/lo6/x`, { headers: { 'x-forwarded-for': '192.0.2.1' } }));
  });

  test('the client is the right-most hop nobody trusted wrote: a forged hop to its left does not help', async () => {
    expectForbidden(await send(`${v6url}/office/x`, { headers: { 'x-forwarded-for': '10.1.2.3, 192.0.2.1' } }));
    expect((await send(`${v6url}/office/x`, { headers: { 'x-forwarded-for': '192.0.2.1, 10.1.2.3' } })).status).toBe(200);
  });

  test('x-forwarded-for from an untrusted peer does not count', async () => {
    expectForbidden(await send(`${v4.url}/office/x`, { headers: { 'x-forwarded-for': '10.1.2.3' } }));
    expect((await send(`${v4.url}/lo4/x`, { headers: { 'x-forwarded-for': '192.0.2.1' } })).status).toBe(200);
  });

  test('x-forwarded-for that is not an address is refused, and the gateway keeps serving', async () => {
    for (const xff of ['not-an-ip', '10.1.2.3:8080', '[10.1.2.3]', ' , ', 'x'.repeat(1000)]) {
      expectForbidden(await send(`${v6url}/office/x`, { headers: { 'x-forwarded-for': xff } }));
    }
    expect((await send(`${v6url}/lo6/x`)).status).toBe(200);
  });
});

describe('behind the PROXY protocol', () => {
  test("the header's source is the client, whatever the TCP peer", async () => {
    expect(await viaProxyProtocol('10.9.8.7', '/office/x')).toMatchObject({ status: 200 });
    expect(await viaProxyProtocol('2001:db8::42', '/office/x')).toMatchObject({ status: 200 });
    expect(await viaProxyProtocol('203.0.113.9', '/office/x')).toEqual({ status: 403, body: 'forbidden' });
    // The TCP peer is 127.0.0.1, but the client the header names is not in 127.0.0.0/8.
    expect(await viaProxyProtocol('203.0.113.9', '/lo4/x')).toEqual({ status: 403, body: 'forbidden' });
    expect(await viaProxyProtocol('127.0.0.5', '/lo4/x')).toMatchObject({ status: 200 });
  });

  test('/explain takes the client address to check', async () => {
    const e = (await (await fetch(`${proxied.admin}/explain?url=http://a.test/office/x&clientIp=10.1.2.3`)).json()) as Record<string, unknown>;
    expect(e.middlewares).toEqual([{ name: 'office', kind: 'ipAllowList', result: 'passes', why: 'the client 10.1.2.3 is in 10.0.0.0/8' }]);
    const no = (await (await fetch(`${proxied.admin}/explain?url=http://a.test/office/x&clientIp=192.0.2.1`)).json()) as Record<string, unknown>;
    expect(no).toMatchObject({ rejectedBy: 'office', result: '403 from middleware office' });
  });
});

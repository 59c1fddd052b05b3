import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { echoed, rawExchange, send, startGateway, startUpstream } from '../helpers.ts';
import type { TestGateway, Upstream } from '../helpers.ts';

let up: Upstream;
let gw: TestGateway;

// Both HTTP/1.1 clients (SPEC §3 `client:`) forward the same way.
describe.each(['builtin', 'undici'])('forwarding to one target (client: %s)', (client) => {
  beforeAll(async () => {
    up = await startUpstream((req, res) => {
      if (req.url === '/hop') {
        // An upstream that sends hop-by-hop fields that must not reach the client.
        res.writeHead(200, [
          'connection', 'keep-alive, x-upstream-private',
          'keep-alive', 'timeout=5',
          'x-upstream-private', 'secret',
          'proxy-authenticate', 'Basic',
          'x-request-id', 'upstream-made-this-up',
          'set-cookie', 'a=1',
          'set-cookie', 'b=2',
          'content-length', '2',
        ]);
        res.end('ok');
        return;
      }
      if (req.url?.startsWith('/bytes/')) {
        // Every byte value in turn: a body that only survives byte-exact forwarding.
        const n = Number(req.url.slice(7));
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
        res.end(Buffer.from(Array.from({ length: n }, (_, i) => (i * 7) % 256)));
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() });
        res.writeHead(201, { 'content-type': 'application/json', 'x-powered-by': 'upstream', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    });
    gw = await startGateway(`
  pools:
    app: { targets: ["${up.url}"], client: ${client} }
  routes:
    - name: app
      match: { path: /* }
      pool: app
  `, (c) => {
      c.trustedProxies = ['10.9.9.9/32'];
    });
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  test('passes method, path, query, body and status through, keeping the original Host', async () => {
    const r = await send(`${gw.url}/items/7?x=1&y=%20z`, { method: 'POST', headers: { host: 'shop.example.com', 'content-type': 'text/plain' }, body: 'hello' });
    expect(r.status).toBe(201);
    const e = echoed(r);
    expect(e.method).toBe('POST');
    expect(e.url).toBe('/items/7?x=1&y=%20z');
    expect(e.body).toBe('hello');
    expect(e.headers.host).toBe('shop.example.com');
    expect(e.headers['content-type']).toBe('text/plain');
  });

  test('binary bodies arrive byte for byte, small ones (sent with the head as latin1) and larger ones', async () => {
    for (const n of [1, 256, 1024, 1025, 70_000]) {
      const body = await new Promise<Buffer>((resolve, reject) => {
        request(`${gw.url}/bytes/${n}`, { agent: false }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve(Buffer.concat(chunks)));
        }).on('error', reject).end();
      });
      expect(body.equals(Buffer.from(Array.from({ length: n }, (_, i) => (i * 7) % 256)))).toBe(true);
    }
  });

  test('removes hop-by-hop request headers, including those named by Connection', async () => {
    // Raw bytes: node's client will not send some of these fields itself.
    const reply = await rawExchange(gw.port, [
      'GET /h HTTP/1.1',
      'Host: hop.example',
      'Connection: close, X-Private',
      'X-Private: do not forward',
      'Keep-Alive: timeout=5',
      'TE: trailers',
      'Trailer: X-T',
      'Proxy-Authorization: Basic Zm9vOmJhcg==',
      'Proxy-Connection: keep-alive',
      'X-Kept: yes',
      '', '',
    ].join('\r\n'));
    expect(reply).toMatch(/^HTTP\/1\.1 201 /);
    const h = JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)).headers;
    for (const name of ['x-private', 'keep-alive', 'te', 'trailer', 'proxy-authorization', 'proxy-connection']) {
      expect(h[name], name).toBeUndefined();
    }
    expect(h['x-kept']).toBe('yes');
    expect(h.host).toBe('hop.example');
  });

  test('removes hop-by-hop response headers and keeps repeated Set-Cookie fields apart', async () => {
    const r = await send(`${gw.url}/hop`);
    expect(r.status).toBe(200);
    expect(r.body).toBe('ok');
    expect(r.headers['x-upstream-private']).toBeUndefined();
    expect(r.headers['keep-alive']).toBeUndefined();
    expect(r.headers['proxy-authenticate']).toBeUndefined();
    expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    // The client gets waygate's request id, not one the upstream invented.
    expect(r.headers['x-request-id']).not.toBe('upstream-made-this-up');
  });

  test('sets x-forwarded-for/proto/host and replaces values sent by an untrusted client', async () => {
    const r = await send(`${gw.url}/xf`, {
      headers: { host: 'api.example.com:8080', 'x-forwarded-for': '6.6.6.6', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example', forwarded: 'for=6.6.6.6' },
    });
    const h = echoed(r).headers;
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
    expect(h['x-forwarded-proto']).toBe('http');
    expect(h['x-forwarded-host']).toBe('api.example.com:8080');
    expect(h.forwarded).toBeUndefined();
  });

  test('generates an x-request-id, sends it upstream and returns it to the client', async () => {
    const r = await send(`${gw.url}/id`);
    const id = r.headers['x-request-id'];
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(echoed(r).headers['x-request-id']).toBe(id);
    const r2 = await send(`${gw.url}/id`);
    expect(r2.headers['x-request-id']).not.toBe(id);
  });

  test('keeps a client x-request-id', async () => {
    const r = await send(`${gw.url}/id`, { headers: { 'x-request-id': 'client-abc-123' } });
    expect(r.headers['x-request-id']).toBe('client-abc-123');
    expect(echoed(r).headers['x-request-id']).toBe('client-abc-123');
  });

  test('forwards the normalised path: dot segments removed, unreserved escapes decoded, %2F kept', async () => {
    const r = await send(`${gw.url}/a/./b/../%63at/x%2Fy//z`);
    expect(echoed(r).url).toBe('/a/cat/x%2Fy/z');
  });

  test('writes one access-log line per request with the SPEC fields', async () => {
    const before = gw.accessLogs().length;
    const r = await send(`${gw.url}/logged?q=1`, { method: 'POST', body: 'abcd', headers: { 'user-agent': 'test-agent/1' } });
    const lines = await gw.waitForAccessLogs(before + 1);
    const line = lines.find((l) => l.reqId === r.headers['x-request-id'])!;
    expect(line).toMatchObject({
      method: 'POST',
      path: '/logged?q=1',
      status: 201,
      bytesIn: 4,
      bytesOut: Buffer.byteLength(r.body),
      route: 'app',
      pool: 'app',
      target: up.url,
      attempts: 1,
      clientIp: '127.0.0.1',
      userAgent: 'test-agent/1',
      proto: 'HTTP/1.1',
    });
    expect(typeof line.durationMs).toBe('number');
    expect(line.host).toMatch(/^127\.0\.0\.1:\d+$/);
  });
});

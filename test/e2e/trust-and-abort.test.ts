import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { echoed, send, startGateway, startUpstream } from '../helpers.ts';
import type { TestGateway, Upstream } from '../helpers.ts';

describe('a trusted proxy in front of waygate', () => {
  let up: Upstream;
  let gw: TestGateway;
  beforeAll(async () => {
    up = await startUpstream();
    gw = await startGateway(`pools: { p: { targets: ["${up.url}"] } }\nroutes: [ { name: r, pool: p } ]\n`, (c) => {
      c.trustedProxies = ['127.0.0.0/8'];
    });
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  test('its x-forwarded-for is appended to and its x-forwarded-proto/host are kept', async () => {
    const h = echoed(await send(`${gw.url}/`, {
      headers: { host: 'inner.example', 'x-forwarded-for': '203.0.113.7, 10.0.0.2', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'shop.example.com' },
    })).headers;
    expect(h['x-forwarded-for']).toBe('203.0.113.7, 10.0.0.2, 127.0.0.1');
    expect(h['x-forwarded-proto']).toBe('https');
    expect(h['x-forwarded-host']).toBe('shop.example.com');
  });

  test('without incoming values the trusted path sets them like any other', async () => {
    const h = echoed(await send(`${gw.url}/`, { headers: { host: 'inner.example' } })).headers;
    expect([h['x-forwarded-for'], h['x-forwarded-proto'], h['x-forwarded-host']]).toEqual(['127.0.0.1', 'http', 'inner.example']);
  });
});

describe('a client that goes away mid-response', () => {
  let up: Upstream;
  let gw: TestGateway;
  let upstreamClosed: Promise<void>;
  beforeAll(async () => {
    let closed!: () => void;
    upstreamClosed = new Promise((r) => (closed = r));
    up = await startUpstream((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first chunk\n');
      // Never ends by itself: only the proxy aborting the request ends it.
      req.socket.on('close', () => closed());
    });
    gw = await startGateway(`pools: { p: { targets: ["${up.url}"] } }\nroutes: [ { name: r, pool: p } ]\n`);
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  test('aborts the upstream request, releases the in-flight count and logs 200 with the bytes sent', async () => {
    const target = gw.gateway.pools.get('p')!.targets[0];
    await new Promise<void>((resolve) => {
      const req = request(`${gw.url}/stream`, { agent: false }, (res) => {
        res.once('data', () => {
          expect(target.inFlight).toBe(1);
          req.destroy();
          resolve();
        });
      });
      req.end();
    });
    await upstreamClosed;
    const [line] = await gw.waitForAccessLogs(1);
    expect(target.inFlight).toBe(0);
    expect(line).toMatchObject({ status: 200, bytesOut: 'first chunk\n'.length, route: 'r' });
  });
});

describe('a client that goes away mid-upload', () => {
  let up: Upstream;
  let gw: TestGateway;
  let upstreamGotBytes: Promise<void>;
  let upstreamClosed: Promise<void>;
  beforeAll(async () => {
    let got!: () => void;
    let closed!: () => void;
    upstreamGotBytes = new Promise((r) => (got = r));
    upstreamClosed = new Promise((r) => (closed = r));
    up = await startUpstream((req) => {
      req.once('data', () => got());
      req.socket.on('close', () => closed());
      req.resume();
    });
    gw = await startGateway(`pools: { p: { targets: ["${up.url}"] } }\nroutes: [ { name: r, pool: p } ]\n`);
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  test('aborts the upstream request and does not count it as a failure of the target', async () => {
    const target = gw.gateway.pools.get('p')!.targets[0];
    const req = request(`${gw.url}/upload`, { method: 'POST', agent: false, headers: { 'content-length': String(10 * 1024 * 1024) } });
    req.on('error', () => {});
    req.write(Buffer.alloc(64 * 1024));
    await upstreamGotBytes;
    req.destroy();
    await upstreamClosed;
    const [line] = await gw.waitForAccessLogs(1);
    expect(line).toMatchObject({ status: 499, route: 'r' });
    expect(target.inFlight).toBe(0);
    expect(target.failures).toBe(0);
  });
});

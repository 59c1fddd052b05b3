// cors end to end (SPEC §8): a real gateway with a routes file listing the middleware, real
// upstreams, requests over real sockets as a browser sends them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closedPort, send, startGateway, startUpstream } from '../helpers.ts';
import type { Reply, TestGateway, Upstream } from '../helpers.ts';

const APP = 'https://app.example.com';

/** Every value of a response field, as sent (repeated fields not joined). */
function all(r: Reply, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < r.rawHeaders.length; i += 2) if (r.rawHeaders[i].toLowerCase() === name) out.push(r.rawHeaders[i + 1]);
  return out;
}

const corsFields = (r: Reply): string[] => Object.keys(r.headers).filter((n) => n.startsWith('access-control-'));

describe('cors through the gateway', () => {
  let upstream: Upstream;
  let gw: TestGateway;
  beforeAll(async () => {
    // A framework default that would let every site read: the route's policy must win over it.
    upstream = await startUpstream((req, res) => {
      res.writeHead(200, {
        'content-type': 'application/json',
        'access-control-allow-origin': '*',
        'access-control-allow-methods': 'DELETE',
        vary: 'Accept-Encoding',
        'x-total': '7',
      });
      res.end(JSON.stringify({ url: req.url, method: req.method }));
    });
    const dead = await closedPort();
    gw = await startGateway(`
pools:
  app:
    targets: [${upstream.url}]
  gone:
    targets: [http://127.0.0.1:${dead}]
middlewares:
  web-cors:
    cors:
      origins: [${APP}, "https://*.shop.example.com"]
      methods: [GET, POST, PUT]
      headers: [content-type, x-csrf]
      exposeHeaders: [x-total]
      credentials: true
      maxAge: 10m
  open-cors: { cors: { origins: ["*"] } }
  one-per-hour: { rateLimit: { average: 1, period: 1h, burst: 1 } }
routes:
  - match: { path: /api/* }
    middlewares: [web-cors]
    pool: app
  - match: { path: /public/* }
    middlewares: [open-cors]
    pool: app
  - match: { path: /gone/* }
    middlewares: [web-cors]
    pool: gone
  - match: { path: /limited/* }
    middlewares: [web-cors, one-per-hour]
    pool: app
  - match: { path: /plain/* }
    pool: app
`);
  });
  afterAll(async () => {
    await gw?.close();
    await upstream?.close();
  });

  it('answers an allowed preflight itself with 204 and the policy; the upstream never sees it', async () => {
    const before = upstream.seen.length;
    const r = await send(`${gw.url}/api/orders`, { method: 'OPTIONS', headers: { origin: APP, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'content-type, x-unlisted' } });
    expect(r.status).toBe(204);
    expect(r.body).toBe('');
    expect(r.headers['access-control-allow-origin']).toBe(APP);
    expect(r.headers['access-control-allow-methods']).toBe('GET, POST, PUT');
    expect(r.headers['access-control-allow-headers']).toBe('content-type, x-csrf');
    expect(r.headers['access-control-allow-credentials']).toBe('true');
    expect(r.headers['access-control-max-age']).toBe('600');
    expect(r.headers.vary).toBe('origin, access-control-request-method, access-control-request-headers');
    expect(r.headers['x-request-id']).toBeTruthy();
    expect(upstream.seen.length).toBe(before);
    const line = (await gw.waitForAccessLogs(1)).find((l) => l.path === '/api/orders' && l.method === 'OPTIONS');
    expect(line?.status).toBe(204);
    expect(line?.rejectedBy).toBeUndefined();
  });

  it('answers a disallowed preflight with 204 and no access-control-* field', async () => {
    const r = await send(`${gw.url}/api/orders`, { method: 'OPTIONS', headers: { origin: 'https://evil.example.net', 'access-control-request-method': 'POST' } });
    expect(r.status).toBe(204);
    expect(corsFields(r)).toEqual([]);
    expect(r.headers.vary).toContain('origin');
  });

  it('allows one label under a wildcard origin, not two', async () => {
    const pre = (origin: string) => send(`${gw.url}/api/x`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'GET' } });
    expect((await pre('https://eu.shop.example.com')).headers['access-control-allow-origin']).toBe('https://eu.shop.example.com');
    expect(corsFields(await pre('https://a.eu.shop.example.com'))).toEqual([]);
    expect(corsFields(await pre('https://shop.example.com'))).toEqual([]);
  });

  it("puts the policy on an actual response, replacing the upstream's access-control-* and merging vary", async () => {
    const r = await send(`${gw.url}/api/orders`, { headers: { origin: APP } });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ url: '/api/orders', method: 'GET' });
    expect(all(r, 'access-control-allow-origin')).toEqual([APP]);
    expect(all(r, 'access-control-allow-credentials')).toEqual(['true']);
    expect(all(r, 'access-control-expose-headers')).toEqual(['x-total']);
    expect(all(r, 'access-control-allow-methods')).toEqual([]);
    expect(all(r, 'vary')).toEqual(['Accept-Encoding, origin']);
  });

  it('adds nothing for a disallowed origin and removes what the upstream sent', async () => {
    const r = await send(`${gw.url}/api/orders`, { headers: { origin: 'https://evil.example.net' } });
    expect(r.status).toBe(200);
    expect(corsFields(r)).toEqual([]);
    expect(all(r, 'vary')).toEqual(['Accept-Encoding, origin']);
  });

  it('lets a request without Origin through with only vary added', async () => {
    const r = await send(`${gw.url}/api/orders`);
    expect(r.status).toBe(200);
    expect(corsFields(r)).toEqual([]);
    expect(all(r, 'vary')).toEqual(['Accept-Encoding, origin']);
    expect(r.headers['x-total']).toBe('7');
  });

  it('sends "*" for origins ["*"] without credentials', async () => {
    const r = await send(`${gw.url}/public/feed`, { headers: { origin: 'https://anyone.test' } });
    expect(r.headers['access-control-allow-origin']).toBe('*');
    expect(r.headers['access-control-allow-credentials']).toBeUndefined();
    const pre = await send(`${gw.url}/public/feed`, { method: 'OPTIONS', headers: { origin: 'https://anyone.test', 'access-control-request-method': 'POST' } });
    expect(pre.status).toBe(204);
    expect(pre.headers['access-control-allow-origin']).toBe('*');
    expect(pre.headers['access-control-allow-methods']).toBe('GET, HEAD, POST');
  });

  it("puts the policy on waygate's own 502, so the page's script can read the failure", async () => {
    const r = await send(`${gw.url}/gone/x`, { headers: { origin: APP } });
    expect(r.status).toBe(502);
    expect(r.headers['access-control-allow-origin']).toBe(APP);
    expect(r.headers.vary).toBe('origin');
  });

  it("puts the policy on a later middleware's rejection (a 429)", async () => {
    expect((await send(`${gw.url}/limited/a`, { headers: { origin: APP } })).status).toBe(200);
    const r = await send(`${gw.url}/limited/a`, { headers: { origin: APP } });
    expect(r.status).toBe(429);
    expect(r.body).toBe('rate limited');
    expect(r.headers['access-control-allow-origin']).toBe(APP);
  });

  it('leaves a route without the middleware untouched', async () => {
    const r = await send(`${gw.url}/plain/x`, { headers: { origin: APP } });
    expect(r.headers['access-control-allow-origin']).toBe('*');
    expect(r.headers['access-control-allow-methods']).toBe('DELETE');
    expect(all(r, 'vary')).toEqual(['Accept-Encoding']);
    const pre = await send(`${gw.url}/plain/x`, { method: 'OPTIONS', headers: { origin: APP, 'access-control-request-method': 'POST' } });
    expect(pre.status).toBe(200);
    expect(JSON.parse(pre.body).method).toBe('OPTIONS');
  });

  it('/explain says what cors would do', async () => {
    const q = (url: string, origin: string, method = 'GET') =>
      fetch(`${gw.admin}/explain?url=${encodeURIComponent(url)}&method=${method}&header=${encodeURIComponent(`origin:${origin}`)}${method === 'OPTIONS' ? '&header=access-control-request-method:POST' : ''}`).then((r) => r.text());
    expect(await q('http://x/api/a', APP)).toContain(`passes, adds headers for origin ${APP}`);
    expect(await q('http://x/api/a', 'https://evil.test')).toContain('passes, origin https://evil.test not allowed');
    expect(await q('http://x/api/a', APP, 'OPTIONS')).toContain('answers the preflight');
  });
});

describe('cors load errors at startup', () => {
  it('refuses origins "*" with credentials: true, located and explained', async () => {
    const err = await startGateway(`
middlewares:
  bad: { cors: { origins: ["*"], credentials: true } }
`).then(
      (g) => g.close().then(() => undefined),
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(err!.message).toContain('middlewares.bad.cors.origins[0]');
    expect(err!.message).toContain("any site could then read responses made with the user's cookies");
  });
});

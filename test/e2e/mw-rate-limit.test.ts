// rateLimit and inFlightLimit end to end (SPEC §8), `store: local` in one process: a real
// gateway whose routes file lists them, real upstreams, requests over real sockets.
import { writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { send, startGateway, startUpstream } from '../helpers.ts';
import type { TestGateway, Upstream } from '../helpers.ts';

const routes = (extra = '', perHour = 2) => `
pools:
  app: { targets: ["URL"] }
middlewares:
  per-hour:  { rateLimit: { average: 1, period: 1h, burst: ${perHour}, by: "header:x-client" } }
  with-headers: { rateLimit: { average: 10, period: 10s, burst: 3, by: "header:x-client", headers: true } }
routes:
  - { name: a, match: { path: /a/* }, middlewares: [per-hour], pool: app }
  - { name: b, match: { path: /b/* }, middlewares: [per-hour], pool: app }
  - { name: h, match: { path: /h/* }, middlewares: [with-headers], pool: app }
  - { name: free, match: { path: /free/* }, pool: app }
${extra}`;

describe('rateLimit, store: local', () => {
  let up: Upstream;
  let gw: TestGateway;
  let text: (extra?: string, perHour?: number) => string;
  beforeAll(async () => {
    up = await startUpstream();
    text = (extra, perHour) => routes(extra, perHour).replace('URL', up.url);
    gw = await startGateway(text());
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
  });
  const get = (path: string, client: string) => send(`${gw.url}${path}`, { headers: { 'x-client': client } });

  test('over the limit: 429 "rate limited" with retry-after in whole seconds, never reaching the upstream, logged and counted', async () => {
    expect((await get('/a/1', 'c1')).status).toBe(200);
    expect((await get('/a/2', 'c1')).status).toBe(200);
    const before = up.seen.length;
    const r = await get('/a/3', 'c1');
    expect(r.status).toBe(429);
    expect(r.body).toBe('rate limited');
    expect(r.headers['content-type']).toBe('text/plain; charset=utf-8');
    // One token an hour.
    expect(Number(r.headers['retry-after'])).toBeGreaterThan(3590);
    expect(Number(r.headers['retry-after'])).toBeLessThanOrEqual(3600);
    expect(r.headers['ratelimit']).toBeUndefined();
    expect(up.seen.length).toBe(before);
    const line = (await gw.waitForAccessLogs(3)).findLast((l) => l.reqId === r.headers['x-request-id']);
    expect(line).toMatchObject({ status: 429, rejectedBy: 'per-hour' });
    const metrics = await (await fetch(`${gw.admin}/metrics`)).text();
    expect(metrics).toMatch(/waygate_middleware_rejections_total\{route="a",middleware="per-hour",kind="rateLimit"\} 1\b/);
    // Another client has its own bucket; a route without the middleware is not limited.
    expect((await get('/a/4', 'c2')).status).toBe(200);
    expect((await get('/free/1', 'c1')).status).toBe(200);
  });

  test('two routes listing one middleware share its buckets (the limit is not multiplied by routes)', async () => {
    expect((await get('/a/1', 'shared')).status).toBe(200);
    expect((await get('/b/1', 'shared')).status).toBe(200);
    expect((await get('/b/2', 'shared')).status).toBe(429);
    expect((await get('/a/2', 'shared')).status).toBe(429);
  });

  test('headers: true: RateLimit-Policy and RateLimit on the responses it lets through and on its 429', async () => {
    const first = await get('/h/1', 'hc');
    expect(first.status).toBe(200);
    // 3 tokens, refilled at 1 per second: q=3 over w=3 s; 2 left, full again in 1 s.
    expect(first.headers['ratelimit-policy']).toBe('"with-headers";q=3;w=3');
    expect(first.headers['ratelimit']).toMatch(/^"with-headers";r=2;t=1$/);
    // The upstream's own fields are kept.
    expect(first.headers['content-type']).toBe('application/json');
    const statuses: number[] = [];
    let refused;
    for (let i = 0; i < 10 && refused === undefined; i++) {
      const r = await get('/h/x', 'hc');
      statuses.push(r.status);
      if (r.status === 429) refused = r;
    }
    expect(refused).toBeDefined();
    expect(refused!.headers['ratelimit-policy']).toBe('"with-headers";q=3;w=3');
    expect(refused!.headers['ratelimit']).toBe(`"with-headers";r=0;t=${refused!.headers['retry-after']}`);
    expect(refused!.headers['retry-after']).toBe('1');
  });

  test('/explain says whether the bucket would refuse, without taking a token', async () => {
    const explain = async (client: string) => {
      const q = new URLSearchParams({ url: 'http://x/a/1', header: `x-client: ${client}` });
      return JSON.parse((await send(`${gw.admin}/explain?${q}`)).body) as { middlewares: { name: string; result: string; status?: number }[]; rejectedBy: string | null };
    };
    for (let i = 0; i < 3; i++) expect((await explain('explained')).middlewares[0]).toMatchObject({ name: 'per-hour', result: 'passes' });
    expect((await get('/a/1', 'explained')).status).toBe(200);
    expect((await get('/a/1', 'explained')).status).toBe(200);
    const e = await explain('explained');
    expect(e.middlewares[0]).toMatchObject({ name: 'per-hour', result: 'rejects', status: 429 });
    expect(e.rejectedBy).toBe('per-hour');
  });

  test('a reload that keeps the settings keeps the buckets; one that changes them starts afresh', async () => {
    expect((await get('/a/1', 'reload')).status).toBe(200);
    expect((await get('/a/1', 'reload')).status).toBe(200);
    expect((await get('/a/1', 'reload')).status).toBe(429);
    // A new route, the middleware unchanged: still spent.
    await writeFile(join(gw.routesDir, 'routes.yaml'), text('  - { name: c, match: { path: /c/* }, middlewares: [per-hour], pool: app }\n'));
    expect((await gw.gateway.reload()).ok).toBe(true);
    expect((await get('/a/1', 'reload')).status).toBe(429);
    expect((await get('/c/1', 'reload')).status).toBe(429);
    // A larger burst: a new bucket set.
    await writeFile(join(gw.routesDir, 'routes.yaml'), text('', 3));
    expect((await gw.gateway.reload()).ok).toBe(true);
    expect((await get('/a/1', 'reload')).status).toBe(200);
  });

});

describe('inFlightLimit', () => {
  const held: { url: string; res: ServerResponse }[] = [];
  const arrived: (() => void)[] = [];
  let up: Upstream;
  let gw: TestGateway;
  beforeAll(async () => {
    // Holds every request until the test lets it go.
    up = await startUpstream((req, res) => {
      held.push({ url: req.url!, res });
      for (const w of arrived.splice(0)) w();
    });
    gw = await startGateway(`
pools:
  app: { targets: ["${up.url}"] }
middlewares:
  fair: { inFlightLimit: { amount: 2, by: "header:x-client" } }
routes:
  - { name: f, match: { path: /f/* }, middlewares: [fair], pool: app }
  - { name: g, match: { path: /g/* }, middlewares: [fair], pool: app }
`);
  });
  afterAll(async () => {
    for (const h of held) h.res.end();
    await gw?.close();
    await up?.close();
  });
  const until = async (n: number) => {
    while (held.length < n) await new Promise<void>((r) => arrived.push(r));
  };
  const arrivedAt = async (url: string) => {
    while (!held.some((h) => h.url === url)) await new Promise<void>((r) => arrived.push(r));
  };
  const release = () => {
    for (const h of held.splice(0)) h.res.end('done');
  };
  const get = (path: string, client: string) => send(`${gw.url}${path}`, { headers: { 'x-client': client } });

  test('at most `amount` in flight per key, across the routes listing it; one more gets 429; an ended request gives its place back', async () => {
    const a = get('/f/1', 'k');
    const b = get('/g/1', 'k');
    await until(2);
    const refused = await get('/f/2', 'k');
    expect(refused.status).toBe(429);
    expect(refused.body).toBe('too many requests in flight');
    expect(refused.headers['content-type']).toBe('text/plain; charset=utf-8');
    // Another key is not affected.
    const other = get('/f/3', 'other');
    await until(3);
    release();
    expect((await a).status).toBe(200);
    expect((await b).status).toBe(200);
    expect((await other).status).toBe(200);
    // Both places are free again.
    const c = get('/f/4', 'k');
    const d = get('/f/5', 'k');
    await until(2);
    release();
    expect([(await c).status, (await d).status]).toEqual([200, 200]);
  });

  test('a client that leaves mid-request gives its place back when its exchange ends', async () => {
    const logged = gw.accessLogs().length;
    const req = httpRequest(`${gw.url}/f/leaving`, { headers: { 'x-client': 'leaver' }, agent: false });
    req.on('error', () => {});
    req.end();
    const keep = get('/f/stays', 'leaver');
    await arrivedAt('/f/leaving');
    await arrivedAt('/f/stays');
    expect((await get('/f/3', 'leaver')).status).toBe(429);
    const leftUpstream = new Promise<void>((r) => held.find((h) => h.url === '/f/leaving')!.res.once('close', () => r()));
    req.destroy();
    // The gateway gives up on the upstream request of a client that left, and logs the exchange.
    await leftUpstream;
    await gw.waitForAccessLogs(logged + 2);
    const next = get('/f/again', 'leaver');
    await arrivedAt('/f/again');
    release();
    expect((await next).status).toBe(200);
    expect((await keep).status).toBe(200);
  });
});

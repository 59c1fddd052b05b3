// The admin API (SPEC §6) and reloads (SPEC §2, §3 tests:): status, reload, explain, the token
// rule, routes-file tests gating a reload and --check, file watching, and reloads under load.
import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { routesDir, runCli, send, startGateway, startUpstream } from '../helpers.ts';
import type { TestGateway, Upstream } from '../helpers.ts';

let a: Upstream;
let b: Upstream;
let gw: TestGateway;
const routes = (extra = ''): string => `
pools:
  shop:
    targets: ["${a.url}", "${b.url}"]
    sticky: { cookie: pin }
  solo: { targets: ["${a.url}"], balance: least-connections }
routes:
  - name: item
    match: { host: shop.example.com, path: /api/items/:id, headers: { x-client: mobile } }
    pool: shop
    rewritePath: /v2/items/:id
  - { name: api, match: { host: shop.example.com, path: /api/* }, pool: shop, stripPrefix: /api }
  - { name: solo, match: { path: /solo }, pool: solo }
  - { name: old, match: { path: /old/:slug }, redirect: { to: "/new/:slug", status: 301 } }
${extra}
tests:
  - { request: "GET http://shop.example.com/api/items/7", headers: { x-client: mobile }, expect: { route: item, pool: shop, path: /v2/items/7 } }
  - { request: "GET http://shop.example.com/api/cart", expect: { route: api, path: /cart } }
  - { request: "GET http://any.test/old/intro", expect: { status: 301, location: /new/intro } }
  - { request: "GET http://any.test/nothing", expect: { status: 404 } }
`;

beforeAll(async () => {
  a = await startUpstream();
  b = await startUpstream();
  gw = await startGateway(routes(), undefined, { ...process.env, WAYGATE_SECRET: 'admin-test' });
});
afterAll(async () => {
  await gw.close();
  await a.close();
  await b.close();
});

const json = async (path: string, init?: Parameters<typeof send>[1]) => {
  const r = await send(`${gw.admin}${path}`, init);
  return { status: r.status, body: r.headers['content-type']?.includes('json') ? JSON.parse(r.body) : r.body };
};

describe('GET /status', () => {
  test('lists every pool and target with health, in-flight, counts and last check, plus routes and config version', async () => {
    await send(`${gw.url}/solo`);
    const { status, body } = await json('/status');
    expect(status).toBe(200);
    expect(body.ready).toBe(true);
    expect(body.routes).toBe(4);
    expect(body.config.version).toBeGreaterThanOrEqual(1);
    const solo = body.pools.find((p: { name: string }) => p.name === 'solo');
    expect(solo).toMatchObject({ balance: 'least-connections', available: 1 });
    expect(solo.targets[0]).toMatchObject({ url: a.url, healthy: true, inFlight: 0, requests: 1, failures: 0, lastCheck: null });
    expect(body.pools.find((p: { name: string }) => p.name === 'shop').sticky).toBe('pin');
  });
});

describe('GET /explain', () => {
  test('names the route, the candidates rejected and why, the rewrite, the pool and the target that would be picked', async () => {
    const { status, body } = await json(`/explain?url=${encodeURIComponent('http://shop.example.com/api/items/7?x=1')}&method=GET&header=x-client:mobile`);
    expect(status).toBe(200);
    expect(body).toMatchObject({ route: 'item', params: { id: '7' }, action: 'forward', upstreamPath: '/v2/items/7?x=1' });
    expect(body.rejected).toContainEqual({ name: 'api', reason: 'lost to "item"' });
    expect(body.pools[0]).toMatchObject({ pool: 'shop', why: 'round-robin' });
    expect([a.url, b.url]).toContain(body.pools[0].target);
  });

  test('shows the condition that failed, and does not move round-robin state', async () => {
    const first = (await json(`/explain?url=${encodeURIComponent('http://shop.example.com/api/items/7')}`)).body;
    expect(first.route).toBe('api');
    expect(first.rejected).toContainEqual({ name: 'item', reason: 'header x-client absent' });
    const again = (await json(`/explain?url=${encodeURIComponent('http://shop.example.com/api/items/7')}`)).body;
    expect(again.pools[0].target).toBe(first.pools[0].target);
  });

  test('a sticky cookie and unhealthy targets are part of the answer', async () => {
    const pool = gw.gateway.pools.get('shop')!;
    const r = await send(`${gw.url}/api/x`, { headers: { host: 'shop.example.com' } });
    const cookie = (r.headers['set-cookie'] as string[])[0].split(';')[0];
    const pinned = (await json(`/explain?url=${encodeURIComponent('http://shop.example.com/api/x')}&cookie=${encodeURIComponent(cookie)}`)).body;
    expect(pinned.pools[0].why).toBe('sticky cookie "pin" pins it');
    const other = pool.targets.find((t) => t.url !== pinned.pools[0].target)!;
    other.setHealthy(false);
    try {
      const skipped = (await json(`/explain?url=${encodeURIComponent('http://shop.example.com/api/x')}`)).body;
      expect(skipped.pools[0].skipped).toEqual([{ url: other.url, reason: 'failing health checks' }]);
    } finally {
      other.setHealthy(true);
    }
  });

  test('no route and bad input', async () => {
    expect((await json(`/explain?url=${encodeURIComponent('http://x.test/nowhere')}`)).body.result).toBe('404 no route');
    expect((await json('/explain?url=nope')).status).toBe(400);
  });
});

describe('POST /reload and routes-file tests', () => {
  test('a valid change reloads; GET is refused', async () => {
    expect((await json('/reload')).status).toBe(405);
    const r = await json('/reload', { method: 'POST' });
    expect(r.status).toBe(200);
    expect(r.body.ok).toBe(true);
  });

  test('a change whose own tests fail is refused with the failing expectation, and the old routes keep serving', async () => {
    const broken = routes().replace('path: /v2/items/7 }', 'path: /v3/items/7 }');
    await writeFile(join(gw.routesDir, 'routes.yaml'), broken);
    const r = await json('/reload', { method: 'POST' });
    expect(r.status).toBe(422);
    expect(r.body.ok).toBe(false);
    expect(r.body.errors[0]).toMatch(/routes\.yaml:\d+:\d+ tests\[0\]: expected upstream path "\/v3\/items\/7", got "\/v2\/items\/7"/);
    expect((await send(`${gw.url}/solo`)).status).toBe(200);
    const metrics = (await send(`${gw.admin}/metrics`)).body;
    expect(metrics).toMatch(/waygate_config_reloads_total\{result="failure"\} [1-9]/);
    await writeFile(join(gw.routesDir, 'routes.yaml'), routes());
    expect((await json('/reload', { method: 'POST' })).body.ok).toBe(true);
  });

  test('--check runs the tests too and prints file:line:col for a failing one', async () => {
    const dir = await routesDir({ 'r.yaml': 'routes: [ { name: a, match: { path: /a }, respond: { body: x } } ]\ntests:\n  - { request: "GET http://h/a", expect: { route: b } }\n' });
    const r = await runCli(['--check', '--routes', dir]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`${dir}/r.yaml:3:5 tests[0]: expected route "b", got "a"`);
  });

  test('a changed routes file is picked up without a signal', async () => {
    const from = gw.logs.length;
    await writeFile(join(gw.routesDir, 'routes.yaml'), routes('  - { name: fresh, match: { path: /fresh }, respond: { body: fresh } }'));
    await gw.waitForLog((l) => l.msg === 'routes reloaded', from);
    expect((await send(`${gw.url}/fresh`)).body).toBe('fresh');
  });
});

describe('reloads under load', () => {
  test('ten reloads during continuous traffic lose no request', async () => {
    let failures = 0;
    let done = 0;
    let stop = false;
    const progress: (() => void)[] = [];
    const worker = async (): Promise<void> => {
      while (!stop && done < 5000) {
        const r = await new Promise<number>((resolve) => {
          request(`${gw.url}/solo`, { agent: false }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode!));
          }).on('error', () => resolve(0)).end();
        });
        done++;
        if (r !== 200) failures++;
        for (const p of progress.splice(0)) p();
      }
    };
    const load = Promise.all(Array.from({ length: 8 }, worker));
    // One reload per 100 requests, so every reload happens with requests in flight.
    for (let i = 0; i < 10; i++) {
      expect((await gw.gateway.reload()).ok).toBe(true);
      while (done < (i + 1) * 100) await new Promise<void>((r) => progress.push(r));
    }
    stop = true;
    await load;
    if (process.env.WAYGATE_RELOAD_REPORT) console.log(`reload under load: ${done} requests, 10 reloads, ${failures} failed`);
    expect(done).toBeGreaterThanOrEqual(1000);
    expect(failures).toBe(0);
  });
});

describe('admin beyond loopback', () => {
  test('refuses to start without WAYGATE_ADMIN_TOKEN', async () => {
    await expect(startGateway('routes: []\n', (c) => { c.admin.address = { host: '0.0.0.0', port: 0 }; })).rejects.toThrow('set WAYGATE_ADMIN_TOKEN');
  });

  test('with a token: probes are open, everything else needs the bearer token', async () => {
    const g = await startGateway('routes: []\n', (c) => { c.admin.address = { host: '0.0.0.0', port: 0 }; }, { ...process.env, WAYGATE_ADMIN_TOKEN: 's3cret' });
    try {
      const base = `http://127.0.0.1:${g.gateway.addresses.admin!.split(':').pop()}`;
      expect((await send(`${base}/healthz`)).status).toBe(200);
      expect((await send(`${base}/readyz`)).status).toBe(200);
      expect((await send(`${base}/status`)).status).toBe(401);
      expect((await send(`${base}/status`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
      expect((await send(`${base}/status`, { headers: { authorization: 'Bearer s3cret' } })).status).toBe(200);
    } finally {
      await g.close();
    }
  });
});

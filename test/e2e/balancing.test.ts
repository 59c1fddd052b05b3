// Balancing policies and sticky sessions through real sockets.
import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { send, startGateway, startUpstream } from '../helpers.ts';
import type { TestGateway, Upstream } from '../helpers.ts';

/** An upstream that answers with its tag. */
const tagged = (tag: string): Promise<Upstream> =>
  startUpstream((_req, res) => {
    res.writeHead(200, { 'x-tag': tag, 'content-length': String(tag.length) });
    res.end(tag);
  });

describe('least-connections', () => {
  let held: Upstream;
  let fast: Upstream;
  let gw: TestGateway;
  const parked: (() => void)[] = [];
  let arrivals = 0;
  const arrived: (() => void)[] = [];

  beforeAll(async () => {
    // The "held" target keeps every request until the test releases it.
    held = await startUpstream((_req, res) => {
      parked.push(() => res.end('held'));
      arrivals++;
      for (const w of arrived.splice(0)) w();
    });
    fast = await tagged('fast');
    gw = await startGateway(`
pools:
  lc: { targets: ["${held.url}", "${fast.url}"], balance: least-connections }
routes: [ { name: lc, pool: lc } ]
`);
  });
  afterAll(async () => {
    for (const release of parked.splice(0)) release();
    await gw.close();
    await Promise.all([held.close(), fast.close()]);
  });

  test('a target holding requests gets no new ones while another has fewer in flight', async () => {
    const pending: Promise<unknown>[] = [];
    for (let i = 0; i < 20; i++) {
      const before = arrivals;
      const reply = send(`${gw.url}/r${i}`);
      pending.push(reply);
      // Wait until this request is either parked on the held target or answered by the fast one.
      await Promise.race([reply, new Promise<void>((r) => arrived.push(r))]);
      if (arrivals === before) await reply;
    }
    // Only a tie (both at zero) can send a request to the held target: at most once.
    expect(arrivals).toBeLessThanOrEqual(1);
    expect(fast.seen.length).toBeGreaterThanOrEqual(19);
    for (const release of parked.splice(0)) release();
    await Promise.all(pending);
    const pool = gw.gateway.pools.get('lc')!;
    expect(pool.targets.map((t) => t.inFlight)).toEqual([0, 0]);
  });
});

describe('ip-hash', () => {
  let ups: Upstream[];
  let gw: TestGateway;
  const yaml = (urls: string[]): string => `
pools:
  h: { targets: [${urls.map((u) => `"${u}"`).join(', ')}], balance: ip-hash }
routes: [ { name: h, pool: h } ]
`;

  beforeAll(async () => {
    ups = await Promise.all(['a', 'b', 'c'].map(tagged));
    // Loopback is a trusted proxy here, so the balancing address is the one in x-forwarded-for.
    gw = await startGateway(yaml(ups.map((u) => u.url)), (c) => {
      c.trustedProxies = ['127.0.0.1/32'];
    });
  });
  afterAll(async () => {
    await gw.close();
    await Promise.all(ups.map((u) => u.close()));
  });

  const clients = Array.from({ length: 90 }, (_, i) => `198.51.100.${i + 1}`);
  const tagFor = async (ip: string): Promise<string> => (await send(`${gw.url}/`, { headers: { 'x-forwarded-for': ip } })).body;

  test('a client always reaches the same target, and clients spread over all targets', async () => {
    const first = new Map<string, string>();
    for (const ip of clients) first.set(ip, await tagFor(ip));
    for (const ip of clients.slice(0, 20)) expect(await tagFor(ip)).toBe(first.get(ip));
    const counts = new Map<string, number>();
    for (const t of first.values()) counts.set(t, (counts.get(t) ?? 0) + 1);
    expect([...counts.keys()].sort()).toEqual(['a', 'b', 'c']);
    for (const n of counts.values()) expect(n).toBeGreaterThan(10);
  });

  test('removing a target moves only the clients it had', async () => {
    const before = new Map<string, string>();
    for (const ip of clients) before.set(ip, await tagFor(ip));
    await writeFile(join(gw.routesDir, 'routes.yaml'), yaml([ups[0].url, ups[2].url]));
    expect((await gw.gateway.reload()).ok).toBe(true);
    for (const ip of clients) {
      const now = await tagFor(ip);
      if (before.get(ip) !== 'b') expect(now, ip).toBe(before.get(ip));
      else expect(now).not.toBe('b');
    }
  });
});

/** One request with a cookie jar of one cookie; returns the tag and the Set-Cookie, if any. */
async function visit(url: string, cookie?: string): Promise<{ tag: string; setCookie: string | undefined }> {
  const r = await send(url, cookie === undefined ? {} : { headers: { cookie } });
  const sc = r.headers['set-cookie'];
  return { tag: r.body, setCookie: sc === undefined ? undefined : sc[0] };
}

describe('sticky sessions', () => {
  let ups: Upstream[];
  let gw: TestGateway;
  let replica: TestGateway;
  const env = { ...process.env, WAYGATE_SECRET: 'shared-secret-for-tests' };
  let routes: string;

  beforeAll(async () => {
    ups = await Promise.all(['a', 'b', 'c'].map(tagged));
    routes = `
pools:
  s:
    targets: [${ups.map((u) => `"${u.url}"`).join(', ')}]
    sticky: { cookie: affinity, maxAge: 1h }
  f:
    targets: [${ups.map((u) => `"${u.url}"`).join(', ')}]
    sticky: { cookie: pin, onDown: fail }
routes:
  - { name: s, match: { path: /s/* }, pool: s }
  - { name: f, match: { path: /f/* }, pool: f }
`;
    gw = await startGateway(routes, undefined, env);
    replica = await startGateway(routes, undefined, env);
  });
  afterAll(async () => {
    await gw.close();
    await replica.close();
    await Promise.all(ups.map((u) => u.close()));
  });

  test('the first response pins the client with an opaque, HttpOnly, SameSite=Lax cookie', async () => {
    const { setCookie } = await visit(`${gw.url}/s/1`);
    expect(setCookie).toMatch(/^affinity=[A-Za-z0-9_-]{22}; Path=\/; HttpOnly; SameSite=Lax; Max-Age=3600$/);
    for (const u of ups) expect(setCookie).not.toContain(String(u.port));
    expect(setCookie).not.toContain('Secure'); // plain HTTP
  });

  test('a pinned client keeps reaching its target and is not sent the cookie again', async () => {
    const first = await visit(`${gw.url}/s/1`);
    const cookie = first.setCookie!.split(';')[0];
    for (let i = 0; i < 12; i++) {
      const r = await visit(`${gw.url}/s/${i}`, cookie);
      expect(r.tag).toBe(first.tag);
      expect(r.setCookie).toBeUndefined();
    }
  });

  test('a second replica with the same secret honours the same pin', async () => {
    const first = await visit(`${gw.url}/s/x`);
    const cookie = first.setCookie!.split(';')[0];
    for (let i = 0; i < 6; i++) expect((await visit(`${replica.url}/s/${i}`, cookie)).tag).toBe(first.tag);
    // The replica would mint the same value for that target.
    const mine = new Map<string, string>();
    for (let i = 0; i < 6; i++) {
      const r = await visit(`${replica.url}/s/new${i}`);
      mine.set(r.tag, r.setCookie!.split(';')[0]);
    }
    expect(mine.get(first.tag)).toBe(cookie);
  });

  test('a forged value is ignored and replaced', async () => {
    const r = await visit(`${gw.url}/s/1`, 'affinity=http://127.0.0.1:1');
    expect(['a', 'b', 'c']).toContain(r.tag);
    expect(r.setCookie).toMatch(/^affinity=[A-Za-z0-9_-]{22};/);
  });

  test('onDown: rebalance sends a client whose target is down elsewhere and re-pins it', async () => {
    const first = await visit(`${gw.url}/s/1`);
    const cookie = first.setCookie!.split(';')[0];
    const target = gw.gateway.pools.get('s')!.targets.find((t) => t.url === ups[['a', 'b', 'c'].indexOf(first.tag)].url)!;
    target.setHealthy(false);
    try {
      const r = await visit(`${gw.url}/s/2`, cookie);
      expect(r.tag).not.toBe(first.tag);
      expect(r.setCookie).toBeDefined();
      expect(r.setCookie!.split(';')[0]).not.toBe(cookie);
    } finally {
      target.setHealthy(true);
    }
  });

  test('onDown: fail answers 503 while the pinned target is down', async () => {
    const first = await visit(`${gw.url}/f/1`);
    const cookie = first.setCookie!.split(';')[0];
    const target = gw.gateway.pools.get('f')!.targets.find((t) => t.url === ups[['a', 'b', 'c'].indexOf(first.tag)].url)!;
    target.setHealthy(false);
    try {
      const r = await send(`${gw.url}/f/2`, { headers: { cookie } });
      expect(r.status).toBe(503);
      expect(r.headers['retry-after']).toBeDefined();
    } finally {
      target.setHealthy(true);
    }
    expect((await visit(`${gw.url}/f/3`, cookie)).tag).toBe(first.tag);
  });
});

describe('in-flight accounting', () => {
  test('counts return to zero after many requests aborted mid-response', async () => {
    const up = await startUpstream((_req, res) => {
      res.writeHead(200);
      res.write('partial');
    });
    const gw = await startGateway(`pools: { p: { targets: ["${up.url}"], balance: least-connections } }\nroutes: [ { name: p, pool: p } ]\n`);
    try {
      await Promise.all(Array.from({ length: 25 }, () => new Promise<void>((resolve) => {
        const req = request(`${gw.url}/`, { agent: false }, (res) => res.once('data', () => { req.destroy(); resolve(); }));
        req.end();
      })));
      await gw.waitForAccessLogs(25);
      expect(gw.gateway.pools.get('p')!.targets[0].inFlight).toBe(0);
    } finally {
      await gw.close();
      await up.close();
    }
  });
});

import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { closedPort, rawExchange, send, startGateway, startUpstream } from '../helpers.ts';
import type { TestGateway, Upstream } from '../helpers.ts';

let ok: Upstream;
let silent: Upstream;
let resetter: Upstream;
let truncator: Upstream;
let deadPort: number;
let gw: TestGateway;

beforeAll(async () => {
  ok = await startUpstream();
  silent = await startUpstream(() => {}); // never answers
  resetter = await startUpstream((req) => req.socket.destroy());
  truncator = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-length': '100' });
    res.write('0123456789');
    setImmediate(() => res.socket!.destroy());
  });
  deadPort = await closedPort();
  gw = await startGateway(`
pools:
  ok: { targets: ["${ok.url}"] }
  dead: { targets: ["http://127.0.0.1:${deadPort}"], retries: 0 }
  lonely: { targets: ["http://127.0.0.1:${deadPort}"], retries: 2 }
  silent: { targets: ["${silent.url}"], timeouts: { response: 300ms } }
  resetter: { targets: ["${resetter.url}"], retries: 0 }
  truncator: { targets: ["${truncator.url}"] }
  flaky:
    targets: ["http://127.0.0.1:${deadPort}", "${ok.url}"]
    retries: 1
  down: { targets: ["${ok.url}"] }
routes:
  - { name: ok, match: { host: ok.test }, pool: ok }
  - { name: dead, match: { path: /dead }, pool: dead }
  - { name: lonely, match: { path: /lonely }, pool: lonely }
  - { name: silent, match: { path: /silent }, pool: silent }
  - { name: resetter, match: { path: /reset }, pool: resetter }
  - { name: truncator, match: { path: /truncated }, pool: truncator }
  - { name: flaky, match: { path: /flaky/* }, pool: flaky }
  - { name: down, match: { path: /down }, pool: down }
`);
});
afterAll(async () => {
  await gw.close();
  await Promise.all([ok, silent, resetter, truncator].map((u) => u.close()));
});

describe('error statuses', () => {
  test('no matching route answers 404 "no route"', async () => {
    const r = await send(`${gw.url}/nowhere`);
    expect(r.status).toBe(404);
    expect(r.body).toBe('no route');
    expect(r.headers['x-request-id']).toBeDefined();
  });

  test('a refused connection answers 502', async () => {
    const r = await send(`${gw.url}/dead`);
    expect(r.status).toBe(502);
  });

  test('an upstream that resets the connection before responding answers 502', async () => {
    const r = await send(`${gw.url}/reset`);
    expect(r.status).toBe(502);
  });

  test('an upstream that sends no response headers within timeouts.response answers 504', async () => {
    const r = await send(`${gw.url}/silent`);
    expect(r.status).toBe(504);
    expect(r.body).toBe('gateway timeout');
  });

  test('a pool with no available target answers 503 "no healthy upstream" with retry-after', async () => {
    const pool = gw.gateway.pools.get('down')!;
    for (const t of pool.targets) t.setHealthy(false);
    try {
      const r = await send(`${gw.url}/down`);
      expect(r.status).toBe(503);
      expect(r.body).toBe('no healthy upstream');
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    } finally {
      for (const t of pool.targets) t.setHealthy(true);
    }
    expect((await send(`${gw.url}/down`)).status).toBe(200);
  });

  test('a truncated upstream body ends the client response as an error, not a clean short body', async () => {
    const outcome = await new Promise<string>((resolve) => {
      const req = request(`${gw.url}/truncated`, { agent: false }, (res) => {
        let got = 0;
        res.on('data', (c: Buffer) => (got += c.length));
        res.on('end', () => resolve(`clean end after ${got} bytes`));
        res.on('error', () => resolve('error'));
        res.on('aborted', () => resolve('error'));
      });
      req.on('error', () => resolve('error'));
      req.end();
    });
    expect(outcome).toBe('error');
  });

  test('a path that climbs above the root answers 400, closes the connection and forwards nothing', async () => {
    const before = ok.seen.length;
    const reply = await rawExchange(gw.port, 'GET /../etc/passwd HTTP/1.1\r\nHost: ok.test\r\n\r\nGET / HTTP/1.1\r\nHost: ok.test\r\n\r\n');
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    expect(reply.match(/HTTP\/1\.1/g)).toHaveLength(1); // the pipelined request was not served
    expect(reply.toLowerCase()).toContain('connection: close');
    expect(ok.seen.length).toBe(before);
  });

  test('a malformed percent-encoding answers 400', async () => {
    const reply = await rawExchange(gw.port, 'GET /a%zz HTTP/1.1\r\nHost: ok.test\r\n\r\n');
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
  });

  test('an invalid Host header answers 400', async () => {
    const reply = await rawExchange(gw.port, 'GET / HTTP/1.1\r\nHost: user@ok.test\r\n\r\n');
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
  });
});

describe('retries after a failed connect', () => {
  test('a refused connection is retried on another target, and the log counts the attempts', async () => {
    const before = gw.accessLogs().length;
    const replies = await Promise.all([1, 2, 3, 4].map((i) => send(`${gw.url}/flaky/${i}`)));
    expect(replies.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    const lines = (await gw.waitForAccessLogs(before + 4)).slice(before);
    const attempts = lines.filter((l) => l.route === 'flaky').map((l) => l.attempts);
    // Round-robin sends every other first attempt to the dead target; those take two attempts.
    expect(attempts.filter((a) => a === 2).length).toBeGreaterThan(0);
    expect(lines.every((l) => l.target === ok.url)).toBe(true);
  });

  // Regression: with no other target to retry on, the answer used to be 503 "no healthy upstream".
  test('a refused connection with no other target to retry on answers 502, after one attempt', async () => {
    const before = gw.accessLogs().length;
    const r = await send(`${gw.url}/lonely`);
    expect(r.status).toBe(502);
    const lines = (await gw.waitForAccessLogs(before + 1)).slice(before);
    expect(lines[0]).toMatchObject({ status: 502, attempts: 1, route: 'lonely' });
  });

  test('with retries: 0 a refused connection is not retried', async () => {
    const before = gw.accessLogs().length;
    await send(`${gw.url}/dead`);
    const lines = (await gw.waitForAccessLogs(before + 1)).slice(before);
    expect(lines[0]).toMatchObject({ status: 502, attempts: 1, route: 'dead' });
  });
});

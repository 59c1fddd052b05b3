// Active and passive health through real sockets: eviction and readmission, passive ejection
// (never of the last available target), all-down 503, and what the logs and metrics show.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { closedPort, send, startGateway, startUpstream } from '../helpers.ts';
import type { TestGateway, Upstream } from '../helpers.ts';

/** An upstream whose /health answers 200 or 503 as `state.healthy` says; other paths answer its tag. */
async function switchable(tag: string): Promise<Upstream & { state: { healthy: boolean } }> {
  const state = { healthy: true };
  const up = await startUpstream((req, res) => {
    if (req.url === '/health') {
      res.writeHead(state.healthy ? 200 : 503).end();
      return;
    }
    res.end(tag);
  });
  return { ...up, state };
}

const waitForLog = (gw: TestGateway, pred: (l: Record<string, unknown>) => boolean, from = 0): Promise<Record<string, unknown>> => gw.waitForLog(pred, from);

describe('active health checks', () => {
  let a: Awaited<ReturnType<typeof switchable>>;
  let b: Awaited<ReturnType<typeof switchable>>;
  let gw: TestGateway;
  const INTERVAL = 100;

  beforeAll(async () => {
    a = await switchable('a');
    b = await switchable('b');
    gw = await startGateway(`
pools:
  p:
    targets: ["${a.url}", "${b.url}"]
    healthCheck: { path: /health, interval: ${INTERVAL}ms, timeout: 500ms, unhealthyAfter: 2, healthyAfter: 2 }
routes: [ { name: p, pool: p } ]
`);
  });
  afterAll(async () => {
    await gw.close();
    await Promise.all([a.close(), b.close()]);
  });

  test('a target failing unhealthyAfter probes is evicted, logged once and shown as 0 in metrics', async () => {
    const from = gw.logs.length;
    const started = Date.now();
    a.state.healthy = false;
    const flip = await waitForLog(gw, (l) => l.msg === 'target failed health checks', from);
    expect(flip).toMatchObject({ pool: 'p', target: a.url });
    expect(String(flip.reason)).toContain('503');
    // Two failed probes, a full interval apart (loose bound: jitter is ±10%).
    expect(Date.now() - started).toBeGreaterThanOrEqual(INTERVAL * 0.8);
    const tags = new Set<string>();
    for (let i = 0; i < 10; i++) tags.add((await send(`${gw.url}/x`)).body);
    expect([...tags]).toEqual(['b']);
    const metrics = (await send(`${gw.admin}/metrics`)).body;
    expect(metrics).toContain(`waygate_target_healthy{pool="p",target="${a.url}"} 0`);
    expect(metrics).toContain(`waygate_target_healthy{pool="p",target="${b.url}"} 1`);
    expect(gw.logs.slice(from).filter((l) => l.msg === 'target failed health checks')).toHaveLength(1);
  });

  test('it is readmitted after healthyAfter passing probes', async () => {
    const from = gw.logs.length;
    a.state.healthy = true;
    await waitForLog(gw, (l) => l.msg === 'target passed health checks' && l.target === a.url, from);
    const tags = new Set<string>();
    for (let i = 0; i < 10; i++) tags.add((await send(`${gw.url}/x`)).body);
    expect([...tags].sort()).toEqual(['a', 'b']);
    expect((await send(`${gw.admin}/metrics`)).body).toContain(`waygate_target_healthy{pool="p",target="${a.url}"} 1`);
  });

  test('with every target failing, the pool answers 503 no healthy upstream with retry-after', async () => {
    const from = gw.logs.length;
    a.state.healthy = false;
    b.state.healthy = false;
    await waitForLog(gw, (l) => l.msg === 'target failed health checks' && l.target === a.url, from);
    await waitForLog(gw, (l) => l.msg === 'target failed health checks' && l.target === b.url, from);
    const r = await send(`${gw.url}/x`);
    expect(r.status).toBe(503);
    expect(r.body).toBe('no healthy upstream');
    expect(r.headers['retry-after']).toBe('1'); // the probe interval, rounded up to a second
    a.state.healthy = true;
    b.state.healthy = true;
    await waitForLog(gw, (l) => l.msg === 'target passed health checks' && l.target === a.url, from);
  });
});

describe('passive health', () => {
  let ok: Upstream;
  let deadPort: number;
  let gw: TestGateway;

  beforeAll(async () => {
    ok = await startUpstream((_req, res) => res.end('ok'));
    deadPort = await closedPort();
    gw = await startGateway(`
pools:
  p: { targets: ["http://127.0.0.1:${deadPort}", "${ok.url}"], retries: 1 }
  alone: { targets: ["http://127.0.0.1:${deadPort}"], retries: 0 }
routes:
  - { name: p, match: { path: /p/* }, pool: p }
  - { name: alone, match: { path: /alone/* }, pool: alone }
`);
  });
  afterAll(async () => {
    await gw.close();
    await ok.close();
  });

  test('five consecutive connect failures eject a target: later requests do not try it', async () => {
    const dead = gw.gateway.pools.get('p')!.targets[0];
    for (let i = 0; dead.available && i < 20; i++) expect((await send(`${gw.url}/p/${i}`)).status).toBe(200);
    expect(dead.available).toBe(false);
    expect(dead.ejected).toBe(true);
    const flip = gw.logs.find((l) => l.msg === 'target ejected')!;
    expect(flip).toMatchObject({ pool: 'p', target: `http://127.0.0.1:${deadPort}` });
    expect(String(flip.reason)).toContain('5 consecutive failures');
    const before = gw.accessLogs().length;
    for (let i = 0; i < 6; i++) await send(`${gw.url}/p/after${i}`);
    const lines = (await gw.waitForAccessLogs(before + 6)).slice(before);
    expect(lines.every((l) => l.attempts === 1 && l.target === ok.url)).toBe(true);
    expect((await send(`${gw.admin}/metrics`)).body).toContain(`waygate_target_healthy{pool="p",target="http://127.0.0.1:${deadPort}"} 0`);
  });

  test('the last available target of a pool is never ejected by passive signals alone', async () => {
    for (let i = 0; i < 8; i++) expect((await send(`${gw.url}/alone/${i}`)).status).toBe(502);
    expect(gw.gateway.pools.get('alone')!.targets[0].available).toBe(true);
  });
});

describe('metrics', () => {
  test('exposes the SPEC metric names with their labels', async () => {
    const up = await startUpstream((_req, res) => res.end('ok'));
    const gw = await startGateway(`pools: { web: { targets: ["${up.url}"] } }\nroutes: [ { name: home, pool: web } ]\n`);
    try {
      await send(`${gw.url}/`);
      // Node's parser only passes known methods; PROPFIND is one waygate labels OTHER.
      await send(`${gw.url}/`, { method: 'PROPFIND' });
      await gw.gateway.reload();
      const m = (await send(`${gw.admin}/metrics`)).body;
      expect(m).toContain('waygate_requests_total{route="home",pool="web",method="GET",code="200"} 1');
      expect(m).toContain('waygate_requests_total{route="home",pool="web",method="OTHER",code="200"} 1');
      expect(m).toMatch(/waygate_request_duration_seconds_bucket\{le="[^"]+",route="home",pool="web"\}/);
      expect(m).toContain(`waygate_upstream_requests_total{pool="web",target="${up.url}",outcome="success"} 2`);
      expect(m).toContain(`waygate_target_healthy{pool="web",target="${up.url}"} 1`);
      expect(m).toContain(`waygate_target_in_flight{pool="web",target="${up.url}"} 0`);
      expect(m).toMatch(/waygate_open_connections\{listener="http"\} \d+/);
      expect(m).toContain('waygate_config_reloads_total{result="success"} 1');
      expect(m).toContain('waygate_config_reloads_total{result="failure"} 0');
      expect(m).toContain('process_cpu_user_seconds_total');
    } finally {
      await gw.close();
      await up.close();
    }
  });
});

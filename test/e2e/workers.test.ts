// --workers N (SPEC §1): a primary and N worker processes, driven as users drive them — real
// processes, signals and the admin API. One cluster serves the whole describe, in order.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { routesDir, runCli, send, startCli, startUpstream } from '../helpers.ts';
import type { CliProcess, Upstream } from '../helpers.ts';

type Line = Record<string, unknown>;
type Status = { workers: { id: number; pid: number; state: string; status: unknown }[] };

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function getHttps(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { rejectUnauthorized: false, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('waygate --workers 2', () => {
  let up: Upstream;
  let dir: string;
  let certs: string;
  let cli: CliProcess;
  let admin: string;
  let http: string;

  /** Resolves once `n` stdout lines satisfy `pred`; returns them. */
  async function linesMatching(pred: (l: Line) => boolean, n: number): Promise<Line[]> {
    await cli.waitForLine(() => cli.lines.filter(pred).length >= n);
    return cli.lines.filter(pred);
  }
  const accessFor = (route: string) => (l: Line): boolean => l.msg === 'request' && l.route === route;
  const status = async (): Promise<Status> => JSON.parse((await send(`${admin}/status`)).body) as Status;

  beforeAll(async () => {
    up = await startUpstream();
    dir = await routesDir({
      'app.yaml': `pools: { p: { targets: ["${up.url}"] } }
routes:
  - { name: app, match: { path: /app/* }, pool: p }
  - { name: m, match: { path: /m/* }, pool: p }
`,
    });
    certs = await mkdtemp(join(tmpdir(), 'waygate-certs-'));
    cli = await startCli(['--routes', dir, '--certs', certs, '--http', '127.0.0.1:0', '--https', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '2']);
    admin = `http://${cli.addresses.admin}`;
    http = `http://${cli.addresses.http}`;
  });

  afterAll(async () => {
    if (cli.proc.exitCode === null && cli.proc.signalCode === null) await cli.stop('SIGKILL');
    await up.close();
    await rm(dir, { recursive: true, force: true });
    await rm(certs, { recursive: true, force: true });
  });

  test('prints one "listening" line once both workers listen; both share the bound ports and serve', async () => {
    expect(cli.lines.filter((l) => l.msg === 'listening')).toHaveLength(1);
    expect(cli.lines.filter((l) => l.msg === 'worker listening')).toHaveLength(2);
    expect(cli.addresses.http).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(cli.addresses.https).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(cli.addresses.https).not.toBe(cli.addresses.http);
    // Each worker reported the primary-bound addresses, not ports of its own.
    for (const l of cli.lines.filter((x) => x.msg === 'worker listening')) expect([l.http, l.https]).toEqual([cli.addresses.http, cli.addresses.https]);
    expect((await send(`${admin}/readyz`)).status).toBe(200);

    const s = await status();
    expect(s.workers).toHaveLength(2);
    expect(new Set(s.workers.map((w) => w.pid)).size).toBe(2);
    expect(s.workers.every((w) => w.state === 'ready' && typeof w.status === 'object' && w.status !== null)).toBe(true);

    for (let i = 0; i < 6; i++) expect((await send(`${http}/app/${i}`)).status).toBe(200);
    for (let i = 0; i < 2; i++) expect(await getHttps(`https://${cli.addresses.https}/app/tls${i}`)).toBe(200);
    const served = await linesMatching(accessFor('app'), 8);
    // Fresh connections are dealt round-robin: both workers answered.
    expect(new Set(served.map((l) => l.pid))).toEqual(new Set(s.workers.map((w) => w.pid)));
  });

  test('/metrics sums waygate_requests_total over the workers', async () => {
    for (let i = 0; i < 10; i++) expect((await send(`${http}/m/${i}`)).status).toBe(200);
    const served = await linesMatching(accessFor('m'), 10);
    expect(new Set(served.map((l) => l.pid)).size).toBe(2);
    const text = (await send(`${admin}/metrics`)).body;
    expect(text).toContain(`waygate_requests_total{route="m",pool="p",method="GET",code="200"} 10\n`);
    expect(text).toContain(`waygate_upstream_requests_total{pool="p",target="${up.url}",outcome="success"} 18\n`);
    // A gauge of health is not summed: healthy in every worker is 1, not 2.
    expect(text).toContain(`waygate_target_healthy{pool="p",target="${up.url}"} 1\n`);
  });

  test('SIGHUP reloads every worker: a route added to the file is served by both', async () => {
    await writeFile(join(dir, 'added.yaml'), 'routes:\n  - { name: added, match: { path: /added }, respond: { status: 200, body: "new" } }\n');
    const before = cli.lines.length;
    cli.proc.kill('SIGHUP');
    await cli.waitForLine((l) => l.msg === 'workers reloaded' && cli.lines.indexOf(l) >= before);
    const s = await status();
    for (let i = 0; i < 6; i++) {
      const r = await send(`${http}/added`);
      expect([r.status, r.body]).toEqual([200, 'new']);
    }
    const served = await linesMatching(accessFor('added'), 6);
    expect(new Set(served.map((l) => l.pid))).toEqual(new Set(s.workers.map((w) => w.pid)));
    const reload = await send(`${admin}/reload`, { method: 'POST' });
    expect(reload.status).toBe(200);
    const body = JSON.parse(reload.body) as { ok: boolean; workers: { ok: boolean }[] };
    expect(body.ok).toBe(true);
    expect(body.workers).toHaveLength(2);
  });

  test('a killed worker is replaced, with the current routes, and requests keep succeeding', async () => {
    const [victim, survivor] = (await status()).workers;
    // Scraped before the kill: both workers served route m.
    const mCount = `waygate_requests_total{route="m",pool="p",method="GET",code="200"} 10\n`;
    expect((await send(`${admin}/metrics`)).body).toContain(mCount);
    process.kill(victim.pid, 'SIGKILL');
    const died = await cli.waitForLine((l) => l.msg === 'worker died; replacing it' && l.pid === victim.pid);
    expect(died.signal).toBe('SIGKILL');
    // The survivor serves alone meanwhile.
    for (let i = 0; i < 3; i++) expect((await send(`${http}/app/alone${i}`)).status).toBe(200);
    const replaced = await cli.waitForLine((l) => l.msg === 'worker listening' && typeof l.worker === 'number' && l.worker > 2);
    const s = await status();
    const pids = s.workers.map((w) => w.pid);
    expect(pids).toContain(survivor.pid);
    expect(pids).toContain(replaced.pid);
    expect(pids).not.toContain(victim.pid);
    expect(alive(victim.pid)).toBe(false);
    expect((await send(`${admin}/readyz`)).status).toBe(200);
    // The dead worker's counts stay in the sums (as of the last scrape): a counter never goes down.
    expect((await send(`${admin}/metrics`)).body).toContain(mCount);
    // The replacement loaded the routes directory as it is now, added.yaml included.
    const before = cli.lines.filter(accessFor('added')).length;
    for (let i = 0; i < 4; i++) expect((await send(`${http}/added`)).status).toBe(200);
    const served = (await linesMatching(accessFor('added'), before + 4)).slice(before);
    expect(served.map((l) => l.pid)).toContain(replaced.pid);
    // A second death merges with the first one's counts: the original survivor goes too.
    process.kill(survivor.pid, 'SIGKILL');
    await cli.waitForLine((l) => l.msg === 'worker died; replacing it' && l.pid === survivor.pid);
    await cli.waitForLine((l) => l.msg === 'worker listening' && typeof l.worker === 'number' && l.worker > 3);
    expect((await send(`${admin}/metrics`)).body).toContain(mCount);
  });

  test('SIGTERM drains every worker and exits 0 with no worker left', async () => {
    const pids = (await status()).workers.map((w) => w.pid);
    expect(pids).toHaveLength(2);
    expect(await cli.stop('SIGTERM')).toBe(0);
    for (const pid of pids) expect(alive(pid)).toBe(false);
    // Only the two deaths the test before caused: draining workers are not "died".
    expect(cli.lines.filter((l) => l.msg === 'worker died; replacing it')).toHaveLength(2);
  });
});

test('a bad config with --workers 2 exits 1 with the errors, before forking', async () => {
  const dir = await routesDir({ 'shop.yaml': 'pools:\n  catalog:\n    targets: [http://127.0.0.1:3000]\nroutes:\n  - name: api\n    pool: catalgo\n' });
  try {
    const r = await runCli(['--routes', dir, '--http', '127.0.0.1:0', '--https', 'off', '--admin', 'off', '--workers', '2']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('routes[0].pool: unknown pool "catalgo"');
    expect(r.stdout).not.toContain('worker forked');
    expect(r.stdout).not.toContain('listening');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

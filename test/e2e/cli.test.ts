// The command line as users run it (SPEC §1): a child process per case.
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { describe, expect, test } from 'vitest';
import { closedPort, routesDir, runCli, send, startCli, startUpstream } from '../helpers.ts';

const SHOP = `pools:
  catalog:
    targets: [http://127.0.0.1:3000]
routes:
  - name: catalog-api
    match: { path: /api/* }
    pool: catalgo
`;

describe('waygate --check', () => {
  test("prints ok for the repository's own routes/ and exits 0", async () => {
    const r = await runCli(['--check']);
    expect(r.stdout.trim()).toBe('ok');
    expect(r.code).toBe(0);
  });

  test('accepts the demo routes', async () => {
    const r = await runCli(['--check', '--routes', 'examples/demo/routes']);
    expect(r.stdout.trim()).toBe('ok');
    expect(r.code).toBe(0);
  });

  test('prints file:line:col, the key path and a suggestion for a misspelt pool, and exits 1', async () => {
    const dir = await routesDir({ 'shop.yaml': SHOP });
    const r = await runCli(['--check', '--routes', dir]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`${dir}/shop.yaml:7:11 routes[0].pool: unknown pool "catalgo" (did you mean "catalog"?)`);
  });
});

describe('bin/waygate.js', () => {
  const envOf = (pid: number, name: string): string | undefined =>
    readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').find((e) => e.startsWith(`${name}=`))?.slice(name.length + 1);
  const nodeOptions = (pid: number): string | undefined => envOf(pid, 'NODE_OPTIONS');

  test('replaces itself (same pid) with 4 MB young-generation semi-spaces and two malloc arenas, and serves', async () => {
    const up = await startUpstream();
    const dir = await routesDir({ 'r.yaml': `pools: { p: { targets: ["${up.url}"] } }\nroutes: [ { name: r, pool: p } ]\n` });
    const cli = await startCli(['--routes', dir, '--http', '127.0.0.1:0', '--https', 'off', '--admin', 'off'], { NODE_OPTIONS: '', MALLOC_ARENA_MAX: undefined }, undefined, 'bin/waygate.js');
    try {
      expect(nodeOptions(cli.proc.pid!)).toBe('--max-semi-space-size=4');
      expect(envOf(cli.proc.pid!, 'MALLOC_ARENA_MAX')).toBe('2');
      expect((await send(`http://${cli.addresses.http}/x`)).status).toBe(200);
    } finally {
      expect(await cli.stop('SIGTERM')).toBe(0);
      await up.close();
    }
  });

  test('keeps a semi-space size the user gave in NODE_OPTIONS (and still sets the arenas)', async () => {
    const dir = await routesDir({ 'r.yaml': 'routes: [ { name: r, respond: { status: 204 } } ]\n' });
    const cli = await startCli(['--routes', dir, '--http', '127.0.0.1:0', '--https', 'off', '--admin', 'off'], { NODE_OPTIONS: '--max-semi-space-size=16', MALLOC_ARENA_MAX: undefined }, undefined, 'bin/waygate.js');
    try {
      expect(nodeOptions(cli.proc.pid!)).toBe('--max-semi-space-size=16');
      expect(envOf(cli.proc.pid!, 'MALLOC_ARENA_MAX')).toBe('2');
      expect((await send(`http://${cli.addresses.http}/x`)).status).toBe(204);
    } finally {
      expect(await cli.stop('SIGTERM')).toBe(0);
    }
  });

  test('keeps an arena count the user gave in MALLOC_ARENA_MAX', async () => {
    const dir = await routesDir({ 'r.yaml': 'routes: [ { name: r, respond: { status: 204 } } ]\n' });
    const cli = await startCli(['--routes', dir, '--http', '127.0.0.1:0', '--https', 'off', '--admin', 'off'], { NODE_OPTIONS: '', MALLOC_ARENA_MAX: '8' }, undefined, 'bin/waygate.js');
    try {
      expect(envOf(cli.proc.pid!, 'MALLOC_ARENA_MAX')).toBe('8');
      expect(nodeOptions(cli.proc.pid!)).toBe('--max-semi-space-size=4');
      expect((await send(`http://${cli.addresses.http}/x`)).status).toBe(204);
    } finally {
      expect(await cli.stop('SIGTERM')).toBe(0);
    }
  });
});

describe('starting', () => {
  test('a bad config exits 1 with the errors on stderr and nothing listening', async () => {
    const dir = await routesDir({ 'shop.yaml': SHOP });
    const port = await closedPort();
    const r = await runCli(['--routes', dir, '--http', `127.0.0.1:${port}`, '--https', 'off', '--admin', 'off']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('routes[0].pool: unknown pool "catalgo"');
    expect(r.stdout).not.toContain('listening');
    // Nothing bound the port.
    const refused = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.on('connect', () => { s.destroy(); resolve(false); });
      s.on('error', () => resolve(true));
    });
    expect(refused).toBe(true);
  });

  test('access lines reach stdout in order with the process lines: batched, flushed within 250 ms and at exit', async () => {
    const up = await startUpstream();
    const dir = await routesDir({ 'r.yaml': `pools: { p: { targets: ["${up.url}"] } }\nroutes: [ { name: r, pool: p } ]\n` });
    const cli = await startCli(['--routes', dir, '--http', '127.0.0.1:0', '--https', 'off', '--admin', 'off']);
    try {
      expect((await send(`http://${cli.addresses.http}/first`)).status).toBe(200);
      // Alone in the batch: written by the periodic flush, not held until more traffic comes.
      await cli.waitForLine((l) => l.msg === 'request' && l.path === '/first');
      for (let i = 0; i < 5; i++) expect((await send(`http://${cli.addresses.http}/n${i}`)).status).toBe(200);
    } finally {
      expect(await cli.stop('SIGTERM')).toBe(0);
      await up.close();
    }
    const msgs = cli.lines.map((l) => (l.msg === 'request' ? l.path : l.msg));
    expect(msgs).toEqual(['listening', '/first', '/n0', '/n1', '/n2', '/n3', '/n4', 'draining', 'stopped']);
  });

  test('access lines over many batches, one longer than a whole batch and some non-ASCII, arrive whole and in order', async () => {
    // Answered by waygate itself: an upstream Node server would refuse the 40 KB header with 431.
    const dir = await routesDir({ 'r.yaml': 'routes: [ { name: r, respond: { status: 200 } } ]\n' });
    const conf = await routesDir({ 'waygate.yaml': 'limits: { maxHeaderSize: 64kb }\n' });
    const cli = await startCli(['--config', `${conf}/waygate.yaml`, '--routes', dir, '--http', '127.0.0.1:0', '--https', 'off', '--admin', 'off']);
    const paths: string[] = [];
    // Node's client sends "é" as the latin1 byte E9; waygate reads it back as "é" and logs it as
    // UTF-8, so a line's byte length differs from its length in characters.
    const agents: string[] = [];
    try {
      for (let i = 0; i < 150; i++) {
        const path = i === 70 ? `/long-${'x'.repeat(3000)}` : `/n${i}`;
        // Line 70 takes 40 KB in UTF-8 (each "é" is 2 bytes): more than a whole batch buffer.
        const agent = i === 70 ? 'é'.repeat(20_000) : `agent-é-${i}`;
        expect((await send(`http://${cli.addresses.http}${path}`, { headers: { 'user-agent': agent } })).status).toBe(200);
        paths.push(path);
        agents.push(agent);
      }
    } finally {
      expect(await cli.stop('SIGTERM')).toBe(0);
    }
    const requests = cli.lines.filter((l) => l.msg === 'request');
    expect(requests.map((l) => l.path)).toEqual(paths);
    expect(requests.map((l) => l.userAgent)).toEqual(agents);
    expect(cli.lines.at(-1)?.msg).toBe('stopped');
  });

  test('with the access log off, process lines still reach stdout within 250 ms and at exit', async () => {
    const dir = await routesDir({ 'r.yaml': 'routes: [ { name: r, respond: { status: 204 } } ]\n' });
    const conf = await routesDir({ 'waygate.yaml': 'log: { level: info, access: false }\n' });
    // startCli resolves on the "listening" line: it must not wait for 16 KiB of other lines.
    const cli = await startCli(['--config', `${conf}/waygate.yaml`, '--routes', dir, '--http', '127.0.0.1:0', '--https', 'off', '--admin', 'off']);
    expect((await send(`http://${cli.addresses.http}/x`)).status).toBe(204);
    expect(await cli.stop('SIGTERM')).toBe(0);
    expect(cli.lines.map((l) => l.msg)).toEqual(['listening', 'draining', 'stopped']);
  });

  test('an invalid --http address is an error naming the flag', async () => {
    const r = await runCli(['--http', 'nope:port', '--check']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('--http: ');
  });

  test('an unknown flag prints the usage and exits 2', async () => {
    const r = await runCli(['--colour']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('usage: waygate');
  });

  test('logs the bound addresses in one "listening" line, serves, and drains on SIGTERM with exit 0', async () => {
    const up = await startUpstream();
    const dir = await routesDir({ 'r.yaml': `pools: { p: { targets: ["${up.url}"] } }\nroutes: [ { name: r, pool: p } ]\n` });
    const cli = await startCli(['--routes', dir, '--http', '127.0.0.1:0', '--https', 'off', '--admin', '127.0.0.1:0']);
    try {
      expect(cli.addresses.http).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(cli.addresses.https).toBeNull();
      expect(cli.addresses.admin).toMatch(/^127\.0\.0\.1:\d+$/);
      expect((await send(`http://${cli.addresses.http}/x`)).status).toBe(200);
      const health = await send(`http://${cli.addresses.admin}/healthz`);
      expect([health.status, health.body]).toEqual([200, 'ok']);
      expect((await send(`http://${cli.addresses.admin}/readyz`)).status).toBe(200);
    } finally {
      expect(await cli.stop('SIGTERM')).toBe(0);
      await up.close();
    }
  });

  test('environment twins stand in for flags (WAYGATE_ROUTES, WAYGATE_HTTP, WAYGATE_ADMIN, WAYGATE_HTTPS)', async () => {
    const dir = await routesDir({ 'r.yaml': 'routes: [ { name: hi, respond: { body: hi } } ]\n' });
    const cli = await startCli([], { WAYGATE_ROUTES: dir, WAYGATE_HTTP: '127.0.0.1:0', WAYGATE_HTTPS: 'off', WAYGATE_ADMIN: 'off' });
    try {
      expect(cli.addresses.admin).toBeNull();
      const r = await send(`http://${cli.addresses.http}/`);
      expect(r.body).toBe('hi');
    } finally {
      expect(await cli.stop('SIGINT')).toBe(0);
    }
  });
});

// Reload (SPEC §2): a valid change swaps in atomically; an invalid one is refused whole and the
// previous routes keep serving; targets that remain keep their state.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { routesDir, send, startCli, startGateway, startUpstream } from '../helpers.ts';
import type { TestGateway, Upstream } from '../helpers.ts';

let up: Upstream;
let gw: TestGateway;

const base = (extra = ''): string => `
pools:
  app: { targets: ["${up.url}"] }
routes:
  - { name: app, match: { path: /app/* }, pool: app }
${extra}`;

beforeAll(async () => {
  up = await startUpstream();
  gw = await startGateway(base());
});
afterAll(async () => {
  await gw.close();
  await up.close();
});

describe('reload', () => {
  test('a valid change is swapped in, and a target that stays keeps its state', async () => {
    const target = gw.gateway.pools.get('app')!.targets[0];
    await send(`${gw.url}/app/1`);
    const requests = target.requests;
    expect((await send(`${gw.url}/new`)).status).toBe(404);

    await writeFile(join(gw.routesDir, 'routes.yaml'), base('  - { name: new, match: { path: /new }, respond: { body: fresh } }'));
    const result = await gw.gateway.reload();
    expect(result).toEqual({ ok: true, version: 2 });
    expect((await send(`${gw.url}/new`)).body).toBe('fresh');
    expect(gw.gateway.pools.get('app')!.targets[0]).toBe(target);
    await send(`${gw.url}/app/2`);
    expect(target.requests).toBe(requests + 1);
  });

  test('an invalid change is refused with its errors and the routes in force keep serving', async () => {
    await writeFile(join(gw.routesDir, 'routes.yaml'), base('  - { name: broken, match: { path: /b }, pool: nosuchpool }'));
    const result = await gw.gateway.reload();
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.errors[0]).toMatch(/routes\.yaml:\d+:\d+ routes\[1\]\.pool: unknown pool "nosuchpool"/);
    expect(gw.gateway.lastReload?.ok).toBe(false);
    expect((await send(`${gw.url}/app/3`)).status).toBe(200);
    expect((await send(`${gw.url}/new`)).body).toBe('fresh');
  });
});

test('SIGHUP reloads the routes of a running waygate', async () => {
  const dir = await routesDir({ 'r.yaml': 'routes: [ { name: v, respond: { body: one } } ]\n' });
  const cli = await startCli(['--routes', dir, '--http', '127.0.0.1:0', '--https', 'off', '--admin', 'off']);
  try {
    expect((await send(`http://${cli.addresses.http}/`)).body).toBe('one');
    await writeFile(join(dir, 'r.yaml'), 'routes: [ { name: v, respond: { body: two } } ]\n');
    cli.proc.kill('SIGHUP');
    await cli.waitForLine((l) => l.msg === 'routes reloaded');
    expect((await send(`http://${cli.addresses.http}/`)).body).toBe('two');
  } finally {
    await cli.stop();
  }
});


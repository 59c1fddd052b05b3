// Retries (SPEC §4): to a different target, never after a response byte reached the client,
// only if the request was never sent or is idempotent with a body that can be sent again.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { closedPort, echoed, send, startGateway, startUpstream } from '../helpers.ts';
import type { TestGateway, Upstream } from '../helpers.ts';

let resetter: Upstream; // reads the whole request, then resets the connection
let silent: Upstream; // reads the request and never answers
let ok: Upstream;
let deadPort: number;
let gw: TestGateway;

beforeAll(async () => {
  resetter = await startUpstream((req) => {
    req.resume();
    req.on('end', () => req.socket.destroy());
  });
  silent = await startUpstream((req) => req.resume());
  ok = await startUpstream();
  deadPort = await closedPort();
  // One pool per case: smooth round-robin starts with the first target, so each case's first
  // attempt goes to the failing target and any retry to the other.
  const pools: Record<string, [string, string]> = {
    'reset-get': [resetter.url, '1'], 'reset-put': [resetter.url, '1'], 'reset-post': [resetter.url, '1'],
    'reset-bigput': [resetter.url, '1'], 'dead-post': [`http://127.0.0.1:${deadPort}`, '1'],
    'dead-bigpost': [`http://127.0.0.1:${deadPort}`, '1'], 'silent-get': [silent.url, '1'], 'noretry-get': [resetter.url, '0'],
  };
  const yaml = ['pools:'];
  for (const [name, [first, retries]] of Object.entries(pools)) {
    yaml.push(`  ${name}: { targets: ["${first}", "${ok.url}"], retries: ${retries}, timeouts: { response: 300ms } }`);
  }
  yaml.push('routes:');
  for (const name of Object.keys(pools)) yaml.push(`  - { name: ${name}, match: { path: /${name.replace('-', '/')} }, pool: ${name} }`);
  gw = await startGateway(yaml.join('\n') + '\n', (c) => {
    c.limits.retryBuffer = 1024;
  });
});
afterAll(async () => {
  await gw.close();
  await Promise.all([resetter, silent, ok].map((u) => u.close()));
});

const seen = (u: Upstream, path: string) => u.seen.filter((s) => s.url === path);

async function lastLog(path: string) {
  for (;;) {
    const line = gw.accessLogs().find((l) => l.path === path);
    if (line !== undefined) return line;
    await gw.waitForAccessLogs(gw.accessLogs().length + 1);
  }
}

describe('retries', () => {
  test('a GET reset after it was sent is retried on the other target', async () => {
    const r = await send(`${gw.url}/reset/get`);
    expect(r.status).toBe(200);
    expect(seen(resetter, '/reset/get')).toHaveLength(1);
    expect(seen(ok, '/reset/get')).toHaveLength(1);
    expect(await lastLog('/reset/get')).toMatchObject({ attempts: 2, target: ok.url, status: 200 });
  });

  test('a small PUT reset after it was sent is retried with its whole body', async () => {
    const r = await send(`${gw.url}/reset/put`, { method: 'PUT', body: 'x'.repeat(500) });
    expect(r.status).toBe(200);
    expect(echoed(r).body).toBe('x'.repeat(500));
  });

  test('a POST reset after it was sent is not retried: the upstream saw exactly one POST', async () => {
    const r = await send(`${gw.url}/reset/post`, { method: 'POST', body: 'order=1' });
    expect(r.status).toBe(502);
    expect(seen(resetter, '/reset/post')).toHaveLength(1);
    expect(seen(ok, '/reset/post')).toHaveLength(0);
    expect(await lastLog('/reset/post')).toMatchObject({ attempts: 1, status: 502 });
  });

  test('a POST whose connection was refused is retried: it was never sent', async () => {
    const r = await send(`${gw.url}/dead/post`, { method: 'POST', body: 'order=2' });
    expect(r.status).toBe(200);
    expect(echoed(r).body).toBe('order=2');
    expect(seen(ok, '/dead/post')).toHaveLength(1);
    expect(await lastLog('/dead/post')).toMatchObject({ attempts: 2 });
  });

  test('a chunked POST over retryBuffer whose connection was refused is still retried (its body was never read)', async () => {
    const big = 'y'.repeat(5000);
    const r = await send(`${gw.url}/dead/bigpost`, { method: 'POST', body: big, headers: { 'transfer-encoding': 'chunked' } });
    expect(r.status).toBe(200);
    expect(echoed(r).body).toBe(big);
  });

  test('a PUT over retryBuffer reset after it was sent is not retried', async () => {
    const r = await send(`${gw.url}/reset/bigput`, { method: 'PUT', body: 'z'.repeat(5000) });
    expect(r.status).toBe(502);
    expect(seen(ok, '/reset/bigput')).toHaveLength(0);
  });

  test('a response timeout is not retried', async () => {
    const r = await send(`${gw.url}/silent/get`);
    expect(r.status).toBe(504);
    expect(seen(ok, '/silent/get')).toHaveLength(0);
    expect(await lastLog('/silent/get')).toMatchObject({ attempts: 1, status: 504 });
  });

  test('retries: 0 means one attempt', async () => {
    const r = await send(`${gw.url}/noretry/get`);
    expect(r.status).toBe(502);
    expect(seen(ok, '/noretry/get')).toHaveLength(0);
  });
});

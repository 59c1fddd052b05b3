// basicAuth end to end (SPEC §8): a users file written by the real `htpasswd` (bcrypt and apr1),
// read by the loader; 401 with the challenge and nothing forwarded, 200 with the right password
// and no `authorization` upstream (unless forwardHeader), a changed users file taking effect on
// reload (and a refused one keeping the old users), and /explain and /status never showing hashes.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { echoed, send, startGateway, startUpstream } from '../helpers.ts';
import type { TestGateway, Upstream } from '../helpers.ts';

let up: Upstream;
let gw: TestGateway;
let dir: string;
let usersFile: string;

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
/** Runs the real htpasswd on the users file (-b: password from the command line). */
const htpasswd = (...args: string[]): void => void execFileSync('htpasswd', ['-b', ...args], { stdio: 'ignore' });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'waygate-htpasswd-'));
  usersFile = join(dir, 'htpasswd');
  htpasswd('-cB', usersFile, 'alice', 'wonderland');
  htpasswd('-m', usersFile, 'bob', 'builder');
  up = await startUpstream();
  gw = await startGateway(`
pools:
  app: { targets: ["${up.url}"] }
middlewares:
  admins: { basicAuth: { usersFile: "${usersFile}", realm: Staff } }
  passthrough: { basicAuth: { usersFile: "${usersFile}", forwardHeader: true } }
  office: { ipAllowList: { sourceRange: [10.0.0.0/8] } }
routes:
  - { name: admin, match: { path: /admin/* }, middlewares: [admins], pool: app }
  - { name: fwd, match: { path: /fwd/* }, middlewares: [passthrough], pool: app }
  - { name: office-admin, match: { path: /office/* }, middlewares: [office, admins], pool: app }
`);
});
afterAll(async () => {
  await gw?.close();
  await up?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('basicAuth through a gateway', () => {
  test('no credentials: 401, the challenge with the realm, nothing forwarded, rejectedBy in the access log', async () => {
    const before = up.seen.length;
    const r = await send(`${gw.url}/admin/x`);
    expect(r.status).toBe(401);
    expect(r.body).toBe('unauthorized');
    expect(r.headers['www-authenticate']).toBe('Basic realm="Staff", charset="UTF-8"');
    expect(r.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(up.seen.length).toBe(before);
    const line = await gw.waitForLog((l) => l.msg === 'request' && l.reqId === r.headers['x-request-id']);
    expect(line).toMatchObject({ status: 401, rejectedBy: 'admins' });
  });

  test('a wrong password and an unknown user get 401 too', async () => {
    for (const auth of [basic('alice', 'Wonderland'), basic('bob', 'build'), basic('mallory', 'wonderland'), 'Basic %%%']) {
      const r = await send(`${gw.url}/admin/x`, { headers: { authorization: auth } });
      expect(r.status).toBe(401);
      expect(r.headers['www-authenticate']).toMatch(/^Basic realm="Staff"/);
    }
  });

  test('the right password (bcrypt or apr1) passes, and the upstream never sees authorization', async () => {
    for (const [user, password] of [['alice', 'wonderland'], ['bob', 'builder']]) {
      const r = await send(`${gw.url}/admin/x`, { headers: { authorization: basic(user, password), 'x-other': 'kept' } });
      expect(r.status).toBe(200);
      const seen = echoed(r).headers;
      expect(seen.authorization).toBeUndefined();
      expect(seen['x-other']).toBe('kept');
    }
    expect(up.seen.at(-1)!.rawHeaders.map((h) => h.toLowerCase())).not.toContain('authorization');
  });

  test('forwardHeader: true: the upstream sees authorization as the client sent it', async () => {
    const auth = basic('alice', 'wonderland');
    const r = await send(`${gw.url}/fwd/x`, { headers: { authorization: auth } });
    expect(r.status).toBe(200);
    expect(echoed(r).headers.authorization).toBe(auth);
  });

  test('a middleware before it that refuses answers first: 403, no challenge', async () => {
    const r = await send(`${gw.url}/office/x`, { headers: { authorization: basic('alice', 'wonderland') } });
    expect(r.status).toBe(403);
    expect(r.headers['www-authenticate']).toBeUndefined();
  });

  test('/explain says what each middleware would do; /status shows users but never a hash', async () => {
    const q = new URLSearchParams({ url: 'http://a.test/admin/x', header: `authorization: ${basic('bob', 'builder')}` });
    const e = (await (await fetch(`${gw.admin}/explain?${q}`)).json()) as Record<string, unknown>;
    expect(e.middlewares).toEqual([{ name: 'admins', kind: 'basicAuth', result: 'passes', why: expect.stringContaining('"bob"') }]);
    const none = (await (await fetch(`${gw.admin}/explain?url=http://a.test/admin/x`)).json()) as Record<string, unknown>;
    expect(none).toMatchObject({ rejectedBy: 'admins', result: '401 from middleware admins' });
    const status = await (await fetch(`${gw.admin}/status`)).text();
    const mine = (JSON.parse(status).middlewares as Record<string, unknown>[]).find((m) => m.name === 'admins');
    expect(mine).toMatchObject({ kind: 'basicAuth', source: 'usersFile', userCount: 2, users: ['alice', 'bob'], realm: 'Staff' });
    for (const line of (await readFile(usersFile, 'utf8')).trim().split('\n')) expect(status).not.toContain(line.split(':')[1]);
  });

  test('a changed users file takes effect on reload; the old password stops working at once', async () => {
    const old = basic('alice', 'wonderland');
    expect((await send(`${gw.url}/admin/x`, { headers: { authorization: old } })).status).toBe(200);
    htpasswd('-B', usersFile, 'alice', 'looking-glass');
    htpasswd('-m', usersFile, 'carol', 'c4rol');
    // Not before the reload: the file is read with the routes.
    expect((await send(`${gw.url}/admin/x`, { headers: { authorization: old } })).status).toBe(200);
    expect(await gw.gateway.reload()).toMatchObject({ ok: true });
    expect((await send(`${gw.url}/admin/x`, { headers: { authorization: old } })).status).toBe(401);
    expect((await send(`${gw.url}/admin/x`, { headers: { authorization: basic('alice', 'looking-glass') } })).status).toBe(200);
    expect((await send(`${gw.url}/admin/x`, { headers: { authorization: basic('carol', 'c4rol') } })).status).toBe(200);
  });

  test('a users file with a refused line fails the reload with the file, line and user; the users in force keep working', async () => {
    const good = await readFile(usersFile, 'utf8');
    await writeFile(usersFile, `${good}dave:plain-text-password\n`);
    try {
      const result = await gw.gateway.reload();
      expect(result.ok).toBe(false);
      if (!result.ok) {
        const line = good.trim().split('\n').length + 1;
        expect(result.errors.join('\n')).toMatch(new RegExp(`routes\\.yaml:\\d+:\\d+ .*usersFile "${usersFile}" line ${line}, user "dave", has a plain-text password .*htpasswd -B ${usersFile} dave`));
        expect(result.errors.join('\n')).not.toContain('plain-text-password');
      }
      expect((await send(`${gw.url}/admin/x`, { headers: { authorization: basic('carol', 'c4rol') } })).status).toBe(200);
    } finally {
      await writeFile(usersFile, good);
    }
  });
});

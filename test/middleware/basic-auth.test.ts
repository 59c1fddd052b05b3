// basicAuth built directly (SPEC §8) over users made by the real `htpasswd`: the 401 and its
// challenge, the right password passes and the authorization header is dropped upstream,
// malformed credentials are a plain 401, the cache of successful checks (counted, not timed),
// parallel requests sharing one check, the process-wide bound on hash checks, explain and
// describe, and the options' load errors.
import { execFileSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { basicAuth, CACHE_ENTRIES, HASH_GATE, MAX_RUNNING_CHECKS, MAX_WAITING_CHECKS, parseBasic } from '../../src/middleware/basic-auth.ts';
import type { Answer, BuildDeps, Middleware, MiddlewareRequest, Verdict } from '../../src/middleware/types.ts';
import { createLoggers } from '../../src/observe/logger.ts';

function htpasswd(flags: string[], user: string, password: string): string {
  return execFileSync('htpasswd', ['-nb', ...flags, user, password], { encoding: 'utf8' }).trim();
}

const BCRYPT = ['-B', '-C', '4'];
const APR1 = ['-m'];

function deps(name: string, files: Record<string, string> = {}): BuildDeps {
  const { log } = createLoggers({ level: 'silent', access: false, destination: { write: () => {} } });
  return {
    name,
    files: new Map(Object.entries(files).map(([k, v]) => [k, Buffer.from(v)])),
    pools: new Map(),
    target: () => {
      throw new Error('basicAuth needs no target');
    },
    // basicAuth keeps no limit state: nothing here is ever called.
    limits: undefined as never,
    log,
  };
}

function build(options: Record<string, unknown>, files?: Record<string, string>): Middleware {
  return basicAuth.build(basicAuth.options.parse(options), deps('admins', files));
}

/** A request with `authorization` (when given), recording the edits made to what is forwarded. */
function req(authorization?: string | undefined): MiddlewareRequest & { removed: string[] } {
  const removed: string[] = [];
  return {
    method: 'GET', scheme: 'http', host: 'a.test', hostHeader: 'a.test', uri: '/', clientIp: '192.0.2.1',
    requestId: 'r1', route: 'r', websocket: false,
    header: (name) => (name === 'authorization' ? authorization : undefined),
    rawHeaders: authorization === undefined ? [] : ['Authorization', authorization],
    upstream: { remove: (n) => void removed.push(n), set: () => {} },
    onResponse: () => {},
    onDone: () => {},
    removed,
  };
}

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const stats = (m: Middleware): Record<string, number> => m.describe() as Record<string, number>;
const field = (a: Answer, name: string): string | undefined => {
  for (let i = 0; i < a.headers.length; i += 2) if (a.headers[i] === name) return a.headers[i + 1];
  return undefined;
};

function expect401(v: Verdict | Promise<Verdict>, realm = 'waygate'): void {
  expect(v).toBeDefined();
  expect(v).not.toBeInstanceOf(Promise);
  const a = v as Answer;
  expect(a.status).toBe(401);
  expect(a.body).toBe('unauthorized');
  expect(a.rejection).toBe(true);
  expect(field(a, 'content-type')).toBe('text/plain; charset=utf-8');
  expect(field(a, 'www-authenticate')).toBe(`Basic realm="${realm}", charset="UTF-8"`);
}

describe('options', () => {
  const messages = (o: unknown): string[] => {
    const r = basicAuth.options.safeParse(o);
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  test('defaults: realm "waygate", the authorization header not forwarded; usersFile is the file the loader reads', () => {
    const o = basicAuth.options.parse({ usersFile: 'secrets/htpasswd' });
    expect(o).toEqual({ usersFile: 'secrets/htpasswd', realm: 'waygate', forwardHeader: false });
    expect(basicAuth.files!(o)).toEqual(['secrets/htpasswd']);
    expect(basicAuth.files!(basicAuth.options.parse({ users: [htpasswd(APR1, 'a', 'b')] }))).toEqual([]);
  });

  test.each([
    [{}, /^: basicAuth needs exactly one of `users` .* and `usersFile`/],
    [{ users: [htpasswd(APR1, 'a', 'b')], usersFile: 'x' }, /^: basicAuth needs exactly one of/],
    [{ users: [] }, /^users: list at least one "user:hash" line/],
    [{ usersFile: '' }, /^usersFile: /],
    [{ usersFile: 'x', realm: 'say "hi"' }, /^realm: a realm is printable ASCII without " or \\/],
    [{ usersFile: 'x', realm: '' }, /^realm: /],
    [{ usersFile: 'x', forwardHeader: 'yes' }, /^forwardHeader: /],
    [{ usersFile: 'x', user: [] }, /unknown key; expected one of: users, usersFile, realm, forwardHeader/],
  ])('%j is refused with a message that says what is wrong', (o, message) => {
    expect(messages(o).join('\n')).toMatch(message);
  });

  test('an inline line with a refused hash is an error at that line, naming the user and the fix, without the hash', () => {
    const sha = htpasswd(['-s'], 'carol', 'secret-pw');
    const m = messages({ users: [htpasswd(APR1, 'a', 'b'), sha, 'dave:secret-pw', htpasswd(APR1, 'a', 'c')] });
    expect(m).toHaveLength(3);
    expect(m[0]).toMatch(/^users\.1: user "carol" has an unsalted SHA-1 hash .*`htpasswd -nB carol`/);
    expect(m[1]).toMatch(/^users\.2: user "dave" has a plain-text password .*`htpasswd -nB dave`/);
    expect(m[2]).toMatch(/^users\.3: user "a" is listed twice/);
    expect(m.join('\n')).not.toContain(sha.split(':')[1]);
    expect(m.join('\n')).not.toContain('secret-pw');
  });
});

describe('usersFile', () => {
  test('a refused line fails the build naming the file, the line and the user, and how to make a good hash', () => {
    const file = [htpasswd(BCRYPT, 'alice', 'a'), htpasswd(['-p'], 'bob', 'bobs-password'), htpasswd(['-d'], 'carol', 'pw')].join('\n');
    const o = basicAuth.options.parse({ usersFile: 'secrets/htpasswd' });
    let message = '';
    try {
      basicAuth.build(o, deps('admins', { 'secrets/htpasswd': file }));
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/^usersFile "secrets\/htpasswd" line 2, user "bob", has a plain-text password .*`htpasswd -B secrets\/htpasswd bob`; line 3, user "carol", has what looks like a DES crypt hash/);
    expect(message).not.toContain('bobs-password');
    expect(message).not.toContain(file.split('\n')[2].split(':')[1]);
  });

  test('users come from deps.files under the path as configured', async () => {
    const m = build({ usersFile: 'secrets/htpasswd' }, { 'secrets/htpasswd': `${htpasswd(BCRYPT, 'alice', 'pa')}\n${htpasswd(APR1, 'bob', 'pb')}\n` });
    expect(await m.request(req(basic('alice', 'pa')))).toBeUndefined();
    expect(m.request(req(basic('bob', 'pb')))).toBeUndefined();
    expect(m.describe()).toMatchObject({ source: 'usersFile', usersFile: 'secrets/htpasswd', userCount: 2, users: ['alice', 'bob'], schemes: { bcrypt: 1, apr1: 1 } });
  });
});

describe('requests', () => {
  const lines = [htpasswd(BCRYPT, 'alice', 'wonderland'), htpasswd(APR1, 'bob', 'builder'), htpasswd(APR1, 'jürgen', 'pässwörd')];

  test('no credentials: 401 with the challenge, synchronously; the realm is the configured one', () => {
    expect401(build({ users: lines }).request(req()));
    expect401(build({ users: lines, realm: 'Staff only' }).request(req()), 'Staff only');
  });

  test('the right password passes and the authorization header is removed from the forwarded request', async () => {
    const m = build({ users: lines });
    const r = req(basic('alice', 'wonderland'));
    const v = m.request(r);
    expect(v).toBeInstanceOf(Promise);
    expect(await v).toBeUndefined();
    expect(r.removed).toEqual(['authorization']);
    const r2 = req(basic('jürgen', 'pässwörd'));
    expect(m.request(r2)).toBeUndefined();
    expect(r2.removed).toEqual(['authorization']);
  });

  test('forwardHeader: true keeps the authorization header', async () => {
    const m = build({ users: lines, forwardHeader: true });
    const r = req(basic('alice', 'wonderland'));
    expect(await m.request(r)).toBeUndefined();
    expect(r.removed).toEqual([]);
  });

  test('a wrong password or an unknown user is a 401; the unknown user still costs one hash check', async () => {
    const m = build({ users: lines });
    expect401(await m.request(req(basic('alice', 'Wonderland'))));
    expect401(m.request(req(basic('bob', 'builder!'))));
    expect(stats(m).hashChecks).toBe(2);
    // Two users of three are apr1: the dummy hash is apr1, checked in full like theirs.
    expect401(m.request(req(basic('mallory', 'builder'))));
    expect(stats(m).hashChecks).toBe(3);
  });

  test.each([
    ['another scheme', 'Bearer abc.def'],
    ['Basic without credentials', 'Basic'],
    ['not base64', 'Basic !!!!'],
    ['base64 with junk in it', `Basic ${Buffer.from('bob:builder').toString('base64')}*`],
    ['two credentials', `${basic('bob', 'builder')}, ${basic('bob', 'builder')}`],
    ['no colon', `Basic ${Buffer.from('bobbuilder').toString('base64')}`],
    ['too long', `Basic ${Buffer.from(`bob:${'x'.repeat(5000)}`).toString('base64')}`],
    ['empty', ''],
  ])('%s: a plain 401, with no hash check', (_what, value) => {
    const m = build({ users: lines });
    const r = req(value);
    expect401(m.request(r));
    expect(r.removed).toEqual([]);
    expect(stats(m).hashChecks).toBe(0);
  });

  test('the scheme name is case-insensitive and padding may be left out', () => {
    const m = build({ users: lines });
    const token = Buffer.from('bob:builder').toString('base64');
    expect(token.endsWith('=')).toBe(true);
    expect(m.request(req(`basic ${token}`))).toBeUndefined();
    expect(m.request(req(`BASIC  ${token.replace(/=+$/, '')}`))).toBeUndefined();
  });

  test('parseBasic splits at the first colon and keeps the password bytes', () => {
    expect(parseBasic(basic('bob', 'a:b'))).toEqual({ user: 'bob', password: Buffer.from('a:b') });
    expect(parseBasic(basic('', 'x'))).toEqual({ user: '', password: Buffer.from('x') });
  });
});

describe('the cache of successful checks', () => {
  test('a logged-in client costs one hash check: the next request passes synchronously without one', async () => {
    const m = build({ users: [htpasswd(BCRYPT, 'alice', 'wonderland')] });
    expect(await m.request(req(basic('alice', 'wonderland')))).toBeUndefined();
    expect(stats(m)).toMatchObject({ hashChecks: 1, cacheHits: 0, cached: 1 });
    for (let i = 0; i < 5; i++) {
      const r = req(basic('alice', 'wonderland'));
      expect(m.request(r)).toBeUndefined();
      expect(r.removed).toEqual(['authorization']);
    }
    expect(stats(m)).toMatchObject({ hashChecks: 1, cacheHits: 5 });
    // A wrong password is never cached: each costs a check.
    expect401(await m.request(req(basic('alice', 'nope'))));
    expect401(await m.request(req(basic('alice', 'nope'))));
    expect(stats(m)).toMatchObject({ hashChecks: 3, cached: 1 });
  });

  test('the same credentials sent in parallel share one check', async () => {
    const m = build({ users: [htpasswd(BCRYPT, 'alice', 'wonderland')] });
    const verdicts = await Promise.all(Array.from({ length: 6 }, () => m.request(req(basic('alice', 'wonderland')))));
    expect(verdicts).toEqual([undefined, undefined, undefined, undefined, undefined, undefined]);
    expect(stats(m).hashChecks).toBe(1);
  });

  test(`it is bounded (${CACHE_ENTRIES} entries, least recently used out first) and gone after close()`, () => {
    const m = build({ users: [htpasswd(APR1, 'bob', 'builder')] });
    // Every spacing of "Basic  <token>" is its own Authorization value, so its own entry.
    const token = Buffer.from('bob:builder').toString('base64');
    const value = (i: number): string => `Basic${' '.repeat(i + 1)}${token}`;
    for (let i = 0; i < CACHE_ENTRIES; i++) expect(m.request(req(value(i)))).toBeUndefined();
    expect(stats(m)).toMatchObject({ hashChecks: CACHE_ENTRIES, cached: CACHE_ENTRIES });
    // Used again: now the most recent, so entry 1 is the one that goes.
    expect(m.request(req(value(0)))).toBeUndefined();
    expect(m.request(req(value(CACHE_ENTRIES)))).toBeUndefined();
    expect(stats(m)).toMatchObject({ hashChecks: CACHE_ENTRIES + 1, cached: CACHE_ENTRIES, cacheHits: 1 });
    m.request(req(value(0)));
    expect(stats(m)).toMatchObject({ hashChecks: CACHE_ENTRIES + 1, cacheHits: 2 });
    m.request(req(value(1)));
    expect(stats(m)).toMatchObject({ hashChecks: CACHE_ENTRIES + 2 });
    m.close!();
    expect(stats(m).cached).toBe(0);
    m.request(req(value(0)));
    expect(stats(m).hashChecks).toBe(CACHE_ENTRIES + 3);
  });

  test('a new build (a reload) starts with an empty cache', async () => {
    const lines = [htpasswd(BCRYPT, 'alice', 'wonderland')];
    const a = build({ users: lines });
    await a.request(req(basic('alice', 'wonderland')));
    const b = build({ users: lines });
    const v = b.request(req(basic('alice', 'wonderland')));
    expect(v).toBeInstanceOf(Promise);
    expect(await v).toBeUndefined();
    expect(stats(b).hashChecks).toBe(1);
  });
});

describe('the bound on hash checks', () => {
  test(`${MAX_RUNNING_CHECKS} run, ${MAX_WAITING_CHECKS} wait; beyond that a flood of wrong passwords gets 503 at once`, async () => {
    const m = build({ users: [htpasswd(BCRYPT, 'alice', 'wonderland')] });
    const n = MAX_RUNNING_CHECKS + MAX_WAITING_CHECKS + 12;
    const verdicts = Array.from({ length: n }, (_, i) => m.request(req(basic('alice', `guess-${i}`))));
    expect(HASH_GATE.running).toBe(MAX_RUNNING_CHECKS);
    expect(HASH_GATE.waiting).toBe(MAX_WAITING_CHECKS);
    const busy = verdicts.filter((v) => !(v instanceof Promise)) as Answer[];
    expect(busy).toHaveLength(12);
    for (const a of busy) {
      expect(a.status).toBe(503);
      expect(a.body).toBe('authentication busy');
      expect(a.rejection).toBe(true);
      expect(field(a, 'retry-after')).toBe('1');
    }
    for (const v of await Promise.all(verdicts.filter((v) => v instanceof Promise))) expect401(v);
    expect(stats(m)).toMatchObject({ hashChecks: MAX_RUNNING_CHECKS + MAX_WAITING_CHECKS, busyRejections: 12 });
    expect([HASH_GATE.running, HASH_GATE.waiting]).toEqual([0, 0]);
    // The flood over, the right password gets its check.
    expect(await m.request(req(basic('alice', 'wonderland')))).toBeUndefined();
  });

  test('a client already verified is not held up by a flood: a cache hit needs no slot', async () => {
    const m = build({ users: [htpasswd(BCRYPT, 'alice', 'wonderland')] });
    await m.request(req(basic('alice', 'wonderland')));
    const flood = Array.from({ length: MAX_RUNNING_CHECKS + MAX_WAITING_CHECKS + 1 }, (_, i) => m.request(req(basic('alice', `guess-${i}`))));
    expect(m.request(req(basic('alice', 'wonderland')))).toBeUndefined();
    await Promise.all(flood);
  });

  test('a bcrypt check yields to the event loop while it runs', async () => {
    // Cost 12 is ~250 ms in bcryptjs, which works in slices of at most 100 ms.
    const m = build({ users: [htpasswd(['-B', '-C', '12'], 'alice', 'wonderland')] });
    let turns = 0;
    let done = false;
    const spin = (): void => {
      if (done) return;
      turns++;
      setImmediate(spin);
    };
    setImmediate(spin);
    const v = m.request(req(basic('alice', 'wonderland')));
    expect(await v).toBeUndefined();
    done = true;
    expect(turns).toBeGreaterThanOrEqual(2);
  });
});

describe('explain and describe', () => {
  const lines = [htpasswd(BCRYPT, 'alice', 'wonderland'), htpasswd(APR1, 'bob', 'builder')];

  test('explain says what request() would do, without checking a bcrypt hash or filling the cache', async () => {
    const m = build({ users: lines });
    expect(m.explain(req())).toEqual({ result: 'rejects', status: 401, why: 'the request has no Authorization header' });
    expect(m.explain(req('Bearer x'))).toMatchObject({ result: 'rejects', status: 401, why: expect.stringMatching(/not valid Basic/) });
    expect(m.explain(req(basic('mallory', 'x')))).toMatchObject({ result: 'rejects', why: 'there is no user "mallory"' });
    expect(m.explain(req(basic('bob', 'builder')))).toMatchObject({ result: 'passes' });
    expect(m.explain(req(basic('bob', 'nope')))).toMatchObject({ result: 'rejects', status: 401, why: 'the password of user "bob" is wrong' });
    expect(m.explain(req(basic('alice', 'wonderland')))).toMatchObject({ result: 'unknown' });
    expect(stats(m)).toMatchObject({ hashChecks: 0, cached: 0 });
    await m.request(req(basic('alice', 'wonderland')));
    expect(m.explain(req(basic('alice', 'wonderland')))).toEqual({ result: 'passes', why: 'these credentials of user "alice" were verified before' });
  });

  test('describe shows user names and counts, never a hash', () => {
    const m = build({ users: lines, realm: 'Staff' });
    const d = m.describe();
    expect(d).toMatchObject({ source: 'inline', userCount: 2, users: ['alice', 'bob'], schemes: { bcrypt: 1, apr1: 1 }, realm: 'Staff', forwardHeader: false });
    const text = JSON.stringify(d);
    for (const line of lines) expect(text).not.toContain(line.split(':')[1]);
    expect(text).not.toMatch(/\$2[aby]\$|\$apr1\$/);
  });
});

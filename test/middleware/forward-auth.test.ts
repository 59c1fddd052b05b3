// forwardAuth, driven directly: build() with real deps (a real target registry, a real logger)
// and request() with a MiddlewareRequest built here, against the real auth service of
// test/auth-service.ts over real sockets.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { forwardAuth } from '../../src/middleware/forward-auth.ts';
import type { Answer, BuildDeps, Middleware, MiddlewareRequest, ResponseHook } from '../../src/middleware/types.ts';
import type { LimitStores } from '../../src/middleware/limits/stores.ts';
import { createLoggers } from '../../src/observe/logger.ts';
import { TargetRegistry } from '../../src/upstream/registry.ts';
import { CHALLENGE, LOGIN_BODY, LOGIN_COOKIE, LOGIN_URL, startAuthService } from '../auth-service.ts';
import type { AuthService } from '../auth-service.ts';
import { closedPort } from '../helpers.ts';
import { makeLeaf } from '../tls-helpers.ts';

/** One edit a middleware asked for on the forwarded request. */
type Edit = ['remove', string] | ['set', string, string];

/** A request as the chain would hand it over, with its upstream edits recorded. */
interface TestRequest extends MiddlewareRequest {
  readonly edits: Edit[];
}

function makeRequest(init: { method?: string; uri?: string; headers?: string[]; clientIp?: string; scheme?: 'http' | 'https'; hostHeader?: string } = {}): TestRequest {
  const raw = init.headers ?? [];
  const hostHeader = init.hostHeader ?? 'app.example.com:8080';
  const edits: Edit[] = [];
  return {
    method: init.method ?? 'GET',
    scheme: init.scheme ?? 'http',
    host: hostHeader.replace(/:\d+$/, ''),
    hostHeader,
    uri: init.uri ?? '/',
    clientIp: init.clientIp ?? '198.51.100.7',
    requestId: 'req-1',
    route: 'r1',
    websocket: false,
    rawHeaders: raw,
    header(name: string): string | undefined {
      const values: string[] = [];
      for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() === name) values.push(raw[i + 1]);
      return values.length === 0 ? undefined : values.join(name === 'cookie' ? '; ' : ', ');
    },
    upstream: {
      remove: (name) => edits.push(['remove', name]),
      set: (name, value) => edits.push(['set', name, value]),
    },
    onResponse: (_hook: ResponseHook) => {},
    onDone: () => {},
    edits,
  };
}

/** The client's headers after the edits, as UpstreamEdits documents them (names in any case). */
function applyEdits(raw: readonly string[], edits: readonly Edit[]): string[] {
  let out = [...raw];
  for (const e of edits) {
    const drop = (name: string): string[] => out.filter((_, i, a) => (i % 2 === 0 ? a[i] : a[i - 1]).toLowerCase() !== name);
    out = drop(e[1]);
    if (e[0] === 'set') out.push(e[1], e[2]);
  }
  return out;
}

/** All values of a field (any case) in flat raw headers. */
function values(raw: readonly string[], name: string): string[] {
  const v: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() === name) v.push(raw[i + 1]);
  return v;
}

const registry = new TargetRegistry();
const logs: Record<string, unknown>[] = [];
const { log } = createLoggers({ level: 'warn', access: false, destination: { write: (line: string) => void logs.push(JSON.parse(line)) } });
const noStores = new Proxy({}, { get: () => { throw new Error('forwardAuth uses no limit store'); } }) as LimitStores;
const built: Middleware[] = [];

function build(name: string, options: Record<string, unknown>): Middleware {
  const parsed = forwardAuth.options.safeParse(options);
  if (!parsed.success) throw new Error(JSON.stringify(parsed.error.issues));
  const deps: BuildDeps = { name, files: new Map(), pools: new Map(), target: (pool, url) => registry.obtain(pool, url, 1), limits: noStores, log };
  const mw = forwardAuth.build(parsed.data, deps);
  built.push(mw);
  return mw;
}

async function run(mw: Middleware, r: MiddlewareRequest): Promise<Answer | undefined> {
  return await mw.request(r);
}

function issues(options: Record<string, unknown>): string[] {
  const r = forwardAuth.options.safeParse(options);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

let auth: AuthService;
beforeAll(async () => {
  auth = await startAuthService();
});
afterAll(async () => {
  await auth.close();
  for (const t of registry.retain(new Set())) await t.close();
});
afterEach(() => {
  auth.behaviour = 'allow';
  auth.decide = undefined;
  auth.identity = { 'x-user': 'alice', 'x-email': 'alice@example.com' };
});

describe('forwardAuth options', () => {
  it('defaults: 5 s timeout, no copied answer fields, every client field sent', () => {
    const r = forwardAuth.options.parse({ address: 'http://auth:9000/verify?app=shop' });
    expect(r.timeout).toBe(5000);
    expect(r.authResponseHeaders).toEqual([]);
    expect(r.authRequestHeaders).toBeUndefined();
    expect(r.address).toMatchObject({ origin: 'http://auth:9000', host: 'auth:9000', path: '/verify?app=shop', https: false });
  });

  it('lower-cases header names and parses the timeout', () => {
    const r = forwardAuth.options.parse({ address: 'https://auth.example.com/check', authRequestHeaders: ['Cookie', 'Authorization'], authResponseHeaders: ['X-User'], timeout: '2s' });
    expect(r).toMatchObject({ authRequestHeaders: ['cookie', 'authorization'], authResponseHeaders: ['x-user'], timeout: 2000 });
    expect(r.address).toMatchObject({ origin: 'https://auth.example.com', host: 'auth.example.com', path: '/check', https: true });
  });

  it('refuses addresses that are not an http(s) URL of a service', () => {
    expect(issues({ address: 'auth:9000/verify' }).join()).toMatch(/must start with http:\/\/ or https:\/\//);
    expect(issues({ address: 'not a url' }).join()).toMatch(/expected the URL of the auth service/);
    expect(issues({ address: 'ftp://auth/verify' }).join()).toMatch(/must start with http:\/\/ or https:\/\//);
    expect(issues({ address: 'http://user:pw@auth/verify' }).join()).toMatch(/cannot carry user info/);
    expect(issues({ address: 'http://auth/verify#x' }).join()).toMatch(/cannot have a fragment/);
    expect(issues({ address: 42 }).join()).toMatch(/expected the URL of the auth service/);
    expect(issues({}).join()).toMatch(/^address: /);
  });

  it('refuses a zero or malformed timeout, unknown keys, and fields that cannot travel', () => {
    expect(issues({ address: 'http://a/v', timeout: '0s' }).join()).toMatch(/timeout must be more than 0/);
    expect(issues({ address: 'http://a/v', timeout: 'soon' }).join()).toMatch(/expected a duration/);
    expect(issues({ address: 'http://a/v', trustForwardHeader: true }).join()).toMatch(/unknown key; expected one of: address, authRequestHeaders, authResponseHeaders, timeout/);
    expect(issues({ address: 'http://a/v', authResponseHeaders: ['x_user'] })).toEqual([expect.stringMatching(/^authResponseHeaders\.0: .*drops header names with "_"/)]);
    expect(issues({ address: 'http://a/v', authResponseHeaders: ['Content-Length'] })).toEqual([expect.stringMatching(/^authResponseHeaders\.0: .*hop-by-hop or framing/)]);
    expect(issues({ address: 'http://a/v', authRequestHeaders: ['cookie', 'transfer-encoding'] })).toEqual([expect.stringMatching(/^authRequestHeaders\.1: .*sets the Host and framing/)]);
    expect(issues({ address: 'http://a/v', authResponseHeaders: ['x-user', 'X-User'] })).toEqual([expect.stringMatching(/^authResponseHeaders\.1: header "x-user" is listed twice/)]);
    expect(issues({ address: 'http://a/v', authRequestHeaders: ['bad header'] }).join()).toMatch(/invalid header name/);
  });
});

describe('forwardAuth against a real auth service', () => {
  it('a 2xx lets the request through with the identity fields the answer set', async () => {
    const mw = build('sso-allow', { address: `${auth.url}/verify`, authResponseHeaders: ['x-user', 'x-email', 'x-groups'] });
    auth.identity = { 'x-user': 'alice', 'x-groups': ['admin', 'ops'] };
    const r = makeRequest();
    expect(await run(mw, r)).toBeUndefined();
    // Removed first, whatever the answer; then set from the answer (repeated fields joined).
    expect(r.edits).toEqual([
      ['remove', 'x-user'], ['remove', 'x-email'], ['remove', 'x-groups'],
      ['set', 'x-user', 'alice'], ['set', 'x-groups', 'admin, ops'],
    ]);
  });

  it('forged identity fields never survive, whether or not the answer sets them', async () => {
    const forged = ['X-User', 'mallory', 'x-user', 'eve', 'X-USER', 'root', 'X-Email', 'boss@example.com', 'accept', '*/*'];
    const mw = build('sso-forged', { address: `${auth.url}/verify`, authResponseHeaders: ['x-user', 'x-email'] });

    auth.identity = { 'x-user': 'alice' };
    const a = makeRequest({ headers: forged });
    expect(await run(mw, a)).toBeUndefined();
    const passed = applyEdits(forged, a.edits);
    expect(values(passed, 'x-user')).toEqual(['alice']);
    expect(values(passed, 'x-email')).toEqual([]);
    expect(values(passed, 'accept')).toEqual(['*/*']);

    auth.identity = {};
    const b = makeRequest({ headers: forged });
    expect(await run(mw, b)).toBeUndefined();
    const passedB = applyEdits(forged, b.edits);
    expect(values(passedB, 'x-user')).toEqual([]);
    expect(values(passedB, 'x-email')).toEqual([]);

    // And on a denial the edits were asked for too (the request never goes on, but nothing relies on that).
    auth.behaviour = 'deny401';
    const c = makeRequest({ headers: forged });
    expect((await run(mw, c))?.status).toBe(401);
    expect(c.edits).toEqual([['remove', 'x-user'], ['remove', 'x-email']]);
  });

  it('a redirect to the login page reaches the client as is: status, location, set-cookie, body', async () => {
    const mw = build('sso-redirect', { address: `${auth.url}/verify` });
    auth.behaviour = 'redirect';
    const a = (await run(mw, makeRequest()))!;
    expect(a.status).toBe(302);
    expect(a.rejection).toBe(true);
    expect(values(a.headers, 'location')).toEqual([LOGIN_URL]);
    expect(values(a.headers, 'set-cookie')).toEqual([LOGIN_COOKIE]);
    expect(values(a.headers, 'content-type')).toEqual(['text/html; charset=utf-8']);
    expect(values(a.headers, 'cache-control')).toEqual(['no-store']);
    expect(a.body.toString()).toBe(LOGIN_BODY);
    // waygate frames the answer again: the auth service's framing and hop-by-hop fields are gone.
    for (const f of ['content-length', 'transfer-encoding', 'connection', 'keep-alive']) expect(values(a.headers, f)).toEqual([]);
  });

  it('401, 403 and even 500 go to the client as they are', async () => {
    const mw = build('sso-deny', { address: `${auth.url}/verify` });
    auth.behaviour = 'deny401';
    const a401 = (await run(mw, makeRequest()))!;
    expect(a401.status).toBe(401);
    expect(values(a401.headers, 'www-authenticate')).toEqual([CHALLENGE]);
    expect(a401.body.toString()).toBe('unauthorized by test auth');
    auth.behaviour = 'deny403';
    const a403 = (await run(mw, makeRequest()))!;
    expect([a403.status, a403.body.toString(), a403.rejection]).toEqual([403, 'forbidden by test auth', true]);
    auth.behaviour = 'error500';
    const a500 = (await run(mw, makeRequest()))!;
    expect([a500.status, a500.body.toString()]).toEqual([500, 'auth service error']);
  });

  it('sends a GET to the address path with the client fields, its own Host and x-forwarded-*, and no body', async () => {
    const mw = build('sso-headers', { address: `${auth.url}/verify?app=shop` });
    const before = auth.seen.length;
    const r = makeRequest({
      method: 'POST',
      uri: '/cart/add?item=7',
      scheme: 'https',
      hostHeader: 'shop.example.com',
      clientIp: '203.0.113.9',
      headers: [
        'Host', 'shop.example.com',
        'Authorization', 'Bearer t0k3n',
        'Cookie', 'a=1', 'cookie', 'b=2',
        'X-Custom', 'one', 'x-custom', 'two',
        'Content-Length', '11', 'Content-Type', 'text/plain',
        'Transfer-Encoding', 'chunked', 'Expect', '100-continue',
        'Connection', 'keep-alive, x-hop', 'X-Hop', 'secret-hop', 'Keep-Alive', 'timeout=5', 'TE', 'trailers',
        'Proxy-Authorization', 'Basic eA==', 'X_Custom', 'underscore',
        'X-Forwarded-For', '6.6.6.6', 'X-Forwarded-Uri', '/admin', 'Forwarded', 'for=6.6.6.6', 'X-Request-Id', 'forged-id',
      ],
    });
    expect(await run(mw, r)).toBeUndefined();
    await auth.waitForRequests(before + 1);
    const got = auth.seen[before];
    expect(got.method).toBe('GET');
    expect(got.url).toBe('/verify?app=shop');
    expect(got.body.length).toBe(0);
    expect(got.headers).toMatchObject({
      host: `127.0.0.1:${auth.port}`,
      authorization: 'Bearer t0k3n',
      cookie: 'a=1; b=2',
      'x-custom': 'one, two',
      'content-type': 'text/plain',
      'x-forwarded-method': 'POST',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'shop.example.com',
      'x-forwarded-uri': '/cart/add?item=7',
      'x-forwarded-for': '203.0.113.9',
      'x-request-id': 'req-1',
    });
    for (const f of ['content-length', 'transfer-encoding', 'expect', 'x-hop', 'te', 'proxy-authorization', 'x_custom', 'forwarded']) {
      expect(got.headers[f], f).toBeUndefined();
    }
    expect(values(got.rawHeaders, 'host')).toHaveLength(1);
    expect(values(got.rawHeaders, 'cookie')).toEqual(['a=1; b=2']);
    expect(values(got.rawHeaders, 'x-forwarded-for')).toEqual(['203.0.113.9']);
    expect(values(got.rawHeaders, 'x-forwarded-uri')).toEqual(['/cart/add?item=7']);
  });

  it('authRequestHeaders picks the client fields sent; an empty list sends none of them', async () => {
    const headers = ['Authorization', 'Bearer x', 'Cookie', 'sid=1', 'X-Other', 'y', 'X-Forwarded-For', '6.6.6.6'];
    const picked = build('sso-picked', { address: `${auth.url}/verify`, authRequestHeaders: ['authorization', 'x-forwarded-for'] });
    const before = auth.seen.length;
    await run(picked, makeRequest({ headers }));
    const none = build('sso-none', { address: `${auth.url}/verify`, authRequestHeaders: [] });
    await run(none, makeRequest({ headers }));
    await auth.waitForRequests(before + 2);
    const [p, n] = auth.seen.slice(before);
    expect(p.headers.authorization).toBe('Bearer x');
    expect(p.headers.cookie).toBeUndefined();
    expect(p.headers['x-other']).toBeUndefined();
    // Listed or not, x-forwarded-for is waygate's: the client address.
    expect(p.headers['x-forwarded-for']).toBe('198.51.100.7');
    expect(n.headers.authorization).toBeUndefined();
    expect(n.headers.cookie).toBeUndefined();
    expect(n.headers['x-forwarded-uri']).toBe('/');
    expect(n.headers.host).toBe(`127.0.0.1:${auth.port}`);
  });

  it('an auth service that hangs past the timeout is a 503, never a pass, with a warn line', async () => {
    const mw = build('sso-hang', { address: `${auth.url}/verify`, timeout: '300ms', authResponseHeaders: ['x-user'] });
    auth.behaviour = 'hang';
    const from = logs.length;
    const r = makeRequest({ headers: ['x-user', 'forged'] });
    const a = (await run(mw, r))!;
    expect([a.status, a.body, a.rejection]).toEqual([503, 'authentication service unavailable', true]);
    expect(values(a.headers, 'content-type')).toEqual(['text/plain; charset=utf-8']);
    expect(r.edits).toEqual([['remove', 'x-user']]);
    const line = logs.slice(from).find((l) => l.middleware === 'sso-hang');
    expect(line).toMatchObject({ level: 40, kind: 'forwardAuth', reason: 'upstream_timeout', route: 'r1' });
  });

  it('an auth service that resets mid-answer is a 503', async () => {
    const mw = build('sso-reset', { address: `${auth.url}/verify`, timeout: '5s' });
    auth.behaviour = 'reset';
    const from = logs.length;
    const a = (await run(mw, makeRequest()))!;
    expect([a.status, a.body]).toEqual([503, 'authentication service unavailable']);
    // A body cut short of its content-length reads as a bad answer; a reset before it, as a reset.
    expect(logs.slice(from).find((l) => l.middleware === 'sso-reset')).toMatchObject({ reason: expect.stringMatching(/^upstream_(reset|bad_response)$/) });
  });

  it('an answer over 1 MiB is a 503, not a truncated page', async () => {
    const mw = build('sso-huge', { address: `${auth.url}/verify` });
    auth.behaviour = 'oversize';
    const a = (await run(mw, makeRequest()))!;
    expect([a.status, a.body]).toEqual([503, 'authentication service unavailable']);
  });

  it('nothing listening is a 503 (the answer names no address)', async () => {
    const port = await closedPort();
    const mw = build('sso-refused', { address: `http://127.0.0.1:${port}/verify`, timeout: '2s' });
    const from = logs.length;
    const a = (await run(mw, makeRequest()))!;
    expect([a.status, a.body]).toEqual([503, 'authentication service unavailable']);
    expect(JSON.stringify(a)).not.toContain(String(port));
    expect(logs.slice(from).find((l) => l.middleware === 'sso-refused')).toMatchObject({ reason: 'upstream_connect' });
  });

  it('an https address verifies the certificate: a self-signed one is a 503', async () => {
    const leaf = await makeLeaf(['127.0.0.1']);
    const tlsAuth = await startAuthService({ tls: leaf });
    try {
      const mw = build('sso-tls', { address: `${tlsAuth.url}/verify`, timeout: '2s' });
      const a = (await run(mw, makeRequest()))!;
      expect([a.status, a.body]).toEqual([503, 'authentication service unavailable']);
      expect(tlsAuth.seen).toHaveLength(0);
    } finally {
      await tlsAuth.close();
    }
  });

  it('keeps connections to the auth service alive: many checks, few connections', async () => {
    const mw = build('sso-keepalive', { address: `${auth.url}/verify` });
    const before = auth.connections;
    const seenBefore = auth.seen.length;
    for (let i = 0; i < 30; i++) expect(await run(mw, makeRequest())).toBeUndefined();
    // Then in parallel, five at a time.
    for (let i = 0; i < 6; i++) {
      const batch = await Promise.all([1, 2, 3, 4, 5].map(() => run(mw, makeRequest())));
      expect(batch).toEqual([undefined, undefined, undefined, undefined, undefined]);
    }
    expect(auth.seen.length - seenBefore).toBe(60);
    expect(auth.connections - before).toBeLessThanOrEqual(6);
    expect(registry.obtain('forwardAuth:sso-keepalive', auth.url, 1).inFlight).toBe(0);
  });

  it('after the auth service died: 503; once it is back on the same port, allowed again', async () => {
    const svc = await startAuthService();
    try {
      const mw = build('sso-die', { address: `${svc.url}/verify`, timeout: '2s', authResponseHeaders: ['x-user'] });
      const r0 = makeRequest();
      expect(await run(mw, r0)).toBeUndefined();
      await svc.die();
      const a = (await run(mw, makeRequest()))!;
      expect([a.status, a.body]).toEqual([503, 'authentication service unavailable']);
      await svc.restart();
      const r2 = makeRequest();
      expect(await run(mw, r2)).toBeUndefined();
      expect(r2.edits).toContainEqual(['set', 'x-user', 'alice']);
    } finally {
      await svc.close();
    }
  });

  it('explain() says it cannot tell; describe() shows the settings', () => {
    const mw = build('sso-describe', { address: 'http://auth.internal:9000/verify', authRequestHeaders: ['cookie'], authResponseHeaders: ['x-user'], timeout: '2s' });
    expect(mw.explain(makeRequest())).toEqual({ result: 'unknown', why: 'would ask http://auth.internal:9000/verify' });
    expect(mw.describe()).toEqual({ address: 'http://auth.internal:9000/verify', authRequestHeaders: ['cookie'], authResponseHeaders: ['x-user'], timeout: 2000 });
    const all = build('sso-describe-all', { address: 'http://auth.internal:9000/verify' });
    expect(all.describe()).toMatchObject({ authRequestHeaders: 'all', authResponseHeaders: [], timeout: 5000 });
    expect(all.kind).toBe('forwardAuth');
    expect(all.name).toBe('sso-describe-all');
  });

  it('leaves nothing in flight on any target it used', () => {
    for (const mw of built) {
      const d = mw.describe() as { address: string };
      const t = registry.obtain(`forwardAuth:${mw.name}`, new URL(d.address).origin, 1);
      expect(t.inFlight, mw.name).toBe(0);
    }
  });
});

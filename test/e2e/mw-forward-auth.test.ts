// forwardAuth end to end (SPEC §8): a real gateway, a real echo upstream and the real auth
// service of test/auth-service.ts. What the client gets, what the upstream received, and what
// the auth service was asked, for every answer the auth service can give or fail to give.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { formatConfigError, parseRoutesText } from '../../src/config/load.ts';
import { CHALLENGE, LOGIN_BODY, LOGIN_COOKIE, LOGIN_URL, startAuthService } from '../auth-service.ts';
import type { AuthService } from '../auth-service.ts';
import { echoed, rawExchange, send, startGateway, startUpstream } from '../helpers.ts';
import type { TestGateway, Upstream } from '../helpers.ts';

let auth: AuthService;
let upstream: Upstream;
let gw: TestGateway;

beforeAll(async () => {
  auth = await startAuthService();
  upstream = await startUpstream();
  gw = await startGateway(`
pools:
  app: { targets: ["${upstream.url}"] }
middlewares:
  sso: { forwardAuth: { address: "${auth.url}/verify?app=shop", authResponseHeaders: [x-user, X-Email], timeout: 300ms } }
  picky: { forwardAuth: { address: "${auth.url}/picky", authRequestHeaders: [authorization], timeout: 2s } }
routes:
  - { name: protected, match: { path: "/app/*" }, middlewares: [sso], pool: app }
  - { name: picked, match: { path: "/picky/*" }, middlewares: [picky], pool: app }
  - { name: open, match: { path: "/open/*" }, pool: app }
`);
});

afterAll(async () => {
  await gw.close();
  await upstream.close();
  await auth.close();
});

afterEach(() => {
  auth.behaviour = 'allow';
  auth.decide = undefined;
  auth.identity = { 'x-user': 'alice', 'x-email': 'alice@example.com' };
});

/** Every value of a field (any case) in flat raw headers. */
function values(raw: readonly string[], name: string): string[] {
  const v: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() === name) v.push(raw[i + 1]);
  return v;
}

/** The head of a raw HTTP/1.1 response, parsed: status and flat headers. */
function parseRaw(text: string): { status: number; headers: string[]; body: string } {
  const end = text.indexOf('\r\n\r\n');
  const lines = text.slice(0, end).split('\r\n');
  const headers = lines.slice(1).flatMap((l) => {
    const at = l.indexOf(':');
    return [l.slice(0, at), l.slice(at + 1).trim()];
  });
  return { status: Number(lines[0].split(' ')[1]), headers, body: text.slice(end + 4) };
}

describe('forwardAuth through the gateway', () => {
  it('a 2xx lets the request through with the identity the auth service set; the check carries the request\'s facts', async () => {
    const before = auth.seen.length;
    const r = await send(`${gw.url}/app/orders?id=7`, { headers: { authorization: 'Bearer good', cookie: 'sid=abc' } });
    expect(r.status).toBe(200);
    const got = echoed(r);
    expect(got.url).toBe('/app/orders?id=7');
    expect(got.headers['x-user']).toBe('alice');
    expect(got.headers['x-email']).toBe('alice@example.com');
    expect(got.headers.authorization).toBe('Bearer good');
    const check = auth.seen[before];
    expect(check.method).toBe('GET');
    expect(check.url).toBe('/verify?app=shop');
    expect(check.headers).toMatchObject({
      host: `127.0.0.1:${auth.port}`,
      authorization: 'Bearer good',
      cookie: 'sid=abc',
      'x-forwarded-method': 'GET',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': `127.0.0.1:${gw.port}`,
      'x-forwarded-uri': '/app/orders?id=7',
      'x-forwarded-for': '127.0.0.1',
    });
    // The check and the forwarded request are one exchange for the logs.
    expect(check.headers['x-request-id']).toBe(r.headers['x-request-id']);
  });

  it('forged identity fields (any case, repeated, underscored) never reach the upstream, whether or not the answer sets them', async () => {
    const forged = (path: string): string =>
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nX-User: mallory\r\nx-user: eve\r\nX-USER: root\r\nx-EMAIL: boss@example.com\r\nX_User: under\r\nConnection: close\r\n\r\n`;
    const seen = upstream.seen.length;

    auth.identity = { 'x-user': 'alice' };
    const a = parseRaw(await rawExchange(gw.port, forged('/app/a')));
    expect(a.status).toBe(200);
    auth.identity = {};
    const b = parseRaw(await rawExchange(gw.port, forged('/app/b')));
    expect(b.status).toBe(200);

    const [ua, ub] = upstream.seen.slice(seen);
    expect(values(ua.rawHeaders, 'x-user')).toEqual(['alice']);
    expect(values(ua.rawHeaders, 'x-email')).toEqual([]);
    expect(values(ua.rawHeaders, 'x_user')).toEqual([]);
    expect(values(ub.rawHeaders, 'x-user')).toEqual([]);
    expect(values(ub.rawHeaders, 'x-email')).toEqual([]);
    expect(values(ub.rawHeaders, 'x_user')).toEqual([]);
  });

  it('a WebSocket handshake is checked too: forged identity is replaced, a denial answers on the raw socket', async () => {
    const handshakes: string[][] = [];
    const onUpgrade = (req: import('node:http').IncomingMessage, socket: import('node:stream').Duplex): void => {
      handshakes.push(req.rawHeaders);
      socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n');
    };
    upstream.server.on('upgrade', onUpgrade);
    try {
      const head = `GET /app/ws HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-User: mallory\r\nx-user: eve\r\n\r\n`;
      const ok = await rawExchange(gw.port, head);
      expect(ok.split('\r\n')[0]).toBe('HTTP/1.1 101 Switching Protocols');
      expect(handshakes).toHaveLength(1);
      expect(values(handshakes[0], 'x-user')).toEqual(['alice']);

      auth.behaviour = 'deny401';
      const denied = parseRaw(await rawExchange(gw.port, head));
      expect(denied.status).toBe(401);
      expect(values(denied.headers, 'www-authenticate')).toEqual([CHALLENGE]);
      expect(handshakes).toHaveLength(1);
    } finally {
      upstream.server.off('upgrade', onUpgrade);
    }
  });

  it('a POST body goes to the upstream after a 2xx, never to the auth service', async () => {
    const before = auth.seen.length;
    const body = 'name=widget&qty=3';
    const r = await send(`${gw.url}/app/cart`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
    expect(r.status).toBe(200);
    expect(echoed(r)).toMatchObject({ method: 'POST', body });
    const check = auth.seen[before];
    expect(check.method).toBe('GET');
    expect(check.body.length).toBe(0);
    expect(check.headers['content-length']).toBeUndefined();
    expect(check.headers['transfer-encoding']).toBeUndefined();
    expect(check.headers['x-forwarded-method']).toBe('POST');
    expect(check.headers['content-type']).toBe('application/x-www-form-urlencoded');
  });

  it('a redirect to the login page reaches the client untouched: status, location, set-cookie and body', async () => {
    auth.behaviour = 'redirect';
    const seen = upstream.seen.length;
    const r = await send(`${gw.url}/app/home`);
    expect(r.status).toBe(302);
    expect(r.headers.location).toBe(LOGIN_URL);
    expect(r.headers['set-cookie']).toEqual([LOGIN_COOKIE]);
    expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(r.body).toBe(LOGIN_BODY);
    expect(Number(r.headers['content-length'])).toBe(Buffer.byteLength(LOGIN_BODY));
    expect(values(r.rawHeaders, 'content-length')).toHaveLength(1);
    expect(upstream.seen.length).toBe(seen);
  });

  it('401 and 403 go to the client as they are, named in the access log and counted', async () => {
    const seen = upstream.seen.length;
    auth.behaviour = 'deny401';
    const from = gw.accessLogs().length;
    const a = await send(`${gw.url}/app/secret`);
    expect(a.status).toBe(401);
    expect(a.headers['www-authenticate']).toBe(CHALLENGE);
    expect(a.body).toBe('unauthorized by test auth');
    auth.behaviour = 'deny403';
    const b = await send(`${gw.url}/app/secret`);
    expect([b.status, b.body]).toEqual([403, 'forbidden by test auth']);
    expect(upstream.seen.length).toBe(seen);
    const lines = await gw.waitForAccessLogs(from + 2);
    expect(lines.slice(from).map((l) => l.rejectedBy)).toEqual(['sso', 'sso']);
    const metrics = await send(`${gw.admin}/metrics`);
    expect(metrics.body).toMatch(/waygate_middleware_rejections_total\{[^}]*route="protected"[^}]*middleware="sso"[^}]*kind="forwardAuth"[^}]*\} [1-9]/);
  });

  it('an auth service that hangs past the timeout: 503, never let through, with a warn line', async () => {
    auth.behaviour = 'hang';
    const seen = upstream.seen.length;
    const from = gw.logs.length;
    const r = await send(`${gw.url}/app/slow`);
    expect(r.status).toBe(503);
    expect(r.body).toBe('authentication service unavailable');
    expect(upstream.seen.length).toBe(seen);
    const line = await gw.waitForLog((l) => l.middleware === 'sso' && l.msg === 'forwardAuth: authentication service unavailable', from);
    expect(line).toMatchObject({ level: 40, reason: 'upstream_timeout', route: 'protected' });
  });

  it('an auth service that resets mid-answer: 503', async () => {
    auth.behaviour = 'reset';
    const seen = upstream.seen.length;
    const r = await send(`${gw.url}/app/x`);
    expect([r.status, r.body]).toEqual([503, 'authentication service unavailable']);
    expect(upstream.seen.length).toBe(seen);
  });

  it('an auth service that died: 503 naming nothing internal; restarted on the same port: allowed again', async () => {
    await auth.die();
    try {
      const r = await send(`${gw.url}/app/x`);
      expect([r.status, r.body]).toEqual([503, 'authentication service unavailable']);
      expect(JSON.stringify(r.headers)).not.toContain(String(auth.port));
    } finally {
      await auth.restart();
    }
    const ok = await send(`${gw.url}/app/x`);
    expect(ok.status).toBe(200);
    expect(echoed(ok).headers['x-user']).toBe('alice');
  });

  it('authRequestHeaders sends only the fields listed', async () => {
    const before = auth.seen.length;
    const r = await send(`${gw.url}/picky/a`, { headers: { authorization: 'Bearer p', cookie: 'sid=1', 'x-other': 'y' } });
    expect(r.status).toBe(200);
    const check = auth.seen[before];
    expect(check.url).toBe('/picky');
    expect(check.headers.authorization).toBe('Bearer p');
    expect(check.headers.cookie).toBeUndefined();
    expect(check.headers['x-other']).toBeUndefined();
    expect(check.headers['x-forwarded-uri']).toBe('/picky/a');
    // Not listed in authResponseHeaders: nothing of the answer is copied, the client's field is kept.
    expect(echoed(r).headers['x-user']).toBeUndefined();
  });

  it('keeps its connections to the auth service alive: many requests, few connections', async () => {
    const conns = auth.connections;
    for (let i = 0; i < 20; i++) expect((await send(`${gw.url}/app/k${i}`)).status).toBe(200);
    const batch = await Promise.all(Array.from({ length: 10 }, (_, i) => send(`${gw.url}/app/p${i}`)));
    expect(batch.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(auth.connections - conns).toBeLessThanOrEqual(11);
    expect(auth.connections - conns).toBeLessThan(30);
  });

  it('keeps its auth connections across a reload that keeps the middleware', async () => {
    expect((await send(`${gw.url}/app/before`)).status).toBe(200);
    const conns = auth.connections;
    const result = await gw.gateway.reload();
    expect(result.ok).toBe(true);
    for (let i = 0; i < 5; i++) expect((await send(`${gw.url}/app/after${i}`)).status).toBe(200);
    expect(auth.connections).toBe(conns);
  });

  it('a route without the middleware never asks the auth service', async () => {
    auth.behaviour = 'deny403';
    const before = auth.seen.length;
    const r = await send(`${gw.url}/open/page`, { headers: { 'x-user': 'client-says' } });
    expect(r.status).toBe(200);
    expect(echoed(r).headers['x-user']).toBe('client-says');
    expect(auth.seen.length).toBe(before);
  });

  it('/explain says forwardAuth cannot tell without asking; /status describes it', async () => {
    const before = auth.seen.length;
    const e = await send(`${gw.admin}/explain?url=${encodeURIComponent(`${gw.url}/app/x`)}`);
    expect(e.status).toBe(200);
    expect(JSON.parse(e.body).middlewares).toEqual([{ name: 'sso', kind: 'forwardAuth', result: 'unknown', why: `would ask ${auth.url}/verify?app=shop` }]);
    expect(auth.seen.length).toBe(before);
    const s = JSON.parse((await send(`${gw.admin}/status`)).body);
    expect(JSON.stringify(s)).toContain(`${auth.url}/verify?app=shop`);
  });
});

describe('forwardAuth config errors', () => {
  it('are located at file:line:col with the option path', () => {
    const text = [
      'middlewares:',
      '  sso: { forwardAuth: { address: "auth:9000/verify" } }',
      '  sso2: { forwardAuth: { address: "http://auth/verify", authResponseHeaders: [x-user, x_email] } }',
      '',
    ].join('\n');
    const r = parseRoutesText(text, 'routes/auth.yaml', {});
    expect(r.ok).toBe(false);
    const errors = r.ok ? [] : r.errors.map(formatConfigError);
    expect(errors).toEqual([
      expect.stringMatching(/^routes\/auth\.yaml:2:\d+ middlewares\.sso\.forwardAuth\.address: the auth service's address must start with http:\/\/ or https:\/\//),
      expect.stringMatching(/^routes\/auth\.yaml:3:\d+ middlewares\.sso2\.forwardAuth\.authResponseHeaders\[1\]: "x_email" cannot be copied/),
    ]);
  });
});

// The cors middleware built directly and driven with request objects: what a browser's
// preflight gets, which fields an actual response carries, and the load errors of bad options.
import { testDeps, testRequest } from './request.ts';
import { describe, expect, it } from 'vitest';
import { formatConfigError, parseRoutesText } from '../../src/config/load.ts';
import { addVaryOrigin, cors } from '../../src/middleware/cors.ts';
import type { Answer, Middleware, ResponseHead } from '../../src/middleware/types.ts';

const deps = testDeps('web-cors');

function build(options: Record<string, unknown>): Middleware {
  return cors.build(cors.options.parse(options), deps);
}

/** A request as the chain hands it over, recording the hooks registered on it. */
function request(method: string, headers: Record<string, string>): ReturnType<typeof testRequest> {
  return testRequest({ method, host: 'api.example.com', uri: '/things', route: 'api', headers });
}

const preflight = (origin: string, extra: Record<string, string> = {}) =>
  request('OPTIONS', { origin, 'access-control-request-method': 'POST', ...extra });

function fields(headers: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < headers.length; i += 2) {
    const n = headers[i].toLowerCase();
    out[n] = out[n] === undefined ? headers[i + 1] : `${out[n]}, ${headers[i + 1]}`;
  }
  return out;
}

const corsFields = (headers: readonly string[]): string[] => Object.keys(fields(headers)).filter((n) => n.startsWith('access-control-'));

/** Runs a passing request's hooks on an upstream head, as the forwarder does. */
function respond(r: ReturnType<typeof request>, upstreamHeaders: string[], status = 200, own = false): ResponseHead {
  const head: ResponseHead = { status, headers: [...upstreamHeaders], own };
  for (const h of r.hooks) h.head?.(head);
  return head;
}

const WEB = { origins: ['https://app.example.com'], methods: ['GET', 'POST'], headers: ['content-type', 'x-csrf'], credentials: true, maxAge: '10m' };

describe('cors preflight', () => {
  it('answers an allowed origin itself with 204, the configured policy and vary', () => {
    const mw = build(WEB);
    const r = preflight('https://app.example.com', { 'access-control-request-headers': 'content-type, x-secret' });
    const a = mw.request(r) as Answer;
    expect(a.status).toBe(204);
    expect(a.rejection).toBe(false);
    expect(a.body).toBe('');
    expect(fields(a.headers)).toEqual({
      'access-control-allow-origin': 'https://app.example.com',
      'access-control-allow-methods': 'GET, POST',
      // x-secret was asked for and is not configured: simply not listed.
      'access-control-allow-headers': 'content-type, x-csrf',
      'access-control-allow-credentials': 'true',
      'access-control-max-age': '600',
      vary: 'origin, access-control-request-method, access-control-request-headers',
    });
    expect(r.hooks).toHaveLength(0);
  });

  it('answers a disallowed origin with 204 and no access-control-* field', () => {
    const mw = build(WEB);
    const a = mw.request(preflight('https://evil.example.net')) as Answer;
    expect(a.status).toBe(204);
    expect(a.rejection).toBe(false);
    expect(corsFields(a.headers)).toEqual([]);
    expect(fields(a.headers).vary).toContain('origin');
  });

  it('uses the defaults: GET, HEAD, POST, no allow-headers, no credentials, no max-age', () => {
    const mw = build({ origins: ['https://app.example.com'] });
    const a = mw.request(preflight('https://app.example.com', { 'access-control-request-headers': 'content-type' })) as Answer;
    expect(fields(a.headers)).toEqual({
      'access-control-allow-origin': 'https://app.example.com',
      'access-control-allow-methods': 'GET, HEAD, POST',
      vary: 'origin, access-control-request-method, access-control-request-headers',
    });
  });

  it('sends "*" for origins ["*"] without credentials', () => {
    const a = build({ origins: ['*'] }).request(preflight('https://anyone.test')) as Answer;
    expect(fields(a.headers)['access-control-allow-origin']).toBe('*');
    expect(fields(a.headers)['access-control-allow-credentials']).toBeUndefined();
  });

  it('sends max-age in whole seconds, rounding down', () => {
    const a = build({ origins: ['https://app.example.com'], maxAge: '1500ms' }).request(preflight('https://app.example.com')) as Answer;
    expect(fields(a.headers)['access-control-max-age']).toBe('1');
  });

  it('treats an OPTIONS without Access-Control-Request-Method as an actual request', () => {
    const mw = build(WEB);
    const r = request('OPTIONS', { origin: 'https://app.example.com' });
    expect(mw.request(r)).toBeUndefined();
    expect(r.hooks).toHaveLength(1);
  });

  it('treats an OPTIONS without Origin as a plain request, not a preflight', () => {
    const mw = build(WEB);
    const r = request('OPTIONS', { 'access-control-request-method': 'POST' });
    expect(mw.request(r)).toBeUndefined();
    expect(r.hooks).toHaveLength(1);
  });
});

describe('cors origins', () => {
  const mw = build({ origins: ['https://*.example.com', 'http://localhost:3000', 'HTTPS://Admin.Example.org:443'] });
  const allowed = (origin: string): boolean => corsFields((mw.request(preflight(origin)) as Answer).headers).length > 0;

  it('a one-label wildcard matches one label, never two or none', () => {
    expect(allowed('https://app.example.com')).toBe(true);
    expect(allowed('https://a-b_c.example.com')).toBe(true);
    expect(allowed('https://a.b.example.com')).toBe(false);
    expect(allowed('https://example.com')).toBe(false);
    expect(allowed('https://.example.com')).toBe(false);
    expect(allowed('https://app.example.com.evil.net')).toBe(false);
    expect(allowed('https://appexample.com')).toBe(false);
  });

  it('the scheme and port are part of the origin', () => {
    expect(allowed('http://app.example.com')).toBe(false);
    expect(allowed('https://app.example.com:8443')).toBe(false);
    expect(allowed('http://localhost:3000')).toBe(true);
    expect(allowed('http://localhost')).toBe(false);
    expect(allowed('http://localhost:3001')).toBe(false);
  });

  it('configured origins are normalised to what browsers send: lower case, default port dropped', () => {
    expect(allowed('https://admin.example.org')).toBe(true);
    expect(mw.describe().origins).toEqual(['https://*.example.com', 'http://localhost:3000', 'https://admin.example.org']);
  });

  it('echoes the allowed origin as sent', () => {
    const a = mw.request(preflight('https://shop.example.com')) as Answer;
    expect(fields(a.headers)['access-control-allow-origin']).toBe('https://shop.example.com');
  });

  it('"null" and a repeated Origin are not allowed', () => {
    expect(allowed('null')).toBe(false);
    expect(allowed('https://app.example.com, https://app.example.com')).toBe(false);
  });
});

describe('cors on actual responses', () => {
  const mw = build({ ...WEB, exposeHeaders: ['x-total'] });

  it('adds allow-origin, allow-credentials and expose-headers for an allowed origin, with vary', () => {
    const r = request('GET', { origin: 'https://app.example.com' });
    expect(mw.request(r)).toBeUndefined();
    const head = respond(r, ['Content-Type', 'application/json']);
    expect(fields(head.headers)).toEqual({
      'content-type': 'application/json',
      'access-control-allow-origin': 'https://app.example.com',
      'access-control-allow-credentials': 'true',
      'access-control-expose-headers': 'x-total',
      vary: 'origin',
    });
  });

  it('replaces the access-control-* fields the upstream sent, for allowed and disallowed origins', () => {
    const upstream = ['Access-Control-Allow-Origin', '*', 'access-control-allow-methods', 'PUT', 'Access-Control-Expose-Headers', 'x-internal', 'x-ok', '1'];
    const ok = request('GET', { origin: 'https://app.example.com' });
    mw.request(ok);
    expect(fields(respond(ok, upstream).headers)).toEqual({
      'x-ok': '1',
      'access-control-allow-origin': 'https://app.example.com',
      'access-control-allow-credentials': 'true',
      'access-control-expose-headers': 'x-total',
      vary: 'origin',
    });
    const evil = request('GET', { origin: 'https://evil.example.net' });
    mw.request(evil);
    expect(fields(respond(evil, upstream).headers)).toEqual({ 'x-ok': '1', vary: 'origin' });
  });

  it('adds nothing but vary for a request without Origin', () => {
    const r = request('GET', {});
    mw.request(r);
    expect(fields(respond(r, ['content-type', 'text/plain']).headers)).toEqual({ 'content-type': 'text/plain', vary: 'origin' });
  });

  it('merges origin into the upstream vary, never twice', () => {
    const r = request('GET', { origin: 'https://app.example.com' });
    mw.request(r);
    expect(fields(respond(r, ['Vary', 'Accept-Encoding']).headers).vary).toBe('Accept-Encoding, origin');
    expect(fields(respond(r, ['vary', 'accept-encoding', 'Vary', 'Origin']).headers).vary).toBe('accept-encoding, Origin');
    expect(fields(respond(r, ['vary', '*']).headers).vary).toBe('*');
  });

  it('decorates waygate\'s own answers too (a later middleware\'s 401, a 502)', () => {
    const r = request('GET', { origin: 'https://app.example.com' });
    mw.request(r);
    expect(fields(respond(r, ['content-type', 'text/plain'], 502, true).headers)['access-control-allow-origin']).toBe('https://app.example.com');
  });

  it('addVaryOrigin appends to the last non-empty vary and adds one when none', () => {
    const h = ['vary', '', 'x', 'y'];
    addVaryOrigin(h);
    expect(h).toEqual(['vary', '', 'x', 'y', 'vary', 'origin']);
  });
});

describe('cors explain and describe', () => {
  const mw = build(WEB);
  it('says what it would do', () => {
    expect(mw.explain(preflight('https://app.example.com'))).toEqual({ result: 'answers', status: 204, why: 'answers the preflight (origin https://app.example.com allowed)' });
    expect(mw.explain(preflight('https://evil.test')).result).toBe('answers');
    expect(mw.explain(request('GET', { origin: 'https://app.example.com' })).why).toBe('passes, adds headers for origin https://app.example.com');
    expect(mw.explain(request('GET', { origin: 'https://evil.test' })).why).toBe('passes, origin https://evil.test not allowed');
    expect(mw.explain(request('GET', {})).result).toBe('passes');
  });

  it('describes its settings', () => {
    expect(mw.describe()).toEqual({ origins: ['https://app.example.com'], methods: ['GET', 'POST'], headers: ['content-type', 'x-csrf'], exposeHeaders: [], credentials: true, maxAgeSeconds: 600 });
  });
});

/** The formatted load errors of a routes file defining one cors middleware with these options. */
function loadErrors(options: string): string[] {
  const r = parseRoutesText(`middlewares:\n  web-cors:\n    cors: ${options}\n`, 'routes/web.yaml', {});
  if (r.ok) throw new Error('expected errors, got a valid config');
  return r.errors.map(formatConfigError);
}

describe('cors load errors', () => {
  it('refuses "*" with credentials: true, saying why and what to do', () => {
    const [e, ...rest] = loadErrors('{ origins: ["*"], credentials: true }');
    expect(rest).toEqual([]);
    expect(e).toMatch(/^routes\/web\.yaml:3:\d+ middlewares\.web-cors\.cors\.origins\[0\]: /);
    expect(e).toContain('credentials: true');
    expect(e).toContain("any site could then read responses made with the user's cookies");
    expect(e).toContain('list the origins allowed instead');
  });

  it('refuses "*" among other origins', () => {
    expect(loadErrors('{ origins: [https://a.example.com, "*"] }')[0]).toContain('"*" already allows every origin');
  });

  it('refuses an origin with a path, naming the one to write', () => {
    expect(loadErrors('{ origins: [https://app.example.com/] }')[0]).toContain('write "https://app.example.com"');
    expect(loadErrors('{ origins: [https://app.example.com/app] }')[0]).toContain('no path');
  });

  it('refuses what is not an origin', () => {
    for (const bad of ['app.example.com', 'https://', 'https://a.*.example.com', 'https://*example.com', 'https://app.example.com:99999', 'https://user@app.example.com', 'https://[nope]']) {
      expect(loadErrors(`{ origins: ["${bad}"] }`)[0], bad).toMatch(/origin/);
    }
    expect(loadErrors('{ origins: [] }')[0]).toContain('at least one origin');
  });

  it('refuses "*" in methods and headers, a bad header name, a bad maxAge and unknown keys', () => {
    expect(loadErrors('{ origins: ["*"], methods: ["*"] }')[0]).toContain('list the methods');
    expect(loadErrors('{ origins: ["*"], headers: ["*"] }')[0]).toContain('list the request headers');
    expect(loadErrors('{ origins: ["*"], headers: ["bad header"] }')[0]).toContain('invalid header name');
    expect(loadErrors('{ origins: ["*"], maxAge: 10 }')[0]).toContain('expected a duration');
    expect(loadErrors('{ origins: ["*"], allowOrigins: [] }')[0]).toContain('unknown key');
  });

  it('accepts IPv6, ports and other schemes', () => {
    const r = parseRoutesText('middlewares:\n  c:\n    cors: { origins: ["http://[::1]:8080", "capacitor://localhost", "https://*.example.com:8443"] }\n', 'routes/web.yaml', {});
    expect(r.ok).toBe(true);
  });
});

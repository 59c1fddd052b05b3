// rateLimit built directly (SPEC §8), on the in-process store with a clock the test moves:
// the 429 and its fields, `by`, the draft RateLimit fields, one bucket set per middleware
// shared by every route and reload, explain and the options' errors.
import { afterEach, describe, expect, test } from 'vitest';
import { createLimitStores } from '../../src/middleware/limits/index.ts';
import type { LimitStores } from '../../src/middleware/limits/stores.ts';
import { rateLimit } from '../../src/middleware/rate-limit.ts';
import type { Answer, Middleware } from '../../src/middleware/types.ts';
import { capturedLog, deps, field, request } from './limits/fixtures.ts';

let t = 0;
const stores: LimitStores[] = [];
function newStores(): LimitStores {
  const { log } = capturedLog();
  const s = createLimitStores({ cluster: false, log, onRedisState: () => {}, onStoreFailure: () => {} }, { local: { now: () => t, sweepEveryMs: 0 } });
  stores.push(s);
  return s;
}
function build(options: Record<string, unknown>, name = 'api', limits = newStores()): Middleware {
  const { log } = capturedLog();
  return rateLimit.build(rateLimit.options.parse(options), deps(name, limits, log));
}
afterEach(async () => {
  t = 0;
  for (const s of stores.splice(0)) await s.close();
});

describe('options', () => {
  test('defaults: period 1s, burst = average, by client-ip, store local, no headers', () => {
    expect(rateLimit.options.parse({ average: 5 })).toEqual({ average: 5, period: 1000, burst: 5, by: { source: 'client-ip', text: 'client-ip' }, store: 'local', headers: false });
    expect(rateLimit.options.parse({ average: 5, period: '1m', burst: 2, by: 'header:X-Api-Key', store: 'redis', headers: true })).toMatchObject({ period: 60_000, burst: 2, by: { source: 'header', header: 'x-api-key' }, store: 'redis', headers: true });
  });

  const messages = (o: unknown): string[] => {
    const r = rateLimit.options.safeParse(o);
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };
  test.each([
    [{}, /^average: /],
    [{ average: 0 }, /^average: /],
    [{ average: 1.5 }, /^average: /],
    [{ average: 1, burst: 0 }, /^burst: /],
    [{ average: 1, period: '0s' }, /^period: must be at least 1ms/],
    [{ average: 1, period: 'soon' }, /^period: expected a duration/],
    [{ average: 1, by: 'cookie' }, /^by: expected client-ip, host or header:NAME, got "cookie"/],
    [{ average: 1, by: 'header:bad name' }, /^by: invalid header name "bad name"/],
    [{ average: 1, store: 'memcached' }, /^store: /],
    [{ average: 1, headers: 'yes' }, /^headers: /],
    [{ average: 1, avg: 2 }, /unknown key; expected one of: average, period, burst, by, store, headers/],
    [{ average: 1, burst: 1e9, period: '1000h' }, /^burst: burst × period is too large/],
  ])('%j is refused with a message that says what is wrong', (o, message) => {
    const m = messages(o);
    expect(m.length).toBeGreaterThan(0);
    expect(m.join('\n')).toMatch(message);
  });
});

test('within the limit, a check answers synchronously (no promise) and lets the request through', () => {
  const m = build({ average: 2 });
  const r = request();
  expect(m.request(r)).toBeUndefined();
  expect(r.hooks).toHaveLength(0);
});

test('over the limit: 429 "rate limited", retry-after in whole seconds, text/plain, counted as a rejection', () => {
  const m = build({ average: 1, period: '1m', burst: 2 });
  expect(m.request(request())).toBeUndefined();
  expect(m.request(request())).toBeUndefined();
  const a = m.request(request()) as Answer;
  expect(a.status).toBe(429);
  expect(a.body).toBe('rate limited');
  expect(a.rejection).toBe(true);
  expect(field(a.headers, 'content-type')).toBe('text/plain; charset=utf-8');
  // One token a minute.
  expect(field(a.headers, 'retry-after')).toBe('60');
  expect(field(a.headers, 'ratelimit')).toBeUndefined();
  t += 59_001;
  expect(field((m.request(request()) as Answer).headers, 'retry-after')).toBe('1');
  t += 999;
  expect(m.request(request())).toBeUndefined();
});

test('retry-after rounds up and is never 0: 3 per second, next token in 334 ms → 1', () => {
  const m = build({ average: 3, burst: 1 });
  m.request(request());
  t += 1;
  expect(field((m.request(request()) as Answer).headers, 'retry-after')).toBe('1');
});

test('by client-ip: each address has its own bucket', () => {
  const m = build({ average: 1, period: '1h' });
  expect(m.request(request({ clientIp: '192.0.2.1' }))).toBeUndefined();
  expect(m.request(request({ clientIp: '192.0.2.1' }))).toMatchObject({ status: 429 });
  expect(m.request(request({ clientIp: '2001:db8::1' }))).toBeUndefined();
});

test('by host: each host has its own bucket, whatever the client', () => {
  const m = build({ average: 1, period: '1h', by: 'host' });
  expect(m.request(request({ host: 'a.test', clientIp: '192.0.2.1' }))).toBeUndefined();
  expect(m.request(request({ host: 'a.test', clientIp: '192.0.2.2' }))).toMatchObject({ status: 429 });
  expect(m.request(request({ host: 'b.test', clientIp: '192.0.2.1' }))).toBeUndefined();
});

test('by header:NAME: each value its own bucket; no header → the client IP\'s bucket, which a header naming that IP cannot spend', () => {
  const m = build({ average: 1, period: '1h', by: 'header:x-api-key' });
  const keyed = (v: string, ip = '192.0.2.1') => m.request(request({ clientIp: ip, headers: { 'x-api-key': v } }));
  expect(keyed('alice')).toBeUndefined();
  expect(keyed('alice', '192.0.2.99')).toMatchObject({ status: 429 });
  expect(keyed('bob')).toBeUndefined();
  // The header names an address: still the header's own bucket.
  expect(keyed('192.0.2.7')).toBeUndefined();
  expect(m.request(request({ clientIp: '192.0.2.7' }))).toBeUndefined();
  expect(m.request(request({ clientIp: '192.0.2.7' }))).toMatchObject({ status: 429 });
  // An empty header counts as none.
  expect(keyed('', '192.0.2.7')).toMatchObject({ status: 429 });
});

test('a very long header value is one key like any other (hashed), and differs from another long one', () => {
  const m = build({ average: 1, period: '1h', by: 'header:x-api-key' });
  const long = (c: string) => request({ headers: { 'x-api-key': c.repeat(10_000) } });
  expect(m.request(long('a'))).toBeUndefined();
  expect(m.request(long('a'))).toMatchObject({ status: 429 });
  expect(m.request(long('b'))).toBeUndefined();
});

describe('headers: true', () => {
  test('a passed request gets RateLimit-Policy and RateLimit on its response, through a head() hook', () => {
    const m = build({ average: 10, period: '10s', burst: 5, headers: true });
    const r = request();
    expect(m.request(r)).toBeUndefined();
    const h = r.headOf();
    // q = burst; w = seconds to refill the whole bucket from empty: 5 tokens at 1 per second.
    expect(field(h, 'ratelimit-policy')).toBe('"api";q=5;w=5');
    // 4 tokens left, full again in 1 s.
    expect(field(h, 'ratelimit')).toBe('"api";r=4;t=1');
    expect(field(h, 'content-type')).toBe('text/plain');
  });

  test('each response carries the count of its own take, not of a later one', () => {
    const m = build({ average: 1, period: '1m', burst: 3, headers: true });
    const first = request();
    const second = request();
    m.request(first);
    m.request(second);
    expect(field(first.headOf(), 'ratelimit')).toBe('"api";r=2;t=60');
    expect(field(second.headOf(), 'ratelimit')).toBe('"api";r=1;t=120');
  });

  test('the 429 carries them too: r=0 and t = retry-after', () => {
    const m = build({ average: 1, period: '1m', burst: 1, headers: true });
    m.request(request());
    const a = m.request(request()) as Answer;
    expect(field(a.headers, 'ratelimit-policy')).toBe('"api";q=1;w=60');
    expect(field(a.headers, 'ratelimit')).toBe('"api";r=0;t=60');
    expect(field(a.headers, 'retry-after')).toBe('60');
  });
});

test('one bucket set per middleware: two routes listing it, or a rebuild after a reload with the same settings, share it', () => {
  const limits = newStores();
  const routeA = build({ average: 1, period: '1h', burst: 2 }, 'api', limits);
  const routeB = build({ average: 1, period: '1h', burst: 2 }, 'api', limits);
  expect(routeA.request(request())).toBeUndefined();
  expect(routeB.request(request())).toBeUndefined();
  expect(routeA.request(request())).toMatchObject({ status: 429 });
  expect(routeB.request(request())).toMatchObject({ status: 429 });
  // headers is not a bucket setting: still the same set.
  expect(build({ average: 1, period: '1h', burst: 2, headers: true }, 'api', limits).request(request())).toMatchObject({ status: 429 });
  // Another middleware, or changed settings: buckets of their own.
  expect(build({ average: 1, period: '1h', burst: 2 }, 'other', limits).request(request())).toBeUndefined();
  expect(build({ average: 1, period: '1h', burst: 3 }, 'api', limits).request(request())).toBeUndefined();
});

test('explain peeks without taking', () => {
  const m = build({ average: 1, period: '1h', burst: 2 });
  expect(m.explain(request())).toMatchObject({ result: 'passes' });
  expect(m.explain(request()).why).toContain('2 of 2 tokens');
  m.request(request());
  m.request(request());
  for (let i = 0; i < 3; i++) expect(m.explain(request())).toMatchObject({ result: 'rejects', status: 429 });
  expect(m.explain(request({ clientIp: '192.0.2.200' }))).toMatchObject({ result: 'passes' });
  t += 3_600_000;
  expect(m.request(request())).toBeUndefined();
});

test('describe shows the settings', () => {
  expect(build({ average: 3, period: '2s', by: 'header:X-Key', headers: true }).describe()).toEqual({ average: 3, periodMs: 2000, burst: 3, by: 'header:x-key', store: 'local', headers: true });
});

test('store: redis without `redis` in waygate.yaml is a build error that says so', () => {
  expect(() => build({ average: 1, store: 'redis' })).toThrow('store: redis needs `redis` in waygate.yaml');
});

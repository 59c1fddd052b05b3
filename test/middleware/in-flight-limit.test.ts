// inFlightLimit built directly (SPEC §8), on the in-process store: `amount` per key, 429 over
// it, the count given back when the exchange ends (once), explain and the options' errors.
import { afterEach, expect, test } from 'vitest';
import { inFlightLimit } from '../../src/middleware/in-flight-limit.ts';
import { createLimitStores } from '../../src/middleware/limits/index.ts';
import type { LimitStores } from '../../src/middleware/limits/stores.ts';
import type { Answer, Middleware } from '../../src/middleware/types.ts';
import { capturedLog, deps, field, request } from './limits/fixtures.ts';

const stores: LimitStores[] = [];
function build(options: Record<string, unknown>, name = 'fair', limits?: LimitStores): Middleware {
  const { log } = capturedLog();
  if (limits === undefined) {
    limits = createLimitStores({ cluster: false, log, onRedisState: () => {}, onStoreFailure: () => {} });
    stores.push(limits);
  }
  return inFlightLimit.build(inFlightLimit.options.parse(options), deps(name, limits, log));
}
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});

test('options: amount is required and a whole number ≥ 1; by defaults to client-ip; unknown keys are named', () => {
  expect(inFlightLimit.options.parse({ amount: 3 })).toEqual({ amount: 3, by: { source: 'client-ip', text: 'client-ip' } });
  for (const bad of [{}, { amount: 0 }, { amount: 2.5 }, { amount: 1, by: 'ip' }, { amount: 1, max: 2 }]) expect(inFlightLimit.options.safeParse(bad).success).toBe(false);
  const r = inFlightLimit.options.safeParse({ amount: 1, by: 'ip' });
  expect(r.success ? '' : r.error.issues[0].message).toBe('expected client-ip, host or header:NAME, got "ip"');
});

test('at most `amount` in flight per key; one more is answered 429 "too many requests in flight", synchronously', () => {
  const m = build({ amount: 2 });
  const a = request();
  const b = request();
  expect(m.request(a)).toBeUndefined();
  expect(m.request(b)).toBeUndefined();
  const refused = m.request(request()) as Answer;
  expect(refused).toMatchObject({ status: 429, body: 'too many requests in flight', rejection: true });
  expect(field(refused.headers, 'content-type')).toBe('text/plain; charset=utf-8');
  // Another client is not affected.
  expect(m.request(request({ clientIp: '192.0.2.2' }))).toBeUndefined();
  // An exchange that ends gives its place back.
  a.finish();
  expect(m.request(request())).toBeUndefined();
  expect(m.request(request())).toMatchObject({ status: 429 });
});

test('a refused request holds nothing, and an ended exchange gives back exactly one place', () => {
  const m = build({ amount: 1 });
  const a = request();
  m.request(a);
  const refused = request();
  m.request(refused);
  refused.finish();
  expect(m.request(request())).toMatchObject({ status: 429 });
  a.finish();
  a.finish();
  const c = request();
  expect(m.request(c)).toBeUndefined();
  expect(m.request(request())).toMatchObject({ status: 429 });
  c.finish();
});

test('by header:NAME counts per header value; without the header, per client IP', () => {
  const m = build({ amount: 1, by: 'header:x-tenant' });
  expect(m.request(request({ headers: { 'x-tenant': 'a' } }))).toBeUndefined();
  expect(m.request(request({ headers: { 'x-tenant': 'a' }, clientIp: '192.0.2.9' }))).toMatchObject({ status: 429 });
  expect(m.request(request({ headers: { 'x-tenant': 'b' } }))).toBeUndefined();
  expect(m.request(request())).toBeUndefined();
  expect(m.request(request())).toMatchObject({ status: 429 });
});

test('routes sharing the middleware share its counts; explain peeks without counting', () => {
  const { log } = capturedLog();
  const limits = createLimitStores({ cluster: false, log, onRedisState: () => {}, onStoreFailure: () => {} });
  stores.push(limits);
  const a = build({ amount: 2 }, 'fair', limits);
  const b = build({ amount: 2 }, 'fair', limits);
  expect(a.explain(request())).toMatchObject({ result: 'passes', why: '0 of 2 requests in flight for this client-ip' });
  a.request(request());
  b.request(request());
  expect(a.explain(request())).toMatchObject({ result: 'rejects', status: 429 });
  expect(b.explain(request())).toMatchObject({ result: 'rejects', status: 429 });
  expect(a.request(request())).toMatchObject({ status: 429 });
  expect(b.describe()).toEqual({ amount: 2, by: 'client-ip' });
});

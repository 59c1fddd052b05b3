// `store: redis` against a real redis-server (SPEC §8): replicas share one bucket set, a check
// is atomic under concurrency, keys expire once full, and with Redis killed mid-test failMode
// decides (open: through; closed: 503), each failure is reported and logged (rate-limited),
// and the reconnect is observed once Redis is back on the same port.
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { createLimitStores } from '../../../src/middleware/limits/index.ts';
import { bucketKey } from '../../../src/middleware/limits/redis.ts';
import type { BucketSpec, LimitStores } from '../../../src/middleware/limits/stores.ts';
import { rateLimit } from '../../../src/middleware/rate-limit.ts';
import type { Answer, Middleware } from '../../../src/middleware/types.ts';
import { closedPort } from '../../refusing-port.ts';
import { startRedis } from '../../redis-helpers.ts';
import type { TestRedis } from '../../redis-helpers.ts';
import { capturedLog, deps, request } from './fixtures.ts';

let redis: TestRedis;
let admin: Redis;
let prefixes = 0;

beforeAll(async () => {
  redis = await startRedis();
  admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  // It reconnects on its own after the restarts below; its errors meanwhile are expected.
  admin.on('error', () => {});
  await admin.connect();
});
afterAll(async () => {
  admin.disconnect();
  await redis.close();
});

/** One "replica": its own LimitStores and Redis connection, and what it reported. */
interface Replica {
  stores: LimitStores;
  states: boolean[];
  failures: [string, string][];
  lines: Record<string, unknown>[];
  /** Resolves once the Redis connection flipped to `up`. */
  flipped(up: boolean): Promise<void>;
}

const open: Replica[] = [];
function replica(o: { failMode?: 'open' | 'closed'; keyPrefix: string; url?: string; timeout?: number }): Replica {
  const { log, lines } = capturedLog();
  const states: boolean[] = [];
  const failures: [string, string][] = [];
  const waiters: (() => void)[] = [];
  const stores = createLimitStores({
    redis: { url: o.url ?? redis.url, failMode: o.failMode ?? 'open', timeout: o.timeout ?? 250, keyPrefix: o.keyPrefix },
    cluster: false,
    log,
    onRedisState: (up) => {
      states.push(up);
      for (const w of waiters.splice(0)) w();
    },
    onStoreFailure: (m, f) => void failures.push([m, f]),
  });
  const r: Replica = {
    stores,
    states,
    failures,
    lines,
    async flipped(up) {
      while (states.at(-1) !== up) await new Promise<void>((res) => waiters.push(res));
    },
  };
  open.push(r);
  return r;
}
afterEach(async () => {
  for (const r of open.splice(0)) await r.stores.close();
});

const freshPrefix = (): string => `test${process.pid}-${prefixes++}:`;
const spec = (id: string, burst: number, average = 1, periodMs = 3_600_000): BucketSpec => ({ id, burst, average, periodMs });

test('two replicas on one Redis share one bucket set: their takes together admit burst', async () => {
  const keyPrefix = freshPrefix();
  const ra = replica({ keyPrefix });
  const a = ra.stores.buckets(spec('api', 5), 'redis');
  const b = replica({ keyPrefix }).stores.buckets(spec('api', 5), 'redis');
  const results = [];
  for (let i = 0; i < 8; i++) results.push(await (i % 2 === 0 ? a : b).take('192.0.2.1'));
  expect(results.map((r) => r.allowed)).toEqual([true, true, true, true, true, false, false, false]);
  expect(results.map((r) => r.remaining)).toEqual([4, 3, 2, 1, 0, 0, 0, 0]);
  // One token an hour: the refusal says so (Redis's clock, ms).
  expect(results[5].resetMs).toBeGreaterThan(3_590_000);
  expect(results[5].resetMs).toBeLessThanOrEqual(3_600_000);
  // Other keys and other sets are untouched.
  expect((await a.take('192.0.2.2')).allowed).toBe(true);
  expect((await replica({ keyPrefix }).stores.buckets(spec('other', 5), 'redis').take('192.0.2.1')).allowed).toBe(true);
  // Knowing without taking needs a round trip: peek says it cannot.
  expect(a.peek('192.0.2.1')).toBeUndefined();
  // Closing is no outage: nothing reported down.
  await ra.stores.close();
  expect(ra.states).toEqual([true]);
  expect(ra.lines.filter((l) => l.msg === 'redis for rate limits is down')).toEqual([]);
});

test('atomic under concurrency: 300 concurrent takes from two replicas on a bucket of 37 admit exactly 37', async () => {
  const keyPrefix = freshPrefix();
  const sets = [replica({ keyPrefix, timeout: 5000 }), replica({ keyPrefix, timeout: 5000 })].map((r) => r.stores.buckets(spec('burst', 37), 'redis'));
  const results = await Promise.all(Array.from({ length: 300 }, (_, i) => sets[i % 2].take('k')));
  expect(results.filter((r) => r.allowed)).toHaveLength(37);
  // Every remaining count from 36 down to 0 was handed out exactly once.
  expect(results.filter((r) => r.allowed).map((r) => r.remaining).sort((x, y) => x - y)).toEqual(Array.from({ length: 37 }, (_, i) => i));
});

test('a bucket key expires when the bucket would be full again, and a refusal writes nothing', async () => {
  const keyPrefix = freshPrefix();
  // 1 per 10 minutes, burst 2: after two takes it is full again in 20 minutes.
  const s = spec('ttl', 2, 1, 600_000);
  const set = replica({ keyPrefix }).stores.buckets(s, 'redis');
  await set.take('x');
  const key = bucketKey(keyPrefix, s.id, 'x');
  const first = await admin.pttl(key);
  expect(first).toBeGreaterThan(590_000);
  expect(first).toBeLessThanOrEqual(600_000);
  await set.take('x');
  expect(await admin.pttl(key)).toBeGreaterThan(1_190_000);
  const before = await admin.hgetall(key);
  expect((await set.take('x')).allowed).toBe(false);
  expect(await admin.hgetall(key)).toEqual(before);
});

test('Redis unreachable from the start: a check waits at most the timeout, then fails; the down state is reported', async () => {
  const port = await closedPort();
  const r = replica({ keyPrefix: freshPrefix(), url: `redis://127.0.0.1:${port}` });
  const set = r.stores.buckets(spec('api', 1), 'redis');
  await expect(set.take('k')).rejects.toThrow();
  await r.flipped(false);
  expect(r.states).toEqual([false]);
});

describe('Redis killed and restarted mid-test', () => {
  async function limited(failMode: 'open' | 'closed'): Promise<{ r: Replica; m: Middleware }> {
    const r = replica({ keyPrefix: freshPrefix(), failMode });
    const { log } = capturedLog();
    const m = rateLimit.build(rateLimit.options.parse({ average: 1, period: '1h', burst: 1, store: 'redis' }), deps('api', r.stores, log));
    return { r, m };
  }

  test('failMode open: requests go through while it is down, each failure is counted, one log line; the reconnect is observed and limiting resumes', async () => {
    const { r, m } = await limited('open');
    expect(await m.request(request())).toBeUndefined();
    expect(await m.request(request())).toMatchObject({ status: 429 });
    await r.flipped(true);
    await redis.stop();
    await r.flipped(false);
    for (let i = 0; i < 5; i++) expect(await m.request(request())).toBeUndefined();
    expect(r.failures).toEqual(Array.from({ length: 5 }, () => ['api', 'open']));
    const lines = r.lines.filter((l) => String(l.msg).startsWith('rate limit store unavailable'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, middleware: 'api', failMode: 'open', msg: 'rate limit store unavailable: requests let through' });
    expect(r.lines.some((l) => l.msg === 'redis for rate limits is down')).toBe(true);
    await redis.restart();
    await r.flipped(true);
    expect(r.states).toEqual([true, false, true]);
    // A fresh Redis: the bucket starts full again, and limits again.
    expect(await m.request(request())).toBeUndefined();
    expect(await m.request(request())).toMatchObject({ status: 429 });
    expect(r.failures).toHaveLength(5);
  });

  test('failMode closed: while it is down requests are answered 503 "rate limit store unavailable"; after the reconnect they pass again', async () => {
    const { r, m } = await limited('closed');
    expect(await m.request(request())).toBeUndefined();
    await r.flipped(true);
    await redis.stop();
    await r.flipped(false);
    const a = (await m.request(request({ clientIp: '192.0.2.50' }))) as Answer;
    expect(a).toMatchObject({ status: 503, body: 'rate limit store unavailable', rejection: true });
    expect(JSON.stringify(a)).not.toMatch(/127\.0\.0\.1|ECONNREFUSED|redis:\/\//);
    expect(r.failures).toEqual([['api', 'closed']]);
    expect(r.lines.find((l) => String(l.msg).startsWith('rate limit store unavailable'))).toMatchObject({ failMode: 'closed', msg: 'rate limit store unavailable: requests answered 503' });
    await redis.restart();
    await r.flipped(true);
    expect(await m.request(request({ clientIp: '192.0.2.50' }))).toBeUndefined();
  });
});

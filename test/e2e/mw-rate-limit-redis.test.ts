// rateLimit with `store: redis` end to end (SPEC §8): two waygate instances on one real
// redis-server share one bucket set; with Redis killed, the failMode open instance lets
// requests through and the closed one answers 503, both count and log it, and both see Redis
// come back when it restarts on the same port.
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { StaticConfig } from '../../src/config/schema.ts';
import { send, startGateway, startUpstream } from '../helpers.ts';
import type { TestGateway, Upstream } from '../helpers.ts';
import { startRedis } from '../redis-helpers.ts';
import type { TestRedis } from '../redis-helpers.ts';

let redis: TestRedis;
let up: Upstream;
let open: TestGateway;
let closed: TestGateway;

beforeAll(async () => {
  redis = await startRedis();
  up = await startUpstream();
  const routes = `
pools:
  app: { targets: ["${up.url}"] }
middlewares:
  shared: { rateLimit: { average: 1, period: 1h, burst: 4, by: "header:x-client", store: redis } }
routes:
  - { name: r, pool: app, middlewares: [shared] }
`;
  const withRedis = (failMode: 'open' | 'closed') => (c: StaticConfig) => {
    c.redis = { url: redis.url, failMode, timeout: 250, keyPrefix: `e2e${process.pid}:` };
  };
  open = await startGateway(routes, withRedis('open'));
  closed = await startGateway(routes, withRedis('closed'));
});
afterAll(async () => {
  await open?.close();
  await closed?.close();
  await up?.close();
  await redis?.close();
});

const get = (gw: TestGateway, client: string) => send(`${gw.url}/x`, { headers: { 'x-client': client } });
const metrics = async (gw: TestGateway) => (await fetch(`${gw.admin}/metrics`)).text();

test('two instances share one bucket set: together they admit burst, then both answer 429', async () => {
  const statuses: number[] = [];
  for (let i = 0; i < 8; i++) statuses.push((await get(i % 2 === 0 ? open : closed, 'shared-client')).status);
  expect(statuses).toEqual([200, 200, 200, 200, 429, 429, 429, 429]);
  const r = await get(open, 'shared-client');
  expect(r.body).toBe('rate limited');
  expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
  // Another client is not limited by it.
  expect((await get(closed, 'another')).status).toBe(200);
});

test('Redis killed: open lets requests through, closed answers 503; both count and log it; the restart is noticed and limits apply again', async () => {
  await open.waitForLog((l) => l.msg === 'redis for rate limits is up');
  await closed.waitForLog((l) => l.msg === 'redis for rate limits is up');
  const openFrom = open.logs.length;
  const closedFrom = closed.logs.length;
  await redis.stop();
  await open.waitForLog((l) => l.msg === 'redis for rate limits is down', openFrom);
  await closed.waitForLog((l) => l.msg === 'redis for rate limits is down', closedFrom);

  // The bucket of shared-client is empty, but the store cannot say so: failMode decides.
  expect((await get(open, 'shared-client')).status).toBe(200);
  const refused = await get(closed, 'shared-client');
  expect(refused.status).toBe(503);
  expect(refused.body).toBe('rate limit store unavailable');
  expect(refused.body).not.toMatch(/redis|127\.0\.0\.1|ECONN/i);
  expect((await closed.waitForAccessLogs(1)).findLast((l) => l.reqId === refused.headers['x-request-id'])).toMatchObject({ status: 503, rejectedBy: 'shared' });
  expect(await metrics(open)).toMatch(/waygate_rate_limit_store_failures_total\{middleware="shared",fail_mode="open"\} 1\b/);
  expect(await metrics(closed)).toMatch(/waygate_rate_limit_store_failures_total\{middleware="shared",fail_mode="closed"\} 1\b/);
  expect(await metrics(closed)).toMatch(/waygate_redis_up 0\b/);
  await open.waitForLog((l) => l.msg === 'rate limit store unavailable: requests let through', openFrom);
  await closed.waitForLog((l) => l.msg === 'rate limit store unavailable: requests answered 503', closedFrom);

  await redis.restart();
  await open.waitForLog((l) => l.msg === 'redis for rate limits is up', openFrom);
  await closed.waitForLog((l) => l.msg === 'redis for rate limits is up', closedFrom);
  expect(await metrics(closed)).toMatch(/waygate_redis_up 1\b/);
  // A fresh Redis holds no buckets: full again, shared again, limited again.
  const statuses: number[] = [];
  for (let i = 0; i < 6; i++) statuses.push((await get(i % 2 === 0 ? closed : open, 'shared-client')).status);
  expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
});

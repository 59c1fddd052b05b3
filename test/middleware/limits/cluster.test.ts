// The worker ↔ primary limit protocol (cluster.ts) with its two ends wired back to back, the
// way node:cluster's channel carries them (asynchronously, in order). The real channel between
// real processes is test/e2e/mw-rate-limit-workers.test.ts.
import { afterEach, expect, test, vi } from 'vitest';
import { ASK_TIMEOUT_MS, ClusterBuckets, ClusterInFlight, LimitHost, PrimaryLink } from '../../../src/middleware/limits/cluster.ts';
import type { LimitAsk } from '../../../src/middleware/limits/cluster.ts';
import { createLimitStores } from '../../../src/middleware/limits/index.ts';
import { LocalLimits } from '../../../src/middleware/limits/local.ts';
import type { BucketSpec } from '../../../src/middleware/limits/stores.ts';
import { capturedLog } from './fixtures.ts';

const spec: BucketSpec = { id: 'api|1/3600000ms|burst=3|by=client-ip', average: 1, periodMs: 3_600_000, burst: 3 };

/** A primary and `n` workers' links; `asks` records every message a worker sent. */
function cluster(n: number, o: { deliver?: boolean } = {}) {
  const host = new LimitHost(new LocalLimits({ sweepEveryMs: 0 }));
  const asks: LimitAsk[] = [];
  let deliver = o.deliver ?? true;
  const held: (() => void)[] = [];
  const links = Array.from({ length: n }, (_, worker) => {
    const link = new PrimaryLink();
    link.attach((ask) => {
      asks.push(ask);
      const go = (): void => {
        const a = host.answer(worker + 1, ask);
        if (a !== undefined) setImmediate(() => link.settle(a));
      };
      if (deliver) setImmediate(go);
      else held.push(go);
    });
    return link;
  });
  return {
    host,
    links,
    asks,
    /** Stops delivering (a primary that hangs); resume() delivers what waited, in order. */
    hang: () => void (deliver = false),
    resume: () => {
      deliver = true;
      for (const go of held.splice(0)) go();
    },
  };
}

afterEach(() => {
  vi.useRealTimers();
});

test('workers share the primary\'s buckets: two workers\' takes together admit burst (never ×workers)', async () => {
  const c = cluster(2);
  const sets = c.links.map((l) => new ClusterBuckets(l, spec));
  const results = [];
  for (let i = 0; i < 6; i++) results.push(await sets[i % 2].take('192.0.2.1'));
  expect(results.map((r) => r.allowed)).toEqual([true, true, true, false, false, false]);
  expect(sets[0].peek()).toBeUndefined();
  c.host.close();
});

test('the questions of one event-loop turn go as one message, answered in order', async () => {
  const c = cluster(1);
  const set = new ClusterBuckets(c.links[0], spec);
  const results = await Promise.all([set.take('a'), set.take('a'), set.take('b'), set.take('a'), set.take('a')]);
  expect(c.asks).toHaveLength(1);
  expect(c.asks[0].ops).toHaveLength(5);
  expect(results.map((r) => r.allowed)).toEqual([true, true, true, true, false]);
  expect(results.map((r) => r.remaining)).toEqual([2, 1, 2, 0, 0]);
  c.host.close();
});

test('in flight across workers: one count per instance; a release needs no answer; a worker that exits gives back what it held', async () => {
  const c = cluster(2);
  const [w1, w2] = c.links.map((l) => new ClusterInFlight(l, 'fair|amount=2', 2));
  expect(await w1.acquire('k')).toBe(true);
  expect(await w2.acquire('k')).toBe(true);
  expect(await w1.acquire('k')).toBe(false);
  w2.release('k');
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  // Releases only: the message asks for no answer.
  expect(c.asks.at(-1)).toMatchObject({ id: 0, ops: [{ op: 'release' }] });
  expect(await w1.acquire('k')).toBe(true);
  expect(await w2.acquire('k')).toBe(false);
  // Worker 1 holds both places and exits: they come back.
  c.host.forget(1);
  expect(await w2.acquire('k')).toBe(true);
  expect(await w2.acquire('k')).toBe(true);
  expect(await w2.acquire('k')).toBe(false);
  c.host.close();
});

test('a stray release (more releases than acquires) never frees another worker\'s count', async () => {
  const c = cluster(2);
  const [w1, w2] = c.links.map((l) => new ClusterInFlight(l, 'fair|amount=1', 1));
  expect(await w1.acquire('k')).toBe(true);
  w2.release('k');
  w2.release('k');
  expect(await w2.acquire('k')).toBe(false);
  c.host.close();
});

test('a primary that does not answer in time fails the question; an acquire it granted late is given back', async () => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  const c = cluster(1);
  const counter = new ClusterInFlight(c.links[0], 'slow|amount=1', 1);
  c.hang();
  const late = counter.acquire('k');
  const failed = expect(late).rejects.toThrow(`the cluster primary did not answer within ${ASK_TIMEOUT_MS} ms`);
  await new Promise((r) => setImmediate(r));
  vi.advanceTimersByTime(ASK_TIMEOUT_MS);
  await failed;
  // The primary wakes up, grants it, and the worker gives the place back at once.
  c.resume();
  for (let i = 0; i < 4; i++) await new Promise((r) => setImmediate(r));
  expect(c.asks.at(-1)).toMatchObject({ id: 0, ops: [{ op: 'release', key: 'k' }] });
  expect(await counter.acquire('k')).toBe(true);
  c.host.close();
});

test('a link that was never attached (not a worker) fails its questions instead of hanging', async () => {
  await expect(new ClusterBuckets(new PrimaryLink(), spec).take('k')).rejects.toThrow('not a cluster worker');
});

test('createLimitStores in a worker asks the primary; outside one it refuses to pretend', async () => {
  const { log } = capturedLog();
  const base = { log, onRedisState: () => {}, onStoreFailure: () => {} };
  expect(() => createLimitStores({ ...base, cluster: true }, { link: new PrimaryLink() })).toThrow('cluster primary link');
  const c = cluster(1);
  const stores = createLimitStores({ ...base, cluster: true }, { link: c.links[0] });
  const set = stores.buckets(spec, 'local');
  expect(stores.buckets({ ...spec }, 'local')).toBe(set);
  expect(set.take('k')).toBeInstanceOf(Promise);
  await set.take('k');
  expect(stores.inFlight('x', 1).peek('k')).toBeUndefined();
  expect(stores.failMode).toBe('open');
  expect(stores.hasRedis).toBe(false);
  await stores.close();
  c.host.close();
});

// rateLimit's entry in the shared middleware table. The table sends each request once, so the
// refused key must be empty before the gateway starts: the buckets live in a real Redis
// (`store: redis`), and setup() spends the one token of the refused client's bucket through a
// LimitStores of its own, as a second replica would. One token an hour: it stays spent.
import { createLimitStores } from '../../../src/middleware/limits/index.ts';
import { keyFunction } from '../../../src/middleware/limits/key.ts';
import { bucketSpec, rateLimit } from '../../../src/middleware/rate-limit.ts';
import type { RequestFacts } from '../../../src/middleware/types.ts';
import { startRedis } from '../../redis-helpers.ts';
import { capturedLog } from '../limits/fixtures.ts';
import type { TableCase } from './case.ts';

/** The name the table gives its middleware. */
const TABLE_NAME = 'mw';
const SPENT = 'table-spent';

/** rateLimit: a fresh client passes; one whose bucket another replica emptied gets 429. */
export const rateLimitCase: TableCase = {
  kind: 'rateLimit',
  async setup() {
    const redis = await startRedis();
    const options = { average: 1, period: '1h', burst: 1, by: 'header:x-client', store: 'redis', headers: true };
    const config = { redis: { url: redis.url, failMode: 'closed' as const, timeout: 1000, keyPrefix: 'table:' } };
    const { log } = capturedLog();
    const replica = createLimitStores({ redis: config.redis, cluster: false, log, onRedisState: () => {}, onStoreFailure: () => {} });
    const parsed = rateLimit.options.parse(options);
    const key = keyFunction(parsed.by)({ clientIp: '127.0.0.1', header: (n: string) => (n === 'x-client' ? SPENT : undefined) } as RequestFacts);
    const spent = await replica.buckets(bucketSpec(TABLE_NAME, parsed), 'redis').take(key);
    await replica.close();
    if (!spent.allowed) throw new Error('the refused client\'s token was already spent');
    return { options, config, close: () => redis.close() };
  },
  passes: { path: '/x', headers: { host: 'table.test', 'x-client': 'table-fresh' } },
  answered: { path: '/x', headers: { host: 'table.test', 'x-client': SPENT }, status: 429 },
};

// The middleware parts of the soak's config (SPEC §8): the routes file's `middlewares:` map from
// the pools' MiddlewareSpecs (a name several pools list must be defined the same way by each),
// and whether waygate.yaml needs a `redis:` (a `store: redis` rate limit).
import { isDeepStrictEqual } from 'node:util';
import type { MiddlewareSpec, PoolSpec } from '../types.ts';

/** `middlewares:` of the routes file: name → { kind: options }; throws on one name defined two ways. */
export function middlewareMap(pools: readonly PoolSpec[]): Record<string, Record<string, unknown>> | undefined {
  const byName = new Map<string, MiddlewareSpec>();
  for (const p of pools) {
    for (const m of p.middlewares ?? []) {
      const seen = byName.get(m.name);
      if (seen !== undefined && (seen.kind !== m.kind || !isDeepStrictEqual(seen.options, m.options))) {
        throw new Error(`middleware ${m.name} is defined two ways (pool ${p.name}): ${JSON.stringify(seen)} and ${JSON.stringify(m)}`);
      }
      byName.set(m.name, m);
    }
  }
  if (byName.size === 0) return undefined;
  return Object.fromEntries([...byName].map(([name, m]) => [name, { [m.kind]: m.options }]));
}

/** Whether some pool's route has a rateLimit with `store: redis`. */
export function needsRedis(pools: readonly PoolSpec[]): boolean {
  return pools.some((p) => p.middlewares?.some((m) => m.kind === 'rateLimit' && m.options.store === 'redis') === true);
}

/** The waygate.yaml `redis:` the soak runs with: failMode open (requests flow while it is down). */
export function redisConfig(url: string): Record<string, unknown> {
  return { url, failMode: 'open', timeout: '250ms' };
}

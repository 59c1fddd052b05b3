// Builds a routes directory's middlewares (SPEC §8): the files they name are read first (so a
// users file reloads with the routes), then each kind's build() runs with what it needs. A
// problem is an Error whose message is located at the middleware's file:line:col, like a
// schema error: a reload that hits one is refused and the routes in force keep serving.
import { readFile } from 'node:fs/promises';
import type { RoutesConfig } from '../config/load.ts';
import { formatConfigError } from '../config/load.ts';
import type { Logger } from '../observe/logger.ts';
import type { UpstreamPool } from '../upstream/pool.ts';
import { TargetRegistry } from '../upstream/registry.ts';
import type { Target } from '../upstream/target.ts';
import { KINDS } from './kinds.ts';
import type { LimitStores } from './limits/stores.ts';
import type { Middleware, MiddlewareKind } from './types.ts';

/** What building middlewares needs besides the routes: the files read, the stores, the log. */
export interface MiddlewareDeps {
  readonly files: ReadonlyMap<string, Buffer>;
  readonly limits: LimitStores;
  readonly log: Logger;
}

type Entry = RoutesConfig['middlewares'] extends Map<string, infer E> ? E : never;

function kindOf(m: Entry): MiddlewareKind {
  return KINDS[m.kind] as unknown as MiddlewareKind;
}

function located(name: string, m: Entry, message: string): Error {
  const s = m.source;
  return new Error(formatConfigError({ file: s.file, line: s.line, col: s.col, path: `middlewares.${name}.${m.kind}`, message }));
}

/** Reads every file a middleware names; rejects with a located error for one that cannot be read. */
export async function readMiddlewareFiles(routes: RoutesConfig): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const [name, m] of routes.middlewares) {
    for (const file of kindOf(m).files?.(m.options) ?? []) {
      if (out.has(file)) continue;
      try {
        out.set(file, await readFile(file));
      } catch (err) {
        throw located(name, m, `cannot read "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    }
  }
  return out;
}

/**
 * Builds every middleware of `routes`. A target a middleware needs (forwardAuth's address) comes
 * from `registry` and is added to `targets`, so it outlives the reload like the pools' targets.
 */
export function buildMiddlewares(routes: RoutesConfig, pools: ReadonlyMap<string, UpstreamPool>, registry: TargetRegistry, targets: Set<Target>, deps: MiddlewareDeps): Map<string, Middleware> {
  const out = new Map<string, Middleware>();
  const target = (pool: string, url: string): Target => {
    const t = registry.obtain(pool, url, 1);
    targets.add(t);
    return t;
  };
  try {
    for (const [name, m] of routes.middlewares) {
      try {
        out.set(name, kindOf(m).build(m.options, { name, files: deps.files, pools, target, limits: deps.limits, log: deps.log }));
      } catch (err) {
        throw located(name, m, (err as Error).message);
      }
    }
  } catch (err) {
    closeMiddlewares(out.values());
    throw err;
  }
  return out;
}

/** Closes middlewares a reload dropped (their shared state stays in the stores). */
export function closeMiddlewares(list: Iterable<Middleware>): void {
  for (const m of list) {
    try {
      m.close?.();
    } catch {
      // a middleware's cleanup failing must not stop the others'
    }
  }
}

/** Token buckets that always admit: what a trial build (--check) gives rate limits, so none talks to Redis. */
const TRIAL_STORES: LimitStores = {
  buckets: () => ({ take: () => ({ allowed: true, remaining: 0, resetMs: 0 }), peek: () => undefined }),
  inFlight: () => ({ acquire: () => true, release: () => {}, peek: () => undefined }),
  hasRedis: true,
  failMode: 'open',
  storeFailed: () => {},
  close: async () => {},
};

/**
 * --check: reads the middlewares' files and builds every middleware once, with no store and no
 * connection, so a users file that cannot be read or holds a refused hash is reported like a
 * schema error. Returns the error lines (empty when all build).
 */
export async function verifyMiddlewares(routes: RoutesConfig, log: Logger): Promise<string[]> {
  if (routes.middlewares.size === 0) return [];
  try {
    const files = await readMiddlewareFiles(routes);
    const registry = new TargetRegistry();
    closeMiddlewares(buildMiddlewares(routes, new Map(), registry, new Set(), { files, limits: TRIAL_STORES, log }).values());
    await registry.closeAll();
    return [];
  } catch (err) {
    return [(err as Error).message];
  }
}

// What the direct middleware tests hand a kind: a MiddlewareRequest as the chain builds one
// (recording the hooks it gets), and BuildDeps for kinds that need no pool, target or store.
import { createLoggers } from '../../src/observe/logger.ts';
import type { LimitStores } from '../../src/middleware/limits/stores.ts';
import type { BuildDeps, MiddlewareRequest, ResponseHook } from '../../src/middleware/types.ts';

/** The request's facts; anything not given gets a plain default. */
export interface RequestInit {
  readonly method?: string;
  readonly scheme?: 'http' | 'https';
  readonly host?: string;
  readonly uri?: string;
  readonly clientIp?: string;
  readonly route?: string;
  readonly websocket?: boolean;
  /** Request headers; names are matched case-insensitively, as node:http does. */
  readonly headers?: Record<string, string>;
}

/** Returns a MiddlewareRequest whose registered response hooks are in `hooks`. */
export function testRequest(init: RequestInit = {}): MiddlewareRequest & { hooks: ResponseHook[] } {
  const headers = init.headers ?? {};
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  const hooks: ResponseHook[] = [];
  const host = init.host ?? 'app.test';
  return {
    method: init.method ?? 'GET', scheme: init.scheme ?? 'https', host, hostHeader: host, uri: init.uri ?? '/', clientIp: init.clientIp ?? '127.0.0.1',
    requestId: 'req-1', route: init.route ?? 'r', websocket: init.websocket ?? false,
    header: (n) => lower[n],
    rawHeaders: Object.entries(headers).flat(),
    upstream: { remove: () => {}, set: () => {} },
    onResponse: (h) => void hooks.push(h),
    onDone: () => {},
    hooks,
  };
}

/** A silent logger. */
export const silentLog = createLoggers({ level: 'silent', access: false, destination: { write: () => {} } }).log;

/** BuildDeps for a kind that asks for no target and keeps no limit state; `extra` overrides. */
export function testDeps(name: string, extra: Partial<BuildDeps> = {}): BuildDeps {
  return {
    name,
    files: new Map(),
    pools: new Map(),
    target: () => {
      throw new Error(`${name} asks for no target`);
    },
    // A store the kind never calls.
    limits: undefined as unknown as LimitStores,
    log: silentLog,
    ...extra,
  };
}

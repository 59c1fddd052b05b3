// What the limit tests build middlewares with: a MiddlewareRequest as the chain would hand it
// over (facts, upstream edits, response hooks, onDone), BuildDeps around a LimitStores, and a
// logger whose lines the test reads.
import { createLoggers } from '../../../src/observe/logger.ts';
import type { Logger } from '../../../src/observe/logger.ts';
import type { LimitStores } from '../../../src/middleware/limits/stores.ts';
import type { BuildDeps, MiddlewareRequest, ResponseHead, ResponseHook } from '../../../src/middleware/types.ts';

/** A request for a middleware, with what it registered. */
export interface TestRequest extends MiddlewareRequest {
  readonly hooks: ResponseHook[];
  /** Runs the onDone callbacks, as the end of the exchange does. */
  finish(): void;
  /** Runs every head() hook over a 200 response; returns its headers. */
  headOf(status?: number): string[];
}

/** A request from `clientIp` with `headers` (lower-case names). */
export function request(o: { clientIp?: string; host?: string; headers?: Record<string, string> } = {}): TestRequest {
  const headers = o.headers ?? {};
  const hooks: ResponseHook[] = [];
  let done: (() => void)[] = [];
  let finished = false;
  return {
    method: 'GET',
    scheme: 'http',
    host: o.host ?? 'example.test',
    hostHeader: o.host ?? 'example.test',
    uri: '/',
    clientIp: o.clientIp ?? '192.0.2.1',
    requestId: 'req-1',
    route: 'r',
    websocket: false,
    header: (name) => headers[name],
    rawHeaders: Object.entries(headers).flat(),
    upstream: { remove() {}, set() {} },
    onResponse: (h) => void hooks.push(h),
    onDone(fn) {
      if (finished) fn();
      else done.push(fn);
    },
    hooks,
    finish() {
      finished = true;
      const fns = done;
      done = [];
      for (const fn of fns) fn();
    },
    headOf(status = 200) {
      const head: ResponseHead = { status, headers: ['content-type', 'text/plain'], own: false };
      for (const h of hooks) h.head?.(head);
      return head.headers;
    },
  };
}

/** The value of header `name` in a flat [name, value, …] list (all of them, joined by ", "). */
export function field(headers: readonly string[], name: string): string | undefined {
  const values: string[] = [];
  for (let i = 0; i < headers.length; i += 2) if (headers[i].toLowerCase() === name) values.push(headers[i + 1]);
  return values.length === 0 ? undefined : values.join(', ');
}

/** A logger that keeps its lines. */
export function capturedLog(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const { log } = createLoggers({ level: 'debug', access: false, destination: { write: (l: string) => void lines.push(JSON.parse(l)) } });
  return { log, lines };
}

/** BuildDeps for a limit middleware named `name`. */
export function deps(name: string, limits: LimitStores, log: Logger): BuildDeps {
  return {
    name,
    files: new Map(),
    pools: new Map(),
    target: () => {
      throw new Error('limit middlewares need no target');
    },
    limits,
    log,
  };
}

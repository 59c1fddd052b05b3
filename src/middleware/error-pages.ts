// SPEC §8 `errorPages`: the body of an error answer replaced by a page of the user's own — a
// file read with the routes (and reloaded with them), or a page fetched from a pool through
// waygate's own upstream client. The status is kept: a client, a monitor or a cache must still
// see the 503 it got. Upstream answers in `status` are replaced, and of waygate's own answers
// only its 502/503/504 (the upstream's failures); another middleware's 401/403/429 carries
// fields (WWW-Authenticate, retry-after) its own body goes with.
import { extname } from 'node:path';
import { z } from 'zod';
import { name, nonEmpty, strict } from '../config/fields.ts';
import { statusRanges } from '../config/net-fields.ts';
import type { StatusRange } from '../config/net-fields.ts';
import { duration } from '../config/units.ts';
import { fetchFrom } from '../upstream/fetch.ts';
import type { UpstreamPool } from '../upstream/pool.ts';
import type { Explained, MiddlewareKind, MiddlewareRequest, Replacement, ResponseHead, ResponseHook } from './types.ts';

/** How long a page fetch from `pool` may take when `timeout` is omitted (ms). */
export const DEFAULT_PAGE_TIMEOUT_MS = 5000;
/** The largest error page: a longer one (file or fetched) is refused, not truncated. */
export const MAX_PAGE_BYTES = 1024 * 1024;
/** waygate's own answers a page may replace: the upstream failures (SPEC §4). */
export const OWN_REPLACEABLE = [502, 503, 504];

const PLACEHOLDER = '{status}';
const LOWEST_ERROR = 400;
// Where a fetched page's own fields say what its bytes are; the original's content-* are replaced.
const PAGE_FIELDS = ['content-type', 'content-encoding', 'content-language'];
const DEFAULT_TYPE = 'application/octet-stream';
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.xml': 'application/xml',
};
// A request target's path: no space, control byte or fragment (RFC 9112 §3.2).
const PATH_RE = /^\/[^\s#\x00-\x1f\x7f]*$/;

/** Returns the content-type of a page file, from its extension. */
export function contentTypeOf(file: string): string {
  return TYPES[extname(file).toLowerCase()] ?? DEFAULT_TYPE;
}

const options = strict({
  status: z.array(statusRanges(), { error: 'expected a list of statuses and ranges such as [404, "502-504"]' })
    .refine((l) => l.length > 0, { error: 'list at least one status, such as [404, "502-504"]' })
    .superRefine((specs, ctx) => {
      specs.forEach((ranges, i) => {
        if (ranges.some(([lo]) => lo < LOWEST_ERROR)) {
          ctx.addIssue({ code: 'custom', path: [i], message: `errorPages replaces the bodies of error answers: statuses 400-599 only` });
        }
      });
    }),
  file: nonEmpty().optional(),
  pool: name().optional(),
  path: z.string().regex(PATH_RE, { error: 'expected a path such as /errors/{status}.html (starting with "/", no spaces)' }).optional(),
  timeout: duration().default(DEFAULT_PAGE_TIMEOUT_MS),
}).superRefine((o, ctx) => {
  if (o.file !== undefined && (o.pool !== undefined || o.path !== undefined)) {
    ctx.addIssue({ code: 'custom', path: [o.pool !== undefined ? 'pool' : 'path'], params: { at: 'key' }, message: 'use either `file` or `pool` + `path`, not both' });
  } else if (o.file === undefined && o.pool === undefined && o.path === undefined) {
    ctx.addIssue({ code: 'custom', path: [], message: 'errorPages needs the page: `file` (e.g. errors/5xx.html) or `pool` + `path` (e.g. /errors/{status}.html)' });
  } else if (o.file === undefined && o.pool === undefined) {
    ctx.addIssue({ code: 'custom', path: ['path'], params: { at: 'key' }, message: '`path` needs `pool`: the pool the page is fetched from' });
  } else if (o.file === undefined && o.path === undefined) {
    ctx.addIssue({ code: 'custom', path: ['pool'], params: { at: 'key' }, message: '`pool` needs `path`: the page to fetch from it, e.g. /errors/{status}.html' });
  }
});

/** The options of an errorPages middleware, as validated. */
export type ErrorPagesOptions = z.output<typeof options>;

function rangeText([lo, hi]: StatusRange): string {
  return lo === hi ? String(lo) : `${lo}-${hi}`;
}

// The fields of the page a pool answered with that describe its bytes.
function pageFields(raw: readonly string[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i].toLowerCase();
    if (PAGE_FIELDS.includes(n) && !seen.has(n)) {
      seen.add(n);
      out.push(n, raw[i + 1]);
    }
  }
  if (!seen.has('content-type')) out.push('content-type', DEFAULT_TYPE);
  return out;
}

/** The errorPages middleware kind (SPEC §8). */
export const errorPages: MiddlewareKind<typeof options> = {
  kind: 'errorPages',
  options,
  files(o) {
    return o.file === undefined ? [] : [o.file];
  },
  build(o, deps) {
    const ranges = o.status.flat();
    const listed = new Uint8Array(600);
    for (const [lo, hi] of ranges) listed.fill(1, lo, hi + 1);
    const statusText = ranges.map(rangeText).join(', ');
    const replaces = (head: Readonly<ResponseHead>): boolean =>
      listed[head.status] === 1 && (!head.own || OWN_REPLACEABLE.includes(head.status));

    let page: (r: MiddlewareRequest, status: number) => Replacement | Promise<Replacement | undefined>;
    let source: string;
    if (o.file !== undefined) {
      const file = o.file;
      const body = deps.files.get(file);
      if (body === undefined) throw new Error(`errorPages: the file "${file}" was not read`);
      if (body.length > MAX_PAGE_BYTES) throw new Error(`errorPages: the file "${file}" is ${body.length} bytes; an error page is at most ${MAX_PAGE_BYTES} bytes (1 MiB)`);
      const replacement: Replacement = { headers: ['content-type', contentTypeOf(file)], body };
      page = () => replacement;
      source = `the file ${file}`;
    } else {
      const poolName = o.pool!;
      const path = o.path!;
      const pool = deps.pools.get(poolName);
      if (pool === undefined) throw new Error(`errorPages: pool "${poolName}" is not defined`);
      if (pool.targets.some((t) => t.origin.startsWith('tcp:') || t.origin.startsWith('udp:'))) {
        throw new Error(`errorPages: pool "${poolName}" is a TCP/UDP pool; pages are fetched over HTTP`);
      }
      page = (r, status) => fetchPage(pool, path.replaceAll(PLACEHOLDER, String(status)), r, o.timeout, (err) => {
        deps.log.warn({ middleware: deps.name, pool: poolName, status, reqId: r.requestId, err: err.message }, 'error page not fetched: the original body is sent');
      });
      source = `${path} from pool ${poolName}`;
    }

    return {
      name: deps.name,
      kind: 'errorPages',
      request(r: MiddlewareRequest) {
        const hook: ResponseHook = {
          replace: (head) => (replaces(head) ? page(r, head.status) : undefined),
        };
        r.onResponse(hook);
        return undefined;
      },
      explain(): Explained {
        return { result: 'passes', why: `passes; replaces the body of statuses ${statusText} (upstream answers, and waygate's own 502/503/504 among them) with ${source}` };
      },
      describe() {
        const common = { status: ranges.map(rangeText) };
        return o.file !== undefined ? { ...common, file: o.file } : { ...common, pool: o.pool, path: o.path, timeoutMs: o.timeout };
      },
    };
  },
};

// A GET of the page through waygate's own client; undefined (keep the original body) when no
// target is available, the fetch fails, or the page is not a 2xx. Never rejects.
async function fetchPage(pool: UpstreamPool, path: string, r: MiddlewareRequest, timeout: number, failed: (err: Error) => void): Promise<Replacement | undefined> {
  const target = pool.first({ clientIp: r.clientIp }, undefined);
  if (target instanceof Error) {
    failed(target);
    return undefined;
  }
  try {
    const host = target.origin.slice(target.origin.indexOf('//') + 2);
    const headers = ['host', host, 'accept', r.header('accept') ?? '*/*', 'x-request-id', r.requestId];
    const res = await fetchFrom(target, pool.settings.connect, { method: 'GET', path, headers, timeout, maxBody: MAX_PAGE_BYTES });
    if (res.status < 200 || res.status > 299) {
      failed(new Error(`the page answered ${res.status}`));
      return undefined;
    }
    return { headers: pageFields(res.headers), body: res.body };
  } catch (err) {
    failed(err as Error);
    return undefined;
  }
}

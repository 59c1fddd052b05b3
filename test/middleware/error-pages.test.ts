// The errorPages middleware built directly, its replace() hook called on response heads as the
// forwarder calls it: pages from a file and from a real pool over real sockets, the statuses it
// replaces and the ones it leaves alone, and the load errors of bad options.
import { testDeps, testRequest } from './request.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POLICIES } from '../../src/balance/index.ts';
import { formatConfigError, parseRoutesText } from '../../src/config/load.ts';
import { contentTypeOf, errorPages, MAX_PAGE_BYTES } from '../../src/middleware/error-pages.ts';
import type { BuildDeps, Middleware, Replacement, ResponseHead } from '../../src/middleware/types.ts';
import { createLoggers } from '../../src/observe/logger.ts';
import { UpstreamPool } from '../../src/upstream/pool.ts';
import { Target } from '../../src/upstream/target.ts';
import type { TargetConnectOptions } from '../../src/upstream/target.ts';
import { closedPort, startUpstream } from '../helpers.ts';
import type { Upstream } from '../helpers.ts';

const PAGE = '<h1>We will be right back</h1>';
const logs: Record<string, unknown>[] = [];
const { log } = createLoggers({ level: 'info', access: false, destination: { write: (l: string) => void logs.push(JSON.parse(l)) } });

const CONNECT: TargetConnectOptions = { connectTimeout: 2000, keepAliveTimeout: 2000, h2: false, client: 'builtin', proxyProtocol: 'off', key: 'test' };
const targets: Target[] = [];

/** A real pool of real targets, as the runtime builds one. */
function pool(name: string, urls: string[]): UpstreamPool {
  const ts = urls.map((u) => new Target(name, u, 1));
  targets.push(...ts);
  return new UpstreamPool(name, ts, POLICIES['round-robin'], { responseTimeout: 5000, idleTimeout: 5000, retries: 0, retryAfter: 1, connect: CONNECT, h2: false, onTargetDown: 'keep' });
}

function deps(extra: Partial<BuildDeps> = {}): BuildDeps {
  return testDeps('nice-errors', { log, ...extra });
}

function build(options: Record<string, unknown>, d: BuildDeps): Middleware {
  return errorPages.build(errorPages.options.parse(options), d);
}

/** A request as the chain hands it over, recording the hooks registered on it. */
function request(headers: Record<string, string> = {}): ReturnType<typeof testRequest> {
  return testRequest({ scheme: 'http', host: 'shop.test', uri: '/cart', route: 'shop', headers });
}

/** What the middleware's hook gives for a head of this status. */
async function replaced(mw: Middleware, status: number, own = false, r = request()): Promise<Replacement | undefined> {
  expect(mw.request(r)).toBeUndefined();
  expect(r.hooks).toHaveLength(1);
  const head: ResponseHead = { status, headers: ['content-type', 'text/plain', 'content-length', '3'], own };
  return await r.hooks[0].replace!(head);
}

const fileDeps = () => deps({ files: new Map([['errors/maintenance.html', Buffer.from(PAGE)]]) });

afterAll(async () => {
  await Promise.all(targets.map((t) => t.close()));
});

describe('errorPages with a file', () => {
  const mw = build({ status: [404, '502-504'], file: 'errors/maintenance.html' }, fileDeps());

  it('asks the loader for its file', () => {
    expect(errorPages.files!(errorPages.options.parse({ status: [404], file: 'errors/maintenance.html' }))).toEqual(['errors/maintenance.html']);
    expect(errorPages.files!(errorPages.options.parse({ status: [404], pool: 'pages', path: '/x' }))).toEqual([]);
  });

  it('replaces upstream 502, 503, 504 and 404 with the file, typed by its extension', async () => {
    for (const status of [404, 502, 503, 504]) {
      const rep = await replaced(mw, status);
      expect(rep?.body.toString(), String(status)).toBe(PAGE);
      expect(rep?.headers).toEqual(['content-type', 'text/html; charset=utf-8']);
    }
  });

  it('leaves statuses outside the list alone (500, 200, 501, 505)', async () => {
    for (const status of [500, 200, 501, 505, 403]) expect(await replaced(mw, status), String(status)).toBeUndefined();
  });

  it("replaces waygate's own 502/503/504, never its other answers (401, 403, 429, a respond route's 404)", async () => {
    for (const status of [502, 503, 504]) expect((await replaced(mw, status, true))?.body.toString(), String(status)).toBe(PAGE);
    const all = build({ status: ['400-599'], file: 'errors/maintenance.html' }, fileDeps());
    for (const status of [401, 403, 404, 429, 500]) expect(await replaced(all, status, true), String(status)).toBeUndefined();
    expect(await replaced(all, 429, false)).toBeDefined();
  });

  it('types pages by extension', () => {
    expect(contentTypeOf('a/b.HTML')).toBe('text/html; charset=utf-8');
    expect(contentTypeOf('e.json')).toBe('application/json');
    expect(contentTypeOf('e.txt')).toBe('text/plain; charset=utf-8');
    expect(contentTypeOf('e.bin')).toBe('application/octet-stream');
    expect(contentTypeOf('noext')).toBe('application/octet-stream');
  });

  it('refuses a file over 1 MiB at build time, for the user to read', () => {
    const big = deps({ files: new Map([['big.html', Buffer.alloc(MAX_PAGE_BYTES + 1)]]) });
    expect(() => build({ status: [502], file: 'big.html' }, big)).toThrow(/big\.html.*at most/);
  });

  it('says what it replaces', () => {
    expect(mw.explain(request())).toEqual({ result: 'passes', why: "passes; replaces the body of statuses 404, 502-504 (upstream answers, and waygate's own 502/503/504 among them) with the file errors/maintenance.html" });
    expect(mw.describe()).toEqual({ status: ['404', '502-504'], file: 'errors/maintenance.html' });
  });
});

describe('errorPages from a pool', () => {
  let pages: Upstream;
  let slow: Upstream;
  beforeAll(async () => {
    pages = await startUpstream((req, res) => {
      const m = /^\/errors\/(\d{3})\.html$/.exec(req.url!);
      if (m === null) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('no such page');
      } else if (m[1] === '599') {
        res.writeHead(200, { 'content-type': 'text/html' }).end('x'.repeat(MAX_PAGE_BYTES + 10));
      } else {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-language': 'en', etag: '"p"' }).end(`<p>status ${m[1]} for ${req.headers['x-request-id']}</p>`);
      }
    });
    // Takes the request and never answers: the page fetch must give up at its timeout.
    slow = await startUpstream(() => {});
  });
  afterAll(async () => {
    await pages.close();
    await slow.close();
  });

  const poolDeps = (p: UpstreamPool) => deps({ pools: new Map([[p.name, p]]) });

  it('fetches path with {status} substituted and sends its bytes and content-type', async () => {
    const p = pool('pages', [pages.url]);
    const mw = build({ status: ['500-504'], pool: 'pages', path: '/errors/{status}.html' }, poolDeps(p));
    const rep = await replaced(mw, 503);
    expect(rep?.body.toString()).toBe('<p>status 503 for req-1</p>');
    expect(rep?.headers).toEqual(['content-type', 'text/html; charset=utf-8', 'content-language', 'en']);
    const seen = pages.seen.at(-1)!;
    expect(seen.method).toBe('GET');
    expect(seen.url).toBe('/errors/503.html');
    expect(seen.headers.host).toBe(`127.0.0.1:${pages.port}`);
    expect((await replaced(mw, 502, true))?.body.toString()).toBe('<p>status 502 for req-1</p>');
    expect(p.targets[0].inFlight).toBe(0);
  });

  it('keeps the original body (undefined) when the page answers non-2xx, and logs why', async () => {
    const p = pool('pages-missing', [pages.url]);
    const mw = build({ status: [502], pool: 'pages-missing', path: '/nothing/{status}' }, poolDeps(p));
    const from = logs.length;
    expect(await replaced(mw, 502)).toBeUndefined();
    const line = logs.slice(from).find((l) => l.msg === 'error page not fetched: the original body is sent');
    expect(line).toMatchObject({ middleware: 'nice-errors', pool: 'pages-missing', status: 502, err: 'the page answered 404' });
  });

  it('keeps the original body when the page pool is down (connection refused)', async () => {
    const p = pool('pages-down', [`http://127.0.0.1:${await closedPort()}`]);
    const mw = build({ status: [502], pool: 'pages-down', path: '/errors/{status}.html' }, poolDeps(p));
    expect(await replaced(mw, 502)).toBeUndefined();
    expect(p.targets[0].inFlight).toBe(0);
  });

  it('keeps the original body when no page target is available', async () => {
    const p = pool('pages-unhealthy', [pages.url]);
    p.targets[0].setActiveHealth(false);
    const mw = build({ status: [502], pool: 'pages-unhealthy', path: '/errors/{status}.html' }, poolDeps(p));
    const before = pages.seen.length;
    expect(await replaced(mw, 502)).toBeUndefined();
    expect(pages.seen.length).toBe(before);
  });

  it('keeps the original body when the page is over 1 MiB', async () => {
    const p = pool('pages-big', [pages.url]);
    const mw = build({ status: [599], pool: 'pages-big', path: '/errors/{status}.html' }, poolDeps(p));
    expect(await replaced(mw, 599)).toBeUndefined();
  });

  it('gives up on a page slower than timeout and keeps the original body', async () => {
    const p = pool('pages-slow', [slow.url]);
    const mw = build({ status: [504], pool: 'pages-slow', path: '/errors/{status}.html', timeout: '200ms' }, poolDeps(p));
    expect(await replaced(mw, 504)).toBeUndefined();
    expect(slow.seen.at(-1)?.url).toBe('/errors/504.html');
    expect(p.targets[0].inFlight).toBe(0);
  });

  it('describes and explains the pool page', () => {
    const p = pool('pages-desc', [pages.url]);
    const mw = build({ status: [502, 503], pool: 'pages-desc', path: '/e/{status}' }, poolDeps(p));
    expect(mw.describe()).toEqual({ status: ['502', '503'], pool: 'pages-desc', path: '/e/{status}', timeoutMs: 5000 });
    expect(mw.explain(request()).why).toContain('/e/{status} from pool pages-desc');
  });

  it('refuses to build without its pool', () => {
    expect(() => build({ status: [502], pool: 'nope', path: '/e' }, deps())).toThrow('pool "nope" is not defined');
  });
});

/** The formatted load errors of a routes file defining one errorPages middleware with these options. */
function loadErrors(options: string): string[] {
  const r = parseRoutesText(`middlewares:\n  nice-errors:\n    errorPages: ${options}\n`, 'routes/web.yaml', {});
  if (r.ok) throw new Error('expected errors, got a valid config');
  return r.errors.map(formatConfigError);
}

describe('errorPages load errors', () => {
  it('needs a page, one way only', () => {
    expect(loadErrors('{ status: [502] }')[0]).toContain('needs the page');
    expect(loadErrors('{ status: [502], file: a.html, pool: p, path: /x }')[0]).toContain('either `file` or `pool` + `path`');
    expect(loadErrors('{ status: [502], pool: p }')[0]).toContain('`pool` needs `path`');
    expect(loadErrors('{ status: [502], path: /x }')[0]).toContain('`path` needs `pool`');
    // The loader also says the pool p is unknown: both errors are reported.
    const both = loadErrors('{ status: [502], pool: p, path: errors/x.html }');
    expect(both.some((e) => /errorPages\.path: .*starting with "\/"/.test(e)), both.join('\n')).toBe(true);
    expect(both.some((e) => e.includes('unknown pool "p"'))).toBe(true);
  });

  it('needs statuses of errors, as a list', () => {
    expect(loadErrors('{ status: "502-504", file: a.html }')[0]).toContain('expected a list of statuses');
    expect(loadErrors('{ status: [], file: a.html }')[0]).toContain('at least one status');
    expect(loadErrors('{ status: ["200-599"], file: a.html }')[0]).toMatch(/status\[0\]: .*400-599/);
    expect(loadErrors('{ status: ["5xx"], file: a.html }')[0]).toContain('expected a status such as 200');
    expect(loadErrors('{ status: [502], file: a.html, timeout: soon }')[0]).toContain('expected a duration');
  });

  it('accepts a list of statuses, ranges and comma lists', () => {
    const r = parseRoutesText('middlewares:\n  e:\n    errorPages: { status: [404, "502-504", "410,429"], file: a.html }\n', 'routes/web.yaml', {});
    expect(r.ok).toBe(true);
  });
});

// errorPages (SPEC §8): an upstream that answers the status a client asks for (`status/NNN`, a
// short body naming it), behind errorPages from a file (written here) for [404, 502-504]; a pool
// whose only target refuses (waygate's own 502, then 503 once its health check ejects it) behind
// the same middleware; errorPages fetched from a pages pool for 500-599, whose server gives a page
// for some statuses and fails the others in its own ways (silence past the fetch timeout, a reset,
// a 404); and a chain of cors, errorPages and compress, where the replaced page must come
// compressed and with the CORS fields.
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { CORS_MIDDLEWARE, MW, PAGE_BODY, PAGE_FILE, PAGE_TIMEOUT_MS, SQUEEZE_MIDDLEWARE, pageOf, upstreamErrorBody } from '../kit/mw.ts';
import { variantOf } from '../kit/raw-server.ts';
import type { UpstreamFault } from '../types.ts';

/** How the pages server fails to give a page, by status (every other status gets its page). */
export const PAGE_FAILS: Record<number, 'hang' | 'reset' | 'not-found'> = { 502: 'hang', 504: 'reset', 501: 'not-found' };
/** The statuses a client asks the errors upstream for. */
export const ASKED = [200, 404, 500, 501, 502, 503, 504];

const mwErrors: UpstreamFault = {
  name: 'mw-errors',
  async start(ctx) {
    const pageFile = join(ctx.dir, PAGE_FILE);
    await writeFile(pageFile, PAGE_BODY);
    const upstream = createServer((req, res) => {
      req.on('error', () => {});
      res.on('error', () => {});
      req.resume();
      const status = Number(variantOf(req.url ?? '')) || 200;
      ctx.hit(`mw-errors/${status}`);
      const body = upstreamErrorBody(status);
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
    upstream.keepAliveTimeout = 10_000;
    const pages = createServer((req, res) => {
      req.on('error', () => {});
      res.on('error', () => {});
      req.resume();
      const status = Number(variantOf(req.url ?? '')) || 0;
      const fails = PAGE_FAILS[status];
      ctx.hit(`mw-pages/${fails ?? 'page'}`);
      // Never answered: waygate's fetch must give up at its timeout and close the connection.
      if (fails === 'hang') return;
      if (fails === 'reset') return void req.socket.resetAndDestroy();
      const body = fails === 'not-found' ? 'no such page\n' : pageOf(status);
      res.writeHead(fails === 'not-found' ? 404 : 200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    pages.keepAliveTimeout = 10_000;
    const port = await ctx.listen(upstream);
    const pagesPort = await ctx.listen(pages);
    const refused = await ctx.closedPort();
    const targets = [`http://127.0.0.1:${port}`];
    const variants = ASKED.map((s) => `status/${s}`);
    const fromFile = { name: 'soak-pages', kind: 'errorPages', options: { status: [404, '502-504'], file: pageFile } };
    return [
      { name: MW.errors, targets, variants, expect: 'any', kind: 'http', middlewares: [fromFile] },
      {
        name: MW.errorsDown, targets: [`http://127.0.0.1:${refused}`], variants: ['status/200'], expect: 'any', kind: 'http',
        options: { healthCheck: { path: '/', interval: '1s', timeout: '500ms' } },
        middlewares: [fromFile],
      },
      {
        name: MW.errorsPool, targets, variants, expect: 'any', kind: 'http',
        middlewares: [{ name: 'soak-pages-pool', kind: 'errorPages', options: { status: ['500-599'], pool: MW.pages, path: `/${MW.pages}/page/{status}`, timeout: `${PAGE_TIMEOUT_MS}ms` } }],
      },
      { name: MW.pages, targets: [`http://127.0.0.1:${pagesPort}`], variants: ['page/500'], expect: 'any', kind: 'http' },
      {
        name: MW.chain, targets, variants, expect: 'any', kind: 'http',
        // The same middlewares as mw-cors's and mw-compress's: a name is defined once.
        middlewares: [CORS_MIDDLEWARE, fromFile, SQUEEZE_MIDDLEWARE],
      },
    ];
  },
};
export default mwErrors;

// errorPages end to end (SPEC §8): a real gateway, real upstreams answering errors, dead and
// slow targets for waygate's own 502/503/504, a real pool serving the pages.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closedPort, send, startGateway, startUpstream } from '../helpers.ts';
import type { TestGateway, Upstream } from '../helpers.ts';

const PAGE = '<!doctype html><h1>Back soon</h1>';
const NEW_PAGE = '<!doctype html><h1>Back very soon</h1>';

describe('errorPages through the gateway', () => {
  let app: Upstream;
  let pages: Upstream;
  let sick: Upstream;
  let dir: string;
  let pageFile: string;
  let gw: TestGateway;
  const held: ServerResponse[] = [];

  beforeAll(async () => {
    // /status/NNN answers NNN with a body of its own; /slow takes the request and holds it.
    app = await startUpstream((req, res) => {
      if (req.url === '/slow') {
        held.push(res);
        return;
      }
      const status = Number(/^\/(?:[a-z]+\/)?status\/(\d{3})$/.exec(req.url!)?.[1] ?? 200);
      res.writeHead(status, { 'content-type': 'text/plain', etag: '"upstream"', 'x-app': 'yes' }).end(`upstream body ${status}`);
    });
    pages = await startUpstream((req, res) => {
      const m = /^\/errors\/(\d{3})\.html$/.exec(req.url!);
      if (m === null) res.writeHead(404).end('no page');
      else res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(`<p>page for ${m[1]}</p>`);
    });
    // Its health check fails, so its pool has no healthy target: waygate's own 503.
    sick = await startUpstream((_req, res) => void res.writeHead(500).end());
    dir = await mkdtemp(join(tmpdir(), 'waygate-pages-'));
    pageFile = join(dir, 'maintenance.html');
    await writeFile(pageFile, PAGE);
    const dead = await closedPort();
    gw = await startGateway(`
pools:
  app:
    targets: [${app.url}]
  # Only /slow goes here: a short response timeout on the pool every other test uses would make them flaky.
  app-impatient:
    targets: [${app.url}]
    timeouts: { response: 300ms }
  gone:
    targets: [http://127.0.0.1:${dead}]
  sick:
    targets: [${sick.url}]
    healthCheck: { path: /health, interval: 50ms, timeout: 1s, unhealthyAfter: 1 }
  pages:
    targets: [${pages.url}]
  pages-gone:
    targets: [http://127.0.0.1:${dead}]
middlewares:
  nice-errors: { errorPages: { status: [404, "502-504"], file: ${JSON.stringify(pageFile)} } }
  pool-pages: { errorPages: { status: ["500-504"], pool: pages, path: "/errors/{status}.html", timeout: 2s } }
  lost-pages: { errorPages: { status: ["500-504"], pool: pages-gone, path: "/errors/{status}.html" } }
  every-error: { errorPages: { status: ["400-599"], file: ${JSON.stringify(pageFile)} } }
  one-per-hour: { rateLimit: { average: 1, period: 1h, burst: 1 } }
routes:
  - { match: { path: /file/* }, middlewares: [nice-errors], pool: app }
  - { match: { path: /slow }, middlewares: [nice-errors], pool: app-impatient }
  - { match: { path: /gone/* }, middlewares: [nice-errors], pool: gone }
  - { match: { path: /sick/* }, middlewares: [nice-errors], pool: sick }
  - { match: { path: /pool/* }, middlewares: [pool-pages], pool: app }
  - { match: { path: /pool-gone/* }, middlewares: [pool-pages], pool: gone }
  - { match: { path: /lost/* }, middlewares: [lost-pages], pool: app }
  - { match: { path: /limited/* }, middlewares: [every-error, one-per-hour], pool: app }
  - { match: { path: /plain/* }, pool: app }
  - { match: { path: /plain-gone/* }, pool: gone }
`);
  });
  afterAll(async () => {
    for (const res of held) res.destroy();
    await gw?.close();
    await Promise.all([app?.close(), pages?.close(), sick?.close()]);
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('replaces upstream 502, 503 and 404 with the file, keeping the status and the other fields', async () => {
    for (const status of [502, 503, 404]) {
      const r = await send(`${gw.url}/file/status/${status}`);
      expect(r.status, String(status)).toBe(status);
      expect(r.body).toBe(PAGE);
      expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(r.headers['content-length']).toBe(String(Buffer.byteLength(PAGE)));
      // The etag described the upstream's body, not the page.
      expect(r.headers.etag).toBeUndefined();
      expect(r.headers['x-app']).toBe('yes');
    }
  });

  it('leaves a status not in the list (500) and a success untouched', async () => {
    const r = await send(`${gw.url}/file/status/500`);
    expect(r.status).toBe(500);
    expect(r.body).toBe('upstream body 500');
    expect(r.headers.etag).toBe('"upstream"');
    expect((await send(`${gw.url}/file/status/200`)).body).toBe('upstream body 200');
  });

  it('changes the head of a HEAD answer and sends no body', async () => {
    const r = await send(`${gw.url}/file/status/502`, { method: 'HEAD' });
    expect(r.status).toBe(502);
    expect(r.body).toBe('');
    expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
  });

  it("replaces waygate's own 502 for a dead target", async () => {
    const plain = await send(`${gw.url}/plain-gone/x`);
    expect(plain.status).toBe(502);
    expect(plain.body).not.toBe(PAGE);
    const r = await send(`${gw.url}/gone/x`);
    expect(r.status).toBe(502);
    expect(r.body).toBe(PAGE);
    expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
  });

  it("replaces waygate's own 503 when no upstream is healthy, keeping retry-after", async () => {
    await gw.waitForLog((l) => l.msg === 'target failed health checks' && l.target === sick.url);
    const r = await send(`${gw.url}/sick/x`);
    expect(r.status).toBe(503);
    expect(r.body).toBe(PAGE);
    expect(r.headers['retry-after']).toBeTruthy();
  });

  it("replaces waygate's own 504 for an upstream slower than timeouts.response", async () => {
    const r = await send(`${gw.url}/slow`);
    expect(r.status).toBe(504);
    expect(r.body).toBe(PAGE);
  });

  it("does not replace another middleware's 429, even with 400-599 listed", async () => {
    expect((await send(`${gw.url}/limited/status/404`)).body).toBe(PAGE);
    const r = await send(`${gw.url}/limited/status/404`);
    expect(r.status).toBe(429);
    expect(r.body).toBe('rate limited');
  });

  it('fetches the page from a pool with {status} substituted', async () => {
    const r = await send(`${gw.url}/pool/status/503`);
    expect(r.status).toBe(503);
    expect(r.body).toBe('<p>page for 503</p>');
    expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(pages.seen.at(-1)?.url).toBe('/errors/503.html');
    const own = await send(`${gw.url}/pool-gone/x`);
    expect(own.status).toBe(502);
    expect(own.body).toBe('<p>page for 502</p>');
    const untouched = await send(`${gw.url}/pool/status/404`);
    expect(untouched.body).toBe('upstream body 404');
  });

  it('keeps the original body, and the status, when the page pool is down', async () => {
    const r = await send(`${gw.url}/lost/status/503`);
    expect(r.status).toBe(503);
    expect(r.body).toBe('upstream body 503');
    expect(r.headers['content-type']).toBe('text/plain');
    await gw.waitForLog((l) => l.msg === 'error page not fetched: the original body is sent' && l.pool === 'pages-gone');
  });

  it('shows itself in /status and /explain', async () => {
    const status = JSON.parse((await send(`${gw.admin}/status`)).body);
    expect(status.middlewares).toContainEqual(expect.objectContaining({ name: 'nice-errors', kind: 'errorPages', status: ['404', '502-504'], file: pageFile }));
    const explain = (await send(`${gw.admin}/explain?url=${encodeURIComponent('http://x/pool/status/502')}`)).body;
    expect(explain).toContain('replaces the body of statuses 500-504');
  });

  it('reads the file again when the routes reload', async () => {
    await writeFile(pageFile, NEW_PAGE);
    expect((await send(`${gw.url}/file/status/502`)).body).toBe(PAGE);
    const reload = await send(`${gw.admin}/reload`, { method: 'POST' });
    expect(reload.status).toBe(200);
    expect((await send(`${gw.url}/file/status/502`)).body).toBe(NEW_PAGE);
  });
});

describe('errorPages load errors at startup', () => {
  it('refuses a file that cannot be read, located', async () => {
    const err = await startGateway(`
pools:
  app: { targets: [http://127.0.0.1:9] }
middlewares:
  nice-errors: { errorPages: { status: [502], file: /nonexistent/waygate/page.html } }
routes:
  - { middlewares: [nice-errors], pool: app }
`).then(
      (g) => g.close().then(() => undefined),
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(err!.message).toContain('nice-errors');
    expect(err!.message).toContain('/nonexistent/waygate/page.html');
  });
});

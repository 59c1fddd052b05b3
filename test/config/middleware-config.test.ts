// Middleware configuration (SPEC §8): what `middlewares:` and a route's `middlewares:` list accept,
// and every mistake reported at file:line:col with its key path — names global across files,
// unknown names with "did you mean", one kind per middleware, errorPages' pool, store: redis
// without a Redis, a users file that cannot be read — through the loaders and the real
// `waygate --check`.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkMiddlewares, formatConfigError, parseRoutesFiles, parseRoutesText, parseStaticText } from '../../src/config/load.ts';
import type { RoutesConfig } from '../../src/config/load.ts';
import { runCli } from '../helpers.ts';

const FILE = 'routes/mw.yaml';

function errors(...lines: string[]): string[] {
  const r = parseRoutesText(lines.join('\n') + '\n', FILE, {});
  if (r.ok) throw new Error('expected errors, got a valid routes file');
  return r.errors.map(formatConfigError);
}

function routes(...lines: string[]): RoutesConfig {
  const r = parseRoutesText(lines.join('\n') + '\n', FILE, {});
  if (!r.ok) throw new Error(r.errors.map(formatConfigError).join('\n'));
  return r.value;
}

const POOL = ['pools:', '  api: { targets: [http://127.0.0.1:9] }'];

describe('middlewares in a routes file', () => {
  it('parses a middleware into its kind and options, and a route into its list in order', () => {
    const r = routes(
      ...POOL,
      'middlewares:',
      '  office: { ipAllowList: { sourceRange: [10.0.0.0/8, "2001:db8::/32"] } }',
      '  web: { cors: { origins: [https://app.example.com] } }',
      'routes:',
      '  - { name: a, match: { path: /a }, middlewares: [web, office], pool: api }',
      '  - { name: b, match: { path: /b }, pool: api }',
    );
    expect(r.middlewares.get('office')?.kind).toBe('ipAllowList');
    expect(r.middlewares.get('web')?.kind).toBe('cors');
    expect(r.routes.map((x) => [x.name, x.middlewares])).toEqual([['a', ['web', 'office']], ['b', []]]);
  });

  it('names a route\'s unknown middleware at its position, with did-you-mean', () => {
    expect(errors(
      ...POOL,
      'middlewares:',
      '  office-only: { ipAllowList: { sourceRange: [10.0.0.0/8] } }',
      'routes:',
      '  - { match: { path: /a }, middlewares: [office-onyl], pool: api }',
    )).toEqual([`${FILE}:6:42 routes[0].middlewares[0]: unknown middleware "office-onyl" (did you mean "office-only"?)`]);
    expect(errors(...POOL, 'routes:', '  - { middlewares: [sso], pool: api }')[0]).toContain('unknown middleware "sso" (no routes file defines middlewares:)');
  });

  it('refuses a middleware listed twice in one route', () => {
    expect(errors(
      ...POOL,
      'middlewares:',
      '  w: { cors: { origins: ["*"] } }',
      'routes:',
      '  - { middlewares: [w, w], pool: api }',
    )).toEqual([`${FILE}:6:24 routes[0].middlewares[1]: middleware "w" is listed twice: it would run twice`]);
  });

  it('refuses an unknown kind with did-you-mean, no kind, and two kinds', () => {
    const unknown = errors(...POOL, 'middlewares:', '  x: { rateLimt: { average: 1 } }');
    expect(unknown).toHaveLength(1);
    expect(unknown[0]).toMatch(/^routes\/mw\.yaml:4:8 middlewares\.x\.rateLimt: unknown key "rateLimt" \(did you mean "rateLimit"\?\)/);
    expect(errors(...POOL, 'middlewares:', '  x: {}')[0]).toContain('middlewares.x: a middleware needs exactly one kind: rateLimit, inFlightLimit, ipAllowList, basicAuth, forwardAuth, compress, cors, errorPages');
    const two = errors(...POOL, 'middlewares:', '  x: { cors: { origins: ["*"] }, ipAllowList: { sourceRange: [10.0.0.0/8] } }');
    expect(two).toEqual([`${FILE}:4:34 middlewares.x.ipAllowList: "ipAllowList" cannot be combined with "cors": a middleware has exactly one kind (define two middlewares and list both)`]);
  });

  it('keeps names global across files: a route uses a middleware of another file, a duplicate is an error naming the first', () => {
    const a = { file: 'routes/a.yaml', text: ['middlewares:', '  w: { cors: { origins: ["*"] } }'].join('\n') + '\n' };
    const b = { file: 'routes/b.yaml', text: [...POOL, 'routes:', '  - { middlewares: [w], pool: api }'].join('\n') + '\n' };
    const ok = parseRoutesFiles([a, b], {});
    expect(ok.ok).toBe(true);
    const dup = { file: 'routes/c.yaml', text: ['middlewares:', '  w: { ipAllowList: { sourceRange: [10.0.0.0/8] } }'].join('\n') + '\n' };
    const r = parseRoutesFiles([a, b, dup], {});
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.map(formatConfigError)).toEqual(['routes/c.yaml:2:3 middlewares.w: duplicate middleware "w" (first defined at routes/a.yaml:2:3)']);
  });

  it('checks errorPages\' pool like a route\'s: it must exist and carry HTTP', () => {
    const base = ['pools:', '  api: { targets: [http://127.0.0.1:9] }', '  db: { targets: ["tcp://127.0.0.1:5432"] }', 'middlewares:'];
    expect(errors(...base, '  e: { errorPages: { status: [502], pool: pages, path: "/{status}.html" } }')[0]).toContain('middlewares.e.errorPages.pool: unknown pool "pages"');
    expect(errors(...base, '  e: { errorPages: { status: [502], pool: db, path: "/{status}.html" } }')[0]).toContain('errorPages needs a pool of http:// or https:// targets; pool "db" has tcp:// targets');
  });

  it('an empty middlewares: is no middlewares', () => {
    expect(routes(...POOL, 'middlewares:', 'routes:', '  - { pool: api }').middlewares.size).toBe(0);
  });
});

describe('middlewares and waygate.yaml', () => {
  it('validates redis: a redis:// URL, failMode open or closed, timeout', () => {
    const ok = parseStaticText('redis: { url: "redis://127.0.0.1:6379", failMode: closed }\n', 'waygate.yaml', {});
    expect(ok.ok && ok.value.redis).toEqual({ url: 'redis://127.0.0.1:6379', failMode: 'closed', timeout: 250, keyPrefix: 'waygate:' });
    const bad = parseStaticText('redis: { url: "http://x:6379", failMode: shut }\n', 'waygate.yaml', {});
    expect(bad.ok).toBe(false);
    if (!bad.ok) {
      const lines = bad.errors.map(formatConfigError);
      expect(lines[0]).toContain('redis.url: expected a redis:// or rediss:// URL such as redis://127.0.0.1:6379, got "http://x:6379"');
      expect(lines[1]).toContain('redis.failMode');
    }
  });

  it('refuses store: redis when waygate.yaml has no redis, at the middleware', () => {
    const r = routes(...POOL, 'middlewares:', '  shared: { rateLimit: { average: 10, store: redis } }', '  local: { rateLimit: { average: 10 } }');
    const none = parseStaticText('', 'waygate.yaml', {});
    const withRedis = parseStaticText('redis: { url: "redis://127.0.0.1:6379" }\n', 'waygate.yaml', {});
    if (!none.ok || !withRedis.ok) throw new Error('bad fixture');
    expect(checkMiddlewares(r, none.value).map(formatConfigError)).toEqual([
      `${FILE}:4:3 middlewares.shared.rateLimit.store: store: redis needs a Redis: add redis: { url: redis://host:6379 } to waygate.yaml (or use store: local)`,
    ]);
    expect(checkMiddlewares(r, withRedis.value)).toEqual([]);
  });
});

describe('waygate --check', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('reports a users file that cannot be read, and store: redis without a Redis, as errors', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'waygate-mw-check-'));
    dirs.push(dir);
    await mkdir(join(dir, 'routes'));
    await writeFile(join(dir, 'routes', 'a.yaml'), [...POOL, 'middlewares:', '  admins: { basicAuth: { usersFile: missing/htpasswd } }', 'routes:', '  - { middlewares: [admins], pool: api }'].join('\n') + '\n');
    const r = await runCli(['--check'], {}, dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('routes/a.yaml:4:3 middlewares.admins.basicAuth: cannot read "missing/htpasswd": ENOENT');

    await writeFile(join(dir, 'routes', 'a.yaml'), [...POOL, 'middlewares:', '  limit: { rateLimit: { average: 5, store: redis } }', 'routes:', '  - { middlewares: [limit], pool: api }'].join('\n') + '\n');
    const r2 = await runCli(['--check'], {}, dir);
    expect(r2.code).toBe(1);
    expect(r2.stdout).toContain('middlewares.limit.rateLimit.store: store: redis needs a Redis');
  });
});

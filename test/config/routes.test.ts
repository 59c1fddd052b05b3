import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatConfigError, loadRoutesDir, parseRoutesFiles, parseRoutesText } from '../../src/config/load.ts';
import type { LoadResult, RoutesConfig } from '../../src/config/load.ts';

// The SPEC §3 example with loopback targets; line numbers below refer to this text.
const SHOP = `pools:
  catalog:
    targets:
      - http://127.0.0.1:3000/
      - url: http://127.0.0.1:3001
        weight: 3
    balance: least-connections
    sticky:
      cookie: shop_affinity
      maxAge: 1h
      onDown: rebalance
    healthCheck:
      path: /health
      interval: 5s
      timeout: 2s
      unhealthyAfter: 3
      healthyAfter: 2
      expectStatus: 200-399
    timeouts: { connect: 5s, response: 60s, idle: 60s }
    retries: 2
    discovery: dns
    dnsRefresh: 10s
    tls: { ca: certs/internal-ca.pem, verify: true, serverName: api.internal }
    h2: true
  search:
    targets: [http://localhost:4000]

routes:
  - name: catalog-api
    match:
      host: Shop.Example.com
      path: /api/catalog/:id
      methods: [GET, head]
      headers: { X-Client: mobile, user-agent: "~(?i)iphone" }
      cookies: { beta: "1" }
      query: { v: 2 }
    priority: 0
    pool: catalog
    stripPrefix: /api
    rewritePath: /v2/:id
    requestHeaders:  { set: { x-env: prod }, add: {}, remove: [X-Debug] }
    responseHeaders: { set: { strict-transport-security: "max-age=31536000" }, add: {}, remove: [server] }
  - match: { host: ["*.example.com", api.example.com] }
    split: [{pool: catalog, weight: 90}, {pool: search, weight: 10}]
  - redirect: { to: "https://{host}{path}{query}", status: 308 }
  - respond:  { status: 200, body: "ok", headers: {Content-Type: text/plain} }
    responseHeaders: { remove: [server] }

tests:
  - { request: "GET https://shop.example.com/api/catalog/1", expect: { route: catalog-api, path: /catalog/1 } }
  - request: "post http://x.example.com/"
    headers: { X-A: b }
    cookies: { beta: "1" }
    expect: { status: 200 }
`;

function ok(r: LoadResult<RoutesConfig>): RoutesConfig {
  if (!r.ok) throw new Error(r.errors.map(formatConfigError).join('\n'));
  return r.value;
}

function errorsOf(r: LoadResult<RoutesConfig>): string[] {
  if (r.ok) throw new Error('expected errors, got a valid config');
  return r.errors.map(formatConfigError);
}

describe('a valid routes file', () => {
  const cfg = ok(parseRoutesText(SHOP, 'routes/shop.yaml', {}));

  it('normalises targets to origin URLs with weights, defaulting the weight to 1', () => {
    expect(cfg.pools.get('catalog')?.targets).toEqual([
      { url: 'http://127.0.0.1:3000', weight: 1 },
      { url: 'http://127.0.0.1:3001', weight: 3 },
    ]);
  });

  it('turns durations into milliseconds and status specs into ranges', () => {
    const { source, ...pool } = cfg.pools.get('catalog')!;
    expect(pool).toEqual({
      targets: [
        { url: 'http://127.0.0.1:3000', weight: 1 },
        { url: 'http://127.0.0.1:3001', weight: 3 },
      ],
      balance: 'least-connections',
      sticky: { cookie: 'shop_affinity', maxAge: 3_600_000, onDown: 'rebalance' },
      healthCheck: { type: 'http', path: '/health', send: '', interval: 5000, timeout: 2000, unhealthyAfter: 3, healthyAfter: 2, expectStatus: [[200, 399]] },
      timeouts: { connect: 5000, response: 60_000, idle: 60_000 },
      retries: 2,
      discovery: 'dns',
      dnsRefresh: 10_000,
      tls: { ca: 'certs/internal-ca.pem', verify: true, serverName: 'api.internal' },
      h2: true,
      proxyProtocol: 'off',
      onTargetDown: 'keep',
      kind: 'http',
    });
    expect(source).toEqual({ file: 'routes/shop.yaml', line: 2, col: 3, fileIndex: 0, index: 0 });
  });

  it('fills every pool default', () => {
    const { source, ...search } = cfg.pools.get('search')!;
    expect(search).toEqual({
      targets: [{ url: 'http://localhost:4000', weight: 1 }],
      balance: 'round-robin',
      timeouts: { connect: 5000, response: 60_000, idle: 60_000 },
      retries: 1,
      dnsRefresh: 10_000,
      tls: { verify: true },
      h2: false,
      proxyProtocol: 'off',
      onTargetDown: 'keep',
      kind: 'http',
    });
    expect(source.line).toBe(25);
  });

  it('lower-cases hosts and header names, upper-cases methods and keeps matcher values as text', () => {
    const r = cfg.routes[0];
    expect(r.name).toBe('catalog-api');
    expect(r.match).toEqual({
      host: ['shop.example.com'],
      path: '/api/catalog/:id',
      methods: ['GET', 'HEAD'],
      headers: { 'x-client': 'mobile', 'user-agent': '~(?i)iphone' },
      cookies: { beta: '1' },
      query: { v: '2' },
    });
    expect(r.kind === 'pool' && r.pool).toBe('catalog');
    expect(r.stripPrefix).toBe('/api');
    expect(r.rewritePath).toBe('/v2/:id');
    expect(r.requestHeaders).toEqual({ set: { 'x-env': 'prod' }, add: {}, remove: ['x-debug'] });
    expect(r.responseHeaders).toEqual({ set: { 'strict-transport-security': 'max-age=31536000' }, add: {}, remove: ['server'] });
    expect(r.source).toEqual({ file: 'routes/shop.yaml', line: 29, col: 5, fileIndex: 0, index: 0 });
  });

  it('names unnamed routes after the file and their index, and fills match defaults', () => {
    expect(cfg.routes.map((r) => r.name)).toEqual(['catalog-api', 'shop[1]', 'shop[2]', 'shop[3]']);
    const redirect = cfg.routes[2];
    expect(redirect.match).toEqual({ host: [], path: '/*', methods: [], headers: {}, cookies: {}, query: {} });
    expect(redirect.priority).toBe(0);
    expect(redirect.stripPrefix).toBeUndefined();
    expect(redirect.requestHeaders).toEqual({ set: {}, add: {}, remove: [] });
  });

  it('tags each route with its single action', () => {
    expect(cfg.routes.map((r) => r.kind)).toEqual(['pool', 'split', 'redirect', 'respond']);
    const [, split, redirect, respond] = cfg.routes;
    expect(split.kind === 'split' && split.split).toEqual([{ pool: 'catalog', weight: 90 }, { pool: 'search', weight: 10 }]);
    expect(split.match.host).toEqual(['*.example.com', 'api.example.com']);
    expect(redirect.kind === 'redirect' && redirect.redirect).toEqual({ to: 'https://{host}{path}{query}', status: 308 });
    expect(respond.kind === 'respond' && respond.respond).toEqual({ status: 200, body: 'ok', headers: { 'content-type': 'text/plain' } });
    expect(respond.responseHeaders.remove).toEqual(['server']);
  });

  it('parses tests into method and URL with their expectations', () => {
    expect(cfg.tests).toHaveLength(2);
    expect(cfg.tests[0]).toMatchObject({
      request: { method: 'GET', url: 'https://shop.example.com/api/catalog/1' },
      headers: {},
      cookies: {},
      expect: { route: 'catalog-api', path: '/catalog/1' },
      source: { file: 'routes/shop.yaml', line: 50, col: 5, index: 0 },
    });
    expect(cfg.tests[1]).toMatchObject({ request: { method: 'POST', url: 'http://x.example.com/' }, headers: { 'x-a': 'b' }, expect: { status: 200 } });
  });

  it('defaults redirect status to 302 and respond to 200 with an empty body', () => {
    const c = ok(parseRoutesText('routes:\n  - redirect: { to: /elsewhere }\n  - respond: {}\n', 'routes/r.yaml', {}));
    const [redirect, respond] = c.routes;
    expect(redirect.kind === 'redirect' && redirect.redirect.status).toBe(302);
    expect(respond.kind === 'respond' && respond.respond).toEqual({ status: 200, body: '', headers: {} });
  });

  it('gives every route its own default objects, so no two routes share mutable state', () => {
    const c = ok(parseRoutesText('routes:\n  - respond: {}\n  - respond: {}\n', 'routes/r.yaml', {}));
    expect(c.routes[0].requestHeaders).toEqual(c.routes[1].requestHeaders);
    expect(c.routes[0].requestHeaders).not.toBe(c.routes[1].requestHeaders);
    expect(c.routes[0].match).not.toBe(c.routes[1].match);
  });

  it('treats an empty file, a comments-only file and empty top-level keys as defining nothing', () => {
    for (const text of ['', '# nothing here\n', 'pools:\nroutes:\ntests:\n']) {
      const c = ok(parseRoutesText(text, 'routes/empty.yaml', {}));
      expect(c.pools.size + c.routes.length + c.tests.length, JSON.stringify(text)).toBe(0);
    }
  });

  it('accepts expectStatus as a number or a comma list of codes and ranges', () => {
    const text = (s: string) => `pools:\n  a:\n    targets: [http://127.0.0.1:1]\n    healthCheck: { path: /h, expectStatus: ${s} }\n`;
    expect(ok(parseRoutesText(text('204'), 'r.yaml', {})).pools.get('a')?.healthCheck?.expectStatus).toEqual([[204, 204]]);
    expect(ok(parseRoutesText(text('"200,204,300-399"'), 'r.yaml', {})).pools.get('a')?.healthCheck?.expectStatus).toEqual([
      [200, 200],
      [204, 204],
      [300, 399],
    ]);
  });
});

describe('environment substitution', () => {
  const text = [
    'pools:',
    '  app:',
    '    targets:',
    '      - url: "http://${APP_HOST:-127.0.0.1}:${APP_PORT}"',
    '        weight: "${W}"',
    '    h2: ${H2}',
    'routes:',
    '  - respond: { body: "cost: $${PRICE} for ${WHO}" }',
    '    priority: ${PRIO:-5}',
  ].join('\n');

  it('substitutes variables and defaults, and coerces into numbers and booleans where the schema wants them', () => {
    const c = ok(parseRoutesText(text, 'routes/env.yaml', { APP_PORT: '8080', W: '3', H2: 'true', WHO: 'you' }));
    expect(c.pools.get('app')?.targets).toEqual([{ url: 'http://127.0.0.1:8080', weight: 3 }]);
    expect(c.pools.get('app')?.h2).toBe(true);
    expect(c.routes[0].priority).toBe(5);
    const r = c.routes[0];
    expect(r.kind === 'respond' && r.respond.body).toBe('cost: ${PRICE} for you');
  });

  it('uses the default for an empty variable, like the shell', () => {
    const c = ok(parseRoutesText(text, 'routes/env.yaml', { APP_HOST: '', APP_PORT: '1', W: '1', H2: 'false', WHO: '' }));
    expect(c.pools.get('app')?.targets[0].url).toBe('http://127.0.0.1:1');
  });

  it('keeps a substituted value a string where the schema wants a string', () => {
    const c = ok(parseRoutesText('routes:\n  - name: "${N}"\n    respond: { body: "${N}" }\n', 'r.yaml', { N: '42' }));
    const r = c.routes[0];
    expect(r.name).toBe('42');
    expect(r.kind === 'respond' && r.respond.body).toBe('42');
  });

  it('reports a substituted value that does not parse as the number wanted', () => {
    expect(errorsOf(parseRoutesText(text, 'routes/env.yaml', { APP_PORT: '1', W: 'heavy', H2: 'true', WHO: '' }))).toEqual([
      'routes/env.yaml:5:17 pools.app.targets[0].weight: expected a number, got "heavy"',
    ]);
  });

  it('reports every unset variable without a default at its value, once', () => {
    expect(errorsOf(parseRoutesText(text, 'routes/env.yaml', { W: '1', WHO: 'x' }))).toEqual([
      'routes/env.yaml:4:14 pools.app.targets[0].url: environment variable "APP_PORT" is not set',
      'routes/env.yaml:6:9 pools.app.h2: environment variable "H2" is not set',
    ]);
  });
});

describe('several routes files', () => {
  const a = 'pools:\n  catalog:\n    targets: [http://127.0.0.1:3000]\nroutes:\n  - pool: search\n';
  const b = 'pools:\n  search:\n    targets: [http://127.0.0.1:4000]\nroutes:\n  - name: find\n    pool: catalog\n  - pool: search\n';

  it('merge in the order given with global names: a route may use a pool from another file', () => {
    const c = ok(parseRoutesFiles([{ file: 'routes/a.yaml', text: a }, { file: 'routes/b.yaml', text: b }], {}));
    expect(c.files).toEqual(['routes/a.yaml', 'routes/b.yaml']);
    expect([...c.pools.keys()]).toEqual(['catalog', 'search']);
    expect(c.pools.get('search')?.source).toEqual({ file: 'routes/b.yaml', line: 2, col: 3, fileIndex: 1, index: 0 });
    expect(c.routes.map((r) => [r.name, r.source.file, r.source.line, r.source.fileIndex, r.source.index])).toEqual([
      ['a[0]', 'routes/a.yaml', 5, 0, 0],
      ['find', 'routes/b.yaml', 5, 1, 0],
      ['b[1]', 'routes/b.yaml', 7, 1, 1],
    ]);
  });
});

describe('loadRoutesDir', () => {
  let dir = '';
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = '';
  });

  async function tree(files: Record<string, string>): Promise<string> {
    dir = await mkdtemp(join(tmpdir(), 'waygate-config-'));
    for (const [name, text] of Object.entries(files)) {
      await mkdir(join(dir, name, '..'), { recursive: true });
      await writeFile(join(dir, name), text);
    }
    return dir;
  }

  it('reads *.yaml and *.yml at the top level sorted by name, skipping dotfiles, other files and subdirectories', async () => {
    const d = await tree({
      'b.yml': 'routes:\n  - respond: { body: b }\n',
      'a.yaml': 'routes:\n  - respond: { body: a }\n',
      '.hidden.yaml': 'routes: [1]\n',
      'notes.txt': 'not yaml: [',
      'sub/c.yaml': 'routes: [1]\n',
    });
    const c = ok(await loadRoutesDir(d, {}));
    expect(c.files).toEqual([join(d, 'a.yaml'), join(d, 'b.yml')]);
    expect(c.routes.map((r) => r.name)).toEqual(['a[0]', 'b[0]']);
  });

  it('names files in messages as the directory given joined with the file name', async () => {
    const d = await tree({ 'shop.yaml': 'routes:\n  - pool: nowhere\n' });
    expect(errorsOf(await loadRoutesDir(d, {}))).toEqual([`${join(d, 'shop.yaml')}:2:11 routes[0].pool: unknown pool "nowhere"`]);
  });

  it('accepts a directory with no routes files, with a warning', async () => {
    const d = await tree({ 'readme.md': '# hi' });
    const r = await loadRoutesDir(d, {});
    expect(r.ok && r.value.routes).toEqual([]);
    expect(r.ok && r.warnings).toEqual([`routes directory "${d}" has no *.yaml or *.yml files: no routes are served`]);
  });

  it('refuses a routes path that is a file', async () => {
    const d = await tree({ 'routes.yaml': '' });
    const file = join(d, 'routes.yaml');
    expect(errorsOf(await loadRoutesDir(file, {}))).toEqual([`${file}:1:1 routes directory "${file}" is not a directory`]);
  });

  it('reports a missing directory', async () => {
    const d = await tree({});
    const missing = join(d, 'nope');
    expect(errorsOf(await loadRoutesDir(missing, {}))).toEqual([`${missing}:1:1 routes directory "${missing}" not found`]);
  });

  it('collects errors from every file, sorted by file, line and column', async () => {
    const d = await tree({
      'b.yaml': 'pools:\n  p:\n    targets: [http://127.0.0.1:1]\n    retries: -1\n    balance: nope\n',
      'a.yaml': 'routes:\n  - pool: p\n    priority: high\n',
    });
    expect(errorsOf(await loadRoutesDir(d, {}))).toEqual([
      `${join(d, 'a.yaml')}:3:15 routes[0].priority: expected a number, got "high"`,
      `${join(d, 'b.yaml')}:4:14 pools.p.retries: must be at least 0`,
      `${join(d, 'b.yaml')}:5:14 pools.p.balance: expected one of round-robin, least-connections, ip-hash, random-two, got "nope"`,
    ]);
  });
});

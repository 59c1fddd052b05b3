// Routing and route actions through real sockets: every matcher kind reaches the right pool,
// and every action (pool, split, rewrites, header edits, redirect, respond) does what it says.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { echoed, send, startGateway, startUpstream } from '../helpers.ts';
import type { TestGateway, Upstream } from '../helpers.ts';

// Each upstream tags its replies so a test can tell which pool served a request.
async function tagged(tag: string): Promise<Upstream> {
  return startUpstream((req, res) => {
    const body = JSON.stringify({ tag, method: req.method, url: req.url, headers: req.headers });
    res.writeHead(200, { 'content-type': 'application/json', 'x-powered-by': 'php', 'x-upstream': tag, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
}

let a: Upstream, b: Upstream, c: Upstream, heavy: Upstream;
let gw: TestGateway;

beforeAll(async () => {
  [a, b, c, heavy] = await Promise.all([tagged('a'), tagged('b'), tagged('c'), tagged('heavy')]);
  gw = await startGateway({
    '10-pools.yaml': `
pools:
  a: { targets: ["${a.url}"] }
  b: { targets: ["${b.url}"] }
  c: { targets: ["${c.url}"] }
  weighted:
    targets:
      - "${a.url}"
      - { url: "${heavy.url}", weight: 3 }
`,
    '20-routes.yaml': `
routes:
  - { name: host-exact, match: { host: shop.example.com, path: /where }, pool: a }
  - { name: host-wild, match: { host: "*.example.com", path: /where }, pool: b }
  - { name: any-host, match: { path: /where }, pool: c }

  - { name: mobile, match: { path: /ua, headers: { user-agent: "~(?i)iphone" } }, pool: a }
  - { name: client-hdr, match: { path: /ua, headers: { x-client: web } }, pool: b }
  - { name: ua-default, match: { path: /ua }, pool: c }

  - { name: beta-cookie, match: { path: /feature, cookies: { beta: "1" } }, pool: a }
  - { name: v2-query, match: { path: /feature, query: { v: "2" } }, pool: b }
  - { name: feature, match: { path: /feature }, pool: c }

  - { name: writes, match: { path: /things, methods: [POST, PUT] }, pool: a }
  - { name: reads, match: { path: /things }, pool: b }

  - { name: item, match: { path: /shop/items/:id }, pool: a, rewritePath: /v2/items/:id }
  - { name: shop, match: { path: /shop/* }, pool: b, stripPrefix: /shop }

  - name: headers
    match: { path: /headers }
    pool: a
    requestHeaders: { set: { x-env: prod, x-forwarded-proto: https }, add: { x-extra: one }, remove: [x-debug] }
    responseHeaders: { set: { strict-transport-security: "max-age=31536000" }, add: { x-added: yes }, remove: [x-powered-by] }

  - name: canary
    match: { path: /canary }
    split: [ { pool: a, weight: 9 }, { pool: b, weight: 1 } ]

  - { name: weighted, match: { path: /weighted }, pool: weighted }

  - name: to-https
    match: { path: /old/:slug }
    redirect: { to: "https://{host}/new/:slug{query}", status: 308 }
  - name: temp
    match: { path: /temp }
    redirect: { to: "/elsewhere" }
  - name: fixed
    match: { path: /fixed }
    respond: { status: 418, body: "short and stout", headers: { x-teapot: "yes" } }
  - name: empty
    match: { path: /empty }
    respond: { status: 204 }
  - name: edited-answer
    match: { path: /edited }
    respond: { status: 200, body: "{}", headers: { x-teapot: "yes", x-gone: "1" } }
    responseHeaders:
      set: { content-type: application/json, x-teapot: "no", content-length: "999" }
      add: { x-added: yes }
      remove: [x-gone]
`,
  });
});
afterAll(async () => {
  await gw.close();
  await Promise.all([a, b, c, heavy].map((u) => u.close()));
});

const tag = async (path: string, init?: Parameters<typeof send>[1]): Promise<string> => JSON.parse((await send(gw.url + path, init)).body).tag;

describe('matchers reach the right pool', () => {
  test('host: exact beats wildcard beats none; the port and case of Host do not matter', async () => {
    expect(await tag('/where', { headers: { host: 'Shop.Example.com:8080' } })).toBe('a');
    expect(await tag('/where', { headers: { host: 'api.example.com' } })).toBe('b');
    expect(await tag('/where', { headers: { host: 'deep.api.example.com' } })).toBe('c');
    expect(await tag('/where', { headers: { host: 'other.test' } })).toBe('c');
  });

  test('headers: a case-insensitive regex, an exact value, then the fallback', async () => {
    expect(await tag('/ua', { headers: { 'user-agent': 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0)' } })).toBe('a');
    expect(await tag('/ua', { headers: { 'x-client': 'web' } })).toBe('b');
    expect(await tag('/ua', { headers: { 'x-client': 'Web' } })).toBe('c');
  });

  test('cookies and query parameters', async () => {
    expect(await tag('/feature', { headers: { cookie: 'theme=dark; beta=1' } })).toBe('a');
    expect(await tag('/feature?x=1&v=2')).toBe('b');
    expect(await tag('/feature?v=3', { headers: { cookie: 'beta=0' } })).toBe('c');
  });

  test('methods', async () => {
    expect(await tag('/things', { method: 'POST', body: '{}' })).toBe('a');
    expect(await tag('/things', { method: 'PUT', body: '{}' })).toBe('a');
    expect(await tag('/things')).toBe('b');
  });

  test('a path that only differs by an encoded slash does not reach a different route', async () => {
    const r = await send(`${gw.url}/shop%2Fitems/1`);
    expect(r.status).toBe(404);
  });
});

describe('route actions', () => {
  test('rewritePath fills in the path parameters, keeping the query', async () => {
    const r = JSON.parse((await send(`${gw.url}/shop/items/42?full=1`)).body);
    expect([r.tag, r.url]).toEqual(['a', '/v2/items/42?full=1']);
  });

  test('stripPrefix removes the prefix at a segment boundary', async () => {
    expect(JSON.parse((await send(`${gw.url}/shop/cart/view`)).body).url).toBe('/cart/view');
    expect(JSON.parse((await send(`${gw.url}/shop`)).body).url).toBe('/');
  });

  test('request header set/add/remove, applied after the forwarded headers', async () => {
    const h = echoed(await send(`${gw.url}/headers`, { headers: { 'x-debug': '1', 'x-env': 'dev' } })).headers;
    expect(h['x-env']).toBe('prod');
    expect(h['x-extra']).toBe('one');
    expect(h['x-debug']).toBeUndefined();
    expect(h['x-forwarded-proto']).toBe('https');
  });

  test('response header set/add/remove', async () => {
    const r = await send(`${gw.url}/headers`);
    expect(r.headers['strict-transport-security']).toBe('max-age=31536000');
    expect(r.headers['x-added']).toBe('yes');
    expect(r.headers['x-powered-by']).toBeUndefined();
    expect(r.headers['x-upstream']).toBe('a');
  });

  test('a weighted split sends exactly its share over a full cycle (smooth weighted round-robin)', async () => {
    const tags: string[] = [];
    for (let i = 0; i < 100; i++) tags.push(await tag('/canary'));
    expect(tags.filter((t) => t === 'a').length).toBe(90);
    expect(tags.filter((t) => t === 'b').length).toBe(10);
    // Smooth: the light pool never gets two in a row.
    for (let i = 1; i < tags.length; i++) expect(tags[i] === 'b' && tags[i - 1] === 'b').toBe(false);
  });

  test('target weights: a weight-3 target gets three of every four requests, never in a burst of four', async () => {
    const tags: string[] = [];
    for (let i = 0; i < 40; i++) tags.push(await tag('/weighted'));
    expect(tags.filter((t) => t === 'heavy').length).toBe(30);
    expect(tags.join(',')).not.toContain('heavy,heavy,heavy,heavy');
  });

  test('redirect with {host}, :param and {query} placeholders', async () => {
    const r = await send(`${gw.url}/old/intro?lang=en`, { headers: { host: 'docs.example.com:8080' } });
    expect(r.status).toBe(308);
    expect(r.headers.location).toBe('https://docs.example.com/new/intro?lang=en');
  });

  test('redirect defaults to 302', async () => {
    const r = await send(`${gw.url}/temp`);
    expect([r.status, r.headers.location]).toEqual([302, '/elsewhere']);
  });

  test('respond answers by itself with status, body and headers', async () => {
    const r = await send(`${gw.url}/fixed`);
    expect([r.status, r.body, r.headers['x-teapot'], r.headers['content-type']]).toEqual([418, 'short and stout', 'yes', 'text/plain; charset=utf-8']);
    const head = await send(`${gw.url}/fixed`, { method: 'HEAD' });
    expect([head.status, head.body, head.headers['content-length']]).toEqual([418, '', '15']);
    const empty = await send(`${gw.url}/empty`);
    expect([empty.status, empty.body]).toEqual([204, '']);
  });

  // Regression: a respond route's responseHeaders were accepted by --check and then ignored.
  test("respond applies the route's responseHeaders after respond.headers; the framing stays waygate's", async () => {
    const r = await send(`${gw.url}/edited`);
    expect(r.status).toBe(200);
    expect(r.body).toBe('{}');
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.headers['x-teapot']).toBe('no');
    expect(r.headers['x-added']).toBe('yes');
    expect(r.headers['x-gone']).toBeUndefined();
    expect(r.headers['content-length']).toBe('2');
  });
});

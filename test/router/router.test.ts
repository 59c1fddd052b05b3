import { describe, expect, test } from 'vitest';
import { Router, type RouteSpec } from '../../src/router/router.ts';
import { RequestView, type HeaderBag } from '../../src/router/request-view.ts';
import { normalizePath, splitTarget } from '../../src/router/path.ts';

type Spec = Omit<RouteSpec<string>, 'priority' | 'order' | 'value'> & { priority?: number; order?: number };

/** Routes in declaration order: `order` defaults to the position, `value` to the name. */
function router(specs: Spec[]): Router<string> {
  return new Router(specs.map((s, i) => ({ priority: 0, order: i, value: s.name, ...s })));
}

/** A request: "GET host/path?query" (host may be empty: "GET /path"). */
function req(line: string, headers: HeaderBag = {}): RequestView {
  const [method, rest] = line.split(' ');
  const slash = rest.indexOf('/');
  const host = rest.slice(0, slash);
  const { path, query } = splitTarget(rest.slice(slash));
  const n = normalizePath(path);
  if (!n.ok) throw new Error(n.reason);
  return RequestView.fromRaw(method, host, n.path, query, headers);
}

/** The name of the route the request reaches ("none" when no route matches); explain() must agree. */
function reach(r: Router<string>, view: RequestView): string {
  const m = r.match(view);
  expect(r.explain(view).match?.name).toBe(m?.name);
  return m?.name ?? 'none';
}

// SPEC §3 precedence, one rule per row group, in the order the rules apply. In each row the
// expected winner is declared LAST, so declaration order never explains the result, and the
// routes differ only in the rule under test unless the row shows one rule beating the next.
const precedence: [string, Spec[], string, HeaderBag, string][] = [
  ['higher priority wins', [{ name: 'low', path: '/a/b' }, { name: 'high', path: '/a/b', priority: 1 }], 'GET x/a/b', {}, 'high'],
  ['negative priority loses to the default 0', [{ name: 'neg', path: '/a', priority: -1 }, { name: 'zero', path: '/a' }], 'GET x/a', {}, 'zero'],
  ['priority beats path specificity', [{ name: 'users', path: '/api/users' }, { name: 'catch-all', path: '/*', priority: 10 }], 'GET x/api/users', {}, 'catch-all'],
  ['exact path beats parameter path', [{ name: 'param', path: '/items/:id' }, { name: 'exact', path: '/items/new' }], 'GET x/items/new', {}, 'exact'],
  ['parameter path beats prefix path', [{ name: 'prefix', path: '/items/*' }, { name: 'param', path: '/items/:id' }], 'GET x/items/1', {}, 'param'],
  ['parameter path beats a prefix path with more literal characters', [{ name: 'prefix', path: '/a/b/*' }, { name: 'param', path: '/:x/b' }], 'GET x/a/b', {}, 'param'],
  ['exact path beats prefix path of the same text', [{ name: 'prefix', path: '/a/*' }, { name: 'exact', path: '/a' }], 'GET x/a', {}, 'exact'],
  ['path kind beats host', [{ name: 'prefix-host', path: '/a/*', hosts: ['x.com'] }, { name: 'exact-any', path: '/a' }], 'GET x.com/a', {}, 'exact-any'],
  ['longer prefix (more segments) wins', [{ name: 'short', path: '/a/*' }, { name: 'long', path: '/a/b/*' }], 'GET x/a/b/c', {}, 'long'],
  ['root prefix loses to any other prefix', [{ name: 'root', path: '/*' }, { name: 'api', path: '/api/*' }], 'GET x/api', {}, 'api'],
  ['more segments beat more literal characters', [{ name: 'chars', path: '/abcdefgh/*' }, { name: 'segs', path: '/:a/:b/*' }], 'GET x/abcdefgh/x', {}, 'segs'],
  ['at equal segments, more literal characters win', [{ name: 'fewer', path: '/a/:x' }, { name: 'more', path: '/:y/bcd' }], 'GET x/a/bcd', {}, 'more'],
  ['path length beats host', [{ name: 'short-host', path: '/a/*', hosts: ['x.com'] }, { name: 'long-any', path: '/a/b/*' }], 'GET x.com/a/b', {}, 'long-any'],
  ['exact host beats wildcard host', [{ name: 'wild', path: '/', hosts: ['*.example.com'] }, { name: 'exact', path: '/', hosts: ['shop.example.com'] }], 'GET shop.example.com/', {}, 'exact'],
  ['wildcard host beats no host', [{ name: 'any', path: '/' }, { name: 'wild', path: '/', hosts: ['*.example.com'] }], 'GET shop.example.com/', {}, 'wild'],
  ['host beats header count', [{ name: 'headers', path: '/', headers: { a: '1', b: '2' } }, { name: 'host', path: '/', hosts: ['x.com'] }], 'GET x.com/', { a: '1', b: '2' }, 'host'],
  ['more header matchers win', [{ name: 'one', path: '/', headers: { a: '1' } }, { name: 'two', path: '/', headers: { a: '1', b: '2' } }], 'GET x/', { a: '1', b: '2' }, 'two'],
  ['header count beats cookie count', [{ name: 'cookies', path: '/', cookies: { c: '1', d: '2' } }, { name: 'header', path: '/', headers: { a: '1' } }], 'GET x/', { a: '1', cookie: 'c=1; d=2' }, 'header'],
  ['more cookie matchers win', [{ name: 'one', path: '/', cookies: { c: '1' } }, { name: 'two', path: '/', cookies: { c: '1', d: '2' } }], 'GET x/', { cookie: 'c=1; d=2' }, 'two'],
  ['cookie count beats query count', [{ name: 'query', path: '/', query: { q: '1', r: '2' } }, { name: 'cookie', path: '/', cookies: { c: '1' } }], 'GET x/?q=1&r=2', { cookie: 'c=1' }, 'cookie'],
  ['more query matchers win', [{ name: 'none', path: '/' }, { name: 'one', path: '/', query: { q: '1' } }], 'GET x/?q=1', {}, 'one'],
  ['query count beats methods', [{ name: 'methods', path: '/', methods: ['GET'] }, { name: 'query', path: '/', query: { q: '1' } }], 'GET x/?q=1', {}, 'query'],
  ['methods listed beat no methods', [{ name: 'any', path: '/' }, { name: 'get', path: '/', methods: ['GET'] }], 'GET x/', {}, 'get'],
  ['listing more methods does not count: order decides', [{ name: 'many', path: '/', methods: ['GET', 'POST', 'PUT'], order: 0 }, { name: 'one', path: '/', methods: ['GET'], order: 1 }], 'GET x/', {}, 'many'],
  ['earlier order wins when all else is equal', [{ name: 'later', path: '/', order: 5 }, { name: 'earlier', path: '/', order: 3 }], 'GET x/', {}, 'earlier'],
  ['order, not array position, is the declaration order', [{ name: 'b', path: '/x', order: 2 }, { name: 'a', path: '/x', order: 1 }], 'GET x/x', {}, 'a'],
];

describe('precedence (SPEC §3)', () => {
  test.each(precedence)('%s', (_rule, specs, line, headers, expected) => {
    expect(reach(router(specs), req(line, headers))).toBe(expected);
  });

  test.each(precedence)('%s (routes declared the other way round)', (_rule, specs, line, headers, expected) => {
    // The winner is now declared first: the result must not change (rows that set `order` keep it).
    const reversed = [...specs].reverse().map((s, i) => ({ ...s, order: s.order ?? i }));
    expect(reach(router(reversed), req(line, headers))).toBe(expected);
  });
});

describe('fall-back to less specific routes', () => {
  test('when the most specific path fails its method, the prefix route is reached', () => {
    const r = router([{ name: 'users-post', path: '/api/users', methods: ['POST'] }, { name: 'api', path: '/api/*' }]);
    expect(reach(r, req('GET x/api/users'))).toBe('api');
    expect(reach(r, req('POST x/api/users'))).toBe('users-post');
  });

  test('falls through exact, parameter and prefix routes in turn, then to another host bucket', () => {
    const r = router([
      { name: 'exact', path: '/items/new', headers: { 'x-a': '1' } },
      { name: 'param', path: '/items/:id', headers: { 'x-b': '1' } },
      { name: 'prefix', path: '/items/*', headers: { 'x-c': '1' }, hosts: ['shop.example.com'] },
      { name: 'wild', path: '/items/*', hosts: ['*.example.com'], headers: { 'x-d': '1' } },
      { name: 'root', path: '/*' },
    ]);
    const at = (h: HeaderBag) => reach(r, req('GET shop.example.com/items/new', h));
    expect(at({ 'x-a': '1', 'x-b': '1', 'x-c': '1', 'x-d': '1' })).toBe('exact');
    expect(at({ 'x-b': '1', 'x-c': '1', 'x-d': '1' })).toBe('param');
    expect(at({ 'x-c': '1', 'x-d': '1' })).toBe('prefix');
    expect(at({ 'x-d': '1' })).toBe('wild');
    expect(at({})).toBe('root');
  });

  test('a higher-priority catch-all wins even over an exact path, and a lower one is only the fall-back', () => {
    const r = router([
      { name: 'maintenance', path: '/*', priority: 10, headers: { 'x-maint': '1' } },
      { name: 'users', path: '/api/users' },
      { name: 'fallback', path: '/*', priority: -10 },
    ]);
    expect(reach(r, req('GET x/api/users', { 'x-maint': '1' }))).toBe('maintenance');
    expect(reach(r, req('GET x/api/users'))).toBe('users');
    expect(reach(r, req('GET x/other'))).toBe('fallback');
  });

  test('no route matching gives undefined', () => {
    const r = router([{ name: 'a', path: '/a' }]);
    expect(r.match(req('GET x/b'))).toBeUndefined();
    expect(new Router<string>([]).match(req('GET x/'))).toBeUndefined();
  });
});

describe('host matching', () => {
  const r = router([
    { name: 'exact', path: '/*', hosts: ['shop.example.com'] },
    { name: 'wild', path: '/*', hosts: ['*.example.com'] },
    { name: 'list', path: '/*', hosts: ['a.test', 'b.test'] },
    { name: 'v6', path: '/*', hosts: ['[::1]'] },
    { name: 'any', path: '/*', priority: -1 },
  ]);
  test.each([
    ['shop.example.com', 'exact'],
    ['Shop.Example.COM', 'exact'],
    ['shop.example.com:8080', 'exact'],
    ['shop.example.com.', 'exact'],
    ['a.example.com', 'wild'],
    ['a.b.example.com', 'any'],
    ['example.com', 'any'],
    ['xexample.com', 'any'],
    ['a.test', 'list'],
    ['b.test:81', 'list'],
    ['c.test', 'any'],
    ['[::1]:8080', 'v6'],
    ['', 'any'],
    ['user@shop.example.com', 'any'],
  ])('host %j reaches %s', (host, expected) => {
    expect(reach(r, RequestView.fromRaw('GET', host, '/', '', {}))).toBe(expected);
  });

  test('a route listing exact and wildcard names counts as exact for the exact name and wildcard otherwise', () => {
    const r2 = router([
      { name: 'mixed', path: '/', hosts: ['*.example.com', 'shop.example.com'] },
      { name: 'wild-headers', path: '/', hosts: ['*.example.com'], headers: { a: '1' } },
      { name: 'other-exact', path: '/', hosts: ['api.example.com'] },
    ]);
    // For shop: mixed is exact, which beats wild-headers (wildcard) despite its header.
    expect(reach(r2, req('GET shop.example.com/', { a: '1' }))).toBe('mixed');
    // For www: mixed is only wildcard; then more headers decide.
    expect(reach(r2, req('GET www.example.com/', { a: '1' }))).toBe('wild-headers');
    expect(reach(r2, req('GET www.example.com/'))).toBe('mixed');
    expect(reach(r2, req('GET api.example.com/', { a: '1' }))).toBe('other-exact');
  });

  test('a route with hosts is never reached without a matching host, even as a fall-back', () => {
    const r2 = router([{ name: 'shop', path: '/*', hosts: ['shop.example.com'] }]);
    expect(reach(r2, req('GET /x'))).toBe('none');
    expect(reach(r2, req('GET other.example.com/x'))).toBe('none');
  });

  test('an empty host list means any host', () => {
    expect(reach(router([{ name: 'a', path: '/', hosts: [] }]), req('GET whatever/'))).toBe('a');
  });
});

describe('path matching', () => {
  const r = router([
    { name: 'exact', path: '/a/b' },
    { name: 'exact-slash', path: '/s/' },
    { name: 'param', path: '/items/:id' },
    { name: 'two-params', path: '/u/:user/repos/:repo' },
    { name: 'prefix', path: '/p/*' },
    { name: 'param-prefix', path: '/t/:tenant/*' },
    { name: 'root-exact', path: '/' },
  ]);
  test.each([
    ['/a/b', 'exact'],
    ['/a/b/', 'none'],
    ['/a/bc', 'none'],
    ['/a', 'none'],
    ['/s/', 'exact-slash'],
    ['/s', 'none'],
    ['/items/1', 'param'],
    ['/items/', 'none'],
    ['/items', 'none'],
    ['/items/1/', 'none'],
    ['/items/1/2', 'none'],
    ['/u/ann/repos/waygate', 'two-params'],
    ['/p', 'prefix'],
    ['/p/', 'prefix'],
    ['/p/q/r', 'prefix'],
    ['/pq', 'none'],
    ['/t/acme', 'param-prefix'],
    ['/t/acme/x/y', 'param-prefix'],
    ['/t/', 'none'],
    ['/', 'root-exact'],
    ['/A/B', 'none'],
  ])('%s reaches %s', (path, expected) => {
    expect(reach(r, req(`GET x${path}`))).toBe(expected);
  });

  test('a trailing slash is a different path for exact and parameter routes, the same for a prefix', () => {
    const r2 = router([{ name: 'no-slash', path: '/a' }, { name: 'slash', path: '/a/' }, { name: 'item', path: '/i/:id/' }]);
    expect(reach(r2, req('GET x/a'))).toBe('no-slash');
    expect(reach(r2, req('GET x/a/'))).toBe('slash');
    expect(reach(r2, req('GET x/i/1/'))).toBe('item');
    expect(reach(r2, req('GET x/i/1'))).toBe('none');
  });

  test('"/items/" does not give an empty parameter; a route that matches it is found instead', () => {
    const r2 = router([{ name: 'item', path: '/items/:id' }, { name: 'dir', path: '/:x/' }]);
    expect(reach(r2, req('GET x/items/'))).toBe('dir');
    expect(r2.match(req('GET x/items/'))?.params).toEqual({ x: 'items' });
  });
});

describe('params', () => {
  const r = router([
    { name: 'item', path: '/items/:id' },
    { name: 'repo', path: '/u/:user/repos/:repo/*' },
  ]);
  test('are the raw canonical segment text, in a fresh object per match', () => {
    const a = r.match(req('GET x/items/42'));
    const b = r.match(req('GET x/items/43'));
    expect(a?.params).toEqual({ id: '42' });
    expect(b?.params).toEqual({ id: '43' });
    expect(a?.pattern.source).toBe('/items/:id');
  });

  test('stay percent-encoded, in canonical upper-case form', () => {
    expect(r.match(req('GET x/items/caf%c3%a9'))?.params).toEqual({ id: 'caf%C3%A9' });
    expect(r.match(req('GET x/items/a%2fb'))?.params).toEqual({ id: 'a%2Fb' });
    expect(r.match(req('GET x/items/100%25'))?.params).toEqual({ id: '100%25' });
    expect(r.match(req('GET x/items/%7Ejo'))?.params).toEqual({ id: '~jo' });
    expect(r.match(req('GET x/items/a:b;c=d'))?.params).toEqual({ id: 'a:b;c=d' });
  });

  test('of a prefix route cover only the named segments', () => {
    expect(r.match(req('GET x/u/ann/repos/waygate/tree/main'))?.params).toEqual({ user: 'ann', repo: 'waygate' });
  });

  test('longer than find-my-way\'s default limit of 100 characters still match', () => {
    const id = 'x'.repeat(5000);
    expect(r.match(req(`GET x/items/${id}`))?.params).toEqual({ id });
  });

  test('are {} for a route without parameters', () => {
    expect(router([{ name: 'a', path: '/a/*' }]).match(req('GET x/a/b'))?.params).toEqual({});
  });
});

// find-my-way decodes escapes and gives "?", "#", ":" and "*" meanings of its own; the router
// must still match exactly what matchPattern says on canonical paths.
describe('literal segments with escapes and special characters', () => {
  const r = router([
    { name: 'cafe', path: '/café' },
    { name: 'enc-slash', path: '/a%2Fb' },
    { name: 'a-b', path: '/a/b' },
    { name: 'percent', path: '/100%25' },
    { name: 'semi', path: '/x;v=1' },
    { name: 'colon', path: '/ns/a:b' },
    { name: 'colon-param', path: '/ns2/a:b/:id' },
    { name: 'star', path: '/s%2A' },
    { name: 'question', path: '/q%3F' },
    { name: 'hash', path: '/h%23' },
    { name: 'space', path: '/sp ace' },
    { name: 'backslash', path: '/b%5Cs' },
    { name: 'bad-utf8', path: '/f/%FF' },
    { name: 'files', path: '/files/*' },
  ]);
  test.each([
    ['/café', 'cafe'],
    ['/caf%C3%A9', 'cafe'],
    ['/caf%c3%a9', 'cafe'],
    ['/a%2Fb', 'enc-slash'],
    ['/a%2fb', 'enc-slash'],
    ['/a/b', 'a-b'],
    ['/100%25', 'percent'],
    ['/100%', 'refused'],
    ['/100%2525', 'none'],
    ['/x;v=1', 'semi'],
    ['/x%3Bv=1', 'none'],
    ['/x', 'none'],
    ['/ns/a:b', 'colon'],
    ['/ns/a%3Ab', 'none'],
    ['/ns2/a:b/7', 'colon-param'],
    ['/s%2A', 'star'],
    ['/s*', 'none'],
    ['/sx', 'none'],
    ['/q?', 'none'],
    ['/q%3F', 'question'],
    ['/h%23', 'hash'],
    ['/sp ace', 'space'],
    ['/sp%20ace', 'space'],
    ['/b\\s', 'backslash'],
    ['/f/%FF', 'bad-utf8'],
    ['/f/%ff', 'bad-utf8'],
    ['/files/%FF%FE', 'files'],
    ['/files/%C3%28', 'files'],
  ])('%j reaches %s', (path, expected) => {
    const n = normalizePath(splitTarget(path).path);
    if (!n.ok) return expect('refused').toBe(expected);
    expect(reach(r, new RequestView('GET', 'x', n.path, '', {}))).toBe(expected);
  });
});

describe('methods', () => {
  const r = router([{ name: 'write', path: '/', methods: ['POST', 'PUT'] }, { name: 'read', path: '/', methods: ['GET'] }]);
  test.each([
    ['GET', 'read'],
    ['POST', 'write'],
    ['PUT', 'write'],
    ['HEAD', 'none'],
    ['get', 'none'],
    ['DELETE', 'none'],
  ])('%s reaches %s (case-sensitive, HEAD not implied by GET)', (method, expected) => {
    expect(reach(r, new RequestView(method, 'x', '/', '', {}))).toBe(expected);
  });
});

describe('header conditions', () => {
  const r = router([
    { name: 'mobile', path: '/', headers: { 'x-client': 'mobile' } },
    { name: 'iphone', path: '/', headers: { 'user-agent': '~(?i)iphone' } },
    { name: 'anchored', path: '/', headers: { 'x-ver': '~^v2$' } },
    { name: 'any', path: '/', priority: -1 },
  ]);
  test.each([
    [{ 'x-client': 'mobile' }, 'mobile'],
    [{ 'x-client': 'Mobile' }, 'any'],
    [{ 'x-client': 'mobile-web' }, 'any'],
    [{ 'user-agent': 'Mozilla/5.0 (iPhone; CPU)' }, 'iphone'],
    [{ 'user-agent': 'IPHONE' }, 'iphone'],
    [{ 'user-agent': 'Android' }, 'any'],
    [{ 'x-ver': 'v2' }, 'anchored'],
    [{ 'x-ver': 'v22' }, 'any'],
    [{ 'x-client': ['web', 'mobile'] }, 'mobile'],
    [{ 'x-client': 'web, mobile' }, 'mobile'],
    [{ 'x-client': 'web,mobile' }, 'mobile'],
    [{ 'x-ver': 'v1, v2' }, 'anchored'],
    [{ 'x-client': 'web, mobile-ish' }, 'any'],
    [{}, 'any'],
  ])('headers %j reach %s', (headers, expected) => {
    expect(reach(r, req('GET x/', headers))).toBe(expected);
  });

  test('a regex sees the whole joined value too', () => {
    const r2 = router([{ name: 'both', path: '/', headers: { 'x-tags': '~a, b' } }]);
    expect(reach(r2, req('GET x/', { 'x-tags': ['a', 'b'] }))).toBe('both');
  });

  test('an empty header value matches an empty exact condition but an absent header does not', () => {
    const r2 = router([{ name: 'empty', path: '/', headers: { 'x-e': '' } }]);
    expect(reach(r2, req('GET x/', { 'x-e': '' }))).toBe('empty');
    expect(reach(r2, req('GET x/'))).toBe('none');
  });
});

describe('cookie conditions', () => {
  const r = router([
    { name: 'beta', path: '/', cookies: { beta: '1' } },
    { name: 'both', path: '/', cookies: { beta: '1', tier: '~^gold' } },
    { name: 'any', path: '/', priority: -1 },
  ]);
  test.each([
    ['beta=1', 'beta'],
    ['a=x; beta=1; c=y', 'beta'],
    ['beta=1; tier=gold-plus', 'both'],
    ['tier=gold; beta=1', 'both'],
    ['beta="1"', 'beta'],
    ['beta=0; beta=1', 'any'],
    ['beta=1; beta=0', 'beta'],
    ['xbeta=1', 'any'],
    ['beta=10', 'any'],
    ['', 'any'],
  ])('Cookie %j reaches %s', (cookie, expected) => {
    expect(reach(r, req('GET x/', { cookie }))).toBe(expected);
  });

  test('no Cookie header at all fails every cookie condition', () => {
    expect(reach(r, req('GET x/'))).toBe('any');
  });
});

describe('query conditions', () => {
  const r = router([
    { name: 'v2', path: '/', query: { v: '2' } },
    { name: 'spaced', path: '/', query: { q: 'a b' } },
    { name: 'regex', path: '/', query: { id: '~^[0-9]+$' } },
    { name: 'empty', path: '/', query: { flag: '' } },
    { name: 'any', path: '/', priority: -1 },
  ]);
  test.each([
    ['v=2', 'v2'],
    ['v=1&v=2', 'v2'],
    ['v=2&v=1', 'v2'],
    ['v=1', 'any'],
    ['v=%32', 'v2'],
    ['V=2', 'any'],
    ['q=a+b', 'spaced'],
    ['q=a%20b', 'spaced'],
    ['q=a%2Bb', 'any'],
    ['id=123', 'regex'],
    ['id=12a&id=7', 'regex'],
    ['id=', 'any'],
    ['flag', 'empty'],
    ['flag=', 'empty'],
    ['', 'any'],
  ])('query %j reaches %s', (query, expected) => {
    expect(reach(r, req(`GET x/?${query}`))).toBe(expected);
  });
});

describe('explain', () => {
  const r = router([
    { name: 'shop-only', path: '/*', hosts: ['shop.example.com'], priority: 5 },
    { name: 'posts', path: '/api/users', methods: ['POST'] },
    { name: 'mobile', path: '/api/users', headers: { 'x-client': 'mobile' } },
    { name: 'beta', path: '/api/:thing', cookies: { beta: '1' } },
    { name: 'v2', path: '/api/:thing', query: { v: '2' } },
    { name: 'other', path: '/other' },
    { name: 'api', path: '/api/*' },
    { name: 'root', path: '/*' },
  ]);

  test('lists every other route in precedence order with the first condition that failed', () => {
    const e = r.explain(req('GET x/api/users?v=1', { 'x-client': 'web' }));
    expect(e.match?.name).toBe('api');
    expect(e.rejected).toEqual([
      { name: 'shop-only', reason: 'host' },
      { name: 'mobile', reason: 'header x-client: "web" does not match "mobile"' },
      { name: 'posts', reason: 'method GET not in [POST]' },
      { name: 'other', reason: 'path' },
      { name: 'beta', reason: 'cookie beta absent' },
      { name: 'v2', reason: 'query v: "1" does not match "2"' },
      { name: 'root', reason: 'lost to "api"' },
    ]);
  });

  test('reports absent headers and query keys, every query value, and a mismatched cookie value', () => {
    const e = r.explain(req('GET x/api/users?v=1&v=3', { cookie: 'beta=0' }));
    const reasons = Object.fromEntries(e.rejected.map((x) => [x.name, x.reason]));
    expect(reasons.mobile).toBe('header x-client absent');
    expect(reasons.beta).toBe('cookie beta: "0" does not match "1"');
    expect(reasons.v2).toBe('query v: "1", "3" does not match "2"');
    const e2 = r.explain(req('GET x/api/users'));
    expect(Object.fromEntries(e2.rejected.map((x) => [x.name, x.reason])).v2).toBe('query v absent');
  });

  test('gives the same match as match(), params included, and the winner is not in the rejected list', () => {
    const view = req('GET x/api/users?v=2');
    const e = r.explain(view);
    expect(e.match).toEqual(r.match(view));
    expect(e.match?.params).toEqual({ thing: 'users' });
    expect(e.rejected.map((x) => x.name)).not.toContain('v2');
    expect(e.rejected).toHaveLength(7);
  });

  test('with no match, every route is rejected, a host-restricted one ranked by its own host kind', () => {
    const r2 = router([{ name: 'a', path: '/a' }, { name: 'b', path: '/b', hosts: ['b.com'] }]);
    expect(r2.explain(req('GET x/c'))).toEqual({ match: undefined, rejected: [{ name: 'b', reason: 'host' }, { name: 'a', reason: 'path' }] });
  });
});

describe('construction', () => {
  test('size is the number of routes', () => {
    expect(router([{ name: 'a', path: '/a' }, { name: 'b', path: '/a' }]).size).toBe(2);
    expect(new Router([]).size).toBe(0);
  });

  test.each<[string, Spec, RegExp]>([
    ['an invalid path', { name: 'bad-path', path: '/a*b' }, /^route "bad-path": invalid path "\/a\*b"/],
    ['a path without a leading slash', { name: 'rel', path: 'a' }, /^route "rel": invalid path/],
    ['an encoded dot segment', { name: 'dot', path: '/x/%2e/y' }, /^route "dot": invalid path .*dot segments/],
    ['an invalid header regex', { name: 'bad-re', path: '/', headers: { a: '~(' } }, /^route "bad-re": header a: invalid regular expression/],
    ['an invalid cookie regex', { name: 'bad-c', path: '/', cookies: { a: '~[' } }, /^route "bad-c": cookie a: invalid regular expression/],
    ['an invalid query regex', { name: 'bad-q', path: '/', query: { a: '~)' } }, /^route "bad-q": query a: invalid regular expression/],
    ['a host with a port', { name: 'port', path: '/', hosts: ['a.com:80'] }, /^route "port": invalid host "a.com:80"/],
    ['a bare "*" host', { name: 'star', path: '/', hosts: ['*'] }, /^route "star": invalid host "\*"/],
    ['a wildcard in the middle', { name: 'mid', path: '/', hosts: ['a.*.com'] }, /^route "mid": invalid host/],
  ])('throws an Error naming the route on %s', (_what, spec, message) => {
    expect(() => router([{ name: 'ok', path: '/' }, spec])).toThrow(message);
  });

  test('accepts upper-case and fully-qualified host names as their normal form', () => {
    const r = router([{ name: 'a', path: '/', hosts: ['Shop.Example.com.', '*.API.example.com'] }]);
    expect(reach(r, req('GET shop.example.com/'))).toBe('a');
    expect(reach(r, req('GET v1.api.example.com/'))).toBe('a');
  });

  test('routes sharing a path shape under different parameter names each get their own params', () => {
    const r = router([
      { name: 'by-id', path: '/i/:id', headers: { a: '1' } },
      { name: 'by-slug', path: '/i/:slug' },
    ]);
    expect(r.match(req('GET x/i/z', { a: '1' }))?.params).toEqual({ id: 'z' });
    expect(r.match(req('GET x/i/z'))?.params).toEqual({ slug: 'z' });
  });

  test('the value given with the route comes back with the match', () => {
    const pool = { id: 'catalog' };
    const r = new Router([{ name: 'c', path: '/*', priority: 0, order: 0, value: pool }]);
    expect(r.match(req('GET x/'))?.value).toBe(pool);
  });
});

import { describe, expect, test } from 'vitest';
import { normalizePath, splitTarget } from '../../src/router/path.ts';
import { Router } from '../../src/router/router.ts';
import { RequestView } from '../../src/router/request-view.ts';

describe('normalizePath', () => {
  test.each([
    ['/', '/'],
    ['/api/users', '/api/users'],
    ['/%61%2D%5F%7E', '/a-_~'],
    ['/a%2fb', '/a%2Fb'],
    ['/a%3f%23', '/a%3F%23'],
    ['/a b"{}|\\^`', '/a%20b%22%7B%7D%7C%5C%5E%60'],
    ["/a;b=c,d:e@f!$&'()*+", "/a;b=c,d:e@f!$&'()*+"],
    ['//a///b//', '/a/b/'],
    ['/a/./b/.', '/a/b/'],
    ['/a/b/..', '/a/'],
    ['/a/b/../c', '/a/c'],
    ['/%2e', '/'],
    ['/café', '/caf%C3%A9'],
    ['/caf%c3%a9', '/caf%C3%A9'],
    ['/\u{1F600}', '/%F0%9F%98%80'],
    ['/%FF', '/%FF'],
    ['/a?b', '/a%3Fb'],
  ])('turns %j into %j', (input, expected) => {
    expect(normalizePath(input)).toEqual({ ok: true, path: expected });
  });

  test.each([
    ['', 'path must start with "/"'],
    ['a/b', 'path must start with "/"'],
    ['/..', 'path climbs above the root'],
    ['/a/../..', 'path climbs above the root'],
    ['/%zz', 'malformed percent-encoding'],
    ['/a%2', 'malformed percent-encoding'],
    ['/a%', 'malformed percent-encoding'],
    ['/a%00', 'encoded control character in path'],
    ['/a%7f', 'encoded control character in path'],
    ['/a\u0000', 'control character in path'],
    ['/a\tb', 'control character in path'],
  ])('refuses %j: %s', (input, reason) => {
    expect(normalizePath(input)).toEqual({ ok: false, reason });
  });

  test('returns an already canonical path unchanged', () => {
    const p = '/api/v1/items/42;x=1';
    expect(normalizePath(p)).toEqual({ ok: true, path: p });
  });
});

describe('splitTarget', () => {
  test.each([
    ['/a', { path: '/a', query: '' }],
    ['/a?', { path: '/a', query: '' }],
    ['/a?x=1&y=2', { path: '/a', query: 'x=1&y=2' }],
    ['/a?x=?', { path: '/a', query: 'x=?' }],
  ])('splits %j', (target, expected) => {
    expect(splitTarget(target)).toEqual(expected);
  });
});

// SPEC §3: an encoded slash or a path that escapes the root is never decoded into a match of a
// different route. Each raw path, what it normalises to, and which route it reaches.
describe('an attacker-shaped path reaches only the route its canonical form names', () => {
  const router = new Router([
    { name: 'admin', path: '/admin/*', priority: 0, order: 0, value: 'admin' },
    { name: 'api', path: '/api/*', priority: 0, order: 1, value: 'api' },
  ]);
  const reach = (raw: string): string => {
    const n = normalizePath(raw);
    if (!n.ok) return 'refused';
    return router.match(new RequestView('GET', 'x', n.path, '', {}))?.name ?? 'none';
  };

  test.each([
    ['/api/../admin', '/admin', 'admin'],
    ['/api/%2e%2e/admin', '/admin', 'admin'],
    ['/api/.%2e/admin', '/admin', 'admin'],
    ['/api/..%2fadmin', '/api/..%2Fadmin', 'api'],
    ['//admin', '/admin', 'admin'],
    ['/api\\..\\admin', '/api%5C..%5Cadmin', 'none'],
    ['/admin;x=1', '/admin;x=1', 'none'],
    ['/%61dmin', '/admin', 'admin'],
    ['/api/%252e%252e/admin', '/api/%252e%252e/admin', 'api'],
    ['/adm%C3%AFn', '/adm%C3%AFn', 'none'],
    ['/admïn', '/adm%C3%AFn', 'none'],
    ['/api/café', '/api/caf%C3%A9', 'api'],
  ])('%j normalises to %j and reaches %s', (raw, canonical, route) => {
    expect(normalizePath(raw)).toEqual({ ok: true, path: canonical });
    expect(reach(raw)).toBe(route);
  });

  test.each([['/admin%00'], ['/../x'], ['/api/../../admin'], ['/%zz'], ['/admin/%zz']])('%j is refused before routing', (raw) => {
    expect(reach(raw)).toBe('refused');
  });
});

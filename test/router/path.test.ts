import { describe, expect, test } from 'vitest';
import { AMBIGUOUS_PATH, normalizePath, splitTarget } from '../../src/router/path.ts';
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
    // Not refused by normalisation itself; `ambiguous: 'reject'` refuses it (see below).
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

// SPEC §3 "Ambiguous paths" (issue 12, defect 8): a path where reading %2F, %5C or '\' as a
// separator, decoding once more, or dropping a ;parameter would give a "." or ".." segment is
// refused with `ambiguous: 'reject'`; with `'forward'` (the default of the function, for config
// patterns) it normalises as before. Each vector: raw path, canonical form (what 'forward' gives),
// and the segment the refusal names.
describe('ambiguous paths', () => {
  const ambiguous: [string, string, string][] = [
    // encoded slash
    ['/api/..%2Fadmin', '/api/..%2Fadmin', '..%2Fadmin'],
    ['/api/..%2fadmin', '/api/..%2Fadmin', '..%2Fadmin'],
    ['/api/%2e%2e%2fadmin', '/api/..%2Fadmin', '..%2Fadmin'],
    ['/api/%2E%2e%2Fadmin', '/api/..%2Fadmin', '..%2Fadmin'],
    ['/api/.%2e%2Fadmin', '/api/..%2Fadmin', '..%2Fadmin'],
    ['/api/%2e.%2Fadmin', '/api/..%2Fadmin', '..%2Fadmin'],
    ['/api/.%2Fadmin', '/api/.%2Fadmin', '.%2Fadmin'],
    // encoded and raw backslash
    ['/api/..%5Cadmin', '/api/..%5Cadmin', '..%5Cadmin'],
    ['/api/..%5cadmin', '/api/..%5Cadmin', '..%5Cadmin'],
    ['/api/%2e%2e%5cadmin', '/api/..%5Cadmin', '..%5Cadmin'],
    ['/api/..\\admin', '/api/..%5Cadmin', '..%5Cadmin'],
    ['/api\\..\\admin', '/api%5C..%5Cadmin', 'api%5C..%5Cadmin'],
    // decoding once more (and more)
    ['/api/..%252Fadmin', '/api/..%252Fadmin', '..%252Fadmin'],
    ['/api/..%252fadmin', '/api/..%252fadmin', '..%252fadmin'],
    ['/api/..%255Cadmin', '/api/..%255Cadmin', '..%255Cadmin'],
    ['/api/%252e%252e%252fadmin', '/api/%252e%252e%252fadmin', '%252e%252e%252fadmin'],
    ['/api/%252E%252E/admin', '/api/%252E%252E/admin', '%252E%252E'],
    ['/api/%252e/admin', '/api/%252e/admin', '%252e'],
    ['/api/%25252e%25252e%25252fadmin', '/api/%25252e%25252e%25252fadmin', '%25252e%25252e%25252fadmin'],
    ['/api/%25%32%65%25%32%65/admin', '/api/%252e%252e/admin', '%252e%252e'],
    // at the start, in the middle, at the end
    ['/..%2Fadmin', '/..%2Fadmin', '..%2Fadmin'],
    ['/%2e%2e%2fetc/passwd', '/..%2Fetc/passwd', '..%2Fetc'],
    ['/api/x/..%2F..%2Fadmin/y', '/api/x/..%2F..%2Fadmin/y', '..%2F..%2Fadmin'],
    ['/api/x%2F..', '/api/x%2F..', 'x%2F..'],
    ['/api/x%2F..%2F', '/api/x%2F..%2F', 'x%2F..%2F'],
    ['/api/%2F..%2Fadmin', '/api/%2F..%2Fadmin', '%2F..%2Fadmin'],
    ['/api/x%5C.', '/api/x%5C.', 'x%5C.'],
    ['/api/..%2F', '/api/..%2F', '..%2F'],
    // ;parameters dropped before dot segments are resolved (Tomcat, Jetty, Spring)
    ['/api/..;/admin', '/api/..;/admin', '..;'],
    ['/api/..;jsessionid=1/admin', '/api/..;jsessionid=1/admin', '..;jsessionid=1'],
    ['/api/.;x/admin', '/api/.;x/admin', '.;x'],
    ['/api/..%3B/admin', '/api/..%3B/admin', '..%3B'],
    // overlong UTF-8 forms of '.', '/' and '\' (lax decoders)
    ['/api/%C0%AE%C0%AE%C0%AFadmin', '/api/%C0%AE%C0%AE%C0%AFadmin', '%C0%AE%C0%AE%C0%AFadmin'],
    ['/api/..%c0%afadmin', '/api/..%C0%AFadmin', '..%C0%AFadmin'],
    ['/api/..%C1%9Cadmin', '/api/..%C1%9Cadmin', '..%C1%9Cadmin'],
  ];
  test.each(ambiguous)('%j (canonical %j) is refused, naming segment %j', (raw, canonical, segment) => {
    const r = normalizePath(raw, 'reject');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.reason.startsWith(`${AMBIGUOUS_PATH}: segment ${JSON.stringify(segment)} `)).toBe(true);
    // The opt-out (and config patterns) get the canonical path as before.
    expect(normalizePath(raw, 'forward')).toEqual({ ok: true, path: canonical });
    expect(normalizePath(raw)).toEqual({ ok: true, path: canonical });
  });

  const unambiguous: [string, string][] = [
    ['/projects/a%2Fb', '/projects/a%2Fb'],
    ['/projects/a%2fb/c', '/projects/a%2Fb/c'],
    ['/files/a%5Cb', '/files/a%5Cb'],
    ['/files/a\\b', '/files/a%5Cb'],
    ['/files/%5C', '/files/%5C'],
    ['/a/...%2Fb', '/a/...%2Fb'],
    ['/a/..x%2Fb', '/a/..x%2Fb'],
    ['/a/x..%2Fb', '/a/x..%2Fb'],
    ['/a/.x%2F.y', '/a/.x%2F.y'],
    ['/a/%2525%2F', '/a/%2525%2F'],
    ['/a/%252Fb', '/a/%252Fb'],
    ['/a/%25', '/a/%25'],
    ['/a/%2541', '/a/%2541'],
    ['/a/;..%2Fx', '/a/;..%2Fx'],
    ['/a;b=c/d', '/a;b=c/d'],
    ['/a/v1.2;x', '/a/v1.2;x'],
    ['/a/%C0%80', '/a/%C0%80'],
    ['/api/../admin', '/admin'],
    ['/api/%2e%2e/admin', '/admin'],
    ['/a/b/..', '/a/'],
    ['/a%20b/.', '/a%20b/'],
    ['/caf%C3%A9/..%2E', '/caf%C3%A9/...'],
  ];
  test.each(unambiguous)('%j is not ambiguous: %j either way', (raw, canonical) => {
    expect(normalizePath(raw, 'reject')).toEqual({ ok: true, path: canonical });
    expect(normalizePath(raw, 'forward')).toEqual({ ok: true, path: canonical });
  });

  test('the refusals of normalisation itself come first, whatever the setting', () => {
    expect(normalizePath('/../..%2Fa', 'reject')).toEqual({ ok: false, reason: 'path climbs above the root' });
    expect(normalizePath('/a/..%2F%zz', 'reject')).toEqual({ ok: false, reason: 'malformed percent-encoding' });
  });

  test('a canonical path with dots inside names and ;parameters (the fast path) is unchanged under reject', () => {
    const p = '/api/v1.2/items/42;x=1/a..b/c.';
    expect(normalizePath(p, 'reject')).toEqual({ ok: true, path: p });
  });

  test('every spelling of a dot piece next to every spelling of a separator, at the start, middle and end of a segment (bounded sweep)', () => {
    const dots = ['..', '.', '.%2e', '%2E.', '%2e%2e', '%252e%252e', '%252E', '%25252e.', '%C0%AE%C0%AE'];
    const separators = ['%2F', '%2f', '%5C', '%5c', '\\', '%252F', '%255c', '%25252f', '%C0%AF', '%c1%9c'];
    let checked = 0;
    for (const d of dots) {
      for (const sep of separators) {
        for (const raw of [`/${d}${sep}x`, `/a/${d}${sep}x/y`, `/a/x${sep}${d}`, `/a/x${sep}${d}/y`, `/a/x${sep}${d}${sep}y`, `/a/x${sep}${d};p=1/y`]) {
          expect(normalizePath(raw, 'reject').ok, raw).toBe(false);
          expect(normalizePath(raw, 'forward').ok, raw).toBe(true);
          checked++;
        }
      }
    }
    expect(checked).toBe(dots.length * separators.length * 6);
  });

  test('a name next to the dots makes them part of a name: never refused (bounded sweep)', () => {
    const separators = ['%2F', '%5C', '\\', '%252F', '%C0%AF'];
    let checked = 0;
    for (const sep of separators) {
      for (const raw of [`/a/..x${sep}y`, `/a/x..${sep}y`, `/a/x${sep}...`, `/a/x${sep}..x`, `/a/x${sep}x..`, `/a/x${sep}y`, `/a/${sep}`]) {
        expect(normalizePath(raw, 'reject').ok, raw).toBe(true);
        checked++;
      }
    }
    expect(checked).toBe(separators.length * 7);
  });
});

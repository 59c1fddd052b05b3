import { describe, expect, test } from 'vitest';
import { RequestView, requestViewFromTarget } from '../../src/router/request-view.ts';

const view = (headers: Record<string, string | string[]>, query = '') => new RequestView('GET', 'x', '/', query, headers);

describe('RequestView', () => {
  test('normalises the host it is given and keeps method, path and query as given', () => {
    const v = RequestView.fromRaw('PATCH', 'Shop.Example.com.:8080', '/a%2Fb', 'a=1', {});
    expect([v.method, v.host, v.path, v.query]).toEqual(['PATCH', 'shop.example.com', '/a%2Fb', 'a=1']);
  });

  test('turns an invalid host into ""', () => {
    expect(RequestView.fromRaw('GET', 'evil@shop.example.com', '/', '', {}).host).toBe('');
    expect(RequestView.fromRaw('GET', '', '/', '', {}).host).toBe('');
  });

  test('header() returns one value as is, joins several with ", " and is undefined when absent', () => {
    const v = view({ 'x-one': 'a', 'x-many': ['a', 'b'], 'x-empty': [] });
    expect(v.header('x-one')).toBe('a');
    expect(v.header('x-many')).toBe('a, b');
    expect(v.header('x-empty')).toBeUndefined();
    expect(v.header('x-absent')).toBeUndefined();
  });

  test('cookie() reads several cookies, trims spaces, and the first occurrence wins', () => {
    const v = view({ cookie: 'a=1; b=2;c=3 ; a=4' });
    expect([v.cookie('a'), v.cookie('b'), v.cookie('c'), v.cookie('d')]).toEqual(['1', '2', '3', undefined]);
  });

  test('cookie() removes surrounding double quotes but does not percent-decode', () => {
    const v = view({ cookie: 'q="hello world"; e=a%20b; half="x; empty=' });
    expect(v.cookie('q')).toBe('hello world');
    expect(v.cookie('e')).toBe('a%20b');
    expect(v.cookie('half')).toBe('"x');
    expect(v.cookie('empty')).toBe('');
  });

  test('cookie() keeps "=" inside a value, ignores pairs without "=" and reads every Cookie field line', () => {
    const v = view({ cookie: ['tok=a=b==; flag', 'late=1; tok=other'] });
    expect(v.cookie('tok')).toBe('a=b==');
    expect(v.cookie('flag')).toBeUndefined();
    expect(v.cookie('late')).toBe('1');
  });

  test('cookie() is undefined for every name when there is no Cookie header', () => {
    expect(view({}).cookie('a')).toBeUndefined();
  });

  test('queryValues() returns every value in order, decoded with "+" as a space, [] when absent', () => {
    const v = view({}, 'v=1&v=2&q=a+b%20c&e&k=%zz');
    expect(v.queryValues('v')).toEqual(['1', '2']);
    expect(v.queryValues('q')).toEqual(['a b c']);
    expect(v.queryValues('e')).toEqual(['']);
    expect(v.queryValues('k')).toEqual(['%zz']);
    expect(v.queryValues('missing')).toEqual([]);
  });

  test('queryValues() is [] for every name when there is no query', () => {
    expect(view({}).queryValues('a')).toEqual([]);
  });
});

describe('requestViewFromTarget', () => {
  test('normalises the path, splits the query and takes the host from the Host header', () => {
    const r = requestViewFromTarget('GET', '/api/../%61dmin?x=1', { host: 'Shop.example.com:80' });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect([r.view.path, r.view.query, r.view.host]).toEqual(['/admin', 'x=1', 'shop.example.com']);
  });

  test('prefers the HTTP/2 :authority pseudo-header', () => {
    const r = requestViewFromTarget('GET', '/', { ':authority': 'a.example.com', host: 'b.example.com' });
    expect(r.ok && r.view.host).toBe('a.example.com');
  });

  test('refuses a path that climbs above the root, with the reason', () => {
    expect(requestViewFromTarget('GET', '/../etc/passwd', {})).toEqual({ ok: false, reason: 'path climbs above the root' });
  });
});

import { describe, expect, test } from 'vitest';
import { PathIndex, shapeOf, toLookupPath, type Shape } from '../../src/router/path-index.ts';
import { parsePattern, type PathPattern } from '../../src/router/pattern.ts';

type R = { name: string; shape: Shape; pattern: PathPattern };
const route = (name: string, path: string): R => {
  const p = parsePattern(path);
  if (!p.ok) throw new Error(p.reason);
  return { name, shape: shapeOf(p.pattern), pattern: p.pattern };
};
const index = (paths: string[]) => new PathIndex(paths.map((p, rank) => ({ route: route(p, p), rank, check: true })));
const names = (ix: PathIndex<R>, path: string) => ix.candidates(toLookupPath(path))?.map((c) => c.route.name);

describe('PathIndex', () => {
  test('returns undefined when no route can match the path', () => {
    expect(names(index(['/a', '/b/:id']), '/c')).toBeUndefined();
    expect(names(index([]), '/')).toBeUndefined();
  });

  test('lists candidates in rank order', () => {
    expect(names(index(['/a/b', '/a/:x', '/a/*', '/*']), '/a/b')).toEqual(['/a/b', '/a/:x', '/a/*', '/*']);
  });

  test('keeps candidate lists short in a large table: the catch-all is not a candidate of every entry', () => {
    const paths = ['/*'];
    for (let i = 0; i < 1000; i++) paths.push(`/svc${i}/*`, `/svc${i}/items/:id`);
    const ix = index(paths);
    expect(names(ix, '/nope')).toEqual(['/*']);
    expect(names(ix, '/svc7/items/1')).toEqual(['/*', '/svc7/*', '/svc7/items/:id']);
    expect(names(ix, '/svc7/other')).toEqual(['/*', '/svc7/*']);
  });

  test('keeps a more general route whose own entry find-my-way would search later', () => {
    // find-my-way tries "/a/*" (static "a") before "/:x/b" (parameter): the latter must be listed.
    expect(names(index(['/a/*', '/:x/b']), '/a/b')).toEqual(['/a/*', '/:x/b']);
  });

  test('toLookupPath hides every escape from find-my-way and leaves other paths as they are', () => {
    const p = '/a/b';
    expect(toLookupPath(p)).toBe(p);
    expect(toLookupPath('/a%2Fb%25')).not.toContain('%');
    expect(toLookupPath('/a%2Fb')).not.toBe(toLookupPath('/a/b'));
  });
});

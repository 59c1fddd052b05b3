// The path index of one host bucket (ARCHITECTURE "find-my-way radix on path"): given a canonical
// path, the rank-sorted list of routes that can match it, in one radix walk.
//
// - Each distinct path shape is registered once in find-my-way (a prefix "/a/*"
//   as "/a" and "/a/*"). The store of each registered path (an "entry") is the rank-sorted
//   list of every route in the bucket whose pattern can match a path for which the radix walk
//   returns that entry: the pattern must overlap the entry (`overlaps`), and is left out when
//   its own entries are always found first for the paths they share (`searchedBefore`, which
//   mirrors find-my-way's depth-first order: leaf, static, parameter, wildcard). So whatever
//   entry the walk returns, every route matching the request path is in its list, and walking
//   the list in rank order is exact. The pruning keeps lists short: "/*" is not a candidate of
//   every entry, so a lookup costs the same with 10 or 10,000 routes.
// - find-my-way is only a narrowing index; `matchPattern` stays the authority. A candidate's
//   path is tested with it unless its pattern provably matches every path the entry can match
//   (`covers`), and params always come from it.
// - find-my-way decodes escapes (decodeURI) and treats "?", "#", ":" and "*" specially.
//   Canonical paths (normalizePath) contain "%" only as part of an escape and never contain a
//   raw non-ASCII character, so replacing "%" with PERCENT_STANDIN on both sides (registration
//   and lookup) hides every escape from it: it compares canonical text byte for byte, and
//   "/a%2Fb" can never reach "/a/b". Literal ":" is registered as "::" (its escape syntax).
//   find-my-way lets a parameter match an empty segment; `fmwShapes` accounts for that.
import FindMyWay from 'find-my-way';
import type { PathPattern } from './pattern.ts';

// Stands in for "%" in what find-my-way sees (see the header comment). Any character a
// canonical path cannot contain works; a non-ASCII one is never special to find-my-way.
const PERCENT_STANDIN = '\u00a4';

// Registered paths are all under one method: methods are a condition the router checks.
const FMW_METHOD = 'GET';
const NO_QUERY = {};
const NOOP = (): undefined => undefined;

/** A path pattern reduced to what overlap reasoning needs: literal segments, null for a parameter. */
export interface Shape {
  readonly segs: readonly (string | null)[];
  readonly trailing: boolean;
  readonly prefix: boolean;
}

/** One route as a candidate of an entry: its value, rank and whether its path must be tested. */
export interface Candidate<V> {
  readonly route: V;
  readonly rank: number;
  /** False when the route's pattern matches every path the entry can match. */
  readonly check: boolean;
}

/** One registered find-my-way path: a radix leaf. */
interface Entry {
  readonly segs: readonly (string | null)[];
  readonly trailing: boolean;
  /** True for the "/a/*" half of a prefix: matches "/a/" and everything below. */
  readonly wildcard: boolean;
}

type Radix = FindMyWay.Instance<FindMyWay.HTTPVersion.V1>;

/** Returns the shape of a parsed pattern. */
export function shapeOf(p: PathPattern): Shape {
  return {
    segs: p.segments.map((s) => (s.param !== undefined ? null : s.literal)),
    trailing: p.trailingSlash,
    prefix: p.kind === 'prefix',
  };
}

/** Returns the find-my-way spelling of an entry. */
function fmwPath(e: Entry): string {
  let out = '';
  for (let i = 0; i < e.segs.length; i++) {
    const s = e.segs[i];
    out += s === null ? '/:p' + i : '/' + s.replaceAll('%', PERCENT_STANDIN).replaceAll(':', '::');
  }
  if (e.wildcard) return out + '/*';
  if (out === '') return '/';
  return e.trailing ? out + '/' : out;
}

/**
 * The sets of canonical paths find-my-way may return an entry for. It lets a parameter match an
 * empty segment, so "/a/:id" is also returned for "/a/" (empty segments elsewhere would need
 * "//", which a canonical path never has).
 */
function fmwShapes(e: Entry): Shape[] {
  if (e.wildcard) return [{ segs: e.segs, trailing: false, prefix: true }];
  const shapes: Shape[] = [{ segs: e.segs, trailing: e.trailing, prefix: false }];
  const n = e.segs.length;
  if (n > 0 && e.segs[n - 1] === null && !e.trailing) {
    shapes.push({ segs: e.segs.slice(0, n - 1), trailing: n > 1, prefix: false });
  }
  return shapes;
}

function compatible(a: string | null, b: string | null): boolean {
  return a === null || b === null || a === b;
}

/** True when some canonical path matches both shapes. */
function overlaps(x: Shape, y: Shape): boolean {
  if (!x.prefix && !y.prefix) {
    if (x.segs.length !== y.segs.length || x.trailing !== y.trailing) return false;
    for (let i = 0; i < x.segs.length; i++) if (!compatible(x.segs[i], y.segs[i])) return false;
    return true;
  }
  // A prefix matches its base and everything below: only its own segments constrain.
  if (x.prefix && !y.prefix && y.segs.length < x.segs.length) return false;
  if (y.prefix && !x.prefix && x.segs.length < y.segs.length) return false;
  const n = Math.min(x.segs.length, y.segs.length);
  for (let i = 0; i < n; i++) if (!compatible(x.segs[i], y.segs[i])) return false;
  return true;
}

/** True when each of q's segments is a parameter or equals the entry's literal at that position. */
function segsCover(q: readonly (string | null)[], e: readonly (string | null)[]): boolean {
  for (let i = 0; i < q.length; i++) if (q[i] !== null && q[i] !== e[i]) return false;
  return true;
}

/** True when shape q matches every canonical path find-my-way may return entry e for (no path test needed). */
function covers(q: Shape, e: Entry): boolean {
  if (q.prefix && q.segs.length === 0) return true;
  if (e.wildcard) return q.prefix && q.segs.length <= e.segs.length && segsCover(q.segs, e.segs);
  const n = e.segs.length;
  const emptyVariant = n > 0 && e.segs[n - 1] === null && !e.trailing;
  if (q.prefix) return q.segs.length <= n - (emptyVariant ? 1 : 0) && segsCover(q.segs, e.segs);
  return !emptyVariant && q.segs.length === n && q.trailing === e.trailing && segsCover(q.segs, e.segs);
}

// How an entry's find-my-way path ends: "/a" (a leaf after a segment), "/a/" or "/" (a leaf on
// the node after a slash), "/a/*" (the wildcard child of that node).
const END_SEGMENT = 0;
const END_SLASH = 1;
const END_WILDCARD = 2;

function endOf(e: Entry): number {
  if (e.wildcard) return END_WILDCARD;
  return e.trailing || e.segs.length === 0 ? END_SLASH : END_SEGMENT;
}

/**
 * True when, for every canonical path both entries can match, find-my-way's depth-first walk
 * returns a leaf of f's branch before it could reach e. At each node it tries the leaf itself,
 * then the static child, then the parameter child, then the wildcard child, and returns the
 * first leaf that matches; paths the two cannot share make the answer vacuously true.
 * Conservative: false whenever unsure.
 */
function searchedBefore(f: Entry, e: Entry): boolean {
  const n = Math.min(f.segs.length, e.segs.length);
  for (let i = 0; i < n; i++) {
    const a = f.segs[i];
    const b = e.segs[i];
    if (a === b) continue; // same literal, or both parameters (one shared parameter node)
    if (a !== null && b !== null) return true; // different literals: no common path
    return a !== null; // a static child is tried before the parameter child
  }
  const fEnd = endOf(f);
  const eEnd = endOf(e);
  if (f.segs.length === e.segs.length) return !(fEnd === END_WILDCARD && eEnd === END_SLASH) && fEnd !== eEnd;
  // f goes on below e's node: before e's wildcard; after e's own leaf (false even where the
  // shared path would need an empty parameter, which no route matches: conservative).
  if (f.segs.length > e.segs.length) return eEnd !== END_SLASH;
  return fEnd !== END_WILDCARD; // f is a leaf on a node e goes on below (or they share no path)
}

/** The find-my-way entries a shape is registered as: a prefix as its base and its wildcard. */
function ownEntries(shape: Shape): Entry[] {
  return shape.prefix
    ? [{ segs: shape.segs, trailing: false, wildcard: false }, { segs: shape.segs, trailing: false, wildcard: true }]
    : [{ segs: shape.segs, trailing: shape.trailing, wildcard: false }];
}

interface ShapeGroup<V> {
  readonly shape: Shape;
  readonly own: readonly string[];
  readonly members: Candidate<V>[];
}

/**
 * Builds one host bucket's radix: each entry's store is its rank-sorted candidate list — the
 * routes whose pattern can match a path for which find-my-way returns that entry. A route is
 * left out of an entry's list when one of its own entries is always found first for the paths
 * they share (so "/*" is not a candidate of every entry, nor "/a/b/*" of "/a/*"): lists stay
 * short and a lookup does not grow with the number of routes.
 */
function buildRadix<V extends { readonly shape: Shape }>(members: readonly Candidate<V>[]): Radix {
  // Routes grouped by path shape, so overlap is computed once per distinct shape.
  const groups = new Map<string, ShapeGroup<V>>();
  const entries = new Map<string, Entry>();
  for (const m of members) {
    const shape = m.route.shape;
    const key = (shape.prefix ? '*' : '=') + fmwPath({ segs: shape.segs, trailing: shape.trailing, wildcard: false });
    let g = groups.get(key);
    if (g === undefined) {
      const own = ownEntries(shape).map((e) => {
        const p = fmwPath(e);
        if (!entries.has(p)) entries.set(p, e);
        return p;
      });
      groups.set(key, (g = { shape, own, members: [] }));
    }
    g.members.push(m);
  }

  // Index by first segment: an entry starting with a literal can only share paths with shapes
  // starting with that literal, with a parameter, or with no segment at all.
  const byFirst = new Map<string, ShapeGroup<V>[]>();
  const general: ShapeGroup<V>[] = [];
  const all = [...groups.values()];
  for (const g of all) {
    const first = g.shape.segs.length > 0 ? g.shape.segs[0] : null;
    if (first === null) general.push(g);
    else {
      const list = byFirst.get(first);
      if (list === undefined) byFirst.set(first, [g]);
      else list.push(g);
    }
  }

  const radix: Radix = FindMyWay({ maxParamLength: Number.MAX_SAFE_INTEGER, querystringParser: () => NO_QUERY });
  for (const [path, entry] of entries) {
    const reach = fmwShapes(entry);
    const first = entry.segs.length > 0 ? entry.segs[0] : null;
    const pool = first === null ? all : [...(byFirst.get(first) ?? []), ...general];
    const candidates: Candidate<V>[] = [];
    for (const g of pool) {
      if (!reach.some((s) => overlaps(s, g.shape))) continue;
      if (!g.own.includes(path) && g.own.every((p) => searchedBefore(entries.get(p)!, entry))) continue;
      const check = !covers(g.shape, entry);
      for (const m of g.members) candidates.push({ route: m.route, rank: m.rank, check });
    }
    candidates.sort((a, b) => a.rank - b.rank);
    radix.on(FMW_METHOD, path, NOOP, candidates);
  }
  return radix;
}

/** Returns the path as find-my-way must see it (every "%" replaced by PERCENT_STANDIN); compute once per request. */
export function toLookupPath(canonicalPath: string): string {
  return canonicalPath.indexOf('%') === -1 ? canonicalPath : canonicalPath.replaceAll('%', PERCENT_STANDIN);
}

/** A radix index from canonical paths to the rank-sorted candidates that can match them. */
export class PathIndex<V extends { readonly shape: Shape }> {
  #radix: Radix;

  /** Indexes the routes; `check` of the given candidates is ignored (computed per entry). */
  constructor(members: readonly Candidate<V>[]) {
    this.#radix = buildRadix(members);
  }

  /** Returns the rank-sorted candidates for a path from toLookupPath, or undefined when no route can match it. */
  candidates(lookupPath: string): readonly Candidate<V>[] | undefined {
    const found = this.#radix.find(FMW_METHOD, lookupPath);
    return found === null ? undefined : (found.store as Candidate<V>[]);
  }
}

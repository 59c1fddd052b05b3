// The router (SPEC §3, ARCHITECTURE "host → find-my-way radix on path → candidates by precedence
// → first whose matchers hold"). Everything that can be decided without a request is decided at
// construction, so a lookup is: at most three Map gets for the host, one radix walk per host
// bucket, then a short walk down a precomputed, precedence-sorted candidate list.
//
// Design, and why it is exact:
//  - Every (route, kind of host match) pair gets a global `rank`: its index in the total order
//    of SPEC §3 precedence (see `compareEntries`). "The best route whose every condition holds"
//    is then the passing pair of lowest rank.
//  - Routes are split into host buckets (exact name, wildcard parent domain, any host). A route
//    with several host names is indexed once per name. A request visits at most one bucket of
//    each kind; the overall winner is the lowest-rank winner of those buckets, and each later
//    bucket only looks below the rank already found.
//  - In each bucket a PathIndex (path-index.ts, on find-my-way) returns the rank-sorted list of
//    routes that can match the path; the first whose path (matchPattern, the authority) and
//    conditions hold wins that bucket.
import { compileValueMatcher, type ValueMatcher } from './matchers.ts';
import { matchPattern, parsePattern, type PathPattern } from './pattern.ts';
import { normalizeHost } from './host.ts';
import { PathIndex, shapeOf, toLookupPath, type Candidate as IndexCandidate, type Shape } from './path-index.ts';
import type { RequestView } from './request-view.ts';

/** One route as the router needs it: conditions, precedence inputs and the caller's value. */
export interface RouteSpec<T> {
  name: string;
  /** Lower-case host names: exact "shop.example.com" or wildcard "*.example.com" (exactly one extra label). Omitted or empty = any host. */
  hosts?: readonly string[];
  /** Path pattern as in the config ("/*" when the user omitted it). */
  path: string;
  /** Upper-case methods; compared case-sensitively (RFC 9110 §9.1), HEAD is not implied by GET. */
  methods?: readonly string[];
  /** Lower-case header name → "exact" | "~regex". */
  headers?: Readonly<Record<string, string>>;
  cookies?: Readonly<Record<string, string>>;
  /** Matches if ANY value of that key matches. */
  query?: Readonly<Record<string, string>>;
  priority: number;
  /** Global declaration order (file name order, then position). */
  order: number;
  value: T;
}

/** The route a request reached, with its path parameters (raw canonical segment text, still percent-encoded). */
export interface RouteMatch<T> {
  name: string;
  value: T;
  params: Record<string, string>;
  pattern: PathPattern;
}

/** A route that did not win, and the first condition that failed (or `lost to "<winner>"`). */
export interface Rejection {
  name: string;
  reason: string;
}

// Kinds of host match, in precedence order (SPEC §3: exact over wildcard over none).
const HOST_EXACT = 0;
const HOST_WILDCARD = 1;
const HOST_ANY = 2;

const PATH_KIND_RANK: Record<PathPattern['kind'], number> = { exact: 0, param: 1, prefix: 2 };

// Condition kinds, checked in this order after host, path and methods.
const HEADER = 0;
const COOKIE = 1;
const QUERY = 2;
const CONDITION_LABEL = ['header', 'cookie', 'query'];

interface ValueCondition {
  readonly kind: number;
  readonly name: string;
  readonly spec: string;
  readonly test: ValueMatcher;
}

interface CompiledRoute<T> {
  readonly name: string;
  readonly value: T;
  readonly pattern: PathPattern;
  readonly shape: Shape;
  readonly priority: number;
  readonly order: number;
  readonly index: number;
  readonly methods: readonly string[] | undefined;
  readonly conditions: readonly ValueCondition[];
  readonly headerCount: number;
  readonly cookieCount: number;
  readonly queryCount: number;
  readonly exactHosts: readonly string[];
  /** Parent domains of the wildcard hosts: "*.example.com" → "example.com". */
  readonly wildcardParents: readonly string[];
  readonly anyHost: boolean;
  /** Global rank per host-match kind; -1 where the route cannot match that way. */
  readonly ranks: [number, number, number];
}

type Candidate<T> = IndexCandidate<CompiledRoute<T>>;
type Bucket<T> = PathIndex<CompiledRoute<T>>;

function fail(name: string, message: string): never {
  throw new Error(`route "${name}": ${message}`);
}

/** SPEC §3 precedence between two (route, host kind) pairs: negative when `a` wins. */
function compareEntries<T>(a: CompiledRoute<T>, aHost: number, b: CompiledRoute<T>, bHost: number): number {
  const pa = a.pattern;
  const pb = b.pattern;
  return (
    b.priority - a.priority ||
    PATH_KIND_RANK[pa.kind] - PATH_KIND_RANK[pb.kind] ||
    pb.segments.length - pa.segments.length ||
    pb.staticLength - pa.staticLength ||
    aHost - bHost ||
    b.headerCount - a.headerCount ||
    b.cookieCount - a.cookieCount ||
    b.queryCount - a.queryCount ||
    (a.methods === undefined ? 1 : 0) - (b.methods === undefined ? 1 : 0) ||
    a.order - b.order ||
    a.index - b.index
  );
}

/** Returns `host` lower-cased without a trailing dot when it is a valid host name to route on, else undefined. */
function configHost(host: string): string | undefined {
  const n = normalizeHost(host);
  const lower = host.toLowerCase();
  // Refuse what normalizeHost would silently change beyond case and a trailing dot (a port).
  return n !== undefined && (lower === n || lower === n + '.') ? n : undefined;
}

function compileConditions(name: string, kind: number, specs: Readonly<Record<string, string>> | undefined, into: ValueCondition[]): number {
  if (specs === undefined) return 0;
  let count = 0;
  for (const key of Object.keys(specs)) {
    const spec = specs[key];
    const compiled = compileValueMatcher(spec);
    if (!compiled.ok) fail(name, `${CONDITION_LABEL[kind]} ${key}: ${compiled.reason}`);
    into.push({ kind, name: key, spec, test: compiled.test });
    count++;
  }
  return count;
}

function compileRoute<T>(spec: RouteSpec<T>, index: number): CompiledRoute<T> {
  const { name } = spec;
  const parsed = parsePattern(spec.path);
  if (!parsed.ok) fail(name, `invalid path "${spec.path}": ${parsed.reason}`);
  const pattern = parsed.pattern;
  // An encoded dot segment ("/a/%2e/b") parses to an empty literal that could never match as written.
  for (const s of pattern.segments) if (s.literal === '') fail(name, `invalid path "${spec.path}": dot segments are not allowed in a route path`);

  const exactHosts: string[] = [];
  const wildcardParents: string[] = [];
  for (const h of spec.hosts ?? []) {
    const wildcard = h.startsWith('*.');
    const n = configHost(wildcard ? h.slice(2) : h);
    if (n === undefined) fail(name, `invalid host "${h}"`);
    const list = wildcard ? wildcardParents : exactHosts;
    if (!list.includes(n)) list.push(n);
  }

  const conditions: ValueCondition[] = [];
  const headerCount = compileConditions(name, HEADER, spec.headers, conditions);
  const cookieCount = compileConditions(name, COOKIE, spec.cookies, conditions);
  const queryCount = compileConditions(name, QUERY, spec.query, conditions);
  return {
    name,
    value: spec.value,
    pattern,
    shape: shapeOf(pattern),
    priority: spec.priority,
    order: spec.order,
    index,
    methods: spec.methods !== undefined && spec.methods.length > 0 ? [...spec.methods] : undefined,
    conditions,
    headerCount,
    cookieCount,
    queryCount,
    exactHosts,
    wildcardParents,
    anyHost: exactHosts.length === 0 && wildcardParents.length === 0,
    ranks: [-1, -1, -1],
  };
}

/** True when one comma-separated element of a header value matches (HAProxy `hdr()` semantics). */
function anyListElement(test: ValueMatcher, value: string): boolean {
  for (const part of value.split(',')) if (test(part.trim())) return true;
  return false;
}

/** True when the condition holds for the request. */
function conditionHolds(c: ValueCondition, view: RequestView): boolean {
  if (c.kind === HEADER) {
    // The whole value (all field lines joined), else any comma-separated element of it.
    const v = view.header(c.name);
    if (v === undefined) return false;
    return c.test(v) || (v.includes(',') && anyListElement(c.test, v));
  }
  if (c.kind === COOKIE) return c.test(view.cookie(c.name));
  const values = view.queryValues(c.name);
  for (let i = 0; i < values.length; i++) if (c.test(values[i])) return true;
  return false;
}

/** Returns the first failing method/header/cookie/query condition's description, or undefined when all hold. */
function describeFailure<T>(route: CompiledRoute<T>, view: RequestView): string | undefined {
  if (route.methods !== undefined && !route.methods.includes(view.method)) {
    return `method ${view.method} not in [${route.methods.join(', ')}]`;
  }
  for (const c of route.conditions) {
    if (conditionHolds(c, view)) continue;
    const label = `${CONDITION_LABEL[c.kind]} ${c.name}`;
    let actual: string | undefined;
    if (c.kind === HEADER) actual = view.header(c.name);
    else if (c.kind === COOKIE) actual = view.cookie(c.name);
    else {
      const values = view.queryValues(c.name);
      actual = values.length === 0 ? undefined : values.map((v) => JSON.stringify(v)).join(', ');
      if (actual !== undefined) return `${label}: ${actual} does not match ${JSON.stringify(c.spec)}`;
    }
    if (actual === undefined) return `${label} absent`;
    return `${label}: ${JSON.stringify(actual)} does not match ${JSON.stringify(c.spec)}`;
  }
  return undefined;
}

/** True when the route's methods and header/cookie/query conditions all hold. */
function conditionsHold<T>(route: CompiledRoute<T>, view: RequestView): boolean {
  if (route.methods !== undefined && !route.methods.includes(view.method)) return false;
  const conds = route.conditions;
  for (let i = 0; i < conds.length; i++) if (!conditionHolds(conds[i], view)) return false;
  return true;
}

/** Routes requests to the best route whose every condition holds (SPEC §3). Pure and reusable across requests. */
export class Router<T> {
  /** Number of routes. */
  readonly size: number;
  #routes: CompiledRoute<T>[];
  #exact = new Map<string, Bucket<T>>();
  #wildcard = new Map<string, Bucket<T>>();
  #any: Bucket<T> | undefined;
  // Scratch for the params of the last #search hit; safe because match() is synchronous.
  #params: Record<string, string> = {};

  /** Compiles the routes; throws an Error naming the route on an invalid pattern, matcher or host. */
  constructor(specs: readonly RouteSpec<T>[]) {
    this.size = specs.length;
    this.#routes = specs.map((s, i) => compileRoute(s, i));

    // The global precedence order of (route, host kind) pairs.
    const pairs: [CompiledRoute<T>, number][] = [];
    for (const r of this.#routes) {
      if (r.exactHosts.length > 0) pairs.push([r, HOST_EXACT]);
      if (r.wildcardParents.length > 0) pairs.push([r, HOST_WILDCARD]);
      if (r.anyHost) pairs.push([r, HOST_ANY]);
    }
    pairs.sort((a, b) => compareEntries(a[0], a[1], b[0], b[1]));
    pairs.forEach(([r, kind], rank) => (r.ranks[kind] = rank));

    const exact = new Map<string, Candidate<T>[]>();
    const wildcard = new Map<string, Candidate<T>[]>();
    const any: Candidate<T>[] = [];
    const add = (map: Map<string, Candidate<T>[]>, key: string, c: Candidate<T>) => {
      const list = map.get(key);
      if (list === undefined) map.set(key, [c]);
      else list.push(c);
    };
    for (const r of this.#routes) {
      for (const h of r.exactHosts) add(exact, h, { route: r, rank: r.ranks[HOST_EXACT], check: true });
      for (const h of r.wildcardParents) add(wildcard, h, { route: r, rank: r.ranks[HOST_WILDCARD], check: true });
      if (r.anyHost) any.push({ route: r, rank: r.ranks[HOST_ANY], check: true });
    }
    for (const [h, members] of exact) this.#exact.set(h, new PathIndex(members));
    for (const [h, members] of wildcard) this.#wildcard.set(h, new PathIndex(members));
    this.#any = any.length > 0 ? new PathIndex(any) : undefined;
  }

  /** Returns the best route whose every condition holds, or undefined when none does. */
  match(view: RequestView): RouteMatch<T> | undefined {
    const lookupPath = toLookupPath(view.path);
    const host = view.host;
    let best: Candidate<T> | undefined;
    let params: Record<string, string> = this.#params;
    let bound = Number.MAX_SAFE_INTEGER;

    if (host.length !== 0) {
      if (this.#exact.size !== 0) {
        const bucket = this.#exact.get(host);
        if (bucket !== undefined) {
          const hit = this.#search(bucket, lookupPath, view, bound);
          if (hit !== undefined) {
            best = hit;
            bound = hit.rank;
            params = this.#params;
          }
        }
      }
      if (this.#wildcard.size !== 0) {
        const dot = host.indexOf('.');
        const bucket = dot > 0 ? this.#wildcard.get(host.slice(dot + 1)) : undefined;
        if (bucket !== undefined) {
          const hit = this.#search(bucket, lookupPath, view, bound);
          if (hit !== undefined) {
            best = hit;
            bound = hit.rank;
            params = this.#params;
          }
        }
      }
    }
    if (this.#any !== undefined) {
      const hit = this.#search(this.#any, lookupPath, view, bound);
      if (hit !== undefined) {
        best = hit;
        params = this.#params;
      }
    }
    if (best === undefined) return undefined;
    const r = best.route;
    return { name: r.name, value: r.value, params, pattern: r.pattern };
  }

  /** Returns the bucket's best passing candidate ranked below `bound` (its params in #params), or undefined. */
  #search(bucket: Bucket<T>, lookupPath: string, view: RequestView, bound: number): Candidate<T> | undefined {
    const list = bucket.candidates(lookupPath);
    if (list === undefined) return undefined;
    for (let i = 0; i < list.length; i++) {
      const c = list[i];
      if (c.rank >= bound) return undefined;
      const pattern = c.route.pattern;
      let params: Record<string, string> | null = null;
      if (c.check) {
        params = matchPattern(pattern, view.path);
        if (params === null) continue;
      }
      if (!conditionsHold(c.route, view)) continue;
      this.#params = params ?? (pattern.params.length === 0 ? {} : matchPattern(pattern, view.path)!);
      return c;
    }
    return undefined;
  }

  /**
   * Returns the match (same as `match`) and every other route in precedence order with the first
   * condition that failed — "host", "path", the method/header/cookie/query failure — or
   * `lost to "<winner>"` when all its conditions hold. A linear scan: for diagnostics, not traffic.
   */
  explain(view: RequestView): { match: RouteMatch<T> | undefined; rejected: Rejection[] } {
    const host = view.host;
    const dot = host.indexOf('.');
    const parent = dot > 0 ? host.slice(dot + 1) : undefined;
    const ordered: { route: CompiledRoute<T>; rank: number; hostOk: boolean }[] = [];
    for (const r of this.#routes) {
      let kind = -1;
      if (host !== '' && r.exactHosts.includes(host)) kind = HOST_EXACT;
      else if (parent !== undefined && r.wildcardParents.includes(parent)) kind = HOST_WILDCARD;
      else if (r.anyHost) kind = HOST_ANY;
      // A route whose host fails is listed where its best host kind would rank it.
      const rank = kind >= 0 ? r.ranks[kind] : Math.min(...r.ranks.filter((x) => x >= 0));
      ordered.push({ route: r, rank, hostOk: kind >= 0 });
    }
    ordered.sort((a, b) => a.rank - b.rank);

    let match: RouteMatch<T> | undefined;
    const rejected: Rejection[] = [];
    for (const { route, hostOk } of ordered) {
      let reason: string | undefined;
      const params = hostOk ? matchPattern(route.pattern, view.path) : null;
      if (!hostOk) reason = 'host';
      else if (params === null) reason = 'path';
      else reason = describeFailure(route, view);
      if (reason === undefined) {
        if (match === undefined) {
          match = { name: route.name, value: route.value, params: params!, pattern: route.pattern };
          continue;
        }
        reason = `lost to "${match.name}"`;
      }
      rejected.push({ name: route.name, reason });
    }
    return { match, rejected };
  }
}

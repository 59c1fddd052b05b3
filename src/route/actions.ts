// What a matched route does (SPEC §3): forward to a pool (or a weighted split of pools) with
// path and header rewrites, redirect, or respond by itself. Everything is compiled at load so
// the request path only joins precomputed parts.
import { compileHeaderOps } from '../forward/headers.ts';
import type { HeaderOps } from '../forward/headers.ts';
import { normalizePath } from '../router/path.ts';
import { poolChooser } from '../upstream/pool.ts';
import type { UpstreamPool } from '../upstream/pool.ts';

type HeaderOpsInput = { set?: Record<string, string>; add?: Record<string, string>; remove?: readonly string[] };

/** Options for one route's action, as the gateway derives them from config. */
export interface RouteActionOptions {
  readonly pool?: UpstreamPool;
  readonly split?: readonly { pool: UpstreamPool; weight: number }[];
  readonly stripPrefix?: string;
  readonly rewritePath?: string;
  /** Parameter names of the route's path pattern. */
  readonly params: readonly string[];
  readonly requestHeaders?: HeaderOpsInput;
  readonly responseHeaders?: HeaderOpsInput;
  readonly redirect?: { to: string; status: number };
  readonly respond?: { status: number; body: string; headers: Record<string, string> };
}

/** Values a redirect template can refer to. */
export interface RedirectValues {
  scheme: string;
  host: string;
  port: string;
  path: string;
  /** "?a=b" or "". */
  query: string;
  params: Record<string, string>;
}

export interface ForwardAction {
  readonly kind: 'forward';
  /** The pool, or every pool of a split (with `weights`). */
  readonly pools: readonly UpstreamPool[];
  readonly weights: readonly number[];
  /** Returns the pool for this request (a split picks by weight, preferring pools with an available target). */
  choosePool(): UpstreamPool;
  /** Returns the upstream path (without query) for the matched path and its params. */
  rewrite(path: string, params: Record<string, string>): string;
  readonly requestOps: HeaderOps | undefined;
  readonly responseOps: HeaderOps | undefined;
}

export interface RedirectAction {
  readonly kind: 'redirect';
  readonly status: number;
  /** Returns the Location for this request. */
  location(v: RedirectValues): string;
  readonly responseOps: HeaderOps | undefined;
}

export interface RespondAction {
  readonly kind: 'respond';
  readonly status: number;
  readonly body: Buffer;
  /** Flat [name, value, …] including content-length (and content-type when the body is not empty). */
  readonly headers: readonly string[];
}

export type RouteAction = ForwardAction | RedirectAction | RespondAction;


/** Compiles a route's action; throws on options config validation should have refused. */
export function compileAction(o: RouteActionOptions): RouteAction {
  if (o.respond !== undefined) return compileRespond(o.respond, compileHeaderOps(o.responseHeaders));
  if (o.redirect !== undefined) {
    const parts = compileTemplate(o.redirect.to, o.params, true);
    return {
      kind: 'redirect',
      status: o.redirect.status,
      location: (v) => renderTemplate(parts, v),
      responseOps: compileHeaderOps(o.responseHeaders),
    };
  }
  let choosePool: () => UpstreamPool;
  let pools: UpstreamPool[];
  let weights: number[];
  if (o.pool !== undefined) {
    const pool = o.pool;
    pools = [pool];
    weights = [1];
    choosePool = () => pool;
  } else if (o.split !== undefined && o.split.length > 0) {
    pools = o.split.map((s) => s.pool);
    weights = o.split.map((s) => s.weight);
    // Canary traffic falls back to the other pools while a pool has nothing available.
    choosePool = poolChooser(pools, weights);
  } else {
    throw new Error('a forwarding route needs a pool or a split');
  }
  return {
    kind: 'forward',
    pools,
    weights,
    choosePool,
    rewrite: compileRewrite(o.stripPrefix, o.rewritePath, o.params),
    requestOps: compileHeaderOps(o.requestHeaders),
    responseOps: compileHeaderOps(o.responseHeaders),
  };
}

/** Framing is waygate's: a route's header edits never set these on its own answer. */
const FRAMING = new Set(['content-length', 'transfer-encoding']);

/** Compiles an answer: `respond.headers`, then the route's `responseHeaders` (remove, set, add), then the framing. */
function compileRespond(r: { status: number; body: string; headers: Record<string, string> }, ops: HeaderOps | undefined): RespondAction {
  const body = Buffer.from(r.body, 'utf8');
  const headers: string[] = [];
  const push = (name: string, value: string): void => {
    if (!FRAMING.has(name.toLowerCase())) headers.push(name, value);
  };
  for (const [name, value] of Object.entries(r.headers)) {
    if (ops === undefined || !ops.drop.has(name.toLowerCase())) push(name, value);
  }
  if (ops !== undefined) for (let i = 0; i < ops.append.length; i += 2) push(ops.append[i], ops.append[i + 1]);
  const hasType = headers.some((h, i) => i % 2 === 0 && h.toLowerCase() === 'content-type');
  // A default type unless the route removed it on purpose.
  if (!hasType && body.length > 0 && ops?.drop.has('content-type') !== true) headers.push('content-type', 'text/plain; charset=utf-8');
  // RFC 9110 §8.6: no Content-Length on 1xx and 204; a 304 carries none of its own either.
  if (r.status >= 200 && r.status !== 204 && r.status !== 304) headers.push('content-length', String(body.length));
  return { kind: 'respond', status: r.status, body, headers };
}

type TemplatePart = string | { ref: string };

const PARAM_REF = /:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
const REDIRECT_VARS = new Set(['scheme', 'host', 'port', 'path', 'query']);

/** Splits a template into literal text and references to known params (and redirect variables). */
function compileTemplate(template: string, params: readonly string[], redirectVars: boolean): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let last = 0;
  for (const m of template.matchAll(PARAM_REF)) {
    const name = m[1] ?? m[2];
    const known = params.includes(name) || (redirectVars && m[2] !== undefined && REDIRECT_VARS.has(name));
    if (!known) continue;
    if (m.index > last) parts.push(template.slice(last, m.index));
    parts.push({ ref: m[1] !== undefined ? ':' + name : name });
    last = m.index + m[0].length;
  }
  if (last < template.length) parts.push(template.slice(last));
  return parts;
}

function renderTemplate(parts: readonly TemplatePart[], v: RedirectValues): string {
  let out = '';
  for (const p of parts) {
    if (typeof p === 'string') out += p;
    else if (p.ref.startsWith(':')) out += v.params[p.ref.slice(1)] ?? '';
    else if (p.ref in v.params && !REDIRECT_VARS.has(p.ref)) out += v.params[p.ref];
    else out += v[p.ref as 'scheme' | 'host' | 'port' | 'path' | 'query'];
  }
  return out;
}

/**
 * Builds the path rewrite: `rewritePath` (with the path's :params) replaces the whole path;
 * otherwise `stripPrefix` removes a leading prefix at a segment boundary ("/api" turns "/api/x"
 * into "/x" and "/api" into "/", and leaves "/apix" alone). Params are canonical segments, so
 * the result stays canonical.
 */
function compileRewrite(stripPrefix: string | undefined, rewritePath: string | undefined, params: readonly string[]): (path: string, p: Record<string, string>) => string {
  if (rewritePath !== undefined) {
    const norm = normalizePath(rewritePath);
    const parts = compileTemplate(norm.ok ? norm.path : rewritePath, params, false);
    if (parts.length === 1 && typeof parts[0] === 'string') {
      const fixed = parts[0];
      return () => fixed;
    }
    return (_path, p) => {
      let out = '';
      for (const part of parts) out += typeof part === 'string' ? part : p[part.ref.slice(1)] ?? '';
      return out;
    };
  }
  if (stripPrefix !== undefined) {
    const norm = normalizePath(stripPrefix);
    let prefix = norm.ok ? norm.path : stripPrefix;
    if (prefix.endsWith('/')) prefix = prefix.slice(0, -1);
    if (prefix === '') return (path) => path;
    return (path) => {
      if (!path.startsWith(prefix)) return path;
      if (path.length === prefix.length) return '/';
      return path.charCodeAt(prefix.length) === 47 ? path.slice(prefix.length) : path;
    };
  }
  return (path) => path;
}

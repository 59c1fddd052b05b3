// Route path patterns (SPEC §3): "/exact", "/items/:id" (a parameter is one whole segment) and
// "/prefix/*" (matches "/prefix" and everything below it). Literal parts are normalised exactly
// like request paths, so "/caf%c3%a9" and "/café" are the same pattern.
import { normalizePath } from './path.ts';

/** Which precedence class a pattern belongs to: exact beats param beats prefix. */
export type PathKind = 'exact' | 'param' | 'prefix';

/** One segment of a pattern: a literal (canonical text) or a named parameter. */
export type PatternSegment = { literal: string; param?: undefined } | { param: string; literal?: undefined };

/** A parsed, canonical path pattern. */
export interface PathPattern {
  /** The pattern as written in the config. */
  readonly source: string;
  readonly kind: PathKind;
  /** Canonical form without the trailing "/*" of a prefix ("/" for the root prefix "/*"). */
  readonly base: string;
  readonly segments: readonly PatternSegment[];
  /** Parameter names in order of appearance. */
  readonly params: readonly string[];
  /** Characters of literal text (parameters count zero): the "longer path" tie-breaker. */
  readonly staticLength: number;
  /** True when the base ends with "/" (only meaningful for exact and param patterns). */
  readonly trailingSlash: boolean;
}

/** The outcome of parsing a pattern: the pattern, or why it is invalid. */
export type ParsePatternResult = { ok: true; pattern: PathPattern } | { ok: false; reason: string };

const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DOT_SEGMENT = /^(?:\.|%2e){1,2}$/i;

/** Parses a route path pattern; returns the canonical pattern or the reason it is invalid. */
export function parsePattern(source: string): ParsePatternResult {
  if (!source.startsWith('/')) return { ok: false, reason: 'a path must start with "/"' };
  let body = source;
  let kind: PathKind = 'exact';
  if (body === '/*') {
    body = '/';
    kind = 'prefix';
  } else if (body.endsWith('/*')) {
    body = body.slice(0, -2);
    kind = 'prefix';
  }
  if (body.includes('*')) return { ok: false, reason: '"*" is only allowed as the last segment, as in "/prefix/*"' };

  const rawSegments = body.split('/').slice(1);
  const trailingSlash = kind !== 'prefix' && body.length > 1 && body.endsWith('/');
  const segments: PatternSegment[] = [];
  const params: string[] = [];
  let staticLength = 0;
  for (let i = 0; i < rawSegments.length; i++) {
    const seg = rawSegments[i];
    if (seg === '') {
      if (i === rawSegments.length - 1) continue; // root or trailing slash
      return { ok: false, reason: 'empty path segment ("//")' };
    }
    if (seg.startsWith(':')) {
      const name = seg.slice(1);
      if (!PARAM_NAME.test(name)) {
        return { ok: false, reason: `invalid parameter "${seg}": a parameter is a whole segment named like ":id"` };
      }
      if (params.includes(name)) return { ok: false, reason: `parameter ":${name}" appears twice` };
      params.push(name);
      segments.push({ param: name });
      continue;
    }
    // A dot segment, raw or encoded ("%2e", ".%2E"), would be removed from every request path,
    // so a pattern holding one could never match: refuse it.
    if (DOT_SEGMENT.test(seg)) return { ok: false, reason: 'dot segments are not allowed in a route path' };
    const norm = normalizePath('/' + seg);
    if (!norm.ok) return { ok: false, reason: norm.reason };
    const literal = norm.path.slice(1);
    segments.push({ literal });
    staticLength += literal.length + 1;
  }
  if (params.length > 0 && kind === 'exact') kind = 'param';
  const base = '/' + segments.map((s) => (s.param !== undefined ? ':' + s.param : s.literal)).join('/') + (trailingSlash ? '/' : '');
  return { ok: true, pattern: { source, kind, base, segments, params, staticLength, trailingSlash } };
}

/**
 * Matches a canonical request path against a pattern. Returns the parameters (raw canonical
 * segment text, still percent-encoded where the path is) or `null` when the path does not match.
 * A prefix pattern "/a/*" matches "/a", "/a/" and everything below "/a/".
 */
export function matchPattern(p: PathPattern, path: string): Record<string, string> | null {
  if (p.params.length === 0) {
    if (p.kind === 'exact') return path === p.base ? {} : null;
    if (p.base === '/') return {};
    return path === p.base || (path.startsWith(p.base) && path.charCodeAt(p.base.length) === 47) ? {} : null;
  }
  const parts = path.split('/');
  // parts[0] is '' (path starts with '/'); a trailing slash gives a final ''.
  const n = p.segments.length;
  if (p.kind === 'prefix') {
    if (parts.length - 1 < n) return null;
  } else {
    const hasTrailing = parts.length > 1 && parts[parts.length - 1] === '' && path.length > 1;
    if (hasTrailing !== p.trailingSlash) return null;
    if (parts.length - 1 - (hasTrailing ? 1 : 0) !== n) return null;
  }
  const params: Record<string, string> = {};
  for (let i = 0; i < n; i++) {
    const seg = p.segments[i];
    const part = parts[i + 1];
    if (seg.param !== undefined) {
      if (part === '') return null;
      params[seg.param] = part;
    } else if (part !== seg.literal) {
      return null;
    }
  }
  return params;
}

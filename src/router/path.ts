// Request-path normalisation (SPEC §3): every path is turned into one canonical form before it
// is matched and before it is forwarded, so the router and the upstream see the same thing.
//
// Rules (RFC 3986 §2.3, §6.2.2, §5.2.4):
//  - percent-encodings of unreserved characters (A-Z a-z 0-9 - . _ ~) are decoded;
//    every other encoding is kept, with upper-case hex (`%2f` → `%2F`), so an encoded slash
//    is never a separator and `%252e` stays a literal;
//  - characters not allowed raw in a path (space, `"`, `\`, `{`, non-ASCII, …) are encoded;
//  - control characters (raw or as `%00`-`%1F`, `%7F`) and malformed `%` escapes are refused;
//  - empty segments are merged (`//a` → `/a`), `.` segments removed and `..` segments pop one
//    segment; a `..` that would climb above the root is refused, not clamped;
//  - with `ambiguous: 'reject'` (waygate.yaml `security.ambiguousPaths`, the default there), a
//    canonical path that another decoder would read with a dot segment is refused (see
//    ambiguousSegment below).

/** The outcome of normalising a path: the canonical path, or why it was refused. */
export type NormalizeResult = { ok: true; path: string } | { ok: false; reason: string };

const HEX = '0123456789ABCDEF';

// 1 = may appear raw in a canonical path: unreserved, sub-delims, ':' '@' and '/'.
const RAW_OK = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/") {
  RAW_OK[c.charCodeAt(0)] = 1;
}
// 1 = unreserved: decoded when it arrives percent-encoded.
const UNRESERVED = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~') {
  UNRESERVED[c.charCodeAt(0)] = 1;
}

function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 65 && code <= 70) return code - 55;
  if (code >= 97 && code <= 102) return code - 87;
  return -1;
}

function encodeByte(b: number): string {
  return '%' + HEX[b >> 4] + HEX[b & 15];
}

// ---- ambiguous paths (SPEC §3, issue 12) ----
//
// waygate forwards the canonical path, and a backend may read it differently: many decode %2F or
// %5C into separators or treat '\' as '/' (IIS, Tomcat with ALLOW_BACKSLASH or
// ALLOW_ENCODED_SLASH, static file servers, frameworks that decode before routing), decode once
// more (a second decoding layer, CVE-2001-0333 style), or drop ";parameters" from a segment
// before resolving dot segments (Tomcat, Jetty, Spring: `/api/..;/admin`). When any of these
// readings turns part of the path into "." or "..", the backend resolves a resource the router
// never matched (`/api/..%2Fadmin` is `/admin` to it). The rule, on the canonical path:
//  - a *separator* is a real '/', or an escape that decodes, once or more, to '/' or '\':
//    %2F %5C %252F %255C %25252F … (hex in any case below the first layer), and the overlong
//    UTF-8 forms %C0%AF and %C1%9C that lax decoders accept;
//  - a *dot* is '.', or an escape that decodes, once or more, to '.': %252E %25252E … and the
//    overlong %C0%AE (%2E itself never survives normalisation: it is decoded, then removed);
//  - the path is cut into pieces at every separator; a piece's *name* is what precedes its first
//    ';' (or escape decoding to ';');
//  - the path is ambiguous when a piece's name is exactly one or two dots.
// So `/api/..%2Fadmin`, `/api/..%5Cadmin`, `/api/..\admin` (canonical `..%5Cadmin`),
// `/api/%252e%252e%252fadmin`, `/api/x%2F..`, `/api/..;/admin` are ambiguous; a lone %2F
// (`/projects/a%2Fb`), a '\' between names (`/a\b`), `...`, `.x`, `a..b` or `..x%2F` are not.
// Only the escapes marked in SUSPECT (and ';') can make a piece ambiguous, so normalizePath runs
// the scan only when one is present.

// 1 = a byte whose escape (or, for '\', whose raw form) may make a path ambiguous.
const SUSPECT = new Uint8Array(256);
for (const b of [0x2f, 0x5c, 0x25, 0x3b, 0xc0, 0xc1]) SUSPECT[b] = 1;

// What one token of the canonical path is to the most lenient decoder.
const OTHER = 0;
const DOT = 1;
const SEPARATOR = 2;
const PARAMETER = 3;

/**
 * Decodes the escape at `p[i]` (a '%') as many times as it takes: every "25" after the '%' is one
 * more layer encoding the '%' itself ("%25252E" → "%252E" → "%2E" → "."). Returns
 * `end * 256 + byte` (`end`: the index after the escape), or -1 when no byte follows.
 */
function decodeDeep(p: string, i: number): number {
  let j = i + 1;
  while (p.charCodeAt(j) === 50 && p.charCodeAt(j + 1) === 53 && hexValue(p.charCodeAt(j + 2)) >= 0 && hexValue(p.charCodeAt(j + 3)) >= 0) j += 2;
  const hi = hexValue(p.charCodeAt(j));
  const lo = hexValue(p.charCodeAt(j + 1));
  if (hi < 0 || lo < 0) return -1;
  return (j + 2) * 256 + ((hi << 4) | lo);
}

/**
 * Returns the real segment of canonical `path` that holds an ambiguous piece (the rule above),
 * or undefined when there is none.
 */
function ambiguousSegment(path: string): string | undefined {
  let segStart = 1; // where the real segment being read starts (for the message)
  let dots = 0; // dots in the current piece's name
  let onlyDots = true; // the name holds nothing else so far
  let inParams = false; // past the piece's first ';'
  for (let i = 1; ; ) {
    const atEnd = i >= path.length;
    const c = atEnd ? 47 : path.charCodeAt(i);
    let kind = OTHER;
    let next = i + 1;
    if (c === 47) kind = SEPARATOR;
    else if (c === 46) kind = DOT;
    else if (c === 59) kind = PARAMETER;
    else if (c === 37) {
      const e = decodeDeep(path, i);
      if (e >= 0) {
        const b = e & 255;
        next = e >> 8;
        if (b === 0x2e) kind = DOT;
        else if (b === 0x2f || b === 0x5c) kind = SEPARATOR;
        else if (b === 0x3b) kind = PARAMETER;
        else if ((b === 0xc0 || b === 0xc1) && path.charCodeAt(next) === 37) {
          // Overlong UTF-8 (RFC 3629 §3 forbids it; lax decoders map it to ASCII).
          const e2 = decodeDeep(path, next);
          const b2 = e2 & 255;
          if (e2 >= 0 && ((b === 0xc0 && b2 === 0xae) || (b === 0xc0 && b2 === 0xaf) || (b === 0xc1 && b2 === 0x9c))) {
            kind = b2 === 0xae ? DOT : SEPARATOR;
            next = e2 >> 8;
          }
        }
      }
    }
    if (kind === SEPARATOR) {
      if (onlyDots && dots > 0 && dots <= 2) {
        const end = path.indexOf('/', segStart);
        return path.slice(segStart, end === -1 ? path.length : end);
      }
      if (atEnd) return undefined;
      dots = 0;
      onlyDots = true;
      inParams = false;
      if (c === 47) segStart = i + 1;
    } else if (!inParams) {
      if (kind === DOT) dots++;
      else if (kind === PARAMETER) inParams = true;
      else onlyDots = false;
    }
    i = next;
  }
}

/** True when `path` is already canonical and has no dot or empty segments (the common case). */
function isCanonical(path: string): boolean {
  let prev = 0;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c >= 128 || RAW_OK[c] === 0) return false;
    // '/' followed by '/' or '.' may start an empty or dot segment: take the slow path.
    if (prev === 47 && (c === 47 || c === 46)) return false;
    prev = c;
  }
  return true;
}

/** What to do with an ambiguous path (waygate.yaml `security.ambiguousPaths`, SPEC §3 and §5). */
export type AmbiguousPaths = 'reject' | 'forward';

/** The reason normalizePath gives for an ambiguous path (it starts with this text). */
export const AMBIGUOUS_PATH = 'ambiguous path';

/**
 * Normalises the path part of a request target (no query string) that starts with `/`.
 * Returns the canonical path, or `ok: false` with the reason for a path that must be refused.
 * `ambiguous: 'reject'` also refuses a canonical path a backend could read with a dot segment;
 * the default, `'forward'`, is for patterns and rewrites from the config, which are not requests.
 */
export function normalizePath(raw: string, ambiguous: AmbiguousPaths = 'forward'): NormalizeResult {
  if (raw.length === 0 || raw.charCodeAt(0) !== 47) return { ok: false, reason: 'path must start with "/"' };
  // The fast path holds no '%', no '\' and no segment starting with '.', so it cannot be ambiguous
  // (an ambiguous piece needs one of them, see ambiguousSegment): it pays nothing for the check.
  if (isCanonical(raw)) return { ok: true, path: raw };

  // Pass 1: canonical characters and escapes. `suspect`: the output holds something an ambiguous
  // piece needs beyond plain dots and slashes (an escape that another decoder could read as a
  // separator, a dot or a parameter, or a ';'); without it, pass 2 leaves nothing ambiguous.
  let out = '';
  let suspect = false;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 37) {
      const hi = hexValue(raw.charCodeAt(i + 1));
      const lo = hexValue(raw.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return { ok: false, reason: 'malformed percent-encoding' };
      const b = (hi << 4) | lo;
      if (b < 0x20 || b === 0x7f) return { ok: false, reason: 'encoded control character in path' };
      if (b < 128 && UNRESERVED[b] === 1) {
        out += String.fromCharCode(b);
      } else {
        out += encodeByte(b);
        if (SUSPECT[b] === 1) suspect = true;
      }
      i += 2;
    } else if (c < 0x20 || c === 0x7f) {
      return { ok: false, reason: 'control character in path' };
    } else if (c < 128) {
      if (RAW_OK[c] === 1) {
        out += raw[i];
        if (c === 59 /* ; */) suspect = true;
      } else {
        // '\' becomes %5C here, which is how the ambiguity rule sees it.
        out += encodeByte(c);
        if (SUSPECT[c] === 1) suspect = true;
      }
    } else {
      // Non-ASCII: encode as UTF-8 (a surrogate pair is one code point).
      const cp = raw.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      for (const b of Buffer.from(ch, 'utf8')) out += encodeByte(b);
      if (cp > 0xffff) i++;
    }
  }

  // Pass 2: segments (RFC 3986 §5.2.4 remove_dot_segments, refusing to climb above the root).
  const parts = out.split('/');
  const stack: string[] = [];
  let trailingSlash = false;
  for (let i = 1; i < parts.length; i++) {
    const seg = parts[i];
    const last = i === parts.length - 1;
    if (seg === '' || seg === '.') {
      if (last) trailingSlash = true;
      continue;
    }
    if (seg === '..') {
      if (stack.length === 0) return { ok: false, reason: 'path climbs above the root' };
      stack.pop();
      if (last) trailingSlash = true;
      continue;
    }
    stack.push(seg);
  }
  if (stack.length === 0) return { ok: true, path: '/' };
  const path = '/' + stack.join('/') + (trailingSlash ? '/' : '');
  if (suspect && ambiguous === 'reject') {
    const seg = ambiguousSegment(path);
    if (seg !== undefined) return { ok: false, reason: `${AMBIGUOUS_PATH}: segment "${seg}" hides a dot segment (%2F, %5C or \\ read as "/", a second decoding, or a ;parameter dropped)` };
  }
  return { ok: true, path };
}

/** Splits a request target into its path and its query (without `?`; empty when absent). */
export function splitTarget(target: string): { path: string; query: string } {
  const q = target.indexOf('?');
  if (q === -1) return { path: target, query: '' };
  return { path: target.slice(0, q), query: target.slice(q + 1) };
}

// The path as a client would send it: the WHATWG parser behind `new URL` resolves `%2e%2e` and
// turns '\' into '/' in http(s) URLs, which would hide exactly what the listener refuses.
const RAW_PATH = /^[a-z][a-z0-9+.-]*:\/\/[^/?#\\]*([^?#]*)/i;

/** Returns the path of `url` as written (no query or fragment), or undefined when it has none that starts with '/'. */
export function rawPathOf(url: string): string | undefined {
  const p = RAW_PATH.exec(url)?.[1];
  if (p === undefined) return undefined;
  if (p === '') return '/';
  return p.charCodeAt(0) === 47 ? p : undefined;
}

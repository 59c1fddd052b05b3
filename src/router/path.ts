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
//    segment; a `..` that would climb above the root is refused, not clamped.

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

/**
 * Normalises the path part of a request target (no query string) that starts with `/`.
 * Returns the canonical path, or `ok: false` with the reason for a path that must be refused.
 */
export function normalizePath(raw: string): NormalizeResult {
  if (raw.length === 0 || raw.charCodeAt(0) !== 47) return { ok: false, reason: 'path must start with "/"' };
  if (isCanonical(raw)) return { ok: true, path: raw };

  // Pass 1: canonical characters and escapes.
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 37) {
      const hi = hexValue(raw.charCodeAt(i + 1));
      const lo = hexValue(raw.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return { ok: false, reason: 'malformed percent-encoding' };
      const b = (hi << 4) | lo;
      if (b < 0x20 || b === 0x7f) return { ok: false, reason: 'encoded control character in path' };
      out += b < 128 && UNRESERVED[b] === 1 ? String.fromCharCode(b) : encodeByte(b);
      i += 2;
    } else if (c < 0x20 || c === 0x7f) {
      return { ok: false, reason: 'control character in path' };
    } else if (c < 128) {
      out += RAW_OK[c] === 1 ? raw[i] : encodeByte(c);
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
  return { ok: true, path: '/' + stack.join('/') + (trailingSlash ? '/' : '') };
}

/** Splits a request target into its path and its query (without `?`; empty when absent). */
export function splitTarget(target: string): { path: string; query: string } {
  const q = target.indexOf('?');
  if (q === -1) return { path: target, query: '' };
  return { path: target.slice(0, q), query: target.slice(q + 1) };
}

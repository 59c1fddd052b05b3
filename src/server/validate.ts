// Request checks an edge proxy makes before anything is forwarded (RFC 9112 §6–§7, RFC 9110 §7):
// everything ambiguous is refused here, with the connection closed, so no upstream ever sees it.
//
// Node's parser (llhttp, strict mode) already refuses with its own 400 — before any handler runs —
// Content-Length together with Transfer-Encoding, repeated or list-valued Content-Length,
// "chunked" that is not the final coding, "chunked, chunked", obs-fold, whitespace before the
// colon, control characters in names and values, bare LF, an unknown method, HTTP/1.2+, a
// missing Host in HTTP/1.1, and more header fields than the server's maxHeadersCount (431, see
// MAX_HEADER_FIELDS). What it lets through and is refused here: a second Host, an empty Host,
// "HTTP/0.9" and "HTTP/2.0" request lines, any Transfer-Encoding other than one "chunked" (and
// any in HTTP/1.0), an absolute-form target whose authority disagrees with Host, a request
// pipelined behind a refused one, and (HTTP/2) a Host that disagrees with :authority.
// Underscored header names and h2c upgrades are not refused: forward/headers.ts drops them.
import type { IncomingMessage } from 'node:http';
import { GatewayError } from '../errors.ts';

/**
 * Most header fields a request may carry (nginx and HAProxy allow about 100). The HTTP/1.1
 * listeners give Node this as maxHeadersCount, so Node answers 431 itself; HTTP/2 requests
 * are counted here.
 */
export const MAX_HEADER_FIELDS = 100;

/** Longest request target accepted; longer gets 414 (RFC 9112 §3: servers answer 414 past their limit). */
export const MAX_TARGET_LENGTH = 8 * 1024;

/**
 * Returns the error a request must be refused with, or undefined when it may proceed.
 * One pass over the raw header lines; no allocation on the common path.
 */
export function checkRequest(req: IncomingMessage): GatewayError | undefined {
  // An HTTP/2 stream arrives as an Http2ServerRequest (it has `stream`); an HTTP/1 request
  // line that merely says "HTTP/2.0" does not, and is refused below.
  const h2 = req.httpVersionMajor === 2 && (req as { stream?: unknown }).stream !== undefined;
  if (!h2) {
    // A request the handler refused already half-closed this connection (socket.end() in
    // destroySoon); Node still parses bytes pipelined behind it in the same read and emits them
    // as requests. Their framing cannot be trusted (RFC 9112 §9.6: a server that closes "MUST
    // NOT process any further requests received on that connection"), so nothing goes upstream.
    const socket = req.socket;
    if (socket.writableEnded || socket.destroyed) return new GatewayError('bad_request', 'request after a refused request on the same connection');
    // Only HTTP/1.0 and HTTP/1.1 have the framing rules below; llhttp accepts "HTTP/0.9" and
    // "HTTP/2.0" request lines (RFC 9112 §2.3: a server may refuse a version it does not speak).
    if (req.httpVersionMajor !== 1 || req.httpVersionMinor > 1) return new GatewayError('bad_request', `unsupported HTTP version ${req.httpVersion}`);
  }

  const url = req.url ?? '';
  if (url.length > MAX_TARGET_LENGTH) return new GatewayError('uri_too_long', `request target longer than ${MAX_TARGET_LENGTH} bytes`);

  const raw = req.rawHeaders;
  let fields = 0;
  let hosts = 0;
  let host: string | undefined;
  let authority: string | undefined;
  let tes = 0;
  let te: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const len = name.length;
    if (name.charCodeAt(0) === 58 /* : */) {
      // HTTP/2 pseudo-headers are not fields; :authority is compared with Host below.
      if (len === 10 && name === ':authority') authority = raw[i + 1];
      continue;
    }
    fields++;
    // Length first: most names are neither, and toLowerCase is then skipped.
    if (len === 4 && name.toLowerCase() === 'host') {
      hosts++;
      host = raw[i + 1];
    } else if (len === 17 && name.toLowerCase() === 'transfer-encoding') {
      tes++;
      te = raw[i + 1];
    }
  }
  if (fields > MAX_HEADER_FIELDS) return new GatewayError('headers_too_large', `more than ${MAX_HEADER_FIELDS} header fields`);

  // RFC 9112 §3.2: a server MUST answer 400 to a request with more than one Host line, an
  // invalid Host value, or (HTTP/1.1) none. Node keeps only the first Host in req.headers, so
  // an upstream reading the last one would route differently from waygate.
  if (hosts > 1) return new GatewayError('bad_request', 'more than one Host header');
  if (host !== undefined) {
    // An empty Host names no authority (RFC 9110 §7.2): nothing to route on. The rest of the
    // value (userinfo, spaces, port) is checked by normalizeHost in resolveRequest.
    if (host.length === 0) return new GatewayError('bad_request', 'empty Host header');
    // RFC 9113 §8.3.1: a Host that names another entity than :authority is malformed (HTTP/2 is
    // only offered on the HTTPS listener, hence port 443 as the default).
    if (authority !== undefined && !sameAuthority(host, authority, 443)) return new GatewayError('bad_request', 'Host differs from :authority');
  } else if (!h2 && req.httpVersionMinor === 1) {
    // Node already answers this itself (requireHostHeader, on by default on both listeners);
    // kept so the rule does not depend on a server option.
    return new GatewayError('bad_request', 'HTTP/1.1 request without Host');
  }

  if (tes > 0 && !h2) {
    // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means the framing is faulty — refuse and close.
    if (req.httpVersionMinor === 0) return new GatewayError('bad_request', 'Transfer-Encoding in an HTTP/1.0 request');
    // RFC 9112 §6.1/§7: only chunked frames a request; any other coding ("gzip, chunked",
    // "identity, chunked", ",chunked", split over two lines) is one that this hop and the next
    // could read differently. Only the exact, single token is accepted (case-insensitive,
    // RFC 9112 §7; Node already trimmed the surrounding whitespace).
    if (tes > 1 || te!.length !== 7 || te!.toLowerCase() !== 'chunked') return new GatewayError('bad_request', 'Transfer-Encoding other than chunked');
  }

  // Absolute form (RFC 9112 §3.2.2): a server would use the target's authority and ignore Host,
  // while an upstream given our Host may not. Rather than pick one, a disagreement is refused.
  if (url.charCodeAt(0) !== 47 /* / */ && host !== undefined) {
    const abs = absoluteAuthority(url);
    if (abs !== undefined && !sameAuthority(abs.authority, host, abs.defaultPort)) {
      return new GatewayError('bad_request', 'absolute-form target authority differs from Host');
    }
  }
  return undefined;
}

/** The authority of an "http://…" or "https://…" target and its scheme's default port; undefined otherwise. */
function absoluteAuthority(url: string): { authority: string; defaultPort: number } | undefined {
  let start: number;
  let defaultPort: number;
  const head = url.length > 8 ? url.slice(0, 8).toLowerCase() : url.toLowerCase();
  if (head.startsWith('http://')) {
    start = 7;
    defaultPort = 80;
  } else if (head === 'https://') {
    start = 8;
    defaultPort = 443;
  } else {
    return undefined;
  }
  let end = start;
  while (end < url.length) {
    const c = url.charCodeAt(end);
    if (c === 47 /* / */ || c === 63 /* ? */ || c === 35 /* # */) break;
    end++;
  }
  return { authority: url.slice(start, end), defaultPort };
}

/**
 * True when two authorities name the same host and port: compared case-insensitively
 * (RFC 3986 §6.2.2.1), with an empty port or the scheme's default port (`defaultPort`, 0 when
 * unknown) the same as none (RFC 3986 §6.2.3).
 */
function sameAuthority(a: string, b: string, defaultPort: number): boolean {
  if (a === b) return true;
  const x = stripPort(a.toLowerCase(), defaultPort);
  const y = stripPort(b.toLowerCase(), defaultPort);
  return x === y;
}

function stripPort(s: string, defaultPort: number): string {
  const colon = s.lastIndexOf(':');
  // No port, or the colon is inside an IPv6 literal "[…]".
  if (colon < 0 || s.indexOf(']', colon) >= 0) return s;
  const port = s.slice(colon + 1);
  if (port === '' || (defaultPort !== 0 && port === String(defaultPort))) return s.slice(0, colon);
  return s;
}

/**
 * True when a request asks only for an h2c upgrade (`Upgrade: h2c`, what curl --http2 sends).
 * RFC 9113 §3.1 deprecated it; waygate never performs or relays it (listener.ts serves such a
 * request as plain HTTP/1.1, forward/headers.ts strips the fields).
 */
export function isH2cUpgrade(req: IncomingMessage): boolean {
  const upgrade = req.headers.upgrade;
  return upgrade !== undefined && upgrade.length <= 8 && upgrade.trim().toLowerCase() === 'h2c';
}

// What the router sees of a request (ARCHITECTURE "request view"): method, normalised host,
// canonical path, raw query and headers. Cookies and query parameters are parsed lazily, once,
// and only when a route with such a condition is actually evaluated — most requests never pay
// for them.
import { normalizeHost } from './host.ts';
import { normalizePath, splitTarget } from './path.ts';

/** Request headers as node gives them (IncomingHttpHeaders shape): lower-case names. */
export type HeaderBag = Record<string, string | string[] | undefined>;

const NO_VALUES: string[] = [];
Object.freeze(NO_VALUES);

/**
 * Parses Cookie header text into `into`; the first occurrence of a name wins (RFC 6265 §5.4:
 * user agents send the most specific cookie first). A value wrapped in double quotes has them
 * removed (RFC 6265 §4.1.1 DQUOTE form, as Go's net/http and the `cookie` package do); values are
 * not percent-decoded, so a condition compares exactly what the client sent. Pairs without "="
 * are ignored.
 */
function parseCookies(text: string, into: Map<string, string>): void {
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf(';', start);
    if (end === -1) end = text.length;
    const eq = text.indexOf('=', start);
    if (eq !== -1 && eq < end) {
      const name = text.slice(start, eq).trim();
      if (name.length > 0 && !into.has(name)) {
        let value = text.slice(eq + 1, end).trim();
        if (value.length >= 2 && value.charCodeAt(0) === 34 && value.charCodeAt(value.length - 1) === 34) {
          value = value.slice(1, -1);
        }
        into.set(name, value);
      }
    }
    start = end + 1;
  }
}

/** The router's read-only view of one request. */
export class RequestView {
  /** The method as received, e.g. "GET" (methods are case-sensitive, RFC 9110 §9.1). */
  readonly method: string;
  /** Returns a view for a raw Host header value (normalised; "" when absent or invalid). */
  static fromRaw(method: string, rawHost: string, path: string, query: string, headers: HeaderBag): RequestView {
    return new RequestView(method, normalizeHost(rawHost) ?? '', path, query, headers);
  }

  /** The normalised host (see normalizeHost); "" when absent or invalid. */
  readonly host: string;
  /** The canonical path, as returned by normalizePath (the caller normalises and refuses bad paths). */
  readonly path: string;
  /** The raw query without "?"; "" when none. */
  readonly query: string;
  /** The request headers, lower-case names. */
  readonly headers: HeaderBag;
  #cookies: Map<string, string> | undefined;
  #queryValues: Map<string, string[]> | undefined;

  /**
   * `host` and `path` must already be normalised (normalizeHost, normalizePath): refusing a bad
   * Host or path is the caller's decision (400), and normalising once there keeps it off the
   * router's per-request work. `RequestView.fromRaw` normalises a raw Host for other callers.
   */
  constructor(method: string, host: string, path: string, query: string, headers: HeaderBag) {
    this.method = method;
    this.host = host;
    this.path = path;
    this.query = query;
    this.headers = headers;
  }

  /** Returns the header's value (lower-case name), several values joined with ", "; undefined when absent. */
  header(name: string): string | undefined {
    const v = this.headers[name];
    if (v === undefined || typeof v === 'string') return v;
    return v.length === 0 ? undefined : v.join(', ');
  }

  /** Returns the value of the named cookie (first occurrence wins, surrounding quotes removed); undefined when absent. */
  cookie(name: string): string | undefined {
    if (this.#cookies === undefined) {
      this.#cookies = new Map();
      const raw = this.headers.cookie;
      if (typeof raw === 'string') parseCookies(raw, this.#cookies);
      else if (raw !== undefined) for (const line of raw) parseCookies(line, this.#cookies);
    }
    return this.#cookies.get(name);
  }

  /**
   * Returns every value of the query parameter, in order, decoded with URLSearchParams semantics
   * ("+" is a space); [] when absent. The array is shared: do not mutate it.
   */
  queryValues(name: string): string[] {
    if (this.#queryValues === undefined) {
      const map = new Map<string, string[]>();
      if (this.query.length > 0) {
        for (const [k, v] of new URLSearchParams(this.query)) {
          const list = map.get(k);
          if (list === undefined) map.set(k, [v]);
          else list.push(v);
        }
      }
      this.#queryValues = map;
    }
    return this.#queryValues.get(name) ?? NO_VALUES;
  }
}

/** The outcome of building a view from a raw request target: the view, or why the path is refused. */
export type RequestViewResult = { ok: true; view: RequestView } | { ok: false; reason: string };

/**
 * Builds a view from an origin-form request target ("/path?query"): the path is normalised and
 * the host is taken from `headers[":authority"]` (HTTP/2) or `headers.host`. Returns the view, or
 * `ok: false` with the reason for a target whose path must be refused (answer 400).
 */
export function requestViewFromTarget(method: string, target: string, headers: HeaderBag): RequestViewResult {
  const { path, query } = splitTarget(target);
  const norm = normalizePath(path);
  if (!norm.ok) return norm;
  const authority = headers[':authority'] ?? headers.host;
  const host = typeof authority === 'string' ? authority : '';
  return { ok: true, view: RequestView.fromRaw(method, host, norm.path, query, headers) };
}

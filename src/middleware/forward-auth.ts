// forwardAuth (SPEC §8): asks an authentication service about every request before it goes on.
// The check is a GET to `address` carrying the client's headers and x-forwarded-method/-proto/
// -host/-uri/-for (what Traefik and Caddy send: the method travels in x-forwarded-method, never
// as the check's own method, and no request body is ever sent). A 2xx lets the request through
// with the `authResponseHeaders` it set; any other answer is the client's answer, as is; no
// answer at all (refused, reset, over `timeout`) is a 503 — never a pass.
//
// The check goes through waygate's own upstream client (upstream/fetch.ts) on a registry target,
// so its keep-alive connections are reused across requests and survive reloads.
import { z } from 'zod';
import { GatewayError } from '../errors.ts';
import { headerName, strict } from '../config/fields.ts';
import { originOf } from '../config/net-fields.ts';
import { duration } from '../config/units.ts';
import { fetchFrom } from '../upstream/fetch.ts';
import type { Target, TargetConnectOptions } from '../upstream/target.ts';
import type { Answer, MiddlewareKind, MiddlewareRequest } from './types.ts';

/** The default `timeout`: the whole auth exchange (connect, head and body), in ms. */
export const DEFAULT_AUTH_TIMEOUT_MS = 5000;
/** The largest auth answer kept; a longer one fails the check (503). */
export const MAX_AUTH_BODY = 1024 * 1024;
// Idle keep-alive time of connections to the auth service: the same as a pool's (runtime.ts).
const AUTH_KEEPALIVE_MS = 4000;
const UNAVAILABLE_BODY = 'authentication service unavailable';
const TEXT = 'text/plain; charset=utf-8';

// RFC 9110 §7.6.1 hop-by-hop fields (with the legacy Proxy-Connection and HTTP2-Settings, as
// forward/headers.ts drops them), plus the framing fields: the check has no body of its own,
// and an answer relayed to the client is framed again by waygate.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'http2-settings']);
const FRAMING = new Set(['content-length', 'transfer-encoding', 'expect', 'host']);

// The fields waygate itself sets on the check: the client's own copies are never relayed (a
// client forging x-forwarded-for would otherwise pass an IP-based policy of the auth service).
const SET_BY_WAYGATE = new Set(['host', 'x-forwarded-method', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-uri', 'x-forwarded-for', 'x-request-id']);

/** Returns why a field name cannot be listed in authRequestHeaders / authResponseHeaders, or undefined. */
function refusedName(name: string, list: 'authRequestHeaders' | 'authResponseHeaders'): string | undefined {
  if (HOP_BY_HOP.has(name) || FRAMING.has(name)) {
    return list === 'authRequestHeaders'
      ? `"${name}" cannot be sent to the auth service: waygate sets the Host and framing of the check itself`
      : `"${name}" cannot be copied onto the forwarded request: it is a hop-by-hop or framing field`;
  }
  // waygate drops every client field with "_" (CGI servers alias "_" and "-"), so a name with
  // one would be set by the auth answer but could also alias a "-" name the upstream trusts.
  if (list === 'authResponseHeaders' && name.includes('_')) {
    return `"${name}" cannot be copied onto the forwarded request: waygate drops header names with "_" (CGI servers read them as "-"); use "-"`;
  }
  return undefined;
}

/** A list of header names, lower-cased, each once. */
function headerList(list: 'authRequestHeaders' | 'authResponseHeaders') {
  return z.array(headerName()).superRefine((names, ctx) => {
    const seen = new Set<string>();
    names.forEach((n, i) => {
      const problem = refusedName(n, list);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', path: [i], message: problem });
      if (seen.has(n)) ctx.addIssue({ code: 'custom', path: [i], message: `header "${n}" is listed twice` });
      seen.add(n);
    });
  });
}

/** The auth service's URL: http:// or https://, a host, a path (and query); no user info or fragment. */
function authAddress() {
  return z.string({ error: 'expected the URL of the auth service, such as http://auth:9000/verify' }).transform((s, ctx) => {
    const got = JSON.stringify(s);
    let url: URL | undefined;
    try {
      url = new URL(s);
    } catch {
      url = undefined;
    }
    let problem: string | undefined;
    if (url === undefined) problem = `expected the URL of the auth service, such as http://auth:9000/verify, got ${got}`;
    else if (url.protocol !== 'http:' && url.protocol !== 'https:') problem = `the auth service's address must start with http:// or https://, got ${got}`;
    else if (url.hostname === '') problem = `the auth service's address needs a host, got ${got}`;
    else if (url.username !== '' || url.password !== '') problem = `the auth service's address cannot carry user info (send credentials with authRequestHeaders), got ${got}`;
    else if (s.includes('#')) problem = `the auth service's address cannot have a fragment, got ${got}`;
    if (problem !== undefined || url === undefined) {
      ctx.addIssue({ code: 'custom', message: problem ?? 'invalid address' });
      return z.NEVER;
    }
    return { href: url.href, origin: originOf(url), host: url.host, path: url.pathname + url.search, https: url.protocol === 'https:' };
  });
}

const options = strict({
  address: authAddress(),
  /** Omitted: every client field but the hop-by-hop and framing ones. */
  authRequestHeaders: headerList('authRequestHeaders').optional(),
  authResponseHeaders: headerList('authResponseHeaders').default([]),
  timeout: duration()
    .refine((ms) => ms > 0, { error: 'timeout must be more than 0' })
    .default(DEFAULT_AUTH_TIMEOUT_MS),
});

/** forwardAuth's options, as parsed. */
export type ForwardAuthOptions = z.output<typeof options>;

/** Field names the client's Connection header declares hop-by-hop (RFC 9110 §7.6.1). */
function connectionTokens(raw: readonly string[]): Set<string> | undefined {
  let tokens: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].toLowerCase() !== 'connection') continue;
    for (const t of raw[i + 1].split(',')) {
      const n = t.trim().toLowerCase();
      if (n !== '') (tokens ??= new Set()).add(n);
    }
  }
  return tokens;
}

/** The headers of the check: the chosen client fields, then the ones waygate sets. */
function checkHeaders(r: MiddlewareRequest, requested: ReadonlySet<string> | undefined, host: string): string[] {
  const raw = r.rawHeaders;
  const hop = requested === undefined ? connectionTokens(raw) : undefined;
  const out: string[] = [];
  let cookie = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (name.charCodeAt(0) === 58) continue;
    const lower = name.toLowerCase();
    if (SET_BY_WAYGATE.has(lower)) continue;
    if (requested !== undefined) {
      if (!requested.has(lower)) continue;
    } else if (
      HOP_BY_HOP.has(lower) || FRAMING.has(lower) || lower.startsWith('proxy-') || hop?.has(lower) === true ||
      // As when forwarding (forward/headers.ts): "_" names alias "-" ones in CGI-style servers,
      // and a client's forwarded/x-forwarded-* would speak for waygate.
      name.includes('_') || lower === 'forwarded' || lower.startsWith('x-forwarded-')
    ) {
      continue;
    }
    // HTTP/2 clients may split cookies over several fields; HTTP/1.1 wants one (RFC 9113 §8.2.3).
    if (lower === 'cookie') {
      cookie = true;
      continue;
    }
    out.push(name, raw[i + 1]);
  }
  if (cookie) out.push('cookie', r.header('cookie') ?? '');
  out.push(
    'host', host,
    'x-forwarded-method', r.method,
    'x-forwarded-proto', r.scheme,
    'x-forwarded-host', r.hostHeader,
    'x-forwarded-uri', r.uri,
    'x-forwarded-for', r.clientIp,
    'x-request-id', r.requestId,
  );
  return out;
}

/** The auth answer's head as the client gets it: no hop-by-hop or framing fields (waygate frames it again). */
function relayedHeaders(raw: readonly string[]): string[] {
  const hop = connectionTokens(raw);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i].toLowerCase();
    // waygate adds its own content-length and x-request-id to every answer it writes.
    if (HOP_BY_HOP.has(lower) || lower === 'content-length' || lower === 'x-request-id' || hop?.has(lower) === true) continue;
    out.push(raw[i], raw[i + 1]);
  }
  return out;
}

/** The value of every field named `lower` in `raw`, joined as one; undefined when there is none. */
function joinedValue(raw: readonly string[], lower: string): string | undefined {
  let value: string | undefined;
  const sep = lower === 'cookie' ? '; ' : ', ';
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].toLowerCase() === lower) value = value === undefined ? raw[i + 1] : value + sep + raw[i + 1];
  }
  return value;
}

/** The forwardAuth middleware kind. */
export const forwardAuth: MiddlewareKind<typeof options> = {
  kind: 'forwardAuth',
  options,
  build(o, deps) {
    const { name, log } = deps;
    const address = o.address;
    const target: Target = deps.target(`forwardAuth:${name}`, address.origin);
    // Built like a pool's (runtime.ts poolFromConfig) so the target's connection pool is made once.
    const connect: TargetConnectOptions = {
      connectTimeout: o.timeout,
      keepAliveTimeout: AUTH_KEEPALIVE_MS,
      tls: address.https ? { rejectUnauthorized: true } : undefined,
      h2: false,
      client: 'builtin',
      proxyProtocol: 'off',
      key: '',
    };
    connect.key = JSON.stringify(connect);
    const requested = o.authRequestHeaders === undefined ? undefined : new Set(o.authRequestHeaders);
    const copied = o.authResponseHeaders;
    const unavailable: Answer = { status: 503, headers: ['content-type', TEXT], body: UNAVAILABLE_BODY, rejection: true };

    const check = async (r: MiddlewareRequest): Promise<Answer | undefined> => {
      let res;
      try {
        res = await fetchFrom(target, connect, { method: 'GET', path: address.path, headers: checkHeaders(r, requested, address.host), timeout: o.timeout, maxBody: MAX_AUTH_BODY });
      } catch (err) {
        const e = err instanceof GatewayError ? err : undefined;
        log.warn({ middleware: name, kind: 'forwardAuth', route: r.route, requestId: r.requestId, reason: e?.code ?? 'internal', err: (err as Error)?.message ?? String(err) }, 'forwardAuth: authentication service unavailable');
        return unavailable;
      }
      if (res.status >= 200 && res.status < 300) {
        for (const field of copied) {
          const value = joinedValue(res.headers, field);
          if (value !== undefined) r.upstream.set(field, value);
        }
        return undefined;
      }
      return { status: res.status, headers: relayedHeaders(res.headers), body: res.body, rejection: true };
    };

    return {
      name,
      kind: 'forwardAuth',
      request(r) {
        // First and whatever the answer: a client never gets its own identity fields through
        // (Caddy GHSA-7r4p-vjf4-gxv4). remove() takes every field of the name, in any case.
        for (const field of copied) r.upstream.remove(field);
        // Nothing past fetchFrom is expected to throw; if it did, the request is still refused.
        return check(r).catch((err: unknown) => {
          log.warn({ middleware: name, kind: 'forwardAuth', route: r.route, requestId: r.requestId, reason: 'internal', err: (err as Error)?.message ?? String(err) }, 'forwardAuth: authentication service unavailable');
          return unavailable;
        });
      },
      explain() {
        return { result: 'unknown', why: `would ask ${address.href}` };
      },
      describe() {
        return { address: address.href, authRequestHeaders: o.authRequestHeaders ?? 'all', authResponseHeaders: copied, timeout: o.timeout };
      },
      // No close(): the target belongs to the registry, which keeps its connections across reloads.
    };
  },
};

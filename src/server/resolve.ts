// Resolving a request before anything is forwarded, shared by HTTP requests and WebSocket
// upgrades: validation, the target form, Host, path normalisation, 421 on HTTPS, the route; and
// the client's identity (peer address, x-forwarded-for from trusted proxies, request id).
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { GatewayError } from '../errors.ts';
import type { CompiledRoute, Runtime } from '../runtime.ts';
import { normalizeHost } from '../router/host.ts';
import { normalizePath, splitTarget } from '../router/path.ts';
import type { AmbiguousPaths } from '../router/path.ts';
import { RequestView } from '../router/request-view.ts';
import type { RouteMatch } from '../router/router.ts';
import { proxiedAddress } from './proxy-protocol.ts';
import { checkRequest } from './validate.ts';

/**
 * Matches a client-supplied request id worth keeping: short visible ASCII (it is echoed back
 * and logged, so it must not carry control bytes or grow the log without bound).
 */
const REQUEST_ID_OK = /^[\x21-\x7e]{1,200}$/;
const ABSOLUTE_FORM = /^https?:\/\/([^/?#]*)(.*)$/i;

/** Returns the request id: the client's when it is short visible ASCII, else a new UUID. */
export function requestIdOf(req: IncomingMessage): string {
  const incoming = req.headers['x-request-id'];
  return typeof incoming === 'string' && REQUEST_ID_OK.test(incoming) ? incoming : randomUUID();
}

/** Returns the `redirectToHttps` Location: same host, path and query on the HTTPS port (no port for 443). */
export function httpsLocation(port: number, host: string, path: string, query: string): string {
  return `https://${port === 443 ? host : `${host}:${port}`}${path}${query === '' ? '' : '?' + query}`;
}

/** What resolving a request needs of its listener. */
export interface ResolveOptions {
  readonly runtime: () => Runtime;
  /**
   * HTTPS only: true when the certificate the TLS server name selected is not the one the Host
   * selects — the request then gets 421 (RFC 9110 §15.5.20) instead of a cross-site answer.
   */
  readonly misdirected?: (servername: string | undefined, host: string) => boolean;
  /**
   * waygate.yaml `security.ambiguousPaths` (SPEC §3): `reject` (also when omitted) answers 400 to
   * a path a backend could read with a dot segment (`/api/..%2Fadmin`); `forward` lets it through.
   */
  readonly ambiguousPaths?: AmbiguousPaths;
}

/** A request resolved to its host, canonical path, query and route (undefined: no route). */
export interface ResolvedRequest {
  host: string;
  /** The Host as sent (port included), or the authority of an absolute-form target. */
  hostHeader: string | undefined;
  path: string;
  query: string;
  view: RequestView;
  match: RouteMatch<CompiledRoute> | undefined;
}

/**
 * Checks and resolves a request: the validation rules, the target form, Host, path
 * normalisation (ambiguous paths refused unless `ambiguousPaths` is `forward`), 421 on HTTPS,
 * then the router. Returns the error to answer with instead when
 * the request must be refused. Shared by HTTP requests and WebSocket upgrades.
 */
export function resolveRequest(req: IncomingMessage, o: ResolveOptions): ResolvedRequest | GatewayError {
  const invalid = checkRequest(req);
  if (invalid !== undefined) return invalid;
  let target = req.url ?? '/';
  // HTTP/2 names the host in :authority (RFC 9113 §8.3.1); HTTP/1.1 in Host.
  let hostHeader = req.headers.host ?? (req.headers[':authority'] as string | undefined);
  const abs = ABSOLUTE_FORM.exec(target);
  if (abs !== null) {
    // RFC 9112 §3.2.2: with an absolute-form target the authority in it is the host.
    hostHeader = abs[1];
    target = abs[2] === '' ? '/' : abs[2];
  }
  if (target.charCodeAt(0) !== 47 || target.includes('#')) return new GatewayError('bad_request', 'invalid request target');
  const host = hostHeader === undefined ? '' : normalizeHost(hostHeader);
  if (host === undefined) return new GatewayError('bad_request', 'invalid Host header');
  const { path: rawPath, query } = splitTarget(target);
  const norm = normalizePath(rawPath, o.ambiguousPaths ?? 'reject');
  if (!norm.ok) return new GatewayError('bad_request', norm.reason);
  if (o.misdirected !== undefined && o.misdirected((req.socket as TLSSocket).servername || undefined, host)) {
    return new GatewayError('misdirected', `the Host "${host}" is not served by the certificate of this connection`);
  }
  const view = new RequestView(req.method ?? 'GET', host, norm.path, query, req.headers);
  return { host, hostHeader, path: norm.path, query, view, match: o.runtime().router.match(view) };
}

/** Returns the peer address without the IPv4-mapped IPv6 prefix ("" when unknown). */
export function peerAddress(req: IncomingMessage): string {
  // Behind an L4 balancer speaking PROXY protocol, the header's source is the client.
  const a = proxiedAddress(req.socket)?.address ?? req.socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

/**
 * Returns the client address: the peer, or — when the peer is a trusted proxy — the right-most
 * address of x-forwarded-for that is not itself a trusted proxy (each proxy appends, so that
 * is the first hop nobody trusted could have written).
 */
export function clientAddress(peer: string, xff: string | string[] | undefined, trusted: (ip: string) => boolean): string {
  if (xff === undefined || !trusted(peer)) return peer;
  const hops = (Array.isArray(xff) ? xff.join(',') : xff).split(',');
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i].trim();
    if (hop !== '' && !trusted(hop)) return hop;
  }
  const first = hops[0].trim();
  return first === '' ? peer : first;
}

/** Returns the port of a Host value ("a:8080" → "8080"), undefined when it names none. */
export function hostPort(hostHeader: string | undefined): string | undefined {
  if (hostHeader === undefined) return undefined;
  const m = /:(\d+)$/.exec(hostHeader);
  return m === null ? undefined : m[1];
}

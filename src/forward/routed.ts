// What an HTTP request and a WebSocket handshake share once routed: the pool they go to, the
// path sent upstream, the forwarding facts and header operations, and what balancing reads;
// and, for a pool with `proxyProtocol`, the client connection a PROXY header announces.
import type { IncomingMessage } from 'node:http';
import { isIPv4, isIPv6 } from 'node:net';
import type { ProxyEnds } from '../l4/proxy-header.ts';
import { proxiedAddress, proxiedDestination } from '../server/proxy-protocol.ts';
import type { UpstreamProxy } from '../upstream/client.ts';
import type { UpstreamPool } from '../upstream/pool.ts';
import type { ForwardInfo, HeaderOps } from './headers.ts';

/** A routed request on its way to a pool (forwarder.ts and tunnel.ts add their own parts). */
export interface RoutedRequest {
  readonly pool: UpstreamPool;
  /** Path and query to send upstream. */
  readonly path: string;
  readonly info: ForwardInfo;
  readonly requestOps: HeaderOps | undefined;
  readonly responseOps: HeaderOps | undefined;
  /** The address balancing uses (ip-hash). */
  readonly clientIp: string;
  /** The pool's sticky cookie value sent by the client, if any. */
  readonly stickyToken: string | undefined;
  /** Flat [name, value, …] the listener adds unless the upstream set them (HSTS). */
  readonly listenerHeaders: readonly string[] | undefined;
}

/**
 * SPEC §7: the ends of `req`'s client connection as a PROXY header sent upstream announces them:
 * the source is the client's address and port as waygate knows it (what a PROXY header to the
 * listener carried, else the peer's), the destination the listener socket the client reached.
 * X-Forwarded-For plays no part: the header speaks of connections. Undefined once the connection
 * has no addresses (closed).
 * (Mixed families are mapped by proxyHeader.)
 */
export function clientEnds(req: IncomingMessage): ProxyEnds | undefined {
  // An HTTP/2 request's `socket` forwards address reads to its session's socket.
  const socket = req.socket;
  if (socket === null || socket === undefined) return undefined;
  const carried = proxiedAddress(socket);
  const sourceAddress = carried?.address ?? socket.remoteAddress;
  const sourcePort = carried?.port ?? socket.remotePort;
  // Behind a balancer, both ends of its PROXY header go on.
  const dest = proxiedDestination(socket);
  const destAddress = dest?.address ?? socket.localAddress;
  const destPort = dest?.port ?? socket.localPort;
  if (sourceAddress === undefined || sourcePort === undefined || destAddress === undefined || destPort === undefined) return undefined;
  return { sourceAddress, sourcePort, destAddress, destPort };
}

/**
 * The client connection `req` came on, for a pool with `proxyProtocol` (UpstreamProxy): its
 * ends, and the connection itself — the socket, or an HTTP/2 request's session (its `socket` is
 * a view of one stream). Undefined when the connection is already gone.
 */
export function clientProxy(req: IncomingMessage, version: 'v1' | 'v2'): UpstreamProxy | undefined {
  const owner = req.httpVersionMajor === 2 ? (req as unknown as { stream?: { session?: { readonly destroyed: boolean } } }).stream?.session : req.socket;
  if (owner === undefined || owner === null || owner.destroyed) return undefined;
  const ends = clientEnds(req);
  return ends === undefined ? undefined : { version, ends, owner };
}

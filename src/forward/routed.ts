// What an HTTP request and a WebSocket handshake share once routed: the pool they go to, the
// path sent upstream, the forwarding facts and header operations, and what balancing reads.
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

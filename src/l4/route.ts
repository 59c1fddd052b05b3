// A tcpRoute or udpRoute as a connection needs it (SPEC §7): its pool (or weighted split), its
// TLS mode, timeouts and limits. Compiled at load by runtime.ts, swapped whole on reload; a
// connection keeps the route and target it started with.
import type { UpstreamPool } from '../upstream/pool.ts';

/** What a TCP connection does once routed. */
export interface TcpRoute {
  readonly kind: 'tcp';
  readonly name: string;
  readonly listener: string;
  /** passthrough: the client's bytes untouched; terminate: TLS ends here, plaintext goes on; none: bytes as they come. */
  readonly tls: 'passthrough' | 'terminate' | 'none';
  readonly pools: readonly UpstreamPool[];
  readonly weights: readonly number[];
  /** The pool for this connection (a split picks by weight, preferring a pool with an available target). */
  choosePool(): UpstreamPool;
  /** No byte either way for this long closes both sides (ms); 0 = never. */
  readonly idleTimeout: number;
  /** After one side's FIN, the other has this long to finish (ms). */
  readonly halfCloseTimeout: number;
  readonly maxConnections: number | undefined;
  readonly perClient: number | undefined;
}

/** What a UDP session does once routed. */
export interface UdpRoute {
  readonly kind: 'udp';
  readonly name: string;
  readonly listener: string;
  readonly pools: readonly UpstreamPool[];
  readonly weights: readonly number[];
  choosePool(): UpstreamPool;
}

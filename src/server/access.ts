// The access-log record (SPEC §6): one line per HTTP request and per WebSocket session, built
// here for both, so the two kinds of line carry the same fields in the same order.
import type { IncomingMessage } from 'node:http';
import type { UpstreamPool } from '../upstream/pool.ts';
import type { Target } from '../upstream/target.ts';

/** How a request or a WebSocket session ended, as its access-log line tells it. */
export interface AccessEnd {
  /** The status sent; 499 when the client left before any answer. */
  readonly status: number;
  /** Body bytes relayed from the client to the upstream. */
  readonly bytesIn: number;
  /** Bytes sent to the client after the response head. */
  readonly bytesOut: number;
  /** The target of the last upstream attempt, if any. */
  readonly target: Target | undefined;
  readonly attempts: number;
}

/** One access-log line's fields, in the order they are written. */
export interface AccessRecord {
  reqId: string;
  method: string | undefined;
  host: string;
  path: string | undefined;
  status: number;
  bytesIn: number;
  bytesOut: number;
  durationMs: number;
  route: string | null;
  pool: string | null;
  target: string | null;
  attempts: number;
  clientIp: string;
  userAgent: string | null;
  proto: string;
  /** SPEC §8: the middleware that refused the request, when one did. */
  rejectedBy?: string;
}

/**
 * Returns the access-log record of `req`: `requestId` and `clientIp` as the exchange resolved
 * them, the route and pool it was routed to (if any), how it ended, and how long it took.
 */
export function accessRecord(req: IncomingMessage, requestId: string, clientIp: string, route: string | undefined, pool: UpstreamPool | undefined, end: AccessEnd, seconds: number): AccessRecord {
  return {
    reqId: requestId,
    method: req.method,
    // HTTP/2 carries the host in :authority (one value, a string); an HTTP/1.1 request (every
    // WebSocket handshake) cannot have that field (node:http answers 400 to a name starting with ':').
    host: req.headers.host ?? (req.headers[':authority'] as string | undefined) ?? '',
    path: req.url,
    status: end.status,
    bytesIn: end.bytesIn,
    bytesOut: end.bytesOut,
    durationMs: Math.round(seconds * 1e6) / 1000,
    route: route ?? null,
    pool: pool?.name ?? null,
    target: end.target?.url ?? null,
    attempts: end.attempts,
    clientIp,
    userAgent: req.headers['user-agent'] ?? null,
    proto: `HTTP/${req.httpVersion}`,
  };
}

// The one place where failures become responses (ARCHITECTURE rule 6).
import type { ServerResponse } from 'node:http';
import type { GatewayError } from '../errors.ts';

const BODY: Record<number, string> = {
  400: 'bad request',
  408: 'request timeout',
  404: 'no route',
  413: 'payload too large',
  414: 'uri too long',
  421: 'misdirected request',
  431: 'request header fields too large',
  500: 'internal error',
  502: 'bad gateway',
  503: 'no healthy upstream',
  504: 'gateway timeout',
};

/** Seconds a client should wait before retrying after a 503 `no healthy upstream`. */
export const DEFAULT_RETRY_AFTER = 5;

/**
 * Sends the response for `err` (the status from its code, a short text body, `x-request-id`)
 * unless the client is gone or headers were already sent; 400s also close an HTTP/1.1
 * connection. Returns the body bytes written (0 when nothing could be sent).
 */
export function sendError(res: ServerResponse, err: GatewayError, requestId: string, retryAfter = DEFAULT_RETRY_AFTER, http2 = false, hsts?: string): number {
  if (res.headersSent || res.destroyed) {
    if (!res.destroyed) res.destroy(err);
    return 0;
  }
  const a = errorAnswer(err, requestId, retryAfter, http2, hsts);
  res.writeHead(a.status, a.headers);
  res.end(a.body);
  return a.body.length;
}

/** The status, headers (content-length included) and body waygate answers `err` with. */
export function errorAnswer(err: GatewayError, requestId: string, retryAfter = DEFAULT_RETRY_AFTER, http2 = false, hsts?: string): { status: number; headers: string[]; body: Buffer } {
  const body = BODY[err.status] ?? err.code;
  const headers: string[] = [
    'content-type', 'text/plain; charset=utf-8',
    'content-length', String(Buffer.byteLength(body)),
    'x-request-id', requestId,
  ];
  if (err.status === 503) headers.push('retry-after', String(retryAfter));
  // Connection-specific fields are forbidden in HTTP/2 (RFC 9113 §8.2.2).
  if (err.status === 400 && !http2) headers.push('connection', 'close');
  if (hsts !== undefined) headers.push('strict-transport-security', hsts);
  return { status: err.status, headers, body: Buffer.from(body) };
}

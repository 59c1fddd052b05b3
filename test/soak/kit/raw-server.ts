// Upstream side, below node:http: read request heads off a raw socket, so a fault can answer
// with bytes no HTTP server library would write (bad framing, resets at a chosen byte).
import type { Socket } from 'node:net';

/** A request head as a raw upstream reads it. */
export interface RawRequest {
  method: string;
  path: string;
  /** Lower-cased names; the last value of a repeated field. */
  headers: Record<string, string>;
  /** The body is chunked: the reader stops after this head (the fault closes the connection). */
  chunked: boolean;
}

/** Longest request head a raw upstream reads before it gives up on the connection. */
const MAX_HEAD = 64 * 1024;

/**
 * Calls `onRequest` for every request head on `socket`, skipping Content-Length bodies so a
 * kept-alive connection can carry the next one. After a chunked request it stops reading.
 */
export function readRequests(socket: Socket, onRequest: (req: RawRequest) => void): void {
  let buf: Buffer = Buffer.alloc(0);
  let skip = 0;
  let stopped = false;
  socket.on('data', (chunk: Buffer) => {
    if (stopped) return;
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    for (;;) {
      if (skip > 0) {
        const n = Math.min(skip, buf.length);
        buf = buf.subarray(n);
        skip -= n;
        if (skip > 0) return;
      }
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) {
        if (buf.length > MAX_HEAD) socket.destroy();
        return;
      }
      const [line, ...fields] = buf.subarray(0, end).toString('latin1').split('\r\n');
      buf = buf.subarray(end + 4);
      const [method = '', path = ''] = line.split(' ');
      const headers: Record<string, string> = {};
      for (const f of fields) {
        const i = f.indexOf(':');
        if (i > 0) headers[f.slice(0, i).trim().toLowerCase()] = f.slice(i + 1).trim();
      }
      const chunked = /chunked/i.test(headers['transfer-encoding'] ?? '');
      skip = chunked ? 0 : Number(headers['content-length'] ?? 0) || 0;
      if (chunked) stopped = true;
      onRequest({ method, path, headers, chunked });
      if (stopped || socket.destroyed) return;
    }
  });
}

/** The last path segment of a request path, without its query: the fault variant asked for. */
export function variantOf(path: string): string {
  const p = path.split('?')[0];
  return p.slice(p.lastIndexOf('/') + 1);
}

/** Writes `data` unless the socket is gone; then runs `after` (once written). */
export function put(socket: Socket, data: string | Buffer, after?: () => void): void {
  if (socket.destroyed) return;
  socket.write(data, () => after?.());
}

/** Resets a connection (RST), whatever state it is in. */
export function reset(socket: Socket): void {
  if (!socket.destroyed) socket.resetAndDestroy();
}

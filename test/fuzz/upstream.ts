// The raw upstream of one fuzz case: a net server on 127.0.0.1:0 whose first connection answers
// its first request with the case's bytes, write by write as the case cuts them, then keeps the
// connection open or closes it. Every later request (a follow-up on the same connection or on a
// new one) gets a plain 200, so the drivers can tell whether a client reused the connection.
import { once } from 'node:events';
import { createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { segments } from './case.ts';
import type { FuzzCase } from './case.ts';

/** The body of the answer to a follow-up request. */
export const FOLLOW_UP_BODY = 'follow-up';
const FOLLOW_UP = `HTTP/1.1 200 OK\r\nContent-Length: ${FOLLOW_UP_BODY.length}\r\n\r\n${FOLLOW_UP_BODY}`;

/** A running upstream for one case. */
export interface CaseUpstream {
  readonly port: number;
  /** Every byte of the case was handed to the kernel (and the FIN, when the case closes), or the client left first. */
  readonly written: Promise<void>;
  /** The case's connection is closed at both ends (in 'close' mode, the client has acted on the FIN). */
  readonly caseClosed: Promise<void>;
  /** Request heads that arrived on the case's connection: 2 or more when a follow-up reused it. */
  requestsOnCase(): number;
  /** Connections accepted. */
  connections(): number;
  close(): Promise<void>;
}

/** Waits one turn of the event loop, or `ms` milliseconds. */
function gap(ms: number): Promise<void> {
  return new Promise((r) => (ms === 0 ? setImmediate(r) : setTimeout(r, ms)));
}

/** Writes `data` and waits for the kernel to take it; false when the socket failed. */
function write(sock: Socket, data: Buffer): Promise<boolean> {
  return new Promise((r) => {
    if (sock.destroyed || !sock.writable) return r(false);
    sock.write(data, (err) => r(err == null));
  });
}

/** Starts the upstream of `c`. */
export async function serveCase(c: FuzzCase): Promise<CaseUpstream> {
  let connections = 0;
  let onCase = 0;
  const sockets = new Set<Socket>();
  let wrote: () => void = () => {};
  const written = new Promise<void>((r) => (wrote = r));
  let closed: () => void = () => {};
  const caseClosed = new Promise<void>((r) => (closed = r));

  async function play(sock: Socket): Promise<void> {
    const parts = segments(c);
    for (let i = 0; i < parts.length; i++) {
      if (i > 0) await gap(c.gaps[i - 1] ?? 0);
      if (!(await write(sock, parts[i]))) return;
    }
    if (c.end === 'close' && !sock.destroyed) await new Promise<void>((r) => sock.end(r));
  }

  const server = createServer((sock) => {
    const n = ++connections;
    sockets.add(sock);
    sock.setNoDelay(true);
    // A client that gives up mid-case resets the connection: that is its answer, not a failure here.
    sock.on('error', () => {});
    sock.on('close', () => {
      sockets.delete(sock);
      if (n === 1) {
        wrote();
        closed();
      }
    });
    let buf = '';
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end !== -1; end = buf.indexOf('\r\n\r\n')) {
        buf = buf.slice(end + 4);
        if (n === 1 && ++onCase === 1) {
          void play(sock).finally(wrote);
        } else {
          sock.write(FOLLOW_UP);
        }
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    written,
    caseClosed,
    requestsOnCase: () => onCase,
    connections: () => connections,
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

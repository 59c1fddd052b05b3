// A raw client connection to the gateway (TCP, or TLS over a TCP socket the task keeps, so it
// can still send a reset): what arrives is collected, how it ended is one promise. For the
// behaviours that must misbehave below what node:http lets a client do.
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { TLSSocket } from 'node:tls';
import type { ClientContext } from '../types.ts';
import { within } from './time.ts';

/** How a connection ended, as seen by the client. */
export type Ending = 'closed' | 'reset' | `error:${string}`;

/** Received bytes kept for inspection (the rest is only counted). */
const KEEP_BYTES = 256 * 1024;

/** One raw connection, owned by the task that dialled it. */
export class Wire {
  /** The TCP socket (a reset goes here, under TLS too). */
  readonly tcp: Socket;
  /** The socket to write to and read from: the TLS socket over `tcp`, or `tcp` itself. */
  readonly socket: Socket | TLSSocket;
  /** Resolves when the connection (and TLS handshake) is up; rejects if it ends first. */
  readonly ready: Promise<void>;
  /** Resolves with how the connection ended. */
  readonly ended: Promise<Ending>;
  /** Bytes received so far. */
  received = 0;
  #chunks: Buffer[] = [];
  #kept = 0;
  #waiters: (() => void)[] = [];
  #isEnded = false;
  #port = 0;
  /** When the connection was dialled (ms since the epoch): its gateway log line comes after. */
  readonly since = Date.now();
  /** The gateway port it dialled (known after the socket is gone, unlike tcp.remotePort). */
  readonly dialled: number;

  /**
   * `servername`: the TLS SNI (default localhost); `allowHalfOpen`: a FIN from the gateway does
   * not end this side (a client that keeps writing after the other side finished).
   */
  constructor(ctx: ClientContext, opts: { tls?: boolean; port?: number; alpn?: string[]; servername?: string; allowHalfOpen?: boolean } = {}) {
    const port = opts.port ?? (opts.tls === true ? ctx.gateway.https : ctx.gateway.http);
    this.dialled = port;
    this.tcp = ctx.own(connect({ host: ctx.gateway.host, port, noDelay: true, allowHalfOpen: opts.allowHalfOpen === true }));
    this.socket = opts.tls === true
      ? ctx.own(tlsConnect({ socket: this.tcp, servername: opts.servername ?? 'localhost', rejectUnauthorized: false, ALPNProtocols: opts.alpn ?? ['http/1.1'] }))
      : this.tcp;
    // Read at the connect: once the socket is destroyed its address is gone.
    this.tcp.once('connect', () => (this.#port = this.tcp.localPort ?? 0));
    let errorCode: string | undefined;
    const onError = (err: NodeJS.ErrnoException): void => {
      errorCode ??= err.code ?? err.message;
    };
    this.tcp.on('error', onError);
    if (this.socket !== this.tcp) this.socket.on('error', onError);
    this.ready = new Promise<void>((resolve, reject) => {
      this.socket.once(opts.tls === true ? 'secureConnect' : 'connect', () => resolve());
      this.socket.once('close', () => reject(new Error(`connection ended before it was up (${errorCode ?? 'closed'})`)));
    });
    this.ready.catch(() => {});
    this.socket.on('data', (c: Buffer) => {
      this.received += c.length;
      if (this.#kept < KEEP_BYTES) {
        this.#chunks.push(c);
        this.#kept += c.length;
      }
      this.#wake();
    });
    this.ended = new Promise<Ending>((resolve) => {
      this.socket.once('close', () => {
        this.#isEnded = true;
        this.#wake();
        const code = errorCode;
        resolve(code === undefined ? 'closed' : code === 'ECONNRESET' ? 'reset' : `error:${code}`);
      });
    });
  }

  /** The local port (the gateway's log line and socket list name the connection by it); 0 before it connected. */
  get localPort(): number {
    return this.#port;
  }

  /** Whether the connection has ended. */
  get isEnded(): boolean {
    return this.#isEnded;
  }

  /** The kept bytes, as latin1 text. */
  text(): string {
    return Buffer.concat(this.#chunks).toString('latin1');
  }

  /** The kept bytes. */
  bytes(): Buffer {
    return Buffer.concat(this.#chunks);
  }

  /** Writes and resolves once the bytes are handed to the kernel (or the socket failed). */
  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.write(data, () => resolve());
    });
  }

  /** Resolves true once `pred` holds on the kept bytes, false if the connection ends, `ms` pass or `signal` aborts. */
  async until(pred: (text: string) => boolean, ms: number, signal?: AbortSignal): Promise<boolean> {
    const wait = (async (): Promise<boolean> => {
      for (;;) {
        if (pred(this.text())) return true;
        if (this.#isEnded) return false;
        await new Promise<void>((r) => this.#waiters.push(r));
      }
    })();
    return within(wait, ms, false, signal);
  }

  /** Resolves with the ending, or 'open' if the connection is still up after `ms` (or on abort). */
  endedWithin(ms: number, signal?: AbortSignal): Promise<Ending | 'open'> {
    return within(this.ended, ms, 'open' as const, signal);
  }

  /** Closes with a FIN after what was written. */
  end(): void {
    this.socket.end();
  }

  /** Closes at once (no FIN for unsent bytes). */
  destroy(): void {
    this.socket.destroy();
    this.tcp.destroy();
  }

  /** Closes with a TCP reset. */
  reset(): void {
    if (!this.tcp.destroyed) this.tcp.resetAndDestroy();
    this.socket.destroy();
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }
}

/** A parsed HTTP/1.1 response head. */
export interface Head {
  status: number;
  headers: Record<string, string>;
  /** Offset of the first body byte in the text it was parsed from. */
  bodyStart: number;
}

/** Parses the response head at `from` in `text`, or undefined if it is not complete yet. */
export function parseHead(text: string, from = 0): Head | undefined {
  const end = text.indexOf('\r\n\r\n', from);
  if (end === -1) return undefined;
  const [line, ...fields] = text.slice(from, end).split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(line);
  if (m === null) return { status: 0, headers: {}, bodyStart: end + 4 };
  const headers: Record<string, string> = {};
  for (const f of fields) {
    const i = f.indexOf(':');
    if (i > 0) headers[f.slice(0, i).trim().toLowerCase()] = f.slice(i + 1).trim();
  }
  return { status: Number(m[1]), headers, bodyStart: end + 4 };
}

/** The status of the first response in `text`, or 0 when none arrived. */
export function firstStatus(text: string): number {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  return m === null ? 0 : Number(m[1]);
}

/** A request head for the gateway. */
export function requestHead(method: string, path: string, headers: Record<string, string | number> = {}): string {
  const lines = [`${method} ${path} HTTP/1.1`, 'host: soak.test'];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  return lines.join('\r\n') + '\r\n\r\n';
}

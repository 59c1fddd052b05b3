// A lean HTTP/1.1 client for http:// and https:// upstreams: a keep-alive pool of TCP or TLS
// connections, one request at a time on each, implementing waygate's UpstreamClient (client.ts;
// undici is adapted to the same contract for HTTP/2 and `client: undici` pools). It exists for
// speed: per request it writes the head as one string and parses the response head with string
// operations, where undici validates every header again, builds request objects and runs llhttp
// in WebAssembly. A bare forwarder on it ran 1.39× the req/s of the same forwarder on undici;
// waygate gained 1.18× on http:// targets and 1.31× on https:// ones.
//
// Error codes follow undici's (UND_ERR_*, HPE_*, the socket's E*), so the forwarder's mapping to
// 502/504 and to the retry rules is the same for both clients.
import { coded } from '../client.ts';
import type { UpstreamClient, UpstreamHandler, UpstreamRequest } from '../client.ts';
import { H1Conn } from './conn.ts';
import type { ConnPool } from './conn.ts';
import { H1Request } from './request.ts';

export interface H1PoolOptions {
  host: string;
  port: number;
  connectTimeout: number;
  /** Longest time an idle connection is kept for reuse (ms). */
  keepAliveTimeout: number;
  /** For https:// targets: TLS over each connection. */
  tls?: H1Tls;
}

/** TLS settings of an https:// target's connections (file contents, not paths). */
export interface H1Tls {
  /** SNI and the name the certificate must carry; undefined for an IP (checked against the IP). */
  servername: string | undefined;
  /** Extra trusted CA certificates (PEM); the system CAs otherwise. */
  ca?: string;
  rejectUnauthorized: boolean;
  /** Client certificate and key for mutual TLS. */
  cert?: string;
  key?: string;
}

// undici's check on a request path: printable, no spaces or control bytes.
const BAD_PATH = /[^\u0021-\u00ff]/;

/** A connection pool to one origin. */
export class H1Pool implements UpstreamClient, ConnPool {
  readonly options: H1PoolOptions;
  tlsSession: Buffer | undefined;
  /** Idle connections, most recently used last. */
  readonly #idle: H1Conn[] = [];
  #busy = 0;
  #closing = false;
  #closed: (() => void) | undefined;
  #sweep: NodeJS.Timeout | undefined;

  constructor(options: H1PoolOptions) {
    this.options = options;
  }

  request(spec: UpstreamRequest, handler: UpstreamHandler): void {
    const req = new H1Request(spec, handler);
    handler.onStart(req);
    if (req.aborted) return;
    const path = spec.path;
    if (this.#closing) return req.failDetached(coded('UND_ERR_CLOSED', 'the upstream connection pool is closed'));
    if (BAD_PATH.test(path) || (path.charCodeAt(0) !== 47 && path !== '*')) return req.failDetached(coded('UND_ERR_INVALID_ARG', 'invalid request path'));
    const conn = this.#takeIdle() ?? this.#connect(req);
    if (conn === undefined) return;
    this.#busy++;
    conn.run(req);
  }

  /**
   * A new connection for `req`, or undefined after failing `req` when none can be made: node:tls
   * throws at once on TLS material it refuses (a client key pair that is not PEM), and nothing was
   * counted busy yet, so close() still ends.
   */
  #connect(req: H1Request): H1Conn | undefined {
    try {
      return new H1Conn(this);
    } catch (err) {
      req.failDetached(err as Error);
      return undefined;
    }
  }

  #takeIdle(): H1Conn | undefined {
    const idle = this.#idle;
    const now = Date.now();
    while (idle.length > 0) {
      const conn = idle.pop()!;
      if (now < conn.expires) return conn;
      conn.socket.destroy();
    }
    return undefined;
  }

  redispatch(req: H1Request): void {
    const conn = this.#connect(req);
    if (conn === undefined) return;
    this.#busy++;
    conn.run(req);
  }

  /** A connection finished a request: keep it for the next one or let it go. */
  released(conn: H1Conn, reusable: boolean): void {
    this.#busy--;
    if (reusable && !this.#closing) {
      this.#idle.push(conn);
      this.#sweep ??= setInterval(() => this.#expire(), 1000).unref();
    } else {
      conn.socket.destroy();
    }
    if (this.#closing && this.#busy === 0) this.#finishClose();
  }

  /** An idle connection was closed by the upstream or failed. */
  forget(conn: H1Conn): void {
    const i = this.#idle.indexOf(conn);
    if (i !== -1) this.#idle.splice(i, 1);
  }

  #expire(): void {
    const now = Date.now();
    const idle = this.#idle;
    for (let i = idle.length - 1; i >= 0; i--) {
      if (now >= idle[i].expires) idle.splice(i, 1)[0].socket.destroy();
    }
    if (idle.length === 0) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
    }
  }

  close(): Promise<void> {
    this.#closing = true;
    for (const conn of this.#idle.splice(0)) conn.socket.destroy();
    clearInterval(this.#sweep);
    this.#sweep = undefined;
    if (this.#busy === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#closed = resolve;
    });
  }

  #finishClose(): void {
    const done = this.#closed;
    this.#closed = undefined;
    if (done !== undefined) done();
  }
}

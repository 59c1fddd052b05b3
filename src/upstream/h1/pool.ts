// A lean HTTP/1.1 client for http:// and https:// upstreams: a keep-alive pool of TCP or TLS
// connections, one request at a time on each, implementing waygate's UpstreamClient (client.ts;
// undici is adapted to the same contract for HTTP/2 and `client: undici` pools). It exists for
// speed: per request it writes the head as one string and parses the response head with string
// operations, where undici validates every header again, builds request objects and runs llhttp
// in WebAssembly. A bare forwarder on it ran 1.39× the req/s of the same forwarder on undici;
// waygate gained 1.18× on http:// targets and 1.31× on https:// ones.
//
// A `proxyProtocol` pool (SPEC §7) starts each connection with a PROXY header for the client
// connection of the request that opened it (UpstreamRequest.proxy), so its idle connections are
// kept per client connection and reused only by that connection's later requests.
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

/** A client connection of a `proxyProtocol` pool (UpstreamProxy.owner). */
type Owner = NonNullable<H1Conn['owner']>;

/** A connection pool to one origin. */
export class H1Pool implements UpstreamClient, ConnPool {
  readonly options: H1PoolOptions;
  tlsSession: Buffer | undefined;
  /** Idle connections, most recently used last. */
  readonly #idle: H1Conn[] = [];
  /**
   * A `proxyProtocol` pool's idle connections (SPEC §7), by the client connection they were made
   * for: each starts with that connection's PROXY header, so no other may use it. An entry lives
   * while it holds idle connections; the sweep closes those of a client connection that is gone.
   */
  readonly #owned = new Map<Owner, H1Conn[]>();
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
    const proxy = spec.proxy;
    const conn = (proxy === undefined ? takeIdle(this.#idle) : this.#takeOwned(proxy.owner)) ?? this.#connect(req);
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
      return new H1Conn(this, req.spec.proxy);
    } catch (err) {
      req.failDetached(err as Error);
      return undefined;
    }
  }

  /** An idle connection made for `owner`, if one is still fresh. */
  #takeOwned(owner: Owner): H1Conn | undefined {
    const idle = this.#owned.get(owner);
    if (idle === undefined) return undefined;
    const conn = takeIdle(idle);
    if (idle.length === 0) this.#owned.delete(owner);
    return conn;
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
    const owner = conn.owner;
    // A client connection that is gone has no later request for a connection made for it.
    if (reusable && !this.#closing && (owner === undefined || !owner.destroyed)) {
      if (owner === undefined) this.#idle.push(conn);
      else {
        const idle = this.#owned.get(owner);
        if (idle === undefined) this.#owned.set(owner, [conn]);
        else idle.push(conn);
      }
      this.#sweep ??= setInterval(() => this.#expire(), 1000).unref();
    } else {
      conn.socket.destroy();
    }
    if (this.#closing && this.#busy === 0) this.#finishClose();
  }

  /** An idle connection was closed by the upstream or failed. */
  forget(conn: H1Conn): void {
    const owner = conn.owner;
    const idle = owner === undefined ? this.#idle : this.#owned.get(owner);
    if (idle === undefined) return;
    const i = idle.indexOf(conn);
    if (i !== -1) idle.splice(i, 1);
    if (owner !== undefined && idle.length === 0) this.#owned.delete(owner);
  }

  #expire(): void {
    const now = Date.now();
    expire(this.#idle, now, false);
    for (const [owner, idle] of this.#owned) {
      expire(idle, now, owner.destroyed);
      if (idle.length === 0) this.#owned.delete(owner);
    }
    if (this.#idle.length === 0 && this.#owned.size === 0) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
    }
  }

  close(): Promise<void> {
    this.#closing = true;
    for (const conn of this.#idle.splice(0)) conn.socket.destroy();
    for (const idle of this.#owned.values()) for (const conn of idle) conn.socket.destroy();
    this.#owned.clear();
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

/** Takes the most recently used idle connection of `idle` that is still fresh, closing stale ones on the way. */
function takeIdle(idle: H1Conn[]): H1Conn | undefined {
  const now = Date.now();
  while (idle.length > 0) {
    const conn = idle.pop()!;
    if (now < conn.expires) return conn;
    conn.socket.destroy();
  }
  return undefined;
}

/** Closes the connections of `idle` past their keep-alive time, or all of them when `all`. */
function expire(idle: H1Conn[], now: number, all: boolean): void {
  for (let i = idle.length - 1; i >= 0; i--) {
    if (all || now >= idle[i].expires) idle.splice(i, 1)[0].socket.destroy();
  }
}

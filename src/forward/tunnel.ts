// The upstream side of a WebSocket upgrade (SPEC §4): one Tunnel owns the client socket from the
// moment node:http hands it over, the upstream socket from its creation, and every timer, until
// both sockets are closed. It answers the handshake (waygate's own response, the upstream's
// refusal relayed, or the 101), then relays bytes both ways with backpressure. Every exit path
// destroys what is left, releases the target exactly once and reports the end exactly once.
//
// Issue 12 defect 7: the greeting an upstream sends with its 101 was lost when a byte counter
// was a second 'data' listener next to http-proxy-3's pipe — unshifting the head into a flowing
// socket emitted it to the counter alone. Here one listener per direction counts and writes the
// same chunk, and the upstream's head is written to the client before the relay starts.
import type { EventEmitter } from 'node:events';
import { ServerResponse, request } from 'node:http';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { connect as netConnect } from 'node:net';
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { createSecureContext, connect as tlsConnect } from 'node:tls';
import type { SecureContext } from 'node:tls';
import { GatewayError, fromUpstreamError } from '../errors.ts';
import { proxyHeader } from '../l4/proxy-header.ts';
import type { ProxyEnds } from '../l4/proxy-header.ts';
import type { UpstreamPool } from '../upstream/pool.ts';
import type { Target, UpstreamTls } from '../upstream/target.ts';
import { clientResponseHeaders, upstreamRequestHeaders } from './headers.ts';
import type { HeaderOps } from './headers.ts';
import { clientEnds } from './routed.ts';
import type { RoutedRequest } from './routed.ts';

/**
 * Once either side of a tunnel has closed, the other is ended at once and destroyed after this
 * long if it has not closed by then: a peer that ignores the FIN must not hold a socket and an
 * in-flight count.
 */
export const TUNNEL_CLOSE_GRACE_MS = 1000;

/**
 * Client bytes kept while the upstream handshake is pending; past this the client socket is no
 * longer read (TCP backpressure) until the upstream answers.
 */
export const HANDSHAKE_HOLD_BYTES = 64 * 1024;

/** What a tunnel reports to the server side (metrics, passive health, waygate's own errors, the log). */
export interface TunnelObserver {
  /** One upstream attempt ended: `err` is undefined when the upstream answered the handshake. */
  attempt(pool: UpstreamPool, target: Target, err: GatewayError | undefined): void;
  /**
   * The handshake failed before any answer reached the client: write waygate's error response
   * for `err` on `res` (the tunnel closes the socket once it is sent). Returns the body bytes.
   */
  fail(err: GatewayError, res: ServerResponse): number;
  /** The session is over, both sockets closed: called exactly once. */
  done(end: TunnelEnd): void;
}

/** How a session ended, for the access log. */
export interface TunnelEnd {
  /** 101, the upstream's refusal, waygate's own answer; 499 when the client left unanswered. */
  status: number;
  /** Bytes from the client relayed upstream after its handshake (its head included). */
  bytesIn: number;
  /** Bytes sent to the client after the response head (tunnel data, or the body of an answer). */
  bytesOut: number;
  /** The target of the last attempt, if any. */
  target: Target | undefined;
  attempts: number;
}

/** A client socket handed over by a server's 'upgrade' event. */
export interface TunnelClient {
  readonly req: IncomingMessage;
  readonly socket: Socket;
  /** Bytes the client sent after its handshake head, read with it. */
  readonly head: Buffer;
  /** Live client sockets for shutdown: added now, removed when the socket closes. */
  readonly tunnels?: Set<Socket>;
  /** A client that reads nothing of an HTTP answer for this long (ms) is disconnected. */
  readonly writeIdleTimeout: number;
  readonly observer: TunnelObserver;
}

/** Where a handshake goes, and what its answer gets on the way back. */
export interface TunnelForward extends RoutedRequest {
  /** No byte either way for this long (ms) closes the tunnel; 0 never. Default: the pool's `timeouts.idle`. */
  readonly idleTimeout?: number;
}

// Where a session is: reading its handshake answer, writing an HTTP answer, or relaying bytes.
const NEW = 0;
const HANDSHAKE = 1;
const ANSWER = 2;
const OPEN = 3;
const DONE = 4;

/**
 * Fields of a 101 that describe this hop only or cannot be in a 1xx (RFC 9110 §7.6.1, §8.6).
 * Connection and Upgrade are what make the 101 an upgrade: they are written by switchingHead.
 */
const NOT_IN_101 = new Set(['connection', 'upgrade', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'content-length', 'x-request-id']);

/**
 * Returns the head of the client's 101 from the upstream's: `Connection: Upgrade` and the
 * upstream's Upgrade kept whatever the route's header operations say, hop-by-hop fields out,
 * the operations applied to the rest, then `extra` (x-request-id, cookie, HSTS).
 */
function switchingHead(raw: readonly string[], ops: HeaderOps | undefined, extra: readonly string[]): string {
  let head = 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n';
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i].toLowerCase();
    if (lower === 'upgrade') head += `${raw[i]}: ${raw[i + 1]}\r\n`;
    else if (!NOT_IN_101.has(lower) && !lower.startsWith('proxy-') && !(ops?.drop.has(lower) ?? false)) head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  const append = ops?.append ?? [];
  for (let i = 0; i < append.length; i += 2) {
    if (!NOT_IN_101.has(append[i].toLowerCase())) head += `${append[i]}: ${append[i + 1]}\r\n`;
  }
  for (let i = 0; i < extra.length; i += 2) head += `${extra[i]}: ${extra[i + 1]}\r\n`;
  return head + '\r\n';
}

// One TLS context per pool settings object (rebuilt on reload, so a changed CA or key takes
// effect and the old context goes with the old settings): every upgrade to a wss:// target is a
// new connection, and building a context from PEM text each time costs a parse of every cert.
const contexts = new WeakMap<UpstreamTls, SecureContext>();
const DEFAULT_TLS: UpstreamTls = { rejectUnauthorized: true };

/** Returns the TLS context of `tls` (the system CAs when it names none). Throws for PEM node:tls refuses. */
function secureContextOf(tls: UpstreamTls | undefined): SecureContext {
  const key = tls ?? DEFAULT_TLS;
  let ctx = contexts.get(key);
  if (ctx === undefined) {
    ctx = createSecureContext({ ca: key.ca, cert: key.cert, key: key.key });
    contexts.set(key, ctx);
  }
  return ctx;
}

function hasHeader(flat: readonly string[], name: string): boolean {
  for (let i = 0; i < flat.length; i += 2) if (flat[i].toLowerCase() === name) return true;
  return false;
}

/**
 * Relays `src` to `dst` with backpressure; `src`'s end ends `dst`. One 'data' listener both
 * counts and writes each chunk, so no byte can be seen by one and missed by the other (defect 7).
 * `drains` is what emits 'drain' when `dst` can take more (`dst` itself unless said otherwise).
 */
function relay(src: Readable, dst: Writable, count: (n: number) => void, drains: EventEmitter = dst): void {
  src.on('data', (chunk: Buffer) => {
    count(chunk.length);
    if (!dst.write(chunk)) src.pause();
  });
  drains.on('drain', () => src.resume());
  src.on('end', () => dst.end());
  src.resume();
}

/** One upgrade request's client connection, from the handover to the end of its tunnel. */
export class Tunnel {
  readonly #c: TunnelClient;
  readonly #client: Socket;
  #state = NEW;
  #f: TunnelForward | undefined;
  /** Client bytes held until the upstream accepts (never sent to an upstream that refuses). */
  #held: Buffer[] = [];
  #heldBytes = 0;
  readonly #hold = (chunk: Buffer): void => {
    this.#held.push(chunk);
    this.#heldBytes += chunk.length;
    if (this.#heldBytes >= HANDSHAKE_HOLD_BYTES) this.#client.pause();
  };
  #target: Target | undefined;
  #release: (() => void) | undefined;
  #tried: Target[] | undefined;
  #attempts = 0;
  #upstream: Socket | undefined;
  #upReq: ClientRequest | undefined;
  /** The connect, then the response timer of the current attempt. */
  #timer: NodeJS.Timeout | undefined;
  #grace: NodeJS.Timeout | undefined;
  #clientClosed = false;
  #status: number | undefined;
  #bytesIn = 0;
  #bytesOut = 0;
  /** The client connection's ends, for a pool with `proxyProtocol` (first attempt on). */
  #ends: ProxyEnds | undefined;

  /** Takes ownership of the client socket: from here on this object is its one owner. */
  constructor(c: TunnelClient) {
    this.#c = c;
    const socket = c.socket;
    this.#client = socket;
    // Node removed its own listeners when it handed the socket over: without this, a reset
    // from the client would be an uncaught 'error'. Every error ends in 'close', handled there.
    socket.on('error', () => {});
    socket.once('close', () => this.#clientGone());
    socket.on('end', () => this.#clientEnded());
    socket.on('timeout', () => this.#destroyAll());
    // The listener's timeouts (headers, keep-alive) are not this session's: it sets its own.
    socket.setTimeout(0);
    // Messages are small and latency-bound: Nagle's algorithm would hold a write back for the
    // peer's delayed ACK (~40 ms on Linux), which the HTTPS listener's sockets otherwise get.
    socket.setNoDelay(true);
    c.tunnels?.add(socket);
    if (c.head.length > 0) this.#hold(c.head);
    // A socket already closed will not say so again: the session ends once its answer is decided.
    if (socket.closed) queueMicrotask(() => this.#clientGone());
  }

  /** The target of the latest attempt, if any. */
  get target(): Target | undefined {
    return this.#target;
  }

  /**
   * Answers the handshake with waygate's own response: `write` fills a response on the raw
   * socket and returns its body bytes; the socket is closed once it is sent.
   */
  answer(write: (res: ServerResponse) => number): void {
    if (this.#state !== NEW) return;
    this.#respond(write);
  }

  /**
   * Ends the session for an error of the caller's own (a bug, not the client's or upstream's):
   * waygate's answer for `err` if nothing was answered yet, else both sockets are destroyed.
   */
  abort(err: GatewayError): void {
    if (this.#state === NEW) return this.#fail(err);
    this.#clearTimer();
    this.#destroyAll();
  }

  /** Sends the handshake to a target of `f.pool` and answers the client with what comes back. */
  forward(f: TunnelForward): void {
    if (this.#state !== NEW) return;
    this.#f = f;
    this.#state = HANDSHAKE;
    // Read while the upstream is asked, so a client that leaves is seen at once (nginx, too,
    // abandons an upstream request whose client closed before the answer: a 499).
    this.#client.on('data', this.#hold);
    const target = f.pool.first({ clientIp: f.clientIp }, f.stickyToken);
    if (target instanceof GatewayError) return this.#fail(target);
    this.#attempt(target);
  }

  #attempt(target: Target): void {
    const f = this.#f!;
    const s = f.pool.settings;
    // SPEC §7: a `proxyProtocol` pool's connection starts with the PROXY header, as on the HTTP path.
    const version = s.connect.proxyProtocol;
    let preamble: Buffer | undefined;
    if (version !== 'off') {
      const ends = (this.#ends ??= clientEnds(this.#c.req));
      // No addresses left to announce: the client socket is closed, and its 'close' ends the session.
      if (ends === undefined) {
        this.#client.destroy();
        return;
      }
      preamble = proxyHeader(version, ends);
    }
    const n = ++this.#attempts;
    this.#target = target;
    // Held for the life of the tunnel: least-connections sees long-lived sessions as load.
    this.#release = target.acquire();
    const { https, host, port } = target.endpoint;
    const tls = s.connect.tls;
    // The same TLS rules as the HTTP path: the pool's CA, verification and client certificate,
    // and Target.sni's name — never the client's Host.
    let socket: Socket;
    let secure: ((over: Socket | undefined) => Socket) | undefined;
    try {
      if (https) {
        const secureContext = secureContextOf(tls);
        secure = (over) => tlsConnect({
          socket: over,
          host,
          port,
          servername: target.sni(tls),
          secureContext,
          rejectUnauthorized: tls?.rejectUnauthorized ?? true,
          ALPNProtocols: ['http/1.1'],
        });
      }
      if (secure !== undefined && preamble === undefined) {
        socket = secure(undefined);
      } else {
        socket = netConnect({ host, port });
        // Written while connecting: the connection's first bytes, ahead of the handshake (and of TLS).
        if (preamble !== undefined) socket.write(preamble);
      }
    } catch (e) {
      // TLS material node:tls refuses (a bad key, say) throws here, not on the socket.
      this.#releaseTarget();
      const err = fromUpstreamError(e);
      this.#c.observer.attempt(f.pool, target, err);
      return this.#fail(err);
    }
    this.#upstream = socket;
    this.#watch(n, socket);
    const connectTimeout = s.connect.connectTimeout;
    if (connectTimeout > 0) {
      this.#timer = setTimeout(() => {
        this.#attemptFailed(n, new GatewayError('upstream_timeout', `connect timeout after ${connectTimeout}ms`, { beforeSend: true }));
      }, connectTimeout);
    }
    if (secure === undefined || preamble === undefined) return this.#handshake(n, socket, https);
    // Behind the PROXY header, TLS starts over the TCP connection once it is open (as HAProxy's
    // send-proxy before ssl; see H1Conn): the header was queued first, so it is flushed first.
    // Wrapping only now also wraps the handle that connected (happy eyeballs may try several).
    socket.once('connect', () => {
      if (n !== this.#attempts || this.#upstream !== socket || this.#state !== HANDSHAKE) return;
      let over: Socket;
      try {
        over = secure(socket);
      } catch (e) {
        return this.#attemptFailed(n, fromUpstreamError(e));
      }
      // The TLS socket is the upstream now: the TCP socket's own close is not (#upstreamClosed).
      this.#upstream = over;
      this.#watch(n, over);
      this.#handshake(n, over, true);
    });
  }

  /** The upstream socket's error and close, for attempt `n`. */
  #watch(n: number, socket: Socket): void {
    socket.on('error', (err) => this.#attemptFailed(n, fromUpstreamError(err)));
    socket.once('close', () => this.#upstreamClosed(socket, n));
    socket.setNoDelay(true);
  }

  /** Sends the handshake of attempt `n` on `socket` (connecting, or TLS still to finish when `secure`). */
  #handshake(n: number, socket: Socket, secure: boolean): void {
    const f = this.#f!;
    const s = f.pool.settings;
    // The handshake answer is bounded like a response header (timeouts.response), counted from
    // when it could be sent; the connect timeout covers the TLS handshake.
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      this.#clearTimer();
      if (s.responseTimeout > 0) {
        this.#timer = setTimeout(() => {
          this.#attemptFailed(n, new GatewayError('upstream_timeout', 'no answer to the WebSocket handshake in time'));
        }, s.responseTimeout);
      }
    });
    const headers = upstreamRequestHeaders(this.#c.req.rawHeaders, { ...f.info, keepTeTrailers: false, keepUpgrade: true }, f.requestOps);
    // node:http writes the request and parses the answer on our socket; `path` is sent as is
    // (the normalised, rewritten one), never re-parsed by URL rules.
    let req: ClientRequest;
    try {
      req = request({ method: 'GET', path: f.path, headers, setHost: false, createConnection: () => socket });
    } catch (e) {
      // A path or header node:http will not write (ERR_INVALID_CHAR): nothing reached the target.
      this.#clearTimer();
      this.#dropUpstream();
      this.#releaseTarget();
      return this.#fail(new GatewayError('bad_request', `the handshake cannot be forwarded: ${(e as Error).message}`));
    }
    this.#upReq = req;
    req.on('error', (err) => this.#attemptFailed(n, fromUpstreamError(err)));
    req.once('upgrade', (res: IncomingMessage, _socket: Socket, head: Buffer) => this.#upgraded(n, res, head));
    req.once('response', (res: IncomingMessage) => this.#refused(n, res));
    req.end();
  }

  /** The upstream switched protocols: the client gets the 101, then both sides are relayed. */
  #upgraded(n: number, res: IncomingMessage, head: Buffer): void {
    if (n !== this.#attempts || this.#state !== HANDSHAKE) return;
    this.#clearTimer();
    this.#upReq = undefined;
    this.#state = OPEN;
    const f = this.#f!;
    const target = this.#target!;
    const upstream = this.#upstream!;
    this.#status = 101;
    this.#c.observer.attempt(f.pool, target, undefined);
    const extra: string[] = ['x-request-id', f.info.requestId];
    // Pin (or re-pin) the client to the target that accepted.
    const sticky = f.pool.sticky;
    if (sticky !== undefined && sticky.token(target) !== f.stickyToken) extra.push('set-cookie', sticky.setCookie(target, f.info.proto === 'https'));
    const listener = f.listenerHeaders ?? [];
    for (let i = 0; i < listener.length; i += 2) if (!hasHeader(res.rawHeaders, listener[i])) extra.push(listener[i], listener[i + 1]);
    const client = this.#client;
    client.off('data', this.#hold);
    // The 101 and what the upstream sent with it leave together, before any later byte.
    client.cork();
    client.write(switchingHead(res.rawHeaders, f.responseOps, extra), 'latin1');
    if (head.length > 0) {
      this.#bytesOut += head.length;
      client.write(head);
    }
    client.uncork();
    // What the client sent with or after its handshake goes first, in order.
    for (const chunk of this.#held) upstream.write(chunk);
    this.#bytesIn += this.#heldBytes;
    this.#held = [];
    upstream.setKeepAlive(true, 60_000);
    relay(upstream, client, (bytes) => (this.#bytesOut += bytes));
    relay(client, upstream, (bytes) => (this.#bytesIn += bytes));
    // Any byte either way is a read or a write on the client socket: one timer covers both.
    const idle = f.idleTimeout ?? f.pool.settings.idleTimeout;
    if (idle > 0) client.setTimeout(idle);
  }

  /** The upstream answered with an HTTP response: relayed to the client (status, headers, body), then closed. */
  #refused(n: number, res: IncomingMessage): void {
    if (n !== this.#attempts || this.#state !== HANDSHAKE) return;
    this.#clearTimer();
    const f = this.#f!;
    const target = this.#target!;
    // The body may be cut by the upstream: the client's answer is then cut too, never completed.
    res.on('error', () => this.#destroyAll());
    res.on('aborted', () => this.#destroyAll());
    res.on('end', () => this.#upstream?.destroy());
    const headers = clientResponseHeaders(res.rawHeaders, f.responseOps, f.info.requestId);
    const listener = f.listenerHeaders ?? [];
    for (let i = 0; i < listener.length; i += 2) if (!hasHeader(headers, listener[i])) headers.push(listener[i], listener[i + 1]);
    let err: GatewayError | undefined;
    this.#respond((out) => {
      try {
        out.writeHead(res.statusCode!, res.statusMessage || undefined, headers);
      } catch (e) {
        // Header bytes node:http refuses to write: a bad response, not ours to forward.
        err = new GatewayError('upstream_bad_response', `invalid upstream response headers: ${(e as Error).message}`);
        out.destroy();
      }
      return 0;
    }, res);
    this.#c.observer.attempt(f.pool, target, err);
  }

  /**
   * Writes one HTTP/1.1 answer on the raw client socket through a ServerResponse (status line,
   * Date, `Connection: close`, framing), then closes the socket. With `body`, the upstream's
   * response body is relayed through it.
   */
  #respond(write: (res: ServerResponse) => number, body?: IncomingMessage): void {
    this.#state = ANSWER;
    const client = this.#client;
    client.off('data', this.#hold);
    this.#held = [];
    // Whatever else the client sends is read and dropped, so its FIN and close are seen.
    client.resume();
    if (client.destroyed || !client.writable) {
      this.#destroyAll();
      return;
    }
    const res = new ServerResponse(this.#c.req);
    res.shouldKeepAlive = false;
    res.assignSocket(client);
    res.once('finish', () => {
      res.detachSocket(client);
      client.destroySoon();
    });
    // An answer the client does not read is not kept forever.
    client.setTimeout(this.#c.writeIdleTimeout);
    if (body === undefined) {
      this.#bytesOut += write(res);
    } else {
      write(res);
      // The socket's own 'drain': node:http took away its listener that re-emits it on `res`
      // when it handed the socket over.
      if (!res.destroyed) relay(body, res, (bytes) => (this.#bytesOut += bytes), client);
    }
    this.#status = res.statusCode;
  }

  /** An attempt failed: retried on another target if nothing was sent, else waygate's error. */
  #attemptFailed(n: number, err: GatewayError): void {
    if (n !== this.#attempts || this.#state !== HANDSHAKE || this.#clientClosed) return;
    this.#clearTimer();
    this.#dropUpstream();
    this.#releaseTarget();
    const f = this.#f!;
    const target = this.#target!;
    this.#c.observer.attempt(f.pool, target, err);
    // SPEC §4: another target only for a handshake that never left (connect failed).
    if (err.beforeSend && this.#attempts <= f.pool.settings.retries) {
      const tried = (this.#tried ??= []);
      tried.push(target);
      const next = f.pool.select({ clientIp: f.clientIp }, (t) => t.available && !tried.includes(t));
      if (next !== undefined) return this.#attempt(next);
    }
    this.#fail(err);
  }

  /** Answers `err` with waygate's error response (written by the server side). */
  #fail(err: GatewayError): void {
    this.#respond((res) => this.#c.observer.fail(err, res));
  }

  #clientEnded(): void {
    // A FIN before the answer: the client is gone, and so is the reason to ask the upstream.
    if (this.#state === HANDSHAKE) this.#client.destroy();
  }

  #clientGone(): void {
    this.#clientClosed = true;
    this.#c.tunnels?.delete(this.#client);
    switch (this.#state) {
      case HANDSHAKE:
        // Abandoned: not the target's failure, and no answer to give.
        this.#clearTimer();
        this.#dropUpstream();
        break;
      case ANSWER:
        // A refusal still being relayed has nowhere to go.
        this.#dropUpstream();
        break;
      case OPEN:
        if (this.#upstream !== undefined) this.#closeSoon(this.#upstream);
        break;
    }
    this.#maybeDone();
  }

  #upstreamClosed(socket: Socket, n: number): void {
    if (socket !== this.#upstream) return;
    if (this.#state === HANDSHAKE) {
      // node:http reports the reason first ('error'); this covers a close it left unreported.
      this.#attemptFailed(n, new GatewayError('upstream_reset', 'the upstream closed the connection during the WebSocket handshake'));
      return;
    }
    this.#upstream = undefined;
    if (this.#state === OPEN && !this.#clientClosed) this.#closeSoon(this.#client);
    this.#maybeDone();
  }

  /** Ends `socket` now and destroys it after the grace period if it is still open. */
  #closeSoon(socket: Socket): void {
    socket.end();
    clearTimeout(this.#grace);
    this.#grace = setTimeout(() => socket.destroy(), TUNNEL_CLOSE_GRACE_MS);
    // Cleared when the session ends; it alone must not keep a stopping process alive.
    this.#grace.unref();
  }

  /** Destroys both sockets (idle timeout, cut answer); their 'close' events finish the session. */
  #destroyAll(): void {
    this.#client.destroy();
    this.#upstream?.destroy();
  }

  /** Destroys the current attempt's request and socket; their late events are ignored. */
  #dropUpstream(): void {
    const req = this.#upReq;
    const socket = this.#upstream;
    this.#upReq = undefined;
    this.#upstream = undefined;
    req?.destroy();
    socket?.destroy();
  }

  #clearTimer(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #releaseTarget(): void {
    const release = this.#release;
    this.#release = undefined;
    release?.();
  }

  /** Ends the session once the client socket and the upstream socket (if any) are both closed. */
  #maybeDone(): void {
    if (this.#state === DONE || !this.#clientClosed || this.#upstream !== undefined) return;
    this.#state = DONE;
    this.#clearTimer();
    clearTimeout(this.#grace);
    this.#releaseTarget();
    this.#held = [];
    this.#c.observer.done({
      status: this.#status ?? 499,
      bytesIn: this.#bytesIn,
      bytesOut: this.#bytesOut,
      target: this.#target,
      attempts: this.#attempts,
    });
  }
}

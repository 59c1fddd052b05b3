// One TCP connection of waygate's HTTP/1.1 upstream client (h1-pool.ts): it writes a request's
// head (and body), parses the response (h1-parse.ts) and drives the request's handler, with the
// response and body-idle timeouts, backpressure and the rules for reusing the connection.
import { maxHeaderSize } from 'node:http';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { proxyHeader } from '../../l4/proxy-header.ts';
import { coded } from '../client.ts';
import type { UpstreamProxy } from '../client.ts';
import { ChunkedDecoder, badResponse, checkLineEnds, parseHead } from './parse.ts';
import type { ResponseHead } from './parse.ts';
import type { H1PoolOptions } from './pool.ts';
import { Upload } from './request.ts';
import type { H1Request, RequestConn } from './request.ts';

/** What a connection needs of its pool. */
export interface ConnPool {
  readonly options: H1PoolOptions;
  /** The last TLS session an https:// connection got, offered for resumption by the next one. */
  tlsSession: Buffer | undefined;
  /** The connection finished a request: keep it for the next one or let it go. */
  released(conn: H1Conn, reusable: boolean): void;
  /** An idle connection was closed by the upstream or failed. */
  forget(conn: H1Conn): void;
  /** Sends `req` again, on a new connection (see #staleRetry). */
  redispatch(req: H1Request): void;
}

const EXPECTS_BODY = new Set(['POST', 'PUT', 'PATCH']);
const RESET_CODES = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);
// An upstream's keep-alive hint is trusted minus this margin, as undici does.
const HINT_MARGIN_MS = 1000;
const NO_TRAILERS: Readonly<Record<string, string>> = Object.freeze({});

function ignore(): void {}

/**
 * A connection's response or body-idle timer: restarted per use without a new Timeout each time
 * (refresh), replaced only when the duration changes. Its callback checks whether it still applies.
 */
class Restartable {
  readonly #fire: () => void;
  #timer: NodeJS.Timeout | undefined;
  #ms = 0;

  constructor(fire: () => void) {
    this.#fire = fire;
  }

  arm(ms: number): void {
    if (this.#timer === undefined || this.#ms !== ms) {
      clearTimeout(this.#timer);
      this.#ms = ms;
      this.#timer = setTimeout(this.#fire, ms).unref();
    } else {
      this.#timer.refresh();
    }
  }

  /** Restarts the timer if it was ever armed. */
  refresh(): void {
    this.#timer?.refresh();
  }

  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

const CONNECTING = 0;
const HEAD = 1;
const BODY = 2;
const IDLE = 3;

/** One TCP (or TLS) connection to the upstream. */
export class H1Conn implements RequestConn {
  readonly pool: ConnPool;
  /** The connection's socket: TLS for an https:// target (set once TLS starts, behind a PROXY header). */
  socket: Socket;
  /** The client connection this one was made for (`proxyProtocol` pools), else undefined. */
  readonly owner: UpstreamProxy['owner'] | undefined;
  #state = CONNECTING;
  #req: H1Request | undefined;
  /** A partial response head, or bytes held back while the handler is paused. */
  #pending: Buffer | undefined;
  #head: ResponseHead | undefined;
  #remaining = 0;
  #chunked: ChunkedDecoder | undefined;
  /** The request body stream still being sent, with its listeners. */
  #upload: Upload | undefined;
  readonly #headTimer = new Restartable(() => this.#headExpired());
  readonly #bodyTimer = new Restartable(() => this.#bodyExpired());
  /** When this connection, idle, is too old to reuse (ms since the epoch). */
  expires = 0;
  /** Requests this connection completed. */
  #served = 0;
  /** A byte of the current request's response has arrived. */
  #answered = false;
  /**
   * The upstream closed while the handler was paused with bytes held back: the close is acted on
   * once those bytes are read (resumeReading), since they may complete the response.
   */
  #closedWhileHeld = false;

  /**
   * A new connection. With `proxy` (a `proxyProtocol` pool, SPEC §7) its first bytes are the PROXY
   * header announcing the client connection, before any request and before the TLS handshake of
   * an https:// target (as HAProxy's send-proxy), and it serves `proxy.owner`'s requests alone.
   */
  constructor(pool: ConnPool, proxy?: UpstreamProxy) {
    this.pool = pool;
    this.owner = proxy?.owner;
    const o = pool.options;
    const t = o.tls;
    const preamble = proxy === undefined ? undefined : proxyHeader(proxy.version, proxy.ends);
    let socket: Socket;
    if (t === undefined || preamble !== undefined) {
      socket = connect({ host: o.host, port: o.port, noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000 });
      // Written while connecting: it goes out first, once connected, ahead of anything later.
      if (preamble !== undefined) socket.write(preamble);
    } else {
      socket = this.#secure(undefined);
    }
    this.socket = socket;
    let connectTimer: NodeJS.Timeout | undefined;
    if (o.connectTimeout > 0) {
      // The socket of the moment: the TCP one, or the TLS one over it once that exists.
      connectTimer = setTimeout(() => this.socket.destroy(coded('UND_ERR_CONNECT_TIMEOUT', `connect timeout after ${o.connectTimeout}ms`)), o.connectTimeout);
      connectTimer.unref();
    }
    if (t === undefined || preamble === undefined) {
      this.#listen(socket, t === undefined ? 'connect' : 'secureConnect', connectTimer);
      return;
    }
    // An https:// target behind the PROXY header: TLS starts over the TCP connection once it is
    // open, after the header (queued first, so flushed first; node holds TLS records back behind
    // plaintext still being written). Wrapping only then also wraps the handle that actually
    // connected: happy eyeballs may try several before one does.
    const onError = (err: Error): void => this.#onClose(err);
    const onClose = (): void => {
      clearTimeout(connectTimer);
      this.#onClose(coded('UND_ERR_SOCKET', 'other side closed'));
    };
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.once('connect', () => {
      let secure: Socket;
      try {
        secure = this.#secure(socket);
      } catch (err) {
        socket.destroy(err as Error);
        return;
      }
      // From here the TLS socket reports everything: its wrapped socket's errors and close too.
      socket.off('error', onError);
      socket.off('close', onClose);
      socket.on('error', ignore);
      this.socket = secure;
      this.#listen(secure, 'secureConnect', connectTimer);
    });
  }

  /** A TLS client socket to the target: a new connection, or over `over` (connected). Throws for TLS material node:tls refuses. */
  #secure(over: Socket | undefined): Socket {
    const pool = this.pool;
    const o = pool.options;
    const t = o.tls!;
    const socket = tlsConnect({
      socket: over,
      host: o.host,
      port: o.port,
      // No SNI for an IP (RFC 6066 §3): the certificate is then checked against the IP itself.
      servername: t.servername,
      ca: t.ca,
      cert: t.cert,
      key: t.key,
      rejectUnauthorized: t.rejectUnauthorized,
      ALPNProtocols: ['http/1.1'],
      // Resumes the pool's last TLS session: a new connection skips the full handshake.
      session: pool.tlsSession,
    });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    socket.on('session', (session: Buffer) => {
      pool.tlsSession = session;
    });
    return socket;
  }

  /** Attaches the connection's handlers to its (final) socket; `ready` is when a request may go out. */
  #listen(socket: Socket, ready: 'connect' | 'secureConnect', connectTimer: NodeJS.Timeout | undefined): void {
    // The connect timeout covers the TLS handshake too.
    socket.once(ready, () => {
      clearTimeout(connectTimer);
      this.#state = IDLE;
      const req = this.#req;
      if (req !== undefined) this.#send(req);
    });
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => this.#onEnd());
    socket.on('error', (err) => this.#onClose(err));
    socket.on('close', () => {
      clearTimeout(connectTimer);
      this.#onClose(coded('UND_ERR_SOCKET', 'other side closed'));
    });
  }

  run(req: H1Request): void {
    req.conn = this;
    this.#req = req;
    if (this.#state === IDLE) this.#send(req);
  }

  #send(req: H1Request): void {
    this.#state = HEAD;
    this.#answered = false;
    this.#head = undefined;
    this.#chunked = undefined;
    const spec = req.spec;
    if (spec.responseTimeout > 0) this.#headTimer.arm(spec.responseTimeout);
    const h = spec.headers;
    // Written as latin1: Node decodes header bytes as latin1, so this sends them back byte for byte.
    let head = `${spec.method} ${spec.path} HTTP/1.1\r\n`;
    let length = -1;
    let hasHost = false;
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i];
      if (name.length === 14 && name.toLowerCase() === 'content-length') length = Number(h[i + 1]);
      else if (name.length === 4 && name.toLowerCase() === 'host') hasHost = true;
      head += `${name}: ${h[i + 1]}\r\n`;
    }
    const o = this.pool.options;
    if (!hasHost) head += `host: ${o.host.includes(':') ? `[${o.host}]` : o.host}:${o.port}\r\n`;
    const body = spec.body;
    const socket = this.socket;
    if (body === null) {
      if (length === -1 && EXPECTS_BODY.has(spec.method)) head += 'content-length: 0\r\n';
      socket.write(head + '\r\n', 'latin1');
    } else if (Buffer.isBuffer(body)) {
      if (length === -1) head += `content-length: ${body.length}\r\n`;
      else if (length !== body.length) return this.fail(req, coded('UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', 'request body length does not match Content-Length'));
      socket.cork();
      socket.write(head + '\r\n', 'latin1');
      socket.write(body);
      socket.uncork();
      req.handler.onBodySent(body.length);
    } else {
      if (length === -1) head += 'transfer-encoding: chunked\r\n';
      socket.write(head + '\r\n', 'latin1');
      this.#upload = new Upload(this, req, body, length);
      this.#upload.start();
    }
  }

  /** Body bytes went out: the response timeout counts from the last of them, as in undici. */
  uploaded(): void {
    if (this.#state === HEAD) this.#headTimer.refresh();
  }

  #headExpired(): void {
    const req = this.#req;
    if (this.#state !== HEAD || req === undefined) return;
    // A body still being sent (the client is slow, not the upstream) suspends the wait, unless
    // the upstream stopped reading it — undici's rule too.
    const upload = this.#upload;
    if (upload !== undefined && !upload.finished && !this.socket.writableNeedDrain) return;
    this.fail(req, coded('UND_ERR_HEADERS_TIMEOUT', 'Headers Timeout Error'));
  }

  #bodyExpired(): void {
    const req = this.#req;
    if (this.#state === BODY && req !== undefined && !req.paused) this.fail(req, coded('UND_ERR_BODY_TIMEOUT', 'Body Timeout Error'));
  }

  #onData(chunk: Buffer): void {
    this.#answered = true;
    const req = this.#req;
    if (req === undefined || this.#state === IDLE) {
      // Bytes nobody asked for: the connection cannot be trusted for another request.
      this.pool.forget(this);
      this.socket.destroy();
      return;
    }
    const pending = this.#pending;
    if (pending !== undefined) {
      this.#pending = undefined;
      chunk = Buffer.concat([pending, chunk]);
    }
    try {
      this.#parse(req, chunk, 0, pending === undefined ? 0 : pending.length);
    } catch (err) {
      this.fail(req, err as Error);
    }
  }

  /** The handler paused: no more reads until it resumes. */
  pauseReading(): void {
    this.socket.pause();
  }

  /** Continues after the handler resumed: first the bytes held back, then the socket. */
  resumeReading(): void {
    const req = this.#req;
    const held = this.#pending;
    if (req !== undefined && held !== undefined && this.#state === BODY) {
      this.#pending = undefined;
      try {
        this.#parse(req, held, 0, 0);
      } catch (err) {
        this.fail(req, err as Error);
        return;
      }
    }
    // The held bytes may have completed the response (the connection is then idle or gone, and
    // #complete resumed it) or paused the handler again.
    if (this.#req !== req || req === undefined || req.paused) return;
    if (this.#closedWhileHeld) {
      // Every held byte is read and the response is still open: the upstream's close ends it now.
      this.#closedWhileHeld = false;
      if (this.#state === BODY && this.#head?.framing === 'close') this.#complete(req, false, undefined);
      else this.#onClose(coded('UND_ERR_SOCKET', 'other side closed'));
      return;
    }
    this.socket.resume();
    // The body timer is not armed while paused; an upstream that stalls from here still times out.
    if (this.#state === BODY && req.spec.idleTimeout > 0) this.#bodyTimer.arm(req.spec.idleTimeout);
  }

  #parse(req: H1Request, buf: Buffer, pos: number, searchFrom: number): void {
    const handler = req.handler;
    while (this.#state === HEAD) {
      const end = buf.indexOf('\r\n\r\n', Math.max(pos, searchFrom - 3), 'latin1');
      if (end === -1) {
        // Up to three bytes of the blank line may already be here ("\r\n\r"): a head within the
        // limit is refused whatever the split of its bytes (found by the differential fuzz).
        if (buf.length - pos > maxHeaderSize + 3) throw badResponse('HPE_HEADER_OVERFLOW', 'upstream response headers too large');
        checkLineEnds(buf, pos, Math.max(pos, searchFrom - 1));
        this.#pending = buf.subarray(pos);
        return;
      }
      if (end - pos > maxHeaderSize) throw badResponse('HPE_HEADER_OVERFLOW', 'upstream response headers too large');
      const head = parseHead(buf.toString('latin1', pos, end), req.spec.method);
      pos = end + 4;
      searchFrom = 0;
      if (head.status < 200) {
        if (head.status === 101) throw badResponse('HPE_INVALID_STATUS', 'unexpected 101 Switching Protocols');
        // An interim response that ends the connection (Connection: close, or HTTP/1.0 without
        // keep-alive) leaves no way for the final one to arrive: llhttp refuses whatever follows.
        if (!head.keepAlive) throw badResponse('HPE_CLOSED_CONNECTION', 'an interim response closed the connection');
        handler.onInterim(head.status, head.raw);
        if (req.done || req.aborted) return;
        continue;
      }
      this.#head = head;
      this.#state = BODY;
      this.#remaining = head.length;
      if (head.framing === 'chunked') this.#chunked = new ChunkedDecoder(maxHeaderSize);
      handler.onHeaders(head.status, head.reason, head.raw);
      if (req.done || req.aborted) return;
    }
    const head = this.#head!;
    if (head.framing === 'none' || (head.framing === 'length' && this.#remaining === 0)) {
      this.#complete(req, buf.length > pos, undefined);
      return;
    }
    if (req.paused) {
      // Paused in onHeaders: the body bytes of this read wait for resume() (found by the fuzz).
      if (pos < buf.length) this.#pending = buf.subarray(pos);
      return;
    }
    if (pos < buf.length) {
      if (head.framing === 'length') {
        const n = Math.min(this.#remaining, buf.length - pos);
        this.#remaining -= n;
        const data = buf.subarray(pos, pos + n);
        pos += n;
        handler.onData(data, this.#remaining === 0);
        if (req.done || req.aborted) return;
        if (this.#remaining === 0) {
          this.#complete(req, buf.length > pos, undefined);
          return;
        }
      } else if (head.framing === 'chunked') {
        const decoder = this.#chunked!;
        pos = decoder.feed(buf, pos, (data) => {
          handler.onData(data, false);
          return !req.done && !req.aborted && !req.paused;
        });
        if (req.done || req.aborted) return;
        if (decoder.done) {
          this.#complete(req, buf.length > pos, decoder.trailers);
          return;
        }
      } else {
        handler.onData(buf.subarray(pos), false);
        pos = buf.length;
        if (req.done || req.aborted) return;
      }
    }
    // Paused with bytes left: hold them until resume.
    if (pos < buf.length) this.#pending = buf.subarray(pos);
    if (req.spec.idleTimeout > 0) this.#bodyTimer.arm(req.spec.idleTimeout);
  }

  #complete(req: H1Request, extraBytes: boolean, trailers: Record<string, string> | undefined): void {
    const head = this.#head!;
    // The upstream answered before the whole body was sent: the connection is not reusable.
    const closed = this.#closedWhileHeld;
    const uploading = this.#detach(req);
    let reusable = head.keepAlive && !extraBytes && !uploading && !closed;
    if (reusable) {
      const hint = head.keepAliveHint;
      // `timeout=0` or `timeout=1` leaves no time to reuse the connection safely.
      const keep = hint >= 0 ? Math.min(this.pool.options.keepAliveTimeout, hint - HINT_MARGIN_MS) : this.pool.options.keepAliveTimeout;
      reusable = keep > 0;
      this.expires = Date.now() + keep;
    }
    // Whoever paused the socket (a handler, possibly one that resumed while held bytes were being
    // replayed), an idle connection reads again: it must see the upstream's close or stray bytes,
    // and the next request must not start on a paused socket.
    if (this.socket.isPaused()) this.socket.resume();
    this.#served++;
    this.pool.released(this, reusable);
    req.handler.onEnd(trailers ?? NO_TRAILERS);
  }

  /**
   * Ends `req`'s time on this connection: its timers, its held bytes, its upload (detached, the
   * body stream left to its owner). Returns true when the body was still being sent.
   */
  #detach(req: H1Request): boolean {
    this.#state = IDLE;
    this.#req = undefined;
    this.#pending = undefined;
    this.#closedWhileHeld = false;
    this.#headTimer.clear();
    this.#bodyTimer.clear();
    req.done = true;
    req.conn = undefined;
    const upload = this.#upload;
    this.#upload = undefined;
    const uploading = upload !== undefined && !upload.finished;
    if (upload !== undefined) upload.stop();
    return uploading;
  }

  /**
   * A kept-alive connection the upstream closed just as a request went out on it (its idle
   * timeout raced the request): nothing of a response came back, so a request the caller marked
   * `replayable` (an idempotent method with a body that can be sent again, and a retry left) is
   * sent once more on a new connection; the handler hears of it through onReplay, so the send is
   * counted. Browsers do the same (RFC 9110 §9.2.2). Returns true when the request was handed over.
   */
  #staleRetry(req: H1Request, err: Error): boolean {
    if (!req.spec.replayable || this.#state !== HEAD || this.#answered || this.#served === 0 || req.replayed || req.done || req.aborted) return false;
    if (!RESET_CODES.has((err as { code?: string }).code ?? '')) return false;
    const body = req.spec.body;
    if (body !== null && !Buffer.isBuffer(body)) return false;
    req.replayed = true;
    this.#state = IDLE;
    this.#req = undefined;
    this.#headTimer.clear();
    this.#bodyTimer.clear();
    req.conn = undefined;
    this.socket.destroy();
    req.handler.onReplay();
    // Handed over before this connection is released, so a pool that is closing still counts it.
    this.pool.redispatch(req);
    this.pool.released(this, false);
    return true;
  }

  /** Ends the request with an error and closes the connection. */
  fail(req: H1Request, err: Error): void {
    if (this.#req !== req || req.done) return;
    this.#detach(req);
    this.socket.destroy();
    this.pool.released(this, false);
    // Never re-enter the handler from inside one of its own calls (abort in onHeaders).
    queueMicrotask(() => req.handler.onError(err));
  }

  #onEnd(): void {
    const req = this.#req;
    if (req !== undefined && this.#state === BODY && this.#pending !== undefined) {
      // Bytes held back by a pause come first; they may end the response (found by the fuzz,
      // seed 7: a chunked body whose end was held back failed as "other side closed").
      this.#closedWhileHeld = true;
      this.#bodyTimer.clear();
      return;
    }
    if (req !== undefined && this.#state === BODY && this.#head?.framing === 'close') {
      this.#complete(req, false, undefined);
      return;
    }
    this.#onClose(coded('UND_ERR_SOCKET', 'other side closed'));
  }

  #onClose(err: Error): void {
    this.#headTimer.clear();
    this.#bodyTimer.clear();
    const req = this.#req;
    // The socket's 'close' after an 'end' that waits for held bytes: resumeReading acts on it.
    if (req !== undefined && this.#closedWhileHeld && (err as { code?: string }).code === 'UND_ERR_SOCKET') return;
    if (req !== undefined && this.#staleRetry(req, err)) return;
    if (req !== undefined) {
      const length = this.#head?.framing === 'length' && this.#state === BODY;
      this.fail(req, length ? coded('UND_ERR_RES_CONTENT_LENGTH_MISMATCH', `upstream closed with ${this.#remaining} body bytes missing`) : err);
    } else {
      this.pool.forget(this);
      this.socket.destroy();
    }
  }
}

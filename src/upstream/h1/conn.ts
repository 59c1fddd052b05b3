// One TCP connection of waygate's HTTP/1.1 upstream client (h1-pool.ts): it writes a request's
// head (and body), parses the response (h1-parse.ts) and drives the request's handler, with the
// response and body-idle timeouts, backpressure and the rules for reusing the connection.
import { maxHeaderSize } from 'node:http';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { ChunkedDecoder, badResponse, parseHead } from './parse.ts';
import type { ResponseHead } from './parse.ts';
import type { H1PoolOptions } from './pool.ts';
import { IDEMPOTENT_METHODS } from '../methods.ts';
import { Upload, coded } from './request.ts';
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
// Handlers read the raw headers from the controller; the headers object they are also given is empty.
const NO_FIELDS: Record<string, string> = Object.freeze({}) as Record<string, string>;

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
  readonly socket: Socket;
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

  constructor(pool: ConnPool) {
    this.pool = pool;
    const o = pool.options;
    const t = o.tls;
    const socket = t === undefined
      ? connect({ host: o.host, port: o.port, noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000 })
      : tlsConnect({
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
    if (t !== undefined) {
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 60_000);
      socket.on('session', (session: Buffer) => {
        pool.tlsSession = session;
      });
    }
    this.socket = socket;
    let connectTimer: NodeJS.Timeout | undefined;
    if (o.connectTimeout > 0) {
      connectTimer = setTimeout(() => socket.destroy(coded('UND_ERR_CONNECT_TIMEOUT', `connect timeout after ${o.connectTimeout}ms`)), o.connectTimeout);
      connectTimer.unref();
    }
    // The connect timeout covers the TLS handshake too.
    socket.once(t === undefined ? 'connect' : 'secureConnect', () => {
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
    if (req.headersTimeout > 0) this.#headTimer.arm(req.headersTimeout);
    const h = req.headers;
    // Written as latin1: Node decodes header bytes as latin1, so this sends them back byte for byte.
    let head = `${req.method} ${req.path} HTTP/1.1\r\n`;
    let length = -1;
    let hasHost = false;
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i];
      if (name.length === 14 && name.toLowerCase() === 'content-length') length = Number(h[i + 1]);
      else if (name.length === 4 && name.toLowerCase() === 'host') hasHost = true;
      head += `${name}: ${h[i + 1]}\r\n`;
    }
    if (!hasHost) head += `host: ${this.pool.options.host.includes(':') ? `[${this.pool.options.host}]` : this.pool.options.host}:${this.pool.options.port}\r\n`;
    const body = req.body;
    const socket = this.socket;
    if (body === null || body === undefined) {
      if (length === -1 && EXPECTS_BODY.has(req.method)) head += 'content-length: 0\r\n';
      socket.write(head + '\r\n', 'latin1');
    } else if (Buffer.isBuffer(body)) {
      if (length === -1) head += `content-length: ${body.length}\r\n`;
      else if (length !== body.length) return this.fail(req, coded('UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', 'request body length does not match Content-Length'));
      socket.cork();
      socket.write(head + '\r\n', 'latin1');
      socket.write(body);
      socket.uncork();
      req.handler.onBodySent?.(body);
    } else {
      if (length === -1) head += 'transfer-encoding: chunked\r\n';
      socket.write(head + '\r\n', 'latin1');
      this.#upload = new Upload(this, req, body, length);
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
    if (this.#req !== req || req === undefined || req.paused) return;
    this.socket.resume();
    // The body timer is not armed while paused; an upstream that stalls from here still times out.
    if (this.#state === BODY && req.bodyTimeout > 0) this.#bodyTimer.arm(req.bodyTimeout);
  }

  #parse(req: H1Request, buf: Buffer, pos: number, searchFrom: number): void {
    while (this.#state === HEAD) {
      const end = buf.indexOf('\r\n\r\n', Math.max(pos, searchFrom - 3), 'latin1');
      if (end === -1) {
        if (buf.length - pos > maxHeaderSize) throw badResponse('HPE_HEADER_OVERFLOW', 'upstream response headers too large');
        this.#pending = buf.subarray(pos);
        return;
      }
      if (end - pos > maxHeaderSize) throw badResponse('HPE_HEADER_OVERFLOW', 'upstream response headers too large');
      const head = parseHead(buf.toString('latin1', pos, end), req.method);
      pos = end + 4;
      searchFrom = 0;
      req.rawHeaders = head.raw;
      if (head.status < 200) {
        if (head.status === 101) throw badResponse('HPE_INVALID_STATUS', 'unexpected 101 Switching Protocols');
        req.handler.onResponseStart?.(req, head.status, NO_FIELDS, head.reason);
        if (req.done || req.aborted) return;
        continue;
      }
      this.#head = head;
      this.#state = BODY;
      this.#remaining = head.length;
      if (head.framing === 'chunked') this.#chunked = new ChunkedDecoder(maxHeaderSize);
      req.handler.onResponseStart?.(req, head.status, NO_FIELDS, head.reason);
      if (req.done || req.aborted) return;
    }
    const head = this.#head!;
    if (head.framing === 'none' || (head.framing === 'length' && this.#remaining === 0)) {
      this.#complete(req, buf.length > pos, undefined);
      return;
    }
    if (pos < buf.length) {
      if (head.framing === 'length') {
        const n = Math.min(this.#remaining, buf.length - pos);
        this.#remaining -= n;
        const data = buf.subarray(pos, pos + n);
        pos += n;
        req.final = this.#remaining === 0;
        req.handler.onResponseData?.(req, data);
        if (req.done || req.aborted) return;
        if (this.#remaining === 0) {
          this.#complete(req, buf.length > pos, undefined);
          return;
        }
      } else if (head.framing === 'chunked') {
        const decoder = this.#chunked!;
        pos = decoder.feed(buf, pos, (data) => {
          req.handler.onResponseData?.(req, data);
          return !req.done && !req.aborted && !req.paused;
        });
        if (req.done || req.aborted) return;
        if (decoder.done) {
          this.#complete(req, buf.length > pos, decoder.trailers);
          return;
        }
      } else {
        req.handler.onResponseData?.(req, buf.subarray(pos));
        pos = buf.length;
        if (req.done || req.aborted) return;
      }
    }
    // Paused with bytes left: hold them until resume.
    if (pos < buf.length) this.#pending = buf.subarray(pos);
    if (req.bodyTimeout > 0) this.#bodyTimer.arm(req.bodyTimeout);
  }

  #complete(req: H1Request, extraBytes: boolean, trailers: Record<string, string> | undefined): void {
    const head = this.#head!;
    // The upstream answered before the whole body was sent: the connection is not reusable.
    const uploading = this.#detach(req, false);
    let reusable = head.keepAlive && !extraBytes && !uploading;
    if (reusable) {
      const hint = head.keepAliveHint;
      const keep = hint > 0 ? Math.min(this.pool.options.keepAliveTimeout, hint - HINT_MARGIN_MS) : this.pool.options.keepAliveTimeout;
      reusable = keep > 0;
      this.expires = Date.now() + keep;
    }
    if (req.paused) this.socket.resume();
    this.#served++;
    this.pool.released(this, reusable);
    req.handler.onResponseEnd?.(req, trailers ?? NO_FIELDS);
  }

  /**
   * Ends `req`'s time on this connection and stops its upload (destroying the body stream when
   * `failed` or unsent). Returns true when the body was still being sent.
   */
  #detach(req: H1Request, failed: boolean): boolean {
    this.#state = IDLE;
    this.#req = undefined;
    req.done = true;
    req.conn = undefined;
    const upload = this.#upload;
    this.#upload = undefined;
    const uploading = upload !== undefined && !upload.finished;
    if (upload !== undefined) upload.stop(failed || uploading);
    return uploading;
  }

  /**
   * A kept-alive connection the upstream closed just as a request went out on it (its idle
   * timeout raced the request): nothing of a response came back, so an idempotent request with
   * a body that can be sent again is sent once more on a new connection, unseen by the handler.
   * Browsers do the same (RFC 9110 §9.2.2); a POST is never replayed this way. Returns true when
   * the request was handed over.
   */
  #staleRetry(req: H1Request, err: Error): boolean {
    if (this.#state !== HEAD || this.#answered || this.#served === 0 || req.replayed || req.done || req.aborted) return false;
    if (!RESET_CODES.has((err as { code?: string }).code ?? '') || !IDEMPOTENT_METHODS.has(req.method)) return false;
    if (req.body !== null && req.body !== undefined && !Buffer.isBuffer(req.body)) return false;
    req.replayed = true;
    this.#state = IDLE;
    this.#req = undefined;
    req.conn = undefined;
    this.socket.destroy();
    // Handed over before this connection is released, so a pool that is closing still counts it.
    this.pool.redispatch(req);
    this.pool.released(this, false);
    return true;
  }

  /** Ends the request with an error and closes the connection. */
  fail(req: H1Request, err: Error): void {
    if (this.#req !== req || req.done) return;
    this.#detach(req, true);
    this.socket.destroy();
    this.pool.released(this, false);
    // Never re-enter the handler from inside one of its own calls (abort in onResponseStart).
    queueMicrotask(() => req.handler.onResponseError?.(req, err));
  }

  #onEnd(): void {
    const req = this.#req;
    if (req !== undefined && this.#state === BODY && this.#head?.framing === 'close') {
      // The close ends the body: bytes held back by a pause are passed on now, not dropped.
      const held = this.#pending;
      this.#pending = undefined;
      if (held !== undefined) req.handler.onResponseData?.(req, held);
      if (!req.done && !req.aborted) this.#complete(req, false, undefined);
      return;
    }
    this.#onClose(coded('UND_ERR_SOCKET', 'other side closed'));
  }

  #onClose(err: Error): void {
    this.#headTimer.clear();
    this.#bodyTimer.clear();
    const req = this.#req;
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

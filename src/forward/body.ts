// The request body's one owner (ARCHITECTURE rule 3), from the first byte to the end of the
// exchange. A body that fits in `limits.retryBuffer` is read whole first, so a retry can send it
// again; a larger one is streamed through a guard (the bytes already read first) and makes the
// request retryable only while no client has read from it. Every body is held to
// `limits.maxBodySize` (413) and to an idle timer (408): a slow upload is fine as long as bytes keep
// coming, a stalled one does not hold a connection and an upstream request open.
//
// Why an owner: an upload outlives the attempt that reads it. Its stream can fail (the client
// resets, stalls, sends too much) while no attempt reads it — during the upstream's connect or TLS
// handshake, between attempts, after the exchange was answered — and an 'error' nobody listens to
// ends the process. So every listener is attached here, when the body is first seen, and every
// exit path of the exchange calls dispose(), which detaches and destroys what no attempt took.
import type { IncomingMessage } from 'node:http';
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { GatewayError } from '../errors.ts';
import type { UpstreamBody } from '../upstream/client.ts';

/** Limits a body is held to. */
export interface BodyLimits {
  /** Bodies up to this size are read whole so a retry can resend them. */
  retryBuffer: number;
  /** Largest body accepted (limits.maxBodySize). */
  maxBodySize: number;
  /** Longest silence while the body is being received (ms). */
  idleTimeout: number;
}

/**
 * True when the request has a body: HTTP/1.1 declares one (RFC 9112 §6.3: a non-zero length, or
 * chunked); HTTP/2 has one unless its HEADERS frame ended the stream (RFC 9113 §8.1) — gRPC
 * requests carry no Content-Length at all.
 */
export function declaresBody(req: IncomingMessage): boolean {
  if (req.httpVersionMajor === 2) {
    const stream = (req as unknown as { stream?: { endAfterHeaders: boolean } }).stream;
    return stream !== undefined && !stream.endAfterHeaders;
  }
  const cl = req.headers['content-length'];
  if (cl !== undefined) return cl !== '0';
  return req.headers['transfer-encoding'] !== undefined;
}

const tooLarge = (limit: number): GatewayError => new GatewayError('body_too_large', `request body larger than limits.maxBodySize (${limit} bytes)`);
const stalled = (ms: number): GatewayError => new GatewayError('client_timeout', `no request body bytes for ${ms}ms`);
const aborted = (): GatewayError => new GatewayError('client_aborted', 'client closed the connection while sending the body');

/**
 * Passes body bytes through while counting them: errors with 413 the moment the count crosses the
 * limit (so the upstream request is aborted, never completed) and with 408 after `idleTimeout`
 * without a byte from the client.
 */
class BodyGuard extends Transform {
  readonly #limits: BodyLimits;
  #seen = 0;
  #timer: NodeJS.Timeout;

  constructor(limits: BodyLimits) {
    super();
    this.#limits = limits;
    this.#timer = setTimeout(() => this.#idle(), limits.idleTimeout);
    this.#timer.unref();
  }

  #idle(): void {
    // Bytes waiting inside the guard mean the upstream side is not reading (a slow connect, a
    // paused upload): the wait is ours, not the client's.
    if (this.writableLength > 0 || this.readableLength > 0) {
      this.#timer.refresh();
      return;
    }
    this.destroy(stalled(this.#limits.idleTimeout));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#seen += chunk.length;
    if (this.#seen > this.#limits.maxBodySize) return cb(tooLarge(this.#limits.maxBodySize));
    this.#timer.refresh();
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    clearTimeout(this.#timer);
    cb();
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    clearTimeout(this.#timer);
    cb(err);
  }
}

/** A request body and everything attached to it, owned for the life of one exchange. */
export class RequestBody {
  readonly #req: IncomingMessage;
  readonly #limits: BodyLimits;
  readonly #onFail: (err: GatewayError) => void;
  #data: Buffer | undefined;
  #guard: BodyGuard | undefined;
  #chunks: Buffer[] = [];
  #size = 0;
  #timer: NodeJS.Timeout | undefined;
  #ready: (() => void) | undefined;
  #failed = false;
  #ended = false;

  /**
   * Takes ownership of `req`'s body. `onFail` is called at most once, if the body fails (the
   * client aborts, stalls or sends more than allowed) before dispose().
   */
  constructor(req: IncomingMessage, limits: BodyLimits, onFail: (err: GatewayError) => void) {
    this.#req = req;
    this.#limits = limits;
    this.#onFail = onFail;
    req.on('error', this.#onReqError);
    req.on('aborted', this.#onAborted);
    req.on('close', this.#onClose);
  }

  /**
   * Reads what the retry rules need of the body, then calls `ready` — unless the body failed
   * first (onFail was called instead). A declared length over the limit fails at once (413),
   * with nothing read or forwarded.
   */
  prepare(ready: () => void): void {
    const cl = this.#req.headers['content-length'];
    if (cl !== undefined && Number(cl) > this.#limits.maxBodySize) return this.#fail(tooLarge(this.#limits.maxBodySize));
    // A declared length above the retry buffer: stream from the first byte, there is nothing to gain.
    if (cl !== undefined && Number(cl) > this.#limits.retryBuffer) {
      this.#stream();
      ready();
      return;
    }
    this.#ready = ready;
    this.#arm();
    this.#req.on('data', this.#onData);
    this.#req.on('end', this.#onEnd);
  }

  /** What a client sends: the whole body, or the guarded stream. */
  get payload(): UpstreamBody {
    return this.#data ?? this.#guard ?? null;
  }

  /** True when the body can be sent again on another attempt. */
  get replayable(): boolean {
    const g = this.#guard;
    // Untouched: no client read from the stream yet (e.g. the connect failed), so nothing was lost.
    return g === undefined || (!g.readableDidRead && !g.destroyed);
  }

  /** True when the body is known in full (read whole, or nothing was declared). */
  get buffered(): boolean {
    return this.#guard === undefined;
  }

  #arm(): void {
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.#fail(stalled(this.#limits.idleTimeout)), this.#limits.idleTimeout);
      this.#timer.unref();
    } else {
      this.#timer.refresh();
    }
  }

  #stopReading(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#req.off('data', this.#onData);
    this.#req.off('end', this.#onEnd);
  }

  #onData = (chunk: Buffer): void => {
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    if (this.#size > this.#limits.maxBodySize) return this.#fail(tooLarge(this.#limits.maxBodySize));
    this.#arm();
    if (this.#size > this.#limits.retryBuffer) {
      this.#stopReading();
      this.#req.pause();
      this.#stream();
      this.#settle();
    }
  };

  #onEnd = (): void => {
    this.#stopReading();
    const c = this.#chunks;
    this.#data = c.length === 1 ? c[0] : Buffer.concat(c, this.#size);
    this.#chunks = [];
    this.#settle();
  };

  /** Switches to streaming: the chunks read so far go first (counted again by the guard), then the rest. */
  #stream(): void {
    const guard = new BodyGuard(this.#limits);
    guard.on('error', this.#onGuardError);
    for (const c of this.#chunks) guard.write(c);
    this.#chunks = [];
    this.#guard = guard;
    this.#req.pipe(guard);
  }

  #settle(): void {
    const ready = this.#ready;
    this.#ready = undefined;
    ready?.();
  }

  #onGuardError = (err: Error): void => {
    // The guard's own failures (413, 408) are GatewayErrors. Any other error was put there by
    // the upstream request reading it (an HTTP/2 stream refused or reset, a connection lost),
    // which reports its own failure to the forwarder: the client did nothing, so this is not
    // client_aborted (that was taken for the client leaving, and its response was reset with
    // no status; found by the soak on h2 pools under load).
    if (err instanceof GatewayError) this.#fail(err);
  };

  #onReqError = (): void => {
    this.#fail(aborted());
  };

  #onAborted = (): void => {
    this.#fail(aborted());
  };

  #onClose = (): void => {
    if (!this.#req.complete) this.#fail(aborted());
  };

  #fail(err: GatewayError): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#ready = undefined;
    this.#stopReading();
    // The guard learns it too: a client reading it stops with this error.
    if (this.#guard !== undefined && !this.#guard.destroyed) this.#guard.destroy(err);
    this.#onFail(err);
  }

  /**
   * Ends ownership: detaches from the request, destroys the guard and its timer. Idempotent; the
   * exchange calls it on every exit path. The bytes the client may still send are left to the
   * connection: HTTP/1.1 closes it after the response (Forwarder), HTTP/2 drops them and resets
   * the stream (server/handler.ts, endUnreadUpload).
   */
  dispose(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#failed = true;
    this.#ready = undefined;
    this.#stopReading();
    const req = this.#req;
    req.off('aborted', this.#onAborted);
    req.off('close', this.#onClose);
    const guard = this.#guard;
    if (guard !== undefined) {
      req.unpipe(guard);
      if (!guard.destroyed) guard.destroy();
    }
    // Without listeners Node emits no 'error' on an IncomingMessage (it checks), so none is left.
    req.off('error', this.#onReqError);
  }
}

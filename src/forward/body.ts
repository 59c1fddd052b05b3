// Request bodies (SPEC §4, §5): a body that fits in `limits.retryBuffer` is read whole first, so a
// retry can send it again; a larger one is streamed (the bytes already read are sent first) and
// makes the request retryable only while undici has not touched the stream. Every body is held to
// `limits.maxBodySize` (413) and to an idle timer (408): a slow upload is fine as long as bytes
// keep coming, a stalled one does not hold a connection and an upstream request open.
import type { IncomingMessage } from 'node:http';
import { Transform } from 'node:stream';
import type { Readable, TransformCallback } from 'node:stream';
import { GatewayError } from '../errors.ts';

/** The request body as the forwarder sends it. */
export type RequestBody =
  | { readonly kind: 'none' }
  | { readonly kind: 'buffer'; readonly data: Buffer }
  | { readonly kind: 'stream'; readonly stream: Readable };

export const NO_BODY: RequestBody = { kind: 'none' };

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

/** True when `body` can be sent again on another attempt. */
export function replayable(body: RequestBody): boolean {
  if (body.kind !== 'stream') return true;
  // Untouched: undici never started reading it (e.g. the connect failed), so nothing was lost.
  return !body.stream.readableDidRead && !body.stream.destroyed;
}

const tooLarge = (limit: number): GatewayError => new GatewayError('body_too_large', `request body larger than limits.maxBodySize (${limit} bytes)`);
const stalled = (ms: number): GatewayError => new GatewayError('client_timeout', `no request body bytes for ${ms}ms`);

/**
 * Passes body bytes through while counting them: errors with 413 the moment the count crosses the
 * limit (so the upstream request is aborted, never completed) and with 408 after `idleTimeout`
 * without a byte.
 */
class BodyGuard extends Transform {
  readonly #limits: BodyLimits;
  #seen: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(limits: BodyLimits) {
    super();
    this.#limits = limits;
    this.#seen = 0;
    this.#arm();
  }

  #arm(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.destroy(stalled(this.#limits.idleTimeout)), this.#limits.idleTimeout);
    this.#timer.unref();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#seen += chunk.length;
    if (this.#seen > this.#limits.maxBodySize) return cb(tooLarge(this.#limits.maxBodySize));
    this.#arm();
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

/** Streams `req` through a guard, after the `prefix` chunks already read from it (counted again there). */
function guarded(req: IncomingMessage, prefix: Buffer[], limits: BodyLimits): Readable {
  const guard = new BodyGuard(limits);
  for (const c of prefix) guard.write(c);
  req.pipe(guard);
  req.once('error', (err) => guard.destroy(err));
  req.once('aborted', () => guard.destroy(new GatewayError('client_aborted', 'client closed the connection while sending the body')));
  return guard;
}

/**
 * Reads up to `retryBuffer` bytes of the body. Resolves with the whole body when it fits, or with
 * a guarded stream of everything (the bytes read so far, then the rest) when it does not. Rejects
 * with 413 for a declared length over the limit (nothing is read or forwarded), with 408 when the
 * body stalls while it is read, and with an error when the client goes away.
 */
export function prepareBody(req: IncomingMessage, limits: BodyLimits): Promise<RequestBody> {
  if (!declaresBody(req)) return Promise.resolve(NO_BODY);
  const cl = req.headers['content-length'];
  if (cl !== undefined && Number(cl) > limits.maxBodySize) return Promise.reject(tooLarge(limits.maxBodySize));
  // A declared length above the retry buffer: stream from the first byte, there is nothing to gain.
  if (cl !== undefined && Number(cl) > limits.retryBuffer) return Promise.resolve({ kind: 'stream', stream: guarded(req, [], limits) });
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => fail(stalled(limits.idleTimeout)), limits.idleTimeout);
      timer.unref();
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const fail = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > limits.maxBodySize) return fail(tooLarge(limits.maxBodySize));
      arm();
      if (size > limits.retryBuffer) {
        cleanup();
        req.pause();
        resolve({ kind: 'stream', stream: guarded(req, chunks, limits) });
      }
    };
    const onEnd = (): void => {
      cleanup();
      resolve({ kind: 'buffer', data: chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size) });
    };
    const onError = (err: Error): void => fail(err);
    const onClose = (): void => {
      if (!req.complete) fail(new GatewayError('client_aborted', 'client closed the connection while sending the body'));
    };
    arm();
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

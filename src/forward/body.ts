// Request bodies and retries (SPEC §4): a body that fits in `limits.retryBuffer` is read whole
// first, so a retry can send it again; a larger one is streamed (the bytes already read are sent
// first) and makes the request retryable only while undici has not touched the stream.
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import type { Readable } from 'node:stream';

/** The request body as the forwarder sends it. */
export type RequestBody =
  | { readonly kind: 'none' }
  | { readonly kind: 'buffer'; readonly data: Buffer }
  | { readonly kind: 'stream'; readonly stream: Readable };

export const NO_BODY: RequestBody = { kind: 'none' };

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

/**
 * Reads up to `limit` bytes of the body. Resolves with the whole body when it fits, or with a
 * stream of everything (the bytes read so far, then the rest) when it does not. Rejects when the
 * client goes away while it is read.
 */
export function prepareBody(req: IncomingMessage, limit: number): Promise<RequestBody> {
  if (!declaresBody(req)) return Promise.resolve(NO_BODY);
  const cl = req.headers['content-length'];
  // A declared length above the limit: stream from the first byte, there is nothing to gain.
  if (cl !== undefined && Number(cl) > limit) return Promise.resolve({ kind: 'stream', stream: req });
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        const stream = new PassThrough();
        for (const c of chunks) stream.write(c);
        req.pipe(stream);
        req.once('error', (err) => stream.destroy(err));
        resolve({ kind: 'stream', stream });
      }
    };
    const onEnd = (): void => {
      cleanup();
      resolve({ kind: 'buffer', data: chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size) });
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const onClose = (): void => {
      if (!req.complete) onError(new Error('client closed the connection while sending the body'));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

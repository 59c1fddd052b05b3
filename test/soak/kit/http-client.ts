// Well-behaved requests to the gateway over HTTP/1.1, HTTP/1.1 on TLS and HTTP/2, reading the
// whole answer and checking pattern bodies on the way. Uploads are pattern bytes too, streamed
// in pieces (declared with Content-Length, or chunked).
import { request as httpRequest } from 'node:http';
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { connect as h2connect } from 'node:http2';
import type { ClientHttp2Session, ClientHttp2Stream } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import type { ClientContext } from '../types.ts';
import { PatternCheck, patternBody } from './pattern.ts';

/** How the client reaches the gateway: HTTP/1.1 on the HTTP listener, on the HTTPS one, or HTTP/2. */
export type Proto = 'h1' | 'h1s' | 'h2';
/** Every protocol a client behaviour may pick. */
export const PROTOS: readonly Proto[] = ['h1', 'h1s', 'h2'];

/** An upload: `size` pattern bytes in `pieces` writes, with Content-Length when `declared`. */
export interface Upload {
  size: number;
  declared: boolean;
  pieces: number;
}

/** One request. */
export interface RequestSpec {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: Upload;
}

/** A whole answer. */
export interface Got {
  status: number;
  headers: IncomingHttpHeaders;
  bytes: number;
  /** The body as text when it is small (≤ 64 KiB), else ''. */
  text: string;
  /** Offset of the first byte off the pattern, -1 if none (meaningful for pattern bodies). */
  patternBad: number;
  ms: number;
}

const KEEP_TEXT = 64 * 1024;

/** Collects a body and checks it against the pattern. */
class BodyReader {
  readonly check = new PatternCheck();
  readonly #chunks: Buffer[] = [];
  add(c: Buffer): void {
    this.check.feed(c);
    if (this.check.bytes <= KEEP_TEXT) this.#chunks.push(c);
  }
  text(): string {
    return this.check.bytes <= KEEP_TEXT ? Buffer.concat(this.#chunks).toString() : '';
  }
}

/** Writes an upload's pieces with backpressure, then ends the request. */
async function writeUpload(w: { write(b: Buffer): boolean; once(e: 'drain', f: () => void): unknown; end(): unknown; destroyed: boolean }, up: Upload): Promise<void> {
  const body = patternBody(up.size);
  const step = Math.max(1, Math.ceil(up.size / Math.max(1, up.pieces)));
  for (let off = 0; off < up.size; off += step) {
    if (w.destroyed) return;
    if (!w.write(body.subarray(off, Math.min(up.size, off + step)))) await new Promise<void>((r) => w.once('drain', r));
    // A turn of the event loop between pieces, so they leave as separate writes.
    await new Promise<void>((r) => setImmediate(r));
  }
  if (!w.destroyed) w.end();
}

/** Headers an upload adds. */
function uploadHeaders(up: Upload | undefined, h2: boolean): Record<string, string> {
  if (up === undefined) return {};
  if (up.declared) return { 'content-length': String(up.size) };
  return h2 ? {} : { 'transfer-encoding': 'chunked' };
}

/** An error with the request that failed, and whether it went out on a reused connection. */
export class RequestError extends Error {
  readonly code: string;
  readonly reused: boolean;
  constructor(code: string, reused: boolean) {
    super(`request failed: ${code}${reused ? ' (reused connection)' : ''}`);
    this.code = code;
    this.reused = reused;
  }
}

/** The code of an error, for counting ("ECONNRESET", "ERR_HTTP2_STREAM_ERROR"…). */
export function codeOf(err: unknown): string {
  if (err instanceof RequestError) return err.code;
  const e = err as NodeJS.ErrnoException;
  return e?.code ?? e?.message ?? String(err);
}

function h1Once(ctx: ClientContext, tls: boolean, spec: RequestSpec, fresh: boolean): Promise<Got> {
  const started = Date.now();
  return new Promise<Got>((resolve, reject) => {
    const opts = {
      host: ctx.gateway.host,
      port: tls ? ctx.gateway.https : ctx.gateway.http,
      method: spec.method,
      path: spec.path,
      headers: { host: 'soak.test', ...uploadHeaders(spec.body, false), ...spec.headers },
      agent: fresh ? false : tls ? ctx.agents.https : ctx.agents.http,
      rejectUnauthorized: false,
      servername: 'localhost',
    };
    const req: ClientRequest = tls ? httpsRequest(opts) : httpRequest(opts);
    ctx.own(req);
    let answered = false;
    req.on('error', (err) => {
      if (!answered) reject(new RequestError(codeOf(err), req.reusedSocket));
    });
    req.on('response', (res: IncomingMessage) => {
      answered = true;
      const body = new BodyReader();
      res.on('data', (c: Buffer) => body.add(c));
      res.on('error', (err) => reject(new RequestError(codeOf(err), req.reusedSocket)));
      res.on('aborted', () => reject(new RequestError('aborted mid-body', req.reusedSocket)));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, bytes: body.check.bytes, text: body.text(), patternBad: body.check.firstBad, ms: Date.now() - started }));
      res.on('close', () => {
        if (!res.complete) reject(new RequestError('closed mid-body', req.reusedSocket));
      });
    });
    if (spec.body === undefined) req.end();
    else void writeUpload(req, spec.body);
  });
}

/**
 * Sends one HTTP/1.1 request (on the shared keep-alive agent unless `fresh`) and reads the whole
 * answer. A request that fails before any answer on a reused connection is sent once more on a
 * new one: the gateway may close an idle connection just as it is reused (RFC 9112 §9.3.1 lets a
 * client retry then), which is a race of the client's, not a fault of the gateway's.
 */
export async function h1(ctx: ClientContext, tls: boolean, spec: RequestSpec, fresh = false): Promise<Got> {
  try {
    return await h1Once(ctx, tls, spec, fresh);
  } catch (err) {
    if (err instanceof RequestError && err.reused && !ctx.signal.aborted) return h1Once(ctx, tls, spec, true);
    throw err;
  }
}

/** Opens an HTTP/2 session to the HTTPS listener, owned by the task. */
export function h2Session(ctx: ClientContext): ClientHttp2Session {
  const session = h2connect(`https://${ctx.gateway.host}:${ctx.gateway.https}`, { rejectUnauthorized: false, servername: 'localhost' });
  session.on('error', () => {});
  return ctx.own(session);
}

/** Sends one request on an HTTP/2 session and reads the whole answer. */
export function h2(ctx: ClientContext, session: ClientHttp2Session, spec: RequestSpec): Promise<Got> {
  const started = Date.now();
  return new Promise<Got>((resolve, reject) => {
    let stream: ClientHttp2Stream;
    try {
      stream = session.request({ ':method': spec.method, ':path': spec.path, ':authority': 'soak.test', ...uploadHeaders(spec.body, true), ...spec.headers }, { endStream: spec.body === undefined });
    } catch (err) {
      return reject(new RequestError(codeOf(err), false));
    }
    ctx.own(stream);
    let status = 0;
    let headers: IncomingHttpHeaders = {};
    const body = new BodyReader();
    stream.on('response', (h) => {
      status = Number(h[':status']);
      headers = h as IncomingHttpHeaders;
    });
    stream.on('data', (c: Buffer) => body.add(c));
    stream.on('error', (err) => reject(new RequestError(codeOf(err), false)));
    stream.on('end', () => resolve({ status, headers, bytes: body.check.bytes, text: body.text(), patternBad: body.check.firstBad, ms: Date.now() - started }));
    stream.on('close', () => {
      if (status === 0 || stream.rstCode !== 0) reject(new RequestError(`stream closed (rst ${stream.rstCode}, status ${status})`, false));
    });
    if (spec.body !== undefined) void writeUpload(stream, spec.body);
  });
}

/** Sends `spec` over `proto`: HTTP/2 on a session of its own. */
export async function send(ctx: ClientContext, proto: Proto, spec: RequestSpec): Promise<Got> {
  if (proto === 'h2') {
    const session = h2Session(ctx);
    try {
      return await h2(ctx, session, spec);
    } finally {
      session.close();
    }
  }
  return h1(ctx, proto === 'h1s', spec);
}

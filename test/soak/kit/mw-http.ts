// Requests for the middleware clients (SPEC §8): like kit/http-client.ts, over HTTP/1.1, HTTPS or
// HTTP/2, but with the answer's raw bytes (a compressed body is decoded by its client), any
// header fields the client chooses (repeated ones, odd case), a body of given bytes, and an
// optional cut: the client goes away after the head or after some body bytes.
import { request as httpRequest } from 'node:http';
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { ClientHttp2Session } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { codeOf, h2Session, RequestError } from './http-client.ts';
import type { Proto } from './http-client.ts';
import type { ClientContext } from '../types.ts';

/** The largest body kept whole (larger ones are an error: no middleware route serves more). */
const MAX_KEPT = 8 * 1024 * 1024;

/** One request. `headers` values may be lists (repeated fields); names keep their case on HTTP/1.1. */
export interface MwRequest {
  method: string;
  path: string;
  headers?: OutgoingHttpHeaders;
  body?: Buffer;
  /** Go away once this many body bytes arrived (0: right after the head), with a reset or a close. */
  cut?: { after: number; how: 'rst' | 'close' };
}

/** A whole (or cut) answer. */
export interface MwGot {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** True when the client cut it (MwRequest.cut). */
  cut: boolean;
  ms: number;
}

/** A field of an answer as one string ('' when absent; repeated ones joined). */
export function field(got: MwGot, name: string): string {
  const v = got.headers[name];
  return v === undefined ? '' : Array.isArray(v) ? v.join(', ') : String(v);
}

class Collector {
  readonly #chunks: Buffer[] = [];
  bytes = 0;
  add(c: Buffer): boolean {
    this.bytes += c.length;
    if (this.bytes <= MAX_KEPT) this.#chunks.push(c);
    return this.bytes <= MAX_KEPT;
  }
  body(): Buffer {
    return Buffer.concat(this.#chunks);
  }
}

function h1Once(ctx: ClientContext, tls: boolean, spec: MwRequest, fresh: boolean): Promise<MwGot> {
  const started = Date.now();
  return new Promise<MwGot>((resolve, reject) => {
    const headers: OutgoingHttpHeaders = { host: 'soak.test', ...(spec.body === undefined ? {} : { 'content-length': spec.body.length }), ...spec.headers };
    const opts = { host: ctx.gateway.host, port: tls ? ctx.gateway.https : ctx.gateway.http, method: spec.method, path: spec.path, headers, agent: fresh ? false : tls ? ctx.agents.https : ctx.agents.http, rejectUnauthorized: false, servername: 'localhost' };
    const req: ClientRequest = tls ? httpsRequest(opts) : httpRequest(opts);
    ctx.own(req);
    let answered = false;
    req.on('error', (err) => {
      if (!answered) reject(new RequestError(codeOf(err), req.reusedSocket));
    });
    req.on('response', (res: IncomingMessage) => {
      answered = true;
      const body = new Collector();
      let cut = false;
      const done = (): void => resolve({ status: res.statusCode!, headers: res.headers, body: body.body(), cut, ms: Date.now() - started });
      const cutNow = (): void => {
        cut = true;
        // A TLS socket cannot be reset from here (its handle is the TLS wrap's): it is closed.
        if (spec.cut!.how === 'rst' && !tls && req.socket !== null && !req.socket.destroyed) req.socket.resetAndDestroy();
        else req.destroy();
        done();
      };
      res.on('data', (c: Buffer) => {
        if (cut) return;
        if (!body.add(c)) return reject(new RequestError('answer over the kept size', req.reusedSocket));
        if (spec.cut !== undefined && body.bytes >= spec.cut.after) cutNow();
      });
      res.on('error', (err) => cut || reject(new RequestError(codeOf(err), req.reusedSocket)));
      res.on('end', () => cut || done());
      res.on('close', () => {
        if (!cut && !res.complete) reject(new RequestError('closed mid-body', req.reusedSocket));
      });
      if (spec.cut?.after === 0) cutNow();
    });
    req.end(spec.body);
  });
}

/**
 * One HTTP/1.1 request (the shared keep-alive agent unless `fresh`); a request that fails before
 * any answer on a reused connection is sent again on a new one (the client's own race with an
 * idle close, as kit/http-client.ts explains).
 */
export async function mwH1(ctx: ClientContext, tls: boolean, spec: MwRequest, fresh = false): Promise<MwGot> {
  try {
    return await h1Once(ctx, tls, spec, fresh);
  } catch (err) {
    if (err instanceof RequestError && err.reused && !ctx.signal.aborted) return h1Once(ctx, tls, spec, true);
    throw err;
  }
}

/** One request on an HTTP/2 session. */
export function mwH2(ctx: ClientContext, session: ClientHttp2Session, spec: MwRequest): Promise<MwGot> {
  const started = Date.now();
  return new Promise<MwGot>((resolve, reject) => {
    // HTTP/2 field names are lower case (RFC 9113 §8.2.1): fields that differ only in case merge.
    const fields: OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(spec.headers ?? {})) {
      const name = k.toLowerCase();
      const prev = fields[name];
      fields[name] = prev === undefined ? v : [...[prev].flat(), ...[v].flat()].map(String);
    }
    let stream;
    try {
      stream = session.request({ ':method': spec.method, ':path': spec.path, ':authority': 'soak.test', ...(spec.body === undefined ? {} : { 'content-length': spec.body.length }), ...fields }, { endStream: spec.body === undefined });
    } catch (err) {
      return reject(new RequestError(codeOf(err), false));
    }
    ctx.own(stream);
    let status = 0;
    let headers: IncomingHttpHeaders = {};
    let cut = false;
    const body = new Collector();
    const done = (): void => resolve({ status, headers, body: body.body(), cut, ms: Date.now() - started });
    const cutNow = (): void => {
      cut = true;
      stream.close(spec.cut!.how === 'rst' ? 8 : 0);
      done();
    };
    stream.on('response', (h) => {
      status = Number(h[':status']);
      headers = h as IncomingHttpHeaders;
      if (spec.cut?.after === 0) cutNow();
    });
    stream.on('data', (c: Buffer) => {
      if (cut) return;
      if (!body.add(c)) return reject(new RequestError('answer over the kept size', false));
      if (spec.cut !== undefined && body.bytes >= spec.cut.after) cutNow();
    });
    stream.on('error', (err) => cut || reject(new RequestError(codeOf(err), false)));
    stream.on('end', () => cut || done());
    stream.on('close', () => {
      if (!cut && (status === 0 || stream.rstCode !== 0)) reject(new RequestError(`stream closed (rst ${stream.rstCode}, status ${status})`, false));
    });
    if (spec.body !== undefined) stream.end(spec.body);
  });
}

/** Sends `spec` over `proto`; HTTP/2 on `session` when given, else on a session of its own. */
export async function mwSend(ctx: ClientContext, proto: Proto, spec: MwRequest, session?: ClientHttp2Session): Promise<MwGot> {
  if (proto !== 'h2') return mwH1(ctx, proto === 'h1s', spec);
  if (session !== undefined) return mwH2(ctx, session, spec);
  const own = h2Session(ctx);
  try {
    return await mwH2(ctx, own, spec);
  } finally {
    own.close();
  }
}

/** `spec` over `proto`, `n` at once with no answer awaited before the next is sent (fresh connections on HTTP/1.1, one session on HTTP/2). */
export async function burst(ctx: ClientContext, proto: Proto, specs: readonly MwRequest[]): Promise<(MwGot | Error)[]> {
  const session = proto === 'h2' ? h2Session(ctx) : undefined;
  try {
    return await Promise.all(specs.map((s) => (session === undefined ? mwH1(ctx, proto === 'h1s', s, true) : mwH2(ctx, session, s)).catch((err: Error) => err)));
  } finally {
    session?.close();
  }
}

/** A short description of an answer for a failure's detail. */
export function describeGot(got: MwGot): string {
  const keep = ['content-type', 'content-encoding', 'www-authenticate', 'location', 'retry-after', 'vary', 'access-control-allow-origin', 'ratelimit', 'ratelimit-policy'];
  const hs = keep.filter((k) => got.headers[k] !== undefined).map((k) => `${k}: ${field(got, k)}`).join('; ');
  const text = got.body.length <= 200 ? JSON.stringify(got.body.toString('latin1')) : `${got.body.length} bytes`;
  return `${got.status} [${hs}] ${text}`;
}

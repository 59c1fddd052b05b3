// undici adapted to waygate's UpstreamClient (client.ts): the client of `h2: true` pools (HTTP/2
// over ALPN, or h2c) and of `client: undici` pools (the fallback for the builtin HTTP/1.1 client).
// Only undici's public exports are used. Its index also loads fetch, web streams, the cache and
// WebSocket (about 5 MB), so it is loaded the first time a pool needs it (loadUndici), not at start.
import { subscribe } from 'node:diagnostics_channel';
import { createRequire } from 'node:module';
import type * as UndiciModule from 'undici';
import type { Dispatcher } from 'undici';
import { coded } from './client.ts';
import { isChunkedOnly } from './h1/parse.ts';
import type { UpstreamClient, UpstreamController, UpstreamHandler, UpstreamRequest } from './client.ts';

const require = createRequire(import.meta.url);
let undici: typeof UndiciModule | undefined;

/** Loads undici on first use (a synchronous require of its CommonJS index); later calls are free. */
export function loadUndici(): typeof UndiciModule {
  if (undici === undefined) {
    undici = require('undici') as typeof UndiciModule;
    subscribe('http2.client.stream.created', sinkStreamErrors);
  }
  return undici;
}

function ignore(): void {}

/** The HTTP/2 stream each streamed request body was piped into (see Bridge#refusal). */
const streamOfBody = new WeakMap<object, H2Stream>();

/** RST_STREAM codes of a refused stream, named as node:http2 names them in its stream errors. */
const REFUSAL_CODES: Readonly<Record<number, string>> = { 7: 'NGHTTP2_REFUSED_STREAM', 11: 'NGHTTP2_ENHANCE_YOUR_CALM' };

/** The part of a node:http2 client stream the hook below touches. */
interface H2Stream {
  readonly destroyed: boolean;
  /** The RST_STREAM code the stream closed with (set before its 'close'). */
  readonly rstCode: number | undefined;
  on(event: 'error', fn: () => void): void;
  once(event: 'pipe', fn: (src: object) => void): void;
  resume(): void;
  close(code?: number, callback?: () => void): unknown;
  destroy(err?: Error): unknown;
}

/**
 * Two defects meet on undici's HTTP/2 abort, which detaches its listeners from the stream, calls
 * close() (RST_STREAM) and then, in the same synchronous run, destroy():
 * - Node 24 spins forever in native code (Http2Session::SendPendingData, memory growing by GBs a
 *   second) when a client stream with response data still arriving is close()d and destroy()ed
 *   in one go; close() alone, or destroy() alone, is fine. A proxy aborts exactly such streams
 *   whenever a client leaves mid-response.
 * - The stream may still emit 'error' afterwards, and an 'error' nobody listens to ends the
 *   process (undici keeps a no-op sink on the streams it abandons on GOAWAY, undici#5936, not here).
 * So each HTTP/2 client stream gets, when Node creates it (its diagnostics channel), an error sink,
 * and a destroy() called in the same synchronous run as close() is turned into reading the rest:
 * Node then finishes the close and destroys the stream itself, which is what undici asked for.
 * Every other destroy() (Node's own, once the close is done) goes through untouched.
 */
function sinkStreamErrors(message: unknown): void {
  const stream = (message as { stream: H2Stream }).stream;
  stream.on('error', ignore);
  // undici pipes a streamed request body into its stream (Readable#pipe announces the source).
  stream.once('pipe', (src) => streamOfBody.set(src, stream));
  let closing = false;
  const close = stream.close;
  const destroy = stream.destroy;
  stream.close = function closeMarked(this: H2Stream, code?: number, callback?: () => void): unknown {
    closing = true;
    queueMicrotask(() => {
      closing = false;
    });
    return close.call(this, code, callback);
  };
  stream.destroy = function destroyAfterClose(this: H2Stream, err?: Error): unknown {
    if (closing && !this.destroyed) {
      this.resume();
      return this;
    }
    return destroy.call(this, err);
  };
}

/** HTTP/2 streams a pool resets before new requests move to a fresh one (far below Node's burst budget of 1000). */
const H2_RESETS_PER_POOL = 64;

/** How node:http2 names the stream errors of a refused stream (see Bridge#onResponseError). */
const REFUSED = /NGHTTP2_(REFUSED_STREAM|ENHANCE_YOUR_CALM)/;

/**
 * Concurrent streams undici opens on one upstream HTTP/2 session before it opens another. A
 * stream whose client reads slowly leaves its response waiting in the upstream's session, and a
 * Node server refuses every new stream on a session holding more than its maxSessionMemory
 * (10 MB by default). At 16, uploads between stalled 1 MiB responses were refused (found by the
 * soak; a streamed body, once read, cannot be sent again); at 8, none were
 * (test/upstream/undici-h2.test.ts). More sessions cost a TCP connection each.
 */
const H2_STREAMS_PER_SESSION = 8;

/** How an undici pool reaches its target. */
export interface UndiciClientOptions {
  /** scheme://host:port */
  origin: string;
  connectTimeout: number;
  keepAliveTimeout: number;
  /** Speak HTTP/2: ALPN h2 for https://, prior knowledge (h2c) for http://. */
  h2: boolean;
  /** For https:// targets (file contents, not paths). */
  tls?: { ca?: string; cert?: string; key?: string; rejectUnauthorized: boolean };
  /** SNI, and the name the certificate must carry; undefined for an IP target (checked against the IP). */
  servername: string | undefined;
}

/** A connection pool to one target, on undici. */
export class UndiciClient implements UpstreamClient {
  #pool: Dispatcher;
  /** Makes a fresh undici pool to the target (see #reset). */
  readonly #makePool: () => Dispatcher;
  readonly #h2: boolean;
  readonly #servername: string | undefined;
  readonly #connectTimeout: number;
  /** Requests not yet ended for their handlers. */
  #live = 0;
  /** Set by close(): called when the last live request ends. */
  #idle: (() => void) | undefined;
  /** HTTP/2 streams this pool reset (aborted after they started). */
  #resets = 0;
  /** Counts rotations (see #rotate): which pool a request went to. */
  #generation = 0;

  constructor(o: UndiciClientOptions) {
    const { Pool, buildConnector } = loadUndici();
    const tls = o.tls;
    const connector = buildConnector({
      timeout: o.connectTimeout,
      ...(tls === undefined ? {} : { ca: tls.ca, rejectUnauthorized: tls.rejectUnauthorized, cert: tls.cert, key: tls.key }),
      allowH2: o.h2,
      // An h2 pool offers h2 first; h2c is HTTP/2 with prior knowledge over plain TCP.
      ...(o.h2 ? (tls !== undefined ? { preferH2: true } : { useH2c: true }) : {}),
    } as UndiciModule.buildConnector.BuildOptions);
    const sni = o.servername;
    this.#h2 = o.h2;
    this.#servername = sni;
    this.#connectTimeout = o.connectTimeout;
    this.#makePool = () => new Pool(o.origin, {
      // The certificate is checked against the configured name, never the client's Host header
      // (which undici would otherwise derive SNI from).
      connect: (opts, cb) => connector({ ...opts, servername: sni } as UndiciModule.buildConnector.Options, cb),
      keepAliveTimeout: o.keepAliveTimeout,
      // Timeouts are set per request; these are only the defaults.
      headersTimeout: 0,
      bodyTimeout: 0,
      allowH2: o.h2,
      // Streams waiting on slow clients hold their data in the upstream's session (a Node server
      // refuses new streams with ENHANCE_YOUR_CALM past 10 MB, and all of a session's streams
      // share one flow-control window): more sessions with fewer streams each spread that load.
      ...(o.h2 ? { h2Options: { maxConcurrentStreams: H2_STREAMS_PER_SESSION } } : {}),
    });
    this.#pool = this.#makePool();
  }

  /**
   * A started HTTP/2 request was aborted (its stream reset, RST_STREAM). Servers protect
   * themselves from rapid-reset floods (CVE-2023-44487) by counting resets per session and
   * ending it with ENHANCE_YOUR_CALM past a budget (Node: a burst of 1000, then 33 a second):
   * clients leaving mid-response made every request on the session fail and got a healthy target
   * ejected. Every H2_RESETS_PER_POOL resets, new requests go to a new pool (new sessions, a new
   * budget) while the old one finishes what it carries and closes. A Node server also refuses new
   * streams past its session's memory (10 MB of responses it holds for streams a slow or gone
   * client left unread): that refusal rotates the pool at once (see Bridge#onResponseError).
   */
  #reset = (): void => {
    if (this.#h2 && ++this.#resets >= H2_RESETS_PER_POOL) this.#rotate();
  };

  /** New requests go to a fresh undici pool (new sessions); the old one finishes what it carries and closes. */
  #rotate(): void {
    this.#resets = 0;
    this.#generation++;
    const old = this.#pool;
    this.#pool = this.#makePool();
    void old.close().catch(() => {});
  }

  request(spec: UpstreamRequest, handler: UpstreamHandler): void {
    this.#live++;
    const bridge = new Bridge(handler, {
      ended: this.#ended,
      reset: this.#reset,
      body: spec.body,
      // A refusal sends new requests to a fresh pool; refusals of several requests on one pool rotate it once.
      refused: () => {
        if (bridge.generation === this.#generation) this.#rotate();
      },
      // A refused stream goes once more to the fresh pool when the caller allows a replay and the
      // body is whole (a streamed one was read by the refused attempt).
      replay: spec.replayable && (spec.body === null || Buffer.isBuffer(spec.body)) ? () => this.#dispatch(spec, bridge) : undefined,
    });
    handler.onStart(bridge);
    if (bridge.aborted) return;
    this.#dispatch(spec, bridge);
  }

  #dispatch(spec: UpstreamRequest, bridge: Bridge): void {
    bridge.generation = this.#generation;
    bridge.awaitConnection(this.#connectTimeout);
    try {
      this.#pool.dispatch(
        {
          path: spec.path,
          method: spec.method as Dispatcher.HttpMethod,
          headers: spec.headers as string[],
          body: spec.body,
          headersTimeout: spec.responseTimeout,
          bodyTimeout: spec.idleTimeout,
          // Retries and replays are waygate's decision (SPEC §4): undici never sends a request twice.
          idempotent: false,
          // Accepted by undici's Request though missing from its DispatchOptions type; it must be
          // constant per pool, or undici re-keys its connections.
          servername: this.#servername,
        } as Dispatcher.DispatchOptions,
        bridge,
      );
    } catch (err) {
      bridge.fail(err as Error);
    }
  }

  #ended = (): void => {
    if (--this.#live === 0) this.#idle?.();
  };

  /**
   * Lets the requests in flight end, then closes. undici's own close() also waits for requests
   * its handlers already gave up on (an abort while undici still connects cannot reach undici
   * until the connect ends, up to the connect timeout): once every request has ended for its
   * handler, what is left is destroyed.
   */
  close(): Promise<void> {
    const pool = this.#pool;
    // Settles either way once destroy() runs; never left to reject unheard.
    const closed = pool.close().catch(() => {});
    if (this.#live === 0) return pool.destroy();
    return Promise.race([closed, new Promise<void>((resolve) => (this.#idle = resolve)).then(() => pool.destroy())]);
  }
}

/** Joins repeated trailer fields into one value each (RFC 9110 §5.3). */
function flatTrailers(t: Record<string, string | string[] | undefined> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (t === undefined) return out;
  for (const [name, value] of Object.entries(t)) {
    if (value !== undefined) out[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

/** Headers as undici reports them (a raw array over HTTP/1.1, an object over HTTP/2) as flat latin1 strings, without pseudo-headers. */
function flatHeaders(controller: Dispatcher.DispatchController, parsed: Record<string, string | string[] | undefined>): string[] {
  const raw = (controller as { rawHeaders?: (Buffer | string)[] }).rawHeaders;
  if (Array.isArray(raw)) return raw.map((v) => (typeof v === 'string' ? v : v.toString('latin1')));
  const out: string[] = [];
  for (const [name, value] of Object.entries(parsed)) {
    if (value === undefined || name.charCodeAt(0) === 58) continue;
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else out.push(name, String(value));
  }
  return out;
}

/**
 * RFC 9112 §6.1: chunked is the only transfer coding that frames a body; any other (`gzip,
 * chunked`) would reach the client decoded of its chunks but still encoded, with nothing declaring
 * it. Refused as nginx does, and as the builtin client's parser does, so both clients agree (one
 * field holding exactly `chunked`).
 */
function badTransferCoding(flat: readonly string[]): boolean {
  let seen = 0;
  for (let i = 0; i < flat.length; i += 2) {
    if (flat[i].length !== 17 || flat[i].toLowerCase() !== 'transfer-encoding') continue;
    // The value as received: "chunked<HTAB>" is not chunked to llhttp, which reads that body to the close.
    if (++seen > 1 || !isChunkedOnly(flat[i + 1])) return true;
  }
  return false;
}

/**
 * One request between undici's handler interface and waygate's: the controller is ours from the
 * start (undici hands out its own only once a connection takes the request), so an abort while
 * undici still connects ends the request for the handler at once.
 */
class Bridge implements UpstreamController, Dispatcher.DispatchHandler {
  readonly #handler: UpstreamHandler;
  readonly #ended: () => void;
  readonly #resetStream: () => void;
  readonly #onRefused: () => void;
  readonly #body: UpstreamRequest['body'];
  /** Sends the request again on a fresh pool; undefined when it may not be sent twice. */
  #replay: (() => void) | undefined;
  #controller: Dispatcher.DispatchController | undefined;
  /** The response head arrived (a refusal after it is no refusal). */
  #started = false;
  /** The UndiciClient pool generation the request was last dispatched on. */
  generation = 0;
  #reason: Error | undefined;
  #done = false;
  aborted = false;

  /** Bounds the wait for a connection to take the request (see awaitConnection). */
  #connectTimer: NodeJS.Timeout | undefined;

  /**
   * `ended` is called once, when the request ends for the handler; `reset` when an abort resets a
   * started request; `refused` when the server refused its stream; `replay` (when given) sends it
   * again after that. `body` is the request's body as dispatched.
   */
  constructor(handler: UpstreamHandler, hooks: { ended: () => void; reset: () => void; refused: () => void; replay: (() => void) | undefined; body: UpstreamRequest['body'] }) {
    this.#handler = handler;
    this.#ended = hooks.ended;
    this.#resetStream = hooks.reset;
    this.#onRefused = hooks.refused;
    this.#replay = hooks.replay;
    this.#body = hooks.body;
  }

  /**
   * Fails the request if no connection has taken it within `ms`. undici queues a request behind
   * the connect attempt of its client and, on an HTTP/2 pool, behind one attempt after another:
   * to a target that accepts TCP and never finishes TLS, the fifth request of a burst waited five
   * connect timeouts. Each request waits one, as on the builtin client; the queued copy undici
   * keeps is aborted when a connection reaches it.
   */
  awaitConnection(ms: number): void {
    if (ms <= 0) return;
    this.#connectTimer = setTimeout(() => {
      this.#connectTimer = undefined;
      if (this.#controller !== undefined || this.#done) return;
      const err = coded('UND_ERR_CONNECT_TIMEOUT', `no connection to the target within ${ms}ms`);
      this.aborted = true;
      this.#reason = err;
      this.fail(err);
    }, ms);
    this.#connectTimer.unref();
  }

  pause(): void {
    this.#controller?.pause();
  }

  resume(): void {
    this.#controller?.resume();
  }

  abort(reason: Error): void {
    if (this.aborted || this.#done) return;
    this.aborted = true;
    this.#reason = reason;
    const c = this.#controller;
    if (c !== undefined && !c.aborted) {
      c.abort(reason);
      this.#resetStream();
    }
    this.fail(reason);
  }

  /** Ends the request for the handler with `err`, once, never inside the caller's own call. */
  fail(err: Error): void {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#connectTimer);
    this.#ended();
    queueMicrotask(() => this.#handler.onError(err));
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    clearTimeout(this.#connectTimer);
    this.#controller = controller;
    if (this.aborted) {
      controller.abort(this.#reason!);
      this.#resetStream();
    }
  }

  onBodySent(chunk: Buffer): void {
    if (!this.#done) this.#handler.onBodySent(chunk.length);
  }

  onResponseStart(controller: Dispatcher.DispatchController, status: number, headers: Record<string, string | string[] | undefined>, reason?: string): void {
    if (this.#done) return;
    const flat = flatHeaders(controller, headers);
    if (status < 200) {
      this.#handler.onInterim(status, flat);
      return;
    }
    this.#started = true;
    if (badTransferCoding(flat)) {
      const err = coded('HPE_INVALID_TRANSFER_ENCODING', 'upstream response with a transfer coding other than chunked');
      controller.abort(err);
      this.fail(err);
      return;
    }
    this.#handler.onHeaders(status, reason ?? '', flat);
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.#done) this.#handler.onData(chunk, false);
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: Record<string, string | string[] | undefined>): void {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#connectTimer);
    this.#ended();
    this.#handler.onEnd(flatTrailers(trailers));
  }

  /**
   * A stream the server refused before it read it (RFC 9113 §8.7: REFUSED_STREAM; a Node server
   * answers ENHANCE_YOUR_CALM when its session is out of memory or streams) was never processed:
   * new requests go to a fresh pool, and this one is sent once more on it when allowed (the
   * handler hears of it through onReplay). Otherwise the handler gets the refusal, which the
   * forwarder may send to another target (errors.ts).
   */
  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    const refusal = this.#done || this.aborted || this.#started ? undefined : this.#refusal(err);
    if (refusal !== undefined) {
      this.#onRefused();
      const replay = this.#replay;
      if (replay !== undefined) {
        this.#replay = undefined;
        this.#controller = undefined;
        this.#handler.onReplay();
        replay();
        return;
      }
    }
    this.fail(refusal ?? err);
  }

  /**
   * The refusal behind `err`, worded as node:http2 words it, or undefined if the stream was not
   * refused. With a streamed body undici reports its body pipeline's Premature close, not the
   * stream's error (the pipeline hears of the close first): the stream's RST_STREAM code tells.
   */
  #refusal(err: Error): Error | undefined {
    if (REFUSED.test(err.message)) return err;
    const body = this.#body;
    if (body === null || Buffer.isBuffer(body)) return undefined;
    const code = streamOfBody.get(body)?.rstCode;
    const name = code === undefined ? undefined : REFUSAL_CODES[code];
    if (name === undefined) return undefined;
    return Object.assign(new Error(`Stream closed with error code ${name}`, { cause: err }), { code: 'ERR_HTTP2_STREAM_ERROR' });
  }
}

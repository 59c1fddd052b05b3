// Forwards one request to a pool: picks targets, retries by the SPEC §4 rules, and streams the
// response straight to the client socket with backpressure (the upstream client is paused when the
// client's buffer is full and resumed on drain). One Forwarder per request is the UpstreamHandler
// (upstream/client.ts) of each of its attempts, whichever client serves the pool.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Writable } from 'node:stream';
import { GatewayError, fromUpstreamError } from '../errors.ts';
import { bodySink, findReplacement, isPromise, replaceHead, runHeadHooks } from '../middleware/shape.ts';
import type { Replacement, ResponseHead, ResponseHook } from '../middleware/types.ts';
import type { UpstreamController, UpstreamHandler, UpstreamProxy } from '../upstream/client.ts';
import { IDEMPOTENT_METHODS } from '../upstream/methods.ts';
import type { UpstreamPool } from '../upstream/pool.ts';
import type { Target } from '../upstream/target.ts';
import { RequestBody, declaresBody } from './body.ts';
import type { BodyLimits } from './body.ts';
import { clientResponseHeaders, upstreamRequestHeaders } from './headers.ts';
import { clientProxy } from './routed.ts';
import type { RoutedRequest } from './routed.ts';

/** What the forwarder reports back to the server for logging, metrics and passive health. */
export interface ForwardObserver {
  /** One upstream attempt ended: `err` is undefined when the response completed. */
  attempt(pool: UpstreamPool, target: Target, err: GatewayError | undefined): void;
  /** The request failed before any response byte reached the client: send this error. */
  fail(err: GatewayError): void;
}

/** One request's journey to a pool. */
export interface ForwardRequest extends RoutedRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** Retry buffer, maximum size and idle timeout of the request body. */
  readonly bodyLimits: BodyLimits;
  /** A client that reads nothing of the response for this long (ms) is disconnected. */
  readonly writeIdleTimeout: number;
  readonly observer: ForwardObserver;
  /** SPEC §8: the response hooks of the route's middlewares; undefined when there are none. */
  readonly hooks?: readonly ResponseHook[];
}

function hasHeader(flat: readonly string[], name: string): boolean {
  for (let i = 0; i < flat.length; i += 2) if (flat[i].toLowerCase() === name) return true;
  return false;
}

const GRPC_STATUS_FIELDS = new Set(['grpc-status', 'grpc-message', 'grpc-status-details-bin']);

/**
 * A gRPC "trailers-only" response carries its status in a HEADERS frame that ends the stream.
 * Node's compatibility response cannot end a stream with its headers, and clients ignore a
 * status in ordinary headers; the equivalent form the gRPC spec also allows is headers, then
 * trailers — so the status fields are taken out of `headers` (in place) and returned, to be
 * sent as trailers. Returns undefined when the headers hold no gRPC status.
 */
function takeGrpcStatus(headers: string[]): Record<string, string> | undefined {
  let status: Record<string, string> | undefined;
  for (let i = 0; i < headers.length; ) {
    const lower = headers[i].toLowerCase();
    if (GRPC_STATUS_FIELDS.has(lower)) {
      (status ??= {})[lower] = headers[i + 1];
      headers.splice(i, 2);
    } else {
      i += 2;
    }
  }
  return status;
}

/**
 * True when the response can no longer reach the client. An HTTP/2 compatibility response has no
 * `destroyed` of its own: its stream's tells (a client's RST_STREAM destroys it).
 */
function responseGone(res: ServerResponse): boolean {
  return res.destroyed === true || (res as { stream?: { destroyed: boolean } }).stream?.destroyed === true;
}

/** Largest final body chunk sent as a string together with the response head (see onEnd). */
const SMALL_BODY = 1024;


/** Drives one forwarded request: picks targets, retries by the SPEC §4 rules, streams the response. */
export class Forwarder implements UpstreamHandler {
  readonly #r: ForwardRequest;
  readonly #headers: string[];
  /** The request body's owner; undefined for a request without one. */
  #body: RequestBody | undefined;
  /** The controller of the attempt in flight; undefined between attempts. */
  #controller: UpstreamController | undefined;
  #target: Target | undefined;
  #release: (() => void) | undefined;
  #tried: Target[] | undefined;
  #started = false;
  #done = false;
  #clientGone = false;
  #onDrain: (() => void) | undefined;
  #writeIdle: NodeJS.Timeout | undefined;
  /** gRPC status fields of a trailers-only response, re-sent as trailers (see takeGrpcStatus). */
  #grpcStatus: Record<string, string> | undefined;
  /** The body's last chunk, held for res.end (see onData). */
  #tail: Buffer | undefined;
  /** The client connection a `proxyProtocol` pool's PROXY header announces (first attempt on). */
  #proxy: UpstreamProxy | undefined;
  /** Where the body goes: the response, or the first of the middlewares' transforms (compress). */
  #out: Writable | undefined;
  /** A replacement page (errorPages) is awaited: body chunks are held, and the end if it comes. */
  #held: Buffer[] | undefined;
  #heldEnd: Readonly<Record<string, string>> | undefined;
  /** A replacement page went out: the upstream's own body is read and dropped. */
  #discard = false;

  /** Sends made so far, replays of a stale keep-alive connection included (the access log's `attempts`). */
  attempts = 0;
  /** Response body bytes written to the client. */
  bytesOut = 0;
  /** Request body bytes sent upstream. */
  bytesIn = 0;

  constructor(r: ForwardRequest) {
    this.#r = r;
    this.#headers = upstreamRequestHeaders(r.req.rawHeaders, r.info, r.requestOps);
  }

  /** The target of the latest attempt, if any. */
  get target(): Target | undefined {
    return this.#target;
  }

  /** Takes the body (if any), reads what the retry rules need of it, then starts the first attempt. */
  start(): void {
    const first = this.#firstTarget();
    if (first === undefined) return;
    // No body (most requests): no promise and no microtask hop before the attempt.
    if (!declaresBody(this.#r.req)) {
      this.#attempt(first);
      return;
    }
    const body = new RequestBody(this.#r.req, this.#r.bodyLimits, (err) => this.#bodyFailed(err));
    this.#body = body;
    body.prepare(() => {
      if (!this.#done) this.#attempt(first);
    });
  }

  /** The client went away: abort the upstream request and release everything. */
  clientClosed(): void {
    if (this.#done) return;
    this.#clientGone = true;
    const err = new GatewayError('client_aborted', 'client closed the connection');
    const c = this.#controller;
    if (c !== undefined) c.abort(err);
    // Still reading the body: no attempt to abort, the exchange ends here.
    else this.#finish(err);
  }

  /** The body failed (client gone, stalled, too large): end the attempt in flight, or the exchange. */
  #bodyFailed(err: GatewayError): void {
    if (this.#done) return;
    const c = this.#controller;
    if (c !== undefined) c.abort(err);
    else this.#finish(err);
  }

  /** The first target (UpstreamPool.first); undefined after answering the error itself. */
  #firstTarget(): Target | undefined {
    const r = this.#r;
    const target = r.pool.first({ clientIp: r.clientIp }, r.stickyToken);
    if (!(target instanceof GatewayError)) return target;
    this.#finish(target);
    return undefined;
  }

  #attempt(target: Target): void {
    const r = this.#r;
    const s = r.pool.settings;
    // SPEC §7: only a `proxyProtocol` pool looks at the client connection, once per request.
    const version = s.connect.proxyProtocol;
    let proxy: UpstreamProxy | undefined;
    if (version !== 'off') {
      proxy = this.#proxy ??= clientProxy(r.req, version);
      // No addresses left to announce: the client connection is gone.
      if (proxy === undefined) return this.#finish(new GatewayError('client_aborted', 'client closed the connection'));
    }
    this.attempts++;
    this.#target = target;
    this.#release = target.acquire();
    const body = this.#body;
    const method = r.req.method!;
    try {
      target.client(s.connect).request(
        {
          method,
          path: r.path,
          headers: this.#headers,
          body: body === undefined ? null : body.payload,
          responseTimeout: s.responseTimeout,
          idleTimeout: s.idleTimeout,
          // A stale keep-alive replay is one more send: allowed only where a retry would be
          // (an idempotent method, a body that can be sent again, an attempt left).
          replayable: this.attempts <= s.retries && IDEMPOTENT_METHODS.has(method) && (body === undefined || body.buffered),
          proxy,
        },
        this,
      );
    } catch (err) {
      // A client that cannot be built (bad TLS material): this attempt's failure, like any other.
      this.#controller = undefined;
      this.#attemptFailed(fromUpstreamError(err));
    }
  }

  #releaseTarget(): void {
    const release = this.#release;
    this.#release = undefined;
    if (release !== undefined) release();
  }

  // Defensive: should a body-stream error from a dying client reach the upstream client before
  // the response's 'close' event, it must still not count as the target's failure.
  #clientIsGone(): boolean {
    const r = this.#r;
    // req.socket is null once the request was read to its end.
    return this.#clientGone || responseGone(r.res) || r.req.socket?.destroyed === true;
  }

  /**
   * The client is gone or stopped reading (`err`): the upstream request is aborted and the
   * exchange ends, whether or not the response's 'close' ever comes (an HTTP/2 stream the client
   * reset may already have emitted it).
   */
  #abortForClient(err: GatewayError): void {
    if (this.#done) return;
    this.#clientGone = true;
    const res = this.#r.res;
    if (!responseGone(res)) res.destroy(err);
    const c = this.#controller;
    if (c !== undefined) c.abort(err);
    else this.#finish(err);
  }

  /**
   * SPEC §4: retry only while no response byte reached the client, and only if the request was
   * never sent (connect failure) or its method is idempotent; either way the body must be
   * replayable. A response timeout is not retried: the upstream may still be working on it, and
   * retrying would multiply the wait.
   */
  #retryable(err: GatewayError): boolean {
    if (this.#started || this.attempts > this.#r.pool.settings.retries) return false;
    if (this.#body !== undefined && !this.#body.replayable) return false;
    if (err.beforeSend) return true;
    if (err.code !== 'upstream_reset' && err.code !== 'upstream_bad_response') return false;
    return IDEMPOTENT_METHODS.has(this.#r.req.method!);
  }

  #attemptFailed(err: GatewayError): void {
    const target = this.#target!;
    this.#controller = undefined;
    this.#releaseTarget();
    if (err.code === 'client_aborted' || this.#clientIsGone()) {
      this.#finish(new GatewayError('client_aborted', 'client closed the connection'));
      return;
    }
    // The client's fault (a body over the limit, or stalled): not the target's, and no retry.
    if (err.source === 'client') {
      this.#finish(err);
      return;
    }
    this.#r.observer.attempt(this.#r.pool, target, err);
    if (this.#retryable(err)) {
      const tried = (this.#tried ??= []);
      tried.push(target);
      const next = this.#r.pool.select({ clientIp: this.#r.clientIp }, (t) => t.available && !tried.includes(t));
      // With no other target left, the client gets this attempt's error, not "no healthy upstream".
      if (next !== undefined) {
        this.#attempt(next);
        return;
      }
    }
    this.#finish(err);
  }

  /** Ends the exchange: every resource released, then the error (if any) answered or the response cut. */
  #finish(err: GatewayError | undefined): void {
    if (this.#done) return;
    this.#done = true;
    this.#endResources();
    const res = this.#r.res;
    if (err === undefined) return;
    if (err.code === 'client_aborted' || this.#clientGone) {
      if (!responseGone(res)) res.destroy();
      return;
    }
    // A replacement page went out whole: the upstream failing while its own body is dropped changes nothing.
    if (this.#discard) return;
    if (this.#started) {
      // Response bytes already reached the client: end it as an error, never as a clean short body.
      res.destroy(err);
      return;
    }
    // A body the client is still sending is not read to its end just to keep the connection.
    if (!this.#r.req.complete) res.shouldKeepAlive = false;
    this.#r.observer.fail(err);
  }

  /** Releases what this exchange holds: the target, the write timer, the drain listener, the body. */
  #endResources(): void {
    this.#controller = undefined;
    this.#releaseTarget();
    clearTimeout(this.#writeIdle);
    if (this.#onDrain !== undefined) (this.#out ?? this.#r.res).off('drain', this.#onDrain);
    this.#body?.dispose();
  }

  // UpstreamHandler ---------------------------------------------------------------------------

  onStart(controller: UpstreamController): void {
    this.#controller = controller;
    if (this.#clientGone) controller.abort(new GatewayError('client_aborted', 'client closed the connection'));
  }

  onReplay(): void {
    this.attempts++;
  }

  onBodySent(bytes: number): void {
    this.bytesIn += bytes;
  }

  onInterim(status: number, rawHeaders: readonly string[]): void {
    const r = this.#r;
    // Interim responses (RFC 9110 §15.2): 103 Early Hints are passed on; 100 Continue was
    // already answered to the client by waygate itself, and other 1xx mean nothing to it.
    if (status !== 103 || r.res.headersSent) return;
    const links = clientResponseHeaders(rawHeaders, undefined, r.info.requestId)
      .filter((_v, i, a) => i % 2 === 1 && a[i - 1].toLowerCase() === 'link');
    if (links.length > 0) r.res.writeEarlyHints({ link: links });
  }

  onHeaders(status: number, reason: string, rawHeaders: readonly string[]): void {
    const r = this.#r;
    const headers = clientResponseHeaders(rawHeaders, r.responseOps, r.info.requestId);
    // Pin (or re-pin) the client to the target that actually answered.
    const sticky = r.pool.sticky;
    if (sticky !== undefined && sticky.token(this.#target!) !== r.stickyToken) {
      headers.push('set-cookie', sticky.setCookie(this.#target!, r.info.proto === 'https'));
    }
    const h2 = r.req.httpVersionMajor === 2;
    if (h2) this.#grpcStatus = takeGrpcStatus(headers);
    const extra = r.listenerHeaders;
    if (extra !== undefined) {
      for (let i = 0; i < extra.length; i += 2) if (!hasHeader(headers, extra[i])) headers.push(extra[i], extra[i + 1]);
    }
    // An answer before the upload ended (an upstream refusing the body): the rest of the body is
    // not read just to keep the connection (RFC 9112 §9.6 lets the server close).
    if (!h2 && !r.req.complete && this.#body !== undefined) r.res.shouldKeepAlive = false;
    if (r.hooks !== undefined) {
      this.#shape(r.hooks, { status, headers, own: false }, reason);
      return;
    }
    this.#writeHead(status, reason, headers);
  }

  /** Writes the response head; false (the attempt aborted) when the upstream's fields are invalid. */
  #writeHead(status: number, reason: string, headers: string[]): boolean {
    const r = this.#r;
    const h2 = r.req.httpVersionMajor === 2;
    try {
      // HTTP/2 has no reason phrase (RFC 9113 §8.3.2); passing one only triggers a warning.
      if (h2) r.res.writeHead(status, headers);
      else r.res.writeHead(status, reason || undefined, headers);
    } catch (err) {
      // Invalid header bytes from the upstream: a bad response, not ours to forward.
      this.#controller?.abort(new GatewayError('upstream_bad_response', `invalid upstream response headers: ${(err as Error).message}`));
      return false;
    }
    this.#started = true;
    return true;
  }

  /**
   * SPEC §8: the middlewares' response hooks on an upstream response. A replacement page (sync
   * or awaited) goes out instead of the body; otherwise the head is edited and the body may go
   * through transforms. Either way the response is committed: no retry from here on.
   */
  #shape(hooks: readonly ResponseHook[], head: ResponseHead, reason: string): void {
    const rep = findReplacement(hooks, head);
    if (rep === undefined) {
      this.#writeShapedHead(hooks, head, reason);
      return;
    }
    this.#started = true;
    if (!isPromise<Replacement | undefined>(rep)) {
      this.#sendReplacement(hooks, head, rep);
      return;
    }
    // Hold the body (the upstream is paused: at most what was already read) until the page is known.
    this.#held = [];
    this.#controller?.pause();
    const settled = (page: Replacement | undefined): void => this.#replacementSettled(hooks, head, reason, page);
    // A throw from a settled promise would be an unhandled rejection (the process ends): cut this response instead.
    rep.then(settled, () => settled(undefined)).catch((err: Error) => {
      if (!responseGone(this.#r.res)) this.#r.res.destroy(err);
    });
  }

  /** Runs the head hooks and writes the head; false when the head was invalid (the attempt is aborted). */
  #writeShapedHead(hooks: readonly ResponseHook[], head: ResponseHead, reason: string): boolean {
    const transforms = runHeadHooks(hooks, head);
    if (!this.#writeHead(head.status, reason, head.headers)) {
      for (const t of transforms) t.destroy();
      return false;
    }
    if (transforms.length > 0) this.#out = bodySink(this.#r.res, transforms);
    return true;
  }

  /** Sends `rep` in place of the upstream's body, which is then read and dropped. */
  #sendReplacement(hooks: readonly ResponseHook[], head: ResponseHead, rep: Replacement): void {
    this.#discard = true;
    replaceHead(head, rep);
    const transforms = runHeadHooks(hooks, head);
    const res = this.#r.res;
    if (!this.#writeHead(head.status, '', head.headers)) return;
    this.bytesOut += rep.body.length;
    if (transforms.length === 0) res.end(rep.body);
    else bodySink(res, transforms).end(rep.body);
  }


  /** The awaited page is known (or not): it goes out, or the held original does. */
  #replacementSettled(hooks: readonly ResponseHook[], head: ResponseHead, reason: string, page: Replacement | undefined): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    if (this.#clientGone || responseGone(this.#r.res) || (this.#done && this.#heldEnd === undefined)) return;
    const ended = this.#heldEnd;
    if (page !== undefined) this.#sendReplacement(hooks, head, page);
    else if (!this.#writeShapedHead(hooks, head, reason)) {
      // Invalid upstream fields: the response is committed, so it is cut (the attempt ended: nothing to abort).
      if (ended !== undefined) this.#finish(new GatewayError('upstream_bad_response', 'invalid upstream response headers'));
      return;
    } else for (const chunk of held) this.#write(chunk);
    if (ended === undefined) {
      this.#controller?.resume();
      return;
    }
    this.#heldEnd = undefined;
    this.#done = true;
    this.#endResources();
    if (!this.#discard) this.#end(ended);
  }

  onData(chunk: Buffer, last: boolean): void {
    if (this.#discard) return;
    const held = this.#held;
    if (held !== undefined) {
      held.push(chunk);
      return;
    }
    // The body's last bytes with the end following at once (builtin client): sent by res.end(chunk).
    if (last) {
      this.bytesOut += chunk.length;
      this.#tail = chunk;
      return;
    }
    this.#write(chunk);
  }

  #write(chunk: Buffer): void {
    this.bytesOut += chunk.length;
    const res = this.#r.res;
    if (responseGone(res)) {
      this.#abortForClient(new GatewayError('client_aborted', 'client closed the connection'));
      return;
    }
    const out = this.#out ?? res;
    if (!out.write(chunk)) {
      // Backpressure: stop reading from the upstream until the client catches up — but a client
      // that reads nothing for writeIdleTimeout is gone in all but name.
      this.#controller?.pause();
      this.#onDrain ??= () => {
        clearTimeout(this.#writeIdle);
        this.#controller?.resume();
      };
      out.once('drain', this.#onDrain);
      clearTimeout(this.#writeIdle);
      this.#writeIdle = setTimeout(() => this.#abortForClient(new GatewayError('client_timeout', 'client stopped reading the response')), this.#r.writeIdleTimeout);
      this.#writeIdle.unref();
    }
  }

  onEnd(trailers: Readonly<Record<string, string>>): void {
    if (this.#done) return;
    const target = this.#target!;
    this.#r.observer.attempt(this.#r.pool, target, undefined);
    if (this.#held !== undefined) {
      // The upstream is done; the client's answer waits for the replacement page.
      this.#heldEnd = trailers;
      this.#controller = undefined;
      this.#releaseTarget();
      return;
    }
    this.#done = true;
    this.#endResources();
    if (this.#discard) return;
    this.#end(trailers);
  }

  /** Ends the client's response: trailers, then the held last chunk if any. */
  #end(trailers: Readonly<Record<string, string>>): void {
    const res = this.#r.res;
    const out = this.#out;
    let t: Record<string, string> = trailers;
    if (this.#grpcStatus !== undefined) t = { ...this.#grpcStatus, ...trailers };
    // Trailers (gRPC's grpc-status among them) pass on HTTP/2 and on chunked HTTP/1.1.
    if (Object.keys(t).length > 0 && (res.chunkedEncoding || this.#r.req.httpVersionMajor === 2)) res.addTrailers(t);
    const tail = this.#tail;
    this.#tail = undefined;
    if (out !== undefined) out.end(tail);
    else if (tail === undefined) res.end();
    // A small body as a latin1 string (byte for byte): Node joins it to the head and sends both
    // in one write, where a Buffer takes a writev of two (1.05× req/s in a bare forwarder at 100 B).
    else if (tail.length <= SMALL_BODY && this.#r.req.httpVersionMajor === 1) res.end(tail.toString('latin1'), 'latin1');
    else res.end(tail);
  }

  onError(err: Error): void {
    if (this.#done) return;
    try {
      this.#attemptFailed(fromUpstreamError(err));
    } catch (bug) {
      // A throw here would escape into the client's socket callbacks and end the process:
      // contain it to this one request.
      this.#done = true;
      this.#endResources();
      this.#r.res.destroy(bug as Error);
    }
  }
}

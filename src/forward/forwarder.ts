// Forwards one request to a pool over undici's dispatch API. One Forwarder object per request
// is the undici handler itself: no stream layers, response bytes go straight to the client
// socket with backpressure (pause undici when the client's buffer is full, resume on drain).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { GatewayError, fromUpstreamError, outcomeOf } from '../errors.ts';
import type { UpstreamOutcome } from '../errors.ts';
import type { UpstreamPool } from '../upstream/pool.ts';
import type { Target } from '../upstream/target.ts';
import { clientResponseHeaders, upstreamRequestHeaders } from './headers.ts';
import type { ForwardInfo, HeaderOps } from './headers.ts';

/** What the forwarder reports back to the server for logging and metrics. */
export interface ForwardObserver {
  /** One upstream attempt ended (the response completed, or it failed). */
  attempt(pool: UpstreamPool, target: Target, outcome: UpstreamOutcome): void;
  /** The request failed before any response byte reached the client: send this error. */
  fail(err: GatewayError): void;
}

/** One request's journey to a pool. */
export interface ForwardRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly pool: UpstreamPool;
  /** Path and query to send upstream. */
  readonly path: string;
  readonly info: ForwardInfo;
  readonly requestOps: HeaderOps | undefined;
  readonly responseOps: HeaderOps | undefined;
  readonly clientIp: string;
  readonly observer: ForwardObserver;
}

// A request has a body when it declares one (RFC 9112 §6.3): a non-zero length or chunked.
function hasBody(req: IncomingMessage): boolean {
  const cl = req.headers['content-length'];
  if (cl !== undefined) return cl !== '0';
  if (req.headers['transfer-encoding'] !== undefined) return true;
  return false;
}

/** Drives one forwarded request: picks targets, retries connect failures, streams the response. */
export class Forwarder implements Dispatcher.DispatchHandler {
  readonly #r: ForwardRequest;
  readonly #headers: string[];
  readonly #hasBody: boolean;
  #controller: Dispatcher.DispatchController | undefined;
  #target: Target | undefined;
  #release: (() => void) | undefined;
  #tried: Target[] | undefined;
  #started = false;
  #done = false;
  #clientGone = false;
  #onDrain: (() => void) | undefined;

  /** Attempts made so far (the access log's `attempts`). */
  attempts = 0;
  /** Response body bytes written to the client. */
  bytesOut = 0;
  /** Request body bytes sent upstream. */
  bytesIn = 0;

  constructor(r: ForwardRequest) {
    this.#r = r;
    this.#headers = upstreamRequestHeaders(r.req.rawHeaders, r.info, r.requestOps);
    this.#hasBody = hasBody(r.req);
  }

  /** The target of the latest attempt, if any. */
  get target(): Target | undefined {
    return this.#target;
  }

  /** Starts the first attempt. */
  start(): void {
    this.#attempt();
  }

  /** The client went away: abort the upstream request and release everything. */
  clientClosed(): void {
    if (this.#done) return;
    this.#clientGone = true;
    const c = this.#controller;
    if (c !== undefined && !c.aborted) c.abort(new GatewayError('client_aborted', 'client closed the connection'));
  }

  /** Picks a target not tried yet (retries go to a different target, SPEC §4); undefined when none is left. */
  #pickUntried(): Target | undefined {
    const r = this.#r;
    const tried = this.#tried;
    let target = r.pool.select({ clientIp: r.clientIp });
    if (tried === undefined) return target;
    for (let n = 0; n < r.pool.targets.length && target !== undefined && tried.includes(target); n++) {
      target = r.pool.select({ clientIp: r.clientIp });
    }
    return target !== undefined && tried.includes(target) ? undefined : target;
  }

  #attempt(target: Target | undefined = this.#pickUntried()): void {
    const r = this.#r;
    if (target === undefined) {
      this.#finish(new GatewayError('no_healthy_upstream', `no healthy upstream in pool "${r.pool.name}"`));
      return;
    }
    this.attempts++;
    this.#target = target;
    this.#release = target.acquire();
    this.#controller = undefined;
    const s = r.pool.settings;
    const req = r.req;
    try {
      target.dispatcher(s.connect).dispatch(
        {
          path: r.path,
          method: req.method as Dispatcher.HttpMethod,
          headers: this.#headers,
          body: this.#hasBody ? req : null,
          headersTimeout: s.responseTimeout,
          bodyTimeout: s.idleTimeout,
          // Retries are waygate's decision (SPEC §4): undici must never replay a request itself.
          idempotent: false,
        },
        this,
      );
    } catch (err) {
      this.#attemptFailed(fromUpstreamError(err));
    }
  }

  #releaseTarget(): void {
    const release = this.#release;
    this.#release = undefined;
    if (release !== undefined) release();
  }

  // Defensive: should a body-stream error from a dying client reach undici before the
  // response's 'close' event, it must still not count as the target's failure.
  #clientIsGone(): boolean {
    const r = this.#r;
    return this.#clientGone || r.res.destroyed || r.req.socket.destroyed;
  }

  #attemptFailed(err: GatewayError): void {
    const target = this.#target!;
    this.#releaseTarget();
    if (err.code === 'client_aborted' || this.#clientIsGone()) {
      this.#finish(new GatewayError('client_aborted', 'client closed the connection'));
      return;
    }
    target.recordFailure();
    this.#r.observer.attempt(this.#r.pool, target, outcomeOf(err));
    // A retry is safe only while nothing reached the client and the request never left (the
    // connection failed before it was sent) with no body that undici may have started reading.
    // The fuller rules of SPEC §4 (idempotent methods, retryBuffer) build on this.
    if (!this.#started && err.beforeSend && !this.#hasBody && this.attempts <= this.#r.pool.settings.retries) {
      (this.#tried ??= []).push(target);
      // With no other target left, the client gets this attempt's error, not "no healthy upstream".
      const next = this.#pickUntried();
      if (next !== undefined) {
        this.#attempt(next);
        return;
      }
    }
    this.#finish(err);
  }

  #finish(err: GatewayError | undefined): void {
    if (this.#done) return;
    this.#done = true;
    this.#releaseTarget();
    const res = this.#r.res;
    if (err === undefined) return;
    if (err.code === 'client_aborted' || this.#clientGone) {
      if (!res.destroyed) res.destroy();
      return;
    }
    if (this.#started) {
      // Response bytes already reached the client: end it as an error, never as a clean short body.
      res.destroy(err);
      return;
    }
    this.#r.observer.fail(err);
  }

  // undici handler --------------------------------------------------------------------------

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#clientGone) controller.abort(new GatewayError('client_aborted', 'client closed the connection'));
  }

  onBodySent(chunk: Buffer): void {
    this.bytesIn += chunk.length;
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, _headers: unknown, statusMessage?: string): void {
    const res = this.#r.res;
    const raw = (controller.rawHeaders ?? []) as (Buffer | string)[];
    const headers = clientResponseHeaders(raw, this.#r.responseOps, this.#r.info.requestId);
    try {
      res.writeHead(statusCode, statusMessage || undefined, headers);
    } catch (err) {
      // Invalid header bytes from the upstream: a bad response, not ours to forward.
      controller.abort(new GatewayError('upstream_bad_response', `invalid upstream response headers: ${(err as Error).message}`));
      return;
    }
    this.#started = true;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.bytesOut += chunk.length;
    if (!this.#r.res.write(chunk)) {
      controller.pause();
      this.#onDrain ??= () => this.#controller?.resume();
      this.#r.res.once('drain', this.#onDrain);
    }
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: Record<string, string | string[] | undefined>): void {
    const target = this.#target!;
    this.#releaseTarget();
    this.#r.observer.attempt(this.#r.pool, target, 'success');
    const res = this.#r.res;
    if (trailers !== undefined && Object.keys(trailers).length > 0 && res.chunkedEncoding) {
      res.addTrailers(trailers as Record<string, string>);
    }
    this.#done = true;
    res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.#done) return;
    this.#attemptFailed(fromUpstreamError(err));
  }
}

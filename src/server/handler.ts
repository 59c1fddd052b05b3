// The request handler of the public listeners: request view → router → route action →
// forwarder, with the access log written once when the response closes.
//
// HTTP/1.1 pipelining (SPEC §4, RFC 9112 §9.3.2): Node's server emits every request it parsed
// at once, so requests written back to back would all be forwarded together and reach the
// upstream in any order (a POST waiting for its body behind the GET after it). Node already
// gives a response the connection only when the response before it has finished (and, when
// the connection dies, destroys the responses still waiting): a response without a socket is
// one queued behind another. Such a request starts on its response's 'socket' event, so
// requests run one at a time in the order sent, with no queue or timer of waygate's own (one
// listener on a queued response) and nothing for the common, unpipelined request but one
// property read. A queued request whose connection closes ends on its response's 'close'
// (Node's abortOutgoing) without anything being forwarded. HTTP/2 streams never wait.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { constants as h2constants } from 'node:http2';
import type { ServerHttp2Stream } from 'node:http2';
import { performance } from 'node:perf_hooks';
import { GatewayError } from '../errors.ts';
import { declaresBody } from '../forward/body.ts';
import { Forwarder } from '../forward/forwarder.ts';
import type { ForwardObserver } from '../forward/forwarder.ts';
import type { BodyLimits } from '../forward/body.ts';
import { answerParts, ChainRequest, runChain } from '../middleware/chain.ts';
import type { ChainOutcome } from '../middleware/chain.ts';
import { writeOwn } from '../middleware/shape.ts';
import type { Middleware } from '../middleware/types.ts';
import type { CompiledRoute } from '../runtime.ts';
import type { RouteMatch } from '../router/router.ts';
import type { AccessLogger, Logger } from '../observe/logger.ts';
import type { UpstreamPool } from '../upstream/pool.ts';
import type { Target } from '../upstream/target.ts';
import { accessRecord } from './access.ts';
import { clientAddress, hostPort, httpsLocation, peerAddress, requestIdOf, resolveRequest } from './resolve.ts';
import type { ResolvedRequest, ResolveOptions } from './resolve.ts';
import { errorAnswer, sendError } from './respond.ts';
import { checkRequest } from './validate.ts';

/** What the handler needs from the gateway. */
export interface HandlerOptions extends ResolveOptions {
  readonly scheme: 'http' | 'https';
  /** True when the peer address is a trusted proxy (its x-forwarded-* are kept). */
  readonly trusted: (ip: string) => boolean;
  readonly access: AccessLogger | undefined;
  readonly log: Logger;
  /** Retry buffer, maximum size and idle timeout of request bodies. */
  readonly bodyLimits: BodyLimits;
  /** A client that reads nothing of a response for this long (ms) is disconnected. */
  readonly writeIdleTimeout: number;
  /** Called for every finished upstream attempt, `err` undefined on success (metrics, passive health). */
  readonly onAttempt?: (pool: UpstreamPool, target: Target, err: GatewayError | undefined) => void;
  /** SPEC §8: a middleware refused a request (metrics). */
  readonly onRejected?: (route: string, middleware: Middleware) => void;
  /** Called once per request when its response closes (metrics). */
  readonly onDone?: (route: string, pool: string, method: string, status: number, seconds: number) => void;
  /** HTTPS only: the Strict-Transport-Security value added to every response (listener `hsts`). */
  readonly hsts?: string;
  /** HTTP only: answer every request with a 308 to this HTTPS port (listener `redirectToHttps`). */
  readonly redirectToHttps?: { port: number };
}

const EMPTY = Buffer.alloc(0);

/** Most of an unread HTTP/2 upload read and dropped after its response, before the stream is reset. */
const DISCARD_LIMIT = 1024 * 1024;

/**
 * HTTP/2: a response sent in full before its request's body ended (an early 502, 408 or 413, an
 * upstream that answered without reading everything) must still end the stream. Left alone it
 * stays half-open for good: Node closes such a stream itself only when nothing of the body is
 * buffered unread, the client's remaining DATA waits for flow-control credit nobody grants, its
 * stream never closes, nor its session, nor the connection (found by the soak: a CLOSE_WAIT
 * socket per upload to a refusing pool). So the rest of the body is read and dropped, up to
 * DISCARD_LIMIT bytes and for at most `idleMs` without one, and the stream then reset with
 * NO_ERROR (RFC 9113 §8.1: the client may stop sending). Reading first because Node's client
 * never closes a stream reset while it still has writes queued, and never its session then.
 */
function endUnreadUpload(req: IncomingMessage, stream: ServerHttp2Stream, idleMs: number): void {
  if (req.complete || stream.destroyed || stream.closed) return;
  const reset = (): void => {
    clearTimeout(timer);
    req.off('data', onData);
    if (!stream.destroyed && !stream.closed) stream.close(h2constants.NGHTTP2_NO_ERROR);
  };
  let dropped = 0;
  const onData = (chunk: Buffer): void => {
    dropped += chunk.length;
    if (dropped > DISCARD_LIMIT) reset();
    else timer.refresh();
  };
  const timer = setTimeout(reset, idleMs);
  timer.unref();
  req.on('data', onData);
  req.once('end', () => clearTimeout(timer));
  stream.once('close', () => clearTimeout(timer));
  req.resume();
}

/** One request from arrival to the access-log line. */
class Exchange implements ForwardObserver {
  readonly #o: HandlerOptions;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #start = performance.now();
  readonly #peerIp: string;
  readonly #clientIp: string;
  readonly #requestId: string;
  #route: string | undefined;
  #pool: UpstreamPool | undefined;
  #forwarder: Forwarder | undefined;
  #bytesOut = 0;
  readonly #listenerHeaders: readonly string[] | undefined;
  /** SPEC §8: the request's passage through its route's middlewares; undefined without any. */
  #chain: ChainRequest | undefined;
  /** The middleware that refused the request (the access log's `rejectedBy`). */
  #rejectedBy: string | undefined;

  /** `listenerHeaders`: the listener's own response headers, built once per listener. */
  constructor(o: HandlerOptions, req: IncomingMessage, res: ServerResponse, listenerHeaders: readonly string[] | undefined) {
    this.#o = o;
    this.#listenerHeaders = listenerHeaders;
    this.#req = req;
    this.#res = res;
    this.#peerIp = peerAddress(req);
    this.#clientIp = clientAddress(this.#peerIp, req.headers['x-forwarded-for'], o.trusted);
    this.#requestId = requestIdOf(req);
    res.once('close', () => this.#closed());
    if (req.httpVersionMajor === 2 && declaresBody(req)) {
      const stream = (req as unknown as { stream: ServerHttp2Stream }).stream;
      stream.once('finish', () => endUnreadUpload(req, stream, o.bodyLimits.idleTimeout));
    }
  }

  /** Runs the exchange once the connection is free of the exchanges pipelined before it. */
  runInTurn(): void {
    const res = this.#res;
    res.once('socket', () => {
      // The connection is this exchange's now; it may have died since (nothing is then sent).
      if (!res.destroyed) this.run();
    });
  }

  run(): void {
    const req = this.#req;
    const o = this.#o;
    const resolved = resolveRequest(req, o);
    if (resolved instanceof GatewayError) return this.fail(resolved);
    const { host, hostHeader, path, query, match, view } = resolved;
    if (o.redirectToHttps !== undefined) return this.#redirectToHttps(host, path, query);
    if (match === undefined) return this.fail(new GatewayError('no_route', 'no route matched'));
    this.#route = match.name;
    const middlewares = match.value.middlewares;
    if (middlewares === undefined) return this.#act(resolved);
    const chain = new ChainRequest(req, { scheme: o.scheme, host, hostHeader: hostHeader ?? '', clientIp: this.#clientIp, requestId: this.#requestId, route: match.name, websocket: false });
    this.#chain = chain;
    runChain(middlewares, chain, (outcome, err) => this.#chainDone(outcome, err, resolved));
  }

  /** The chain ended: its answer goes out, or the route's action runs. Nothing once the client is gone. */
  #chainDone(outcome: ChainOutcome, err: unknown, resolved: ResolvedRequest): void {
    if (this.#chain!.finished || this.#res.destroyed) return;
    try {
      this.#chainEnded(outcome, err, resolved);
    } catch (bug) {
      // Called from a settled promise, a throw would be an unhandled rejection, which ends the
      // process: it stays this request's.
      this.#o.log.error({ reqId: this.#requestId, err: (bug as Error).message }, 'request failed inside waygate');
      if (!this.#res.headersSent) this.fail(new GatewayError('internal', 'internal error', { cause: bug }));
      else this.#res.destroy(bug as Error);
    }
  }

  #chainEnded(outcome: ChainOutcome, err: unknown, resolved: ResolvedRequest): void {
    if (outcome === undefined) return this.#act(resolved);
    const { answer, by } = outcome;
    if (err !== undefined) this.#o.log.error({ reqId: this.#requestId, middleware: by.name, kind: by.kind, err: (err as Error)?.message ?? String(err) }, 'middleware failed inside waygate');
    if (answer.rejection) {
      this.#rejectedBy = by.name;
      this.#o.onRejected?.(this.#route!, by);
    }
    const { headers, body } = answerParts(answer);
    const noBody = body === undefined || this.#req.method === 'HEAD';
    this.#bytesOut = noBody ? 0 : body.length;
    writeOwn(this.#res, answer.status, this.#withListenerHeaders([...headers, 'x-request-id', this.#requestId]), body ?? EMPTY, this.#chain!.hooks, noBody);
  }

  /** The route's action: answer (respond, redirect) or forward. */
  #act(resolved: ResolvedRequest): void {
    const req = this.#req;
    const { host, hostHeader, path, query, view } = resolved;
    const match = resolved.match as RouteMatch<CompiledRoute>;
    const action = match.value.action;
    const hooks = this.#chain?.hooks;
    const shaped = hooks !== undefined && hooks.length > 0 ? hooks : undefined;

    switch (action.kind) {
      case 'respond': {
        const res = this.#res;
        const headers = this.#withListenerHeaders([...action.headers, 'x-request-id', this.#requestId]);
        this.#bytesOut = req.method === 'HEAD' ? 0 : action.body.length;
        if (shaped !== undefined) return writeOwn(res, action.status, headers, action.body, shaped, req.method === 'HEAD');
        res.writeHead(action.status, headers);
        res.end(req.method === 'HEAD' ? undefined : action.body);
        return;
      }
      case 'redirect': {
        const port = hostPort(hostHeader) ?? String(req.socket.localPort ?? '');
        const location = action.location({
          scheme: this.#o.scheme,
          host,
          port,
          path: path,
          query: query === '' ? '' : '?' + query,
          params: match.params,
        });
        const headers = ['location', location, 'content-length', '0', 'x-request-id', this.#requestId];
        const ops = action.responseOps;
        if (ops !== undefined) headers.push(...ops.append);
        if (shaped !== undefined) return writeOwn(this.#res, action.status, this.#withListenerHeaders(headers), '', shaped, true);
        this.#res.writeHead(action.status, this.#withListenerHeaders(headers));
        this.#res.end();
        return;
      }
      case 'forward': {
        const pool = action.choosePool();
        this.#pool = pool;
        const upstreamPath = action.rewrite(path, match.params);
        const fw = new Forwarder({
          req,
          res: this.#res,
          pool,
          path: query === '' ? upstreamPath : upstreamPath + '?' + query,
          info: {
            clientIp: this.#peerIp,
            proto: this.#o.scheme,
            host: req.headers.host ?? hostHeader ?? '',
            trusted: this.#o.trusted(this.#peerIp),
            requestId: this.#requestId,
            keepTeTrailers: pool.settings.h2,
          },
          listenerHeaders: this.#listenerHeaders,
          requestOps: this.#chain === undefined ? action.requestOps : this.#chain.requestOps(action.requestOps),
          hooks: shaped,
          responseOps: action.responseOps,
          clientIp: this.#clientIp,
          stickyToken: pool.sticky === undefined ? undefined : view.cookie(pool.sticky.options.cookie),
          bodyLimits: this.#o.bodyLimits,
          writeIdleTimeout: this.#o.writeIdleTimeout,
          observer: this,
        });
        this.#forwarder = fw;
        fw.start();
        return;
      }
    }
  }

  /** Sends the error response for `err` (ForwardObserver, and local failures). */
  fail(err: GatewayError): void {
    if (err.status >= 500 && err.code !== 'no_healthy_upstream') {
      this.#o.log.warn({ reqId: this.#requestId, code: err.code, err: err.message, pool: this.#pool?.name, target: this.#forwarder?.target?.url }, 'upstream request failed');
    }
    const retryAfter = this.#pool?.settings.retryAfter;
    const h2 = this.#req.httpVersionMajor === 2;
    const hooks = this.#chain?.hooks;
    if (hooks !== undefined && hooks.length > 0 && !this.#res.headersSent && !this.#res.destroyed) {
      // SPEC §8: waygate's own errors get the middlewares' response hooks too (errorPages, cors).
      const a = errorAnswer(err, this.#requestId, retryAfter, h2, this.#o.hsts);
      this.#bytesOut += this.#req.method === 'HEAD' ? 0 : a.body.length;
      writeOwn(this.#res, a.status, a.headers, a.body, hooks, this.#req.method === 'HEAD');
    } else this.#bytesOut += sendError(this.#res, err, this.#requestId, retryAfter, h2, this.#o.hsts);
    // HTTP/1.1 cannot trust what follows a malformed request on the same connection; an HTTP/2
    // stream error stays on its stream.
    if (err.status === 400 && !h2) this.#req.socket.destroySoon();
  }

  /** Adds the listener's own response headers (HSTS) to a response waygate writes itself. */
  #withListenerHeaders(headers: string[]): string[] {
    if (this.#o.hsts !== undefined) headers.push('strict-transport-security', this.#o.hsts);
    return headers;
  }

  /** `redirectToHttps`: 308 to the same host, path and query on the HTTPS listener. */
  #redirectToHttps(host: string, path: string, query: string): void {
    const location = httpsLocation(this.#o.redirectToHttps!.port, host, path, query);
    this.#res.writeHead(308, ['location', location, 'content-length', '0', 'x-request-id', this.#requestId]);
    this.#res.end();
  }

  attempt(pool: UpstreamPool, target: Target, err: GatewayError | undefined): void {
    this.#o.onAttempt?.(pool, target, err);
  }

  #closed(): void {
    const res = this.#res;
    const fw = this.#forwarder;
    // Ended by us and flushed. HTTP/2's writableFinished alone is the stream's, which a client's
    // RST_STREAM also finishes: a reset stream would pass for a completed response and its
    // upstream request would never be aborted.
    const completed = res.writableEnded && res.writableFinished;
    if (!completed && fw !== undefined) fw.clientClosed();
    this.#chain?.finish();
    const req = this.#req;
    const status = completed || res.headersSent ? res.statusCode : 499;
    const seconds = (performance.now() - this.#start) / 1000;
    this.#o.onDone?.(this.#route ?? '', this.#pool?.name ?? '', req.method ?? '', status, seconds);
    const access = this.#o.access;
    if (access === undefined) return;
    const end = { status, bytesIn: fw?.bytesIn ?? 0, bytesOut: (fw?.bytesOut ?? 0) + this.#bytesOut, target: fw?.target, attempts: fw?.attempts ?? 0 };
    const record = accessRecord(req, this.#requestId, this.#clientIp, this.#route, this.#pool, end, seconds);
    if (this.#rejectedBy !== undefined) record.rejectedBy = this.#rejectedBy;
    access.info(record, 'request');
  }
}

/** Returns the request listener of a public listener. */
export function createHandler(o: HandlerOptions): RequestListener {
  const listenerHeaders = o.hsts === undefined ? undefined : ['strict-transport-security', o.hsts];
  return (req, res) => {
    const exchange = new Exchange(o, req, res, listenerHeaders);
    // An HTTP/1 response has no socket while one before it on the connection is unfinished
    // (pipelining, see the top of this file). An HTTP/2 response always has one (the stream's
    // socket proxy, which resolving the request reads anyway), so a stream never waits.
    if (res.socket !== null) exchange.run();
    else exchange.runInTurn();
  };
}

/**
 * Returns the 'checkContinue' listener (RFC 9110 §10.1.1): a declared body over
 * limits.maxBodySize is refused with 413 before the client sends it; otherwise the client is told
 * to go on (100 Continue) and the request is handled like any other.
 */
export function createContinueHandler(o: HandlerOptions, handle: RequestListener): RequestListener {
  return (req, res) => {
    const cl = req.headers['content-length'];
    // A request refused anyway must not first invite its body.
    const refused = checkRequest(req) ?? (cl !== undefined && Number(cl) > o.bodyLimits.maxBodySize
      ? new GatewayError('body_too_large', 'declared body over limits.maxBodySize')
      : undefined);
    if (refused !== undefined) {
      res.shouldKeepAlive = false;
      sendError(res, refused, requestIdOf(req), undefined, req.httpVersionMajor === 2, o.hsts);
      return;
    }
    res.writeContinue();
    handle(req, res);
  };
}

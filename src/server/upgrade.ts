// WebSocket upgrades (SPEC §4), the server side: a handshake takes the same path as an HTTP
// request up to the target (validation, Host, routing, rewrites, the pool) and is then handed to
// a Tunnel (forward/tunnel.ts), which owns the socket to its end. What waygate answers by
// itself (errors, redirects, `respond` routes) is written by the tunnel on the raw socket from
// what this file decides; the access-log line is written here when the tunnel reports its end.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { GatewayError } from '../errors.ts';
import { declaresBody } from '../forward/body.ts';
import { Tunnel } from '../forward/tunnel.ts';
import type { TunnelEnd, TunnelObserver } from '../forward/tunnel.ts';
import { answerParts, ChainRequest, runChain } from '../middleware/chain.ts';
import type { ChainOutcome } from '../middleware/chain.ts';
import type { UpstreamPool } from '../upstream/pool.ts';
import type { Target } from '../upstream/target.ts';
import { accessRecord } from './access.ts';
import type { HandlerOptions } from './handler.ts';
import { clientAddress, hostPort, httpsLocation, peerAddress, requestIdOf, resolveRequest } from './resolve.ts';
import type { ResolvedRequest } from './resolve.ts';
import { sendError } from './respond.ts';

/** What the upgrade handler needs: the request handler's options, plus shutdown tracking. */
export interface UpgradeOptions extends HandlerOptions {
  /**
   * Client sockets of live upgrades are added here and removed when they close. Node's
   * `closeAllConnections` no longer sees an upgraded socket, so shutdown destroys these at its
   * deadline instead (the listener's TrackedConnections.sockets).
   */
  readonly tunnels?: Set<Socket>;
  /**
   * Idle time (ms) after which a tunnel with no byte in either direction is closed; 0 disables
   * it. Default: the pool's `timeouts.idle`, the same bound a silent HTTP body gets.
   */
  readonly tunnelIdleTimeout?: number;
}

/** The event handler of a server's 'upgrade' event. */
export type UpgradeListener = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

/**
 * True when the handshake asks for WebSocket: a GET whose Upgrade list includes the "websocket"
 * keyword (RFC 6455 §4.1 and §4.2.1, case-insensitive; RFC 9110 §7.8 makes Upgrade a list).
 */
function isWebSocket(req: IncomingMessage): boolean {
  const upgrade = req.headers.upgrade;
  if (req.method !== 'GET' || typeof upgrade !== 'string') return false;
  for (const token of upgrade.split(',')) if (token.trim().toLowerCase() === 'websocket') return true;
  return false;
}

/** One upgrade request, from the handshake to its access-log line. */
class Upgrade implements TunnelObserver {
  readonly #o: UpgradeOptions;
  readonly #req: IncomingMessage;
  readonly #start = performance.now();
  readonly #peerIp: string;
  readonly #clientIp: string;
  readonly #requestId: string;
  readonly #tunnel: Tunnel;
  #route: string | undefined;
  #pool: UpstreamPool | undefined;
  /** SPEC §8: the handshake's passage through its route's middlewares (request phase only). */
  #chain: ChainRequest | undefined;
  #rejectedBy: string | undefined;

  constructor(o: UpgradeOptions, req: IncomingMessage, socket: Socket, head: Buffer) {
    // First of all: the socket has an owner before anything can happen to it.
    this.#tunnel = new Tunnel({ req, socket, head, tunnels: o.tunnels, writeIdleTimeout: o.writeIdleTimeout, observer: this });
    this.#o = o;
    this.#req = req;
    this.#peerIp = peerAddress(req);
    this.#clientIp = clientAddress(this.#peerIp, req.headers['x-forwarded-for'], o.trusted);
    this.#requestId = requestIdOf(req);
  }

  /** Routes the handshake and hands it on; a failure of waygate's own costs this handshake only. */
  run(): void {
    try {
      this.#dispatch();
    } catch (err) {
      // Thrown here it would escape node:http's 'upgrade' emit and end the process.
      this.#o.log.error({ reqId: this.#requestId, err: (err as Error).message }, 'websocket upgrade failed inside waygate');
      this.#tunnel.abort(new GatewayError('internal', 'internal error', { cause: err }));
    }
  }

  #dispatch(): void {
    const req = this.#req;
    const o = this.#o;
    if (!isWebSocket(req)) return this.#refuse(new GatewayError('bad_request', 'only WebSocket upgrades are supported'));
    // RFC 6455 §4.1 gives the handshake no body. One declared anyway is either held back (and an
    // upstream that reads the request as plain HTTP waits for it until timeouts.response) or
    // sent after the 101 as if it were frames: neither is right, so it is refused.
    if (declaresBody(req)) return this.#refuse(new GatewayError('bad_request', 'a WebSocket handshake has no body'));
    const resolved = resolveRequest(req, o);
    if (resolved instanceof GatewayError) return this.#refuse(resolved);
    const { host, hostHeader, path, query, match, view } = resolved;
    if (o.redirectToHttps !== undefined) {
      return this.#answer(308, ['location', httpsLocation(o.redirectToHttps.port, host, path, query), 'content-length', '0'], undefined);
    }
    if (match === undefined) return this.#refuse(new GatewayError('no_route', 'no route matched'));
    this.#route = match.name;
    const middlewares = match.value.middlewares;
    if (middlewares === undefined) return this.#act(resolved);
    const chain = new ChainRequest(req, { scheme: o.scheme, host, hostHeader: hostHeader ?? '', clientIp: this.#clientIp, requestId: this.#requestId, route: match.name, websocket: true });
    this.#chain = chain;
    runChain(middlewares, chain, (outcome, err) => this.#chainDone(outcome, err, resolved));
  }

  /** The chain ended: its answer goes out on the socket, or the route's action runs (not once the session ended). */
  #chainDone(outcome: ChainOutcome, err: unknown, resolved: ResolvedRequest): void {
    if (this.#chain!.finished) return;
    try {
      if (outcome === undefined) return this.#act(resolved);
      const { answer, by } = outcome;
      if (err !== undefined) this.#o.log.error({ reqId: this.#requestId, middleware: by.name, kind: by.kind, err: (err as Error)?.message ?? String(err) }, 'middleware failed inside waygate');
      if (answer.rejection) {
        this.#rejectedBy = by.name;
        this.#o.onRejected?.(this.#route!, by);
      }
      const { headers, body } = answerParts(answer);
      this.#answer(answer.status, headers, body);
    } catch (e) {
      // After an await, nothing catches this but the process: it stays this handshake's.
      this.#o.log.error({ reqId: this.#requestId, err: (e as Error).message }, 'websocket upgrade failed inside waygate');
      this.#tunnel.abort(new GatewayError('internal', 'internal error', { cause: e }));
    }
  }

  /** The route's action: answer (respond, redirect) or tunnel to the pool. */
  #act(resolved: ResolvedRequest): void {
    const req = this.#req;
    const o = this.#o;
    const { host, hostHeader, path, query, view } = resolved;
    const match = resolved.match!;
    const action = match.value.action;
    switch (action.kind) {
      case 'respond':
        return this.#answer(action.status, [...action.headers], action.body);
      case 'redirect': {
        const port = hostPort(hostHeader) ?? String(req.socket.localPort ?? '');
        const location = action.location({ scheme: o.scheme, host, port, path, query: query === '' ? '' : '?' + query, params: match.params });
        const headers = ['location', location, 'content-length', '0'];
        if (action.responseOps !== undefined) headers.push(...action.responseOps.append);
        return this.#answer(action.status, headers, undefined);
      }
      case 'forward': {
        const pool = action.choosePool();
        this.#pool = pool;
        const upstreamPath = action.rewrite(path, match.params);
        this.#tunnel.forward({
          pool,
          path: query === '' ? upstreamPath : upstreamPath + '?' + query,
          info: {
            clientIp: this.#peerIp,
            proto: o.scheme,
            host: req.headers.host ?? hostHeader ?? '',
            trusted: o.trusted(this.#peerIp),
            requestId: this.#requestId,
            keepTeTrailers: false,
            keepUpgrade: true,
          },
          requestOps: this.#chain === undefined ? action.requestOps : this.#chain.requestOps(action.requestOps),
          responseOps: action.responseOps,
          clientIp: this.#clientIp,
          stickyToken: pool.sticky === undefined ? undefined : view.cookie(pool.sticky.options.cookie),
          listenerHeaders: o.hsts === undefined ? undefined : ['strict-transport-security', o.hsts],
          idleTimeout: o.tunnelIdleTimeout,
        });
        return;
      }
    }
  }

  /** Refuses the handshake with waygate's error response for `err`. */
  #refuse(err: GatewayError): void {
    this.#tunnel.answer((res) => this.fail(err, res));
  }

  /** Answers with a response of waygate's own (respond, redirect). */
  #answer(status: number, headers: string[], body: Buffer | undefined): void {
    headers.push('x-request-id', this.#requestId);
    if (this.#o.hsts !== undefined) headers.push('strict-transport-security', this.#o.hsts);
    this.#tunnel.answer((res) => {
      res.writeHead(status, headers);
      res.end(body);
      return body?.length ?? 0;
    });
  }

  // TunnelObserver -----------------------------------------------------------------------------

  fail(err: GatewayError, res: ServerResponse): number {
    if (err.status >= 500 && err.code !== 'no_healthy_upstream') {
      this.#o.log.warn({ reqId: this.#requestId, code: err.code, err: err.message, pool: this.#pool?.name, target: this.#tunnel.target?.url }, 'websocket upgrade failed');
    }
    return sendError(res, err, this.#requestId, this.#pool?.settings.retryAfter, false, this.#o.hsts);
  }

  attempt(pool: UpstreamPool, target: Target, err: GatewayError | undefined): void {
    this.#o.onAttempt?.(pool, target, err);
  }

  done(end: TunnelEnd): void {
    const req = this.#req;
    const seconds = (performance.now() - this.#start) / 1000;
    this.#chain?.finish();
    this.#o.onDone?.(this.#route ?? '', this.#pool?.name ?? '', req.method ?? '', end.status, seconds);
    const access = this.#o.access;
    if (access === undefined) return;
    const record = accessRecord(req, this.#requestId, this.#clientIp, this.#route, this.#pool, end, seconds);
    if (this.#rejectedBy !== undefined) record.rejectedBy = this.#rejectedBy;
    access.info(record, 'request');
  }
}

/**
 * Returns the listener for a server's 'upgrade' event: WebSocket handshakes are routed like
 * requests and tunnelled to the chosen target; anything else gets 400 and the socket closes.
 */
export function createUpgradeHandler(o: UpgradeOptions): UpgradeListener {
  return (req, socket, head) => {
    const upgrade = new Upgrade(o, req, socket as Socket, head);
    afterPipelinedResponses(socket as Socket, () => upgrade.run());
  };
}

/** The response node:http is writing on a socket (internal, stable since Node 0.x), if any. */
type HttpSocket = Socket & { _httpMessage?: ServerResponse | null };

/**
 * Runs `start` once no response to an earlier request on the connection is still being written.
 * node:http emits 'upgrade' as soon as it parses the handshake, even behind a pipelined request
 * still being answered (SPEC §4: pipelined requests are served one at a time, in order): started
 * at once, the 101 and the tunnel's bytes would interleave with that response. node:http has
 * already stopped reading the socket (bytes wait in its buffer); each finished response may hand
 * the socket to the next queued one, so this waits until none is left.
 */
function afterPipelinedResponses(socket: HttpSocket, start: () => void): void {
  const pending = socket._httpMessage;
  if (pending === undefined || pending === null || socket.destroyed) return start();
  let called = false;
  const next = (): void => {
    if (called) return;
    called = true;
    // A connection that died meanwhile: the tunnel sees the closed socket and ends the session.
    if (socket.destroyed) return start();
    // node:http re-armed its keep-alive timeout when that response finished: not this session's.
    socket.setTimeout(0);
    afterPipelinedResponses(socket, start);
  };
  pending.once('finish', next);
  pending.once('close', next);
}

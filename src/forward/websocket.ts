// WebSocket upgrades (SPEC §4): a handshake takes the same path as an HTTP request up to the
// target (validation, Host, routing, rewrites, sticky pin, balancing), then http-proxy-3 sends
// the handshake upstream and pipes the two sockets. Everything waygate answers by itself is a
// plain HTTP/1.1 response written on the raw socket, which is then closed.
import { ServerResponse } from 'node:http';
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { isIP } from 'node:net';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { ProxyServer } from 'http-proxy-3';
import { GatewayError, fromUpstreamError } from '../errors.ts';
import { clientAddress, hostPort, httpsLocation, peerAddress, requestIdOf, resolveRequest } from '../server/resolve.ts';
import type { HandlerOptions } from '../server/handler.ts';
import { sendError } from '../server/respond.ts';
import type { UpstreamPool } from '../upstream/pool.ts';
import type { Target } from '../upstream/target.ts';
import { upstreamRequestHeaders } from './headers.ts';
import type { HeaderOps } from './headers.ts';

/**
 * Once either side of a tunnel has closed, the other is ended at once (http-proxy-3 does that)
 * and destroyed after this long if it has not closed by then: a peer that ignores the FIN must
 * not hold a socket and an in-flight count.
 */
export const TUNNEL_CLOSE_GRACE_MS = 1000;

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

// One proxy for every tunnel: per-tunnel settings travel in the per-call options, and the
// tunnel behind a proxied request is found through this map (http-proxy-3 events carry `req`).
const handshaking = new WeakMap<IncomingMessage, Tunnel>();
let sharedProxy: ProxyServer | undefined;
let loading: Promise<unknown> | undefined;

/**
 * Loads http-proxy-3 at the first upgrade, not at start: a proxy that never sees a WebSocket
 * does not carry it in memory.
 */
function loadProxy(): Promise<unknown> {
  loading ??= import('http-proxy-3').then(({ ProxyServer }) => {
    sharedProxy ??= createProxy(ProxyServer);
  });
  return loading;
}

function createProxy(ProxyServer: typeof import('http-proxy-3').ProxyServer): ProxyServer {
  // ignorePath: the upstream path is set verbatim on the outgoing request (see prepare()), never
  // re-parsed by WHATWG URL rules (which would turn "\" into "/" and re-encode bytes).
  const p = new ProxyServer({ ws: true, xfwd: false, prependPath: false, ignorePath: true });
  p.on('proxyReqWs', (proxyReq, req) => handshaking.get(req)?.prepare(proxyReq));
  // Client-socket errors are re-emitted here; each tunnel handles its sockets itself, and an
  // 'error' without a listener would throw.
  p.on('error', () => {});
  return p;
}

/** True when the handshake asks for WebSocket (RFC 6455 §4.1: a GET with `Upgrade: websocket`). */
function isWebSocket(req: IncomingMessage): boolean {
  const upgrade = req.headers.upgrade;
  return req.method === 'GET' && typeof upgrade === 'string' && upgrade.trim().toLowerCase() === 'websocket';
}

/** Groups a flat [name, value, …] list by lower-case name, keeping the first spelling and every value. */
function groupHeaders(flat: readonly string[]): Map<string, { name: string; values: string[] }> {
  const out = new Map<string, { name: string; values: string[] }>();
  for (let i = 0; i < flat.length; i += 2) {
    const lower = flat[i].toLowerCase();
    const entry = out.get(lower);
    if (entry === undefined) out.set(lower, { name: flat[i], values: [flat[i + 1]] });
    else entry.values.push(flat[i + 1]);
  }
  return out;
}

/**
 * The TLS settings of a handshake to an https:// target: the pool's `tls` (CA, verification,
 * client certificate) and the same server name the HTTP path uses — `tls.serverName`, else the
 * target's host, never the client's Host; no SNI for an IP (RFC 6066 §3). An Agent's options
 * override the request's, so this is also what keeps Node from deriving SNI from the Host header.
 */
function tlsAgent(target: Target, pool: UpstreamPool): HttpsAgent {
  const tls = pool.settings.connect.tls;
  const name = tls?.servername ?? new URL(target.url).hostname.replace(/^\[|\]$/g, '');
  return new HttpsAgent({
    keepAlive: false,
    ca: tls?.ca,
    cert: tls?.cert,
    key: tls?.key,
    rejectUnauthorized: tls?.rejectUnauthorized ?? true,
    // The certificate is checked against this name too ('' sends no SNI and checks the address).
    servername: isIP(name) === 0 ? name : '',
  });
}

/** One upgrade request, from the handshake to the end of its tunnel and its access-log line. */
class Tunnel {
  readonly #o: UpgradeOptions;
  readonly #req: IncomingMessage;
  readonly #socket: Socket;
  readonly #head: Buffer;
  readonly #start = performance.now();
  readonly #peerIp: string;
  readonly #clientIp: string;
  readonly #requestId: string;
  #route: string | undefined;
  #pool: UpstreamPool | undefined;
  #target: Target | undefined;
  #release: (() => void) | undefined;
  #headers: string[] = [];
  #path = '/';
  #stickyToken: string | undefined;
  #responseOps: HeaderOps | undefined;
  #proxyReq: ClientRequest | undefined;
  #upstream: Socket | undefined;
  /** The status the client got: 101, the upstream's refusal, or waygate's error; undefined while none. */
  #status: number | undefined;
  #answered = false;
  #clientClosed = false;
  #upstreamClosed = false;
  #done = false;
  #timer: NodeJS.Timeout | undefined;
  #bytesIn = 0;
  #bytesOut = 0;

  constructor(o: UpgradeOptions, req: IncomingMessage, socket: Socket, head: Buffer) {
    this.#o = o;
    this.#req = req;
    this.#socket = socket;
    this.#head = head;
    this.#peerIp = peerAddress(req);
    this.#clientIp = clientAddress(this.#peerIp, req.headers['x-forwarded-for'], o.trusted);
    this.#requestId = requestIdOf(req);
    // Node removed its own listeners when it handed the socket over: without this, a reset
    // from the client would be an uncaught 'error'.
    socket.on('error', () => {});
    socket.once('close', () => this.#clientGone());
    o.tunnels?.add(socket);
  }

  run(): void {
    const req = this.#req;
    const o = this.#o;
    if (!isWebSocket(req)) return this.#fail(new GatewayError('bad_request', 'only WebSocket upgrades are supported'));
    const resolved = resolveRequest(req, o);
    if (resolved instanceof GatewayError) return this.#fail(resolved);
    const { host, hostHeader, path, query, match, view } = resolved;
    if (o.redirectToHttps !== undefined) {
      return this.#answer(308, ['location', httpsLocation(o.redirectToHttps.port, host, path, query), 'content-length', '0'], undefined);
    }
    if (match === undefined) return this.#fail(new GatewayError('no_route', 'no route matched'));
    this.#route = match.name;
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
        this.#path = query === '' ? upstreamPath : upstreamPath + '?' + query;
        this.#responseOps = action.responseOps;
        this.#stickyToken = pool.sticky === undefined ? undefined : view.cookie(pool.sticky.options.cookie);
        const target = this.#pick(pool);
        if (target === undefined) return;
        this.#headers = upstreamRequestHeaders(req.rawHeaders, {
          clientIp: this.#peerIp,
          proto: o.scheme,
          host: req.headers.host ?? hostHeader ?? '',
          trusted: o.trusted(this.#peerIp),
          requestId: this.#requestId,
          keepTeTrailers: false,
          keepUpgrade: true,
        }, action.requestOps);
        return this.#forward(pool, target);
      }
    }
  }

  /** The target, as the HTTP path picks it (UpstreamPool.first); undefined after answering the error. */
  #pick(pool: UpstreamPool): Target | undefined {
    const target = pool.first({ clientIp: this.#clientIp }, this.#stickyToken);
    if (!(target instanceof GatewayError)) return target;
    this.#fail(target);
    return undefined;
  }

  #forward(pool: UpstreamPool, target: Target): void {
    this.#target = target;
    // Held for the life of the tunnel: least-connections sees long-lived sessions as load.
    this.#release = target.acquire();
    const s = pool.settings;
    const https = target.origin.startsWith('https:');
    handshaking.set(this.#req, this);
    // The handshake answer is bounded like a response header (timeouts.response).
    if (s.responseTimeout > 0) {
      this.#timer = setTimeout(() => {
        this.#proxyReq?.destroy(new GatewayError('upstream_timeout', 'no answer to the WebSocket handshake in time'));
      }, s.responseTimeout);
    }
    sharedProxy!.ws(this.#req, this.#socket, this.#head, {
      target: target.origin,
      agent: https ? tlsAgent(target, pool) : false,
      connectTimeout: s.connect.connectTimeout,
    }, (err) => this.#upstreamError(err));
  }

  /** Called by the proxy with the outgoing handshake before it is sent: our headers and path. */
  prepare(proxyReq: ClientRequest): void {
    handshaking.delete(this.#req);
    this.#proxyReq = proxyReq;
    // The client left while the proxy was setting up (the close listener ran first).
    if (this.#clientClosed) {
      proxyReq.destroy();
      return;
    }
    for (const name of proxyReq.getHeaderNames()) proxyReq.removeHeader(name);
    for (const { name, values } of groupHeaders(this.#headers).values()) proxyReq.setHeader(name, values.length === 1 ? values[0] : values);
    // Sent as is: the normalised, rewritten path (a writable property until the head is sent).
    proxyReq.path = this.#path;
    // These run before the proxy's own listeners (it adds them after emitting proxyReqWs).
    proxyReq.once('upgrade', (res: IncomingMessage, upstream: Socket) => this.#upgraded(res, upstream));
    proxyReq.once('response', (res: IncomingMessage) => this.#refused(res));
  }

  /** The upstream switched protocols: finish the client's 101 headers, start the tunnel clock. */
  #upgraded(res: IncomingMessage, upstream: Socket): void {
    this.#clearTimer();
    this.#upstream = upstream;
    upstream.once('close', () => this.#upstreamGone());
    if (this.#clientClosed) {
      upstream.destroy();
      return;
    }
    this.#answered = true;
    this.#status = 101;
    this.#o.onAttempt?.(this.#pool!, this.#target!, undefined);
    const h = res.headers;
    this.#finishHeaders(h);
    const sticky = this.#pool!.sticky;
    if (sticky !== undefined && sticky.token(this.#target!) !== this.#stickyToken) {
      const cookie = sticky.setCookie(this.#target!, this.#o.scheme === 'https');
      h['set-cookie'] = [...(h['set-cookie'] ?? []), cookie];
    }
    // Counted from here (the head the proxy unshifted included); the proxy pipes in the same
    // tick, so these listeners cannot make either side drop a byte.
    this.#socket.on('data', (c: Buffer) => {
      this.#bytesIn += c.length;
    });
    upstream.on('data', (c: Buffer) => {
      this.#bytesOut += c.length;
    });
    upstream.on('error', () => {});
    const idle = this.#o.tunnelIdleTimeout ?? this.#pool!.settings.idleTimeout;
    if (idle > 0) {
      // Any byte either way is a write or a read on the client socket, so one timer covers both.
      this.#socket.setTimeout(idle);
      this.#socket.once('timeout', () => {
        this.#socket.destroy();
        upstream.destroy();
      });
    }
  }

  /** The upstream answered the handshake with an HTTP response: the proxy relays it, then closes. */
  #refused(res: IncomingMessage): void {
    this.#clearTimer();
    this.#answered = true;
    this.#status = res.statusCode;
    this.#o.onAttempt?.(this.#pool!, this.#target!, undefined);
    this.#finishHeaders(res.headers);
    // The proxy would otherwise echo the client's `Connection: upgrade`; the socket closes after.
    res.headers.connection = 'close';
    res.on('data', (c: Buffer) => {
      this.#bytesOut += c.length;
    });
  }

  /**
   * Applies to the upstream's handshake answer what every response gets: the route's response
   * header operations (never on the fields that make the 101 an upgrade), `x-request-id`, and
   * the listener's HSTS unless the upstream set it.
   */
  #finishHeaders(h: IncomingHttpHeaders): void {
    const ops = this.#responseOps;
    if (ops !== undefined) {
      for (const name of ops.drop) if (name !== 'connection' && name !== 'upgrade') delete h[name];
      for (let i = 0; i < ops.append.length; i += 2) {
        const name = ops.append[i].toLowerCase();
        if (name === 'connection' || name === 'upgrade') continue;
        const prev = h[name];
        h[name] = prev === undefined ? ops.append[i + 1] : [...(Array.isArray(prev) ? prev : [prev]), ops.append[i + 1]];
      }
    }
    h['x-request-id'] = this.#requestId;
    if (this.#o.hsts !== undefined) h['strict-transport-security'] ??= this.#o.hsts;
  }

  /** A proxy error: before any answer, the client gets 502/504; after one, the socket just closes. */
  #upstreamError(err: Error): void {
    this.#clearTimer();
    if (this.#answered || this.#clientClosed) return;
    const e = (err as NodeJS.ErrnoException).code === 'ECONNECT_TIMEOUT'
      ? new GatewayError('upstream_timeout', 'connect timeout', { cause: err, beforeSend: true })
      : fromUpstreamError(err);
    this.#o.onAttempt?.(this.#pool!, this.#target!, e);
    this.#fail(e);
  }

  /** Sends waygate's error response for `err` on the raw socket. */
  #fail(err: GatewayError): void {
    if (err.status >= 500 && err.code !== 'no_healthy_upstream') {
      this.#o.log.warn({ reqId: this.#requestId, code: err.code, err: err.message, pool: this.#pool?.name, target: this.#target?.url }, 'websocket upgrade failed');
    }
    this.#respond((res) => {
      this.#bytesOut += sendError(res, err, this.#requestId, this.#pool?.settings.retryAfter, false, this.#o.hsts);
    });
  }

  /** Answers with a response of waygate's own (respond, redirect). */
  #answer(status: number, headers: string[], body: Buffer | undefined): void {
    headers.push('x-request-id', this.#requestId);
    if (this.#o.hsts !== undefined) headers.push('strict-transport-security', this.#o.hsts);
    this.#respond((res) => {
      res.writeHead(status, headers);
      this.#bytesOut += body?.length ?? 0;
      res.end(body);
    });
  }

  /**
   * Writes one HTTP/1.1 response on the raw socket through a ServerResponse (status line, Date,
   * `Connection: close`, the same error bodies as the HTTP path), then closes the socket.
   */
  #respond(write: (res: ServerResponse) => void): void {
    this.#answered = true;
    const socket = this.#socket;
    if (socket.destroyed || !socket.writable) {
      socket.destroy();
      return;
    }
    const res = new ServerResponse(this.#req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket);
    res.once('finish', () => {
      res.detachSocket(socket);
      socket.destroySoon();
    });
    write(res);
    this.#status = res.statusCode;
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #clientGone(): void {
    this.#clientClosed = true;
    this.#o.tunnels?.delete(this.#socket);
    handshaking.delete(this.#req);
    this.#clearTimer();
    // A handshake still in progress is abandoned (its error reaches #upstreamError, ignored).
    if (this.#upstream === undefined) this.#proxyReq?.destroy();
    else if (!this.#upstreamClosed) this.#closeSoon(this.#upstream);
    this.#maybeFinish();
  }

  #upstreamGone(): void {
    this.#upstreamClosed = true;
    if (!this.#clientClosed) this.#closeSoon(this.#socket);
    this.#maybeFinish();
  }

  /** Ends `socket` now and destroys it after the grace period if it is still open. */
  #closeSoon(socket: Socket): void {
    socket.end();
    const t = setTimeout(() => socket.destroy(), TUNNEL_CLOSE_GRACE_MS);
    t.unref();
    socket.once('close', () => clearTimeout(t));
  }

  /** Ends the session once the client socket and the upstream socket (if any) are both closed. */
  #maybeFinish(): void {
    if (this.#done || !this.#clientClosed || (this.#upstream !== undefined && !this.#upstreamClosed)) return;
    this.#done = true;
    const release = this.#release;
    this.#release = undefined;
    release?.();
    const req = this.#req;
    const status = this.#status ?? 499;
    const seconds = (performance.now() - this.#start) / 1000;
    this.#o.onDone?.(this.#route ?? '', this.#pool?.name ?? '', req.method ?? '', status, seconds);
    this.#o.access?.info({
      reqId: this.#requestId,
      method: req.method,
      host: req.headers.host ?? '',
      path: req.url,
      status,
      bytesIn: this.#bytesIn,
      bytesOut: this.#bytesOut,
      durationMs: Math.round(seconds * 1e6) / 1000,
      route: this.#route ?? null,
      pool: this.#pool?.name ?? null,
      target: this.#target?.url ?? null,
      attempts: this.#target === undefined ? 0 : 1,
      clientIp: this.#clientIp,
      userAgent: req.headers['user-agent'] ?? null,
      proto: `HTTP/${req.httpVersion}`,
    }, 'request');
  }
}

/**
 * Returns the listener for a server's 'upgrade' event: WebSocket handshakes are routed like
 * requests and tunnelled to the chosen target; anything else gets 400 and the socket closes.
 */
export function createUpgradeHandler(o: UpgradeOptions): UpgradeListener {
  return (req, socket, head) => {
    if (sharedProxy !== undefined) {
      new Tunnel(o, req, socket as Socket, head).run();
      return;
    }
    // Bytes the client sends meanwhile stay in the socket's buffer (nothing reads it yet).
    loadProxy().then(
      () => {
        // A client that left while the module loaded has nothing left to serve.
        if (!socket.destroyed) new Tunnel(o, req, socket as Socket, head).run();
      },
      (err: unknown) => {
        o.log.error({ err: (err as Error).message }, 'cannot load the WebSocket proxy');
        socket.destroy();
      },
    );
  };
}

// TCP balancing (SPEC §7): one TcpSession per client connection, from the accept to the log
// line. It reads the ClientHello only when the listener's routes need it, routes, checks the
// limits, connects to a target (another one when the connect fails before any byte went out),
// writes the PROXY header, then relays bytes both ways with backpressure and half-close until
// both sides are done. Every exit path goes through #end exactly once: timers cleared, the
// target released, the counters and the metrics updated, one "connection" line written.
import { connect as netConnect } from 'node:net';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { isAvailable } from '../balance/policy.ts';
import { GatewayError } from '../errors.ts';
import type { AccessLogger, Logger } from '../observe/logger.ts';
import type { Metrics } from '../observe/metrics.ts';
import type { Runtime } from '../runtime.ts';
import { proxiedAddress, proxiedDestination } from '../server/proxy-protocol.ts';
import type { CertStore } from '../server/tls/index.ts';
import { secureOptions } from '../server/tls/index.ts';
import type { TlsPolicy } from '../server/tls/index.ts';
import type { UpstreamPool } from '../upstream/pool.ts';
import type { Target } from '../upstream/target.ts';
import { HelloReader } from './hello.ts';
import { proxyHeader } from './proxy-header.ts';
import type { TcpRoute } from './route.ts';

/** How a TCP connection ended (SPEC §7), as its log line and metric label say. */
export type Termination =
  | 'client_close' | 'upstream_close' | 'idle_timeout' | 'connect_error' | 'no_route' | 'no_healthy_upstream'
  | 'limit' | 'peek_timeout' | 'bad_hello' | 'target_down' | 'shutdown';

/** What TCP sessions need from the gateway. */
export interface TcpWiring {
  readonly log: Logger;
  /** The connection log (the access log's destination); undefined when access logging is off. */
  readonly access: AccessLogger | undefined;
  readonly metrics: Metrics;
  /** The routing table in force, read once per connection at its start. */
  readonly runtime: () => Runtime;
  /** The certificates of `certs/`, for `tls: terminate`. */
  readonly certs: { readonly store: CertStore; readonly policy: TlsPolicy };
  /** One connect attempt to a target ended (`err` undefined when it connected): metrics, passive health. */
  readonly attempted: (pool: UpstreamPool, target: Target, err: GatewayError | undefined) => void;
}

/** Per-listener settings a session reads. */
export interface TcpListenerSettings {
  readonly name: string;
  /** Longest wait for a complete ClientHello (ms). */
  readonly peekTimeout: number;
}

let nextId = 0;
const ID_PREFIX = process.pid.toString(36) + '-';

/** Every TCP session of one gateway process, with the counters the limits read (they outlive reloads). */
export class TcpProxy {
  readonly #w: TcpWiring;
  readonly #live = new Set<TcpSession>();
  readonly #byTarget = new Map<Target, Set<TcpSession>>();
  /** Open connections by route name, and by route name + client address (limits). */
  readonly #routeOpen = new Map<string, number>();
  readonly #clientOpen = new Map<string, number>();
  #closing = false;
  #drained: (() => void) | undefined;

  constructor(w: TcpWiring) {
    this.#w = w;
  }

  get wiring(): TcpWiring {
    return this.#w;
  }

  /** Open sessions right now. */
  get size(): number {
    return this.#live.size;
  }

  /**
   * Takes over an accepted client socket. `hello`, when given, is what a shared HTTPS port
   * already read (its bytes not yet forwarded) and `route` the route it chose.
   */
  handle(socket: Socket, listener: TcpListenerSettings, prefetched?: { reader: HelloReader; route: TcpRoute; runtime: Runtime }): void {
    if (this.#closing) {
      socket.on('error', ignore);
      socket.destroy();
      return;
    }
    // A client's FIN goes on to the target, which may still answer (a socket from the shared
    // HTTPS port was accepted with the HTTPS server's options).
    socket.allowHalfOpen = true;
    const s = new TcpSession(this, socket, listener, prefetched);
    this.#live.add(s);
    s.start();
  }

  /** Counts a session in against its route's limits; returns false (nothing counted) when a limit is reached. */
  admit(route: TcpRoute, clientIp: string): boolean {
    const open = this.#routeOpen.get(route.name) ?? 0;
    if (route.maxConnections !== undefined && open >= route.maxConnections) return false;
    const key = route.name + '\u0000' + clientIp;
    const mine = this.#clientOpen.get(key) ?? 0;
    if (route.perClient !== undefined && mine >= route.perClient) return false;
    this.#routeOpen.set(route.name, open + 1);
    this.#clientOpen.set(key, mine + 1);
    return true;
  }

  /** Releases what admit() counted. */
  release(route: TcpRoute, clientIp: string): void {
    const open = (this.#routeOpen.get(route.name) ?? 1) - 1;
    if (open <= 0) this.#routeOpen.delete(route.name);
    else this.#routeOpen.set(route.name, open);
    const key = route.name + '\u0000' + clientIp;
    const mine = (this.#clientOpen.get(key) ?? 1) - 1;
    if (mine <= 0) this.#clientOpen.delete(key);
    else this.#clientOpen.set(key, mine);
  }

  /** A session is connected to `target` (for onTargetDown: close). */
  bind(s: TcpSession, target: Target): void {
    let set = this.#byTarget.get(target);
    if (set === undefined) this.#byTarget.set(target, (set = new Set()));
    set.add(s);
  }

  /** A session is over. */
  forget(s: TcpSession, target: Target | undefined): void {
    this.#live.delete(s);
    if (target !== undefined) {
      const set = this.#byTarget.get(target);
      set?.delete(s);
      if (set !== undefined && set.size === 0) this.#byTarget.delete(target);
    }
    if (this.#live.size === 0) this.#drained?.();
  }

  /** Health checks evicted `target`: closes its sessions when their pool says `onTargetDown: close`. */
  targetDown(target: Target, close: boolean): void {
    if (!close) return;
    for (const s of [...(this.#byTarget.get(target) ?? [])]) s.abort('target_down');
  }

  /**
   * Shutdown: no new session is taken; the open ones flow for up to `graceMs`, then are
   * closed (termination `shutdown`). Resolves when none is left.
   */
  async drain(graceMs: number): Promise<void> {
    this.#closing = true;
    if (this.#live.size === 0) return;
    const done = new Promise<void>((resolve) => (this.#drained = resolve));
    const timer = setTimeout(() => {
      for (const s of [...this.#live]) s.abort('shutdown');
    }, graceMs);
    timer.unref();
    await done;
    clearTimeout(timer);
  }
}

/** One client connection, from accept to its log line. */
class TcpSession {
  readonly #proxy: TcpProxy;
  readonly #w: TcpWiring;
  readonly #client: Socket;
  readonly #listener: TcpListenerSettings;
  readonly #id = ID_PREFIX + (nextId++).toString(36);
  readonly #started = performance.now();
  readonly #clientIp: string;
  readonly #clientPort: number;
  #runtime: Runtime;
  #reader: HelloReader | undefined;
  #sni: string | undefined;
  #alpn: readonly string[] = [];
  #route: TcpRoute | undefined;
  #admitted = false;
  #pool: UpstreamPool | undefined;
  #target: Target | undefined;
  #release: (() => void) | undefined;
  #connectMs: number | undefined;
  /** The client side as the relay sees it: the socket, or the TLSSocket of `tls: terminate`. */
  #down: Socket;
  #up: Socket | undefined;
  #bytesIn = 0;
  #bytesOut = 0;
  #lastActivity = 0;
  #timer: NodeJS.Timeout | undefined;
  #halfClose: NodeJS.Timeout | undefined;
  #downEnded = false;
  #upEnded = false;
  #downClosed = false;
  #upClosed = false;
  #termination: Termination | undefined;
  /** True once both sides are open and bytes flow. */
  #relaying = false;
  #done = false;

  constructor(proxy: TcpProxy, socket: Socket, listener: TcpListenerSettings, prefetched: { reader: HelloReader; route: TcpRoute; runtime: Runtime } | undefined) {
    this.#proxy = proxy;
    this.#w = proxy.wiring;
    this.#client = socket;
    this.#down = socket;
    this.#listener = listener;
    const carried = proxiedAddress(socket);
    this.#clientIp = carried?.address ?? socket.remoteAddress ?? '';
    this.#clientPort = carried?.port ?? socket.remotePort ?? 0;
    this.#runtime = prefetched?.runtime ?? this.#w.runtime();
    if (prefetched !== undefined) {
      this.#reader = prefetched.reader;
      this.#route = prefetched.route;
      this.#takeHello();
    }
    // One owner from the first moment: an error before the relay starts ends the session.
    socket.on('error', this.#onClientError);
    socket.on('close', this.#onClientClose);
  }

  start(): void {
    if (this.#route !== undefined) return this.#routed(this.#route);
    const router = this.#runtime.tcp;
    if (!router.needsHello(this.#listener.name)) return this.#route_();
    // Peek: 'readable' + read() keeps the socket out of flowing mode, so no byte is lost
    // between the hello and the relay, and an absolute deadline (not an idle timer) bounds a
    // client that trickles.
    this.#reader = new HelloReader();
    this.#timer = setTimeout(() => this.#end('peek_timeout'), this.#listener.peekTimeout);
    this.#client.on('readable', this.#onPeek);
    this.#client.on('end', this.#onPeekEnd);
  }

  readonly #onPeek = (): void => {
    const reader = this.#reader!;
    for (let chunk: Buffer | null; !this.#done && (chunk = this.#client.read() as Buffer | null) !== null; ) {
      const r = reader.push(chunk);
      if (r.kind === 'more') continue;
      this.#stopPeek();
      if (r.kind === 'bad') return this.#notHello(reader.bytes, r.reason);
      this.#takeHello();
      return this.#route_();
    }
  };

  /**
   * The bytes are no ClientHello. SPEC §7 closes non-TLS bytes "where only SNI routes exist":
   * beside a route that needs no hello (no sni, no alpn) they are that route's, forwarded as they
   * came. A broken TLS hello, or one over the limit, is closed whatever the routes.
   */
  #notHello(bytes: Buffer, reason: string): void {
    if (!notTls(bytes)) return this.#end('bad_hello', reason);
    const m = this.#runtime.tcp.match(this.#listener.name, { sni: undefined, alpn: [], clientIp: this.#clientIp });
    if (m === undefined || m.value.tls === 'terminate') return this.#end('bad_hello', reason);
    this.#routed(m.value);
  }

  readonly #onPeekEnd = (): void => {
    this.#stopPeek();
    this.#end('bad_hello', 'the client closed before a complete ClientHello');
  };

  #stopPeek(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#client.off('readable', this.#onPeek);
    this.#client.off('end', this.#onPeekEnd);
  }

  #takeHello(): void {
    const r = this.#reader!.push(Buffer.alloc(0));
    if (r.kind === 'hello') {
      this.#sni = r.sni;
      this.#alpn = r.alpn;
    }
  }

  #route_(): void {
    const m = this.#runtime.tcp.match(this.#listener.name, { sni: this.#sni, alpn: this.#alpn, clientIp: this.#clientIp });
    if (m === undefined) return this.#end('no_route');
    this.#routed(m.value);
  }

  #routed(route: TcpRoute): void {
    this.#route = route;
    if (!this.#proxy.admit(route, this.#clientIp)) return this.#end('limit');
    this.#admitted = true;
    this.#w.metrics.tcpOpen(this.#listener.name, route.name, 1);
    if (route.tls === 'terminate') return this.#terminate(route);
    this.#connect(route.choosePool(), new Set(), 0);
  }

  /** `tls: terminate`: completes the handshake with the certificate for the SNI, then connects. */
  #terminate(route: TcpRoute): void {
    const store = this.#w.certs.store;
    const cert = store.certFor(this.#sni);
    if (cert === undefined) return this.#end('bad_hello', 'no TLS certificate is loaded for tls: terminate');
    // The peeked bytes go back in front of the stream: TLSSocket feeds them to the handshake.
    const bytes = this.#reader?.bytes;
    if (bytes !== undefined && bytes.length > 0) this.#client.unshift(bytes);
    this.#reader = undefined;
    const tls = new TLSSocket(this.#client, {
      isServer: true,
      secureContext: cert.context,
      ...secureOptions(this.#w.certs.policy),
      // The client's own first choice among the protocols it offered: the route matched on them.
      ALPNProtocols: this.#alpn.length > 0 ? [...this.#alpn] : undefined,
    });
    this.#down = tls;
    tls.on('error', this.#onClientError);
    tls.on('close', this.#onClientClose);
    const deadline = setTimeout(() => this.#end('peek_timeout', 'TLS handshake timeout'), this.#listener.peekTimeout);
    this.#timer = deadline;
    tls.once('secure', () => {
      clearTimeout(deadline);
      this.#timer = undefined;
      if (!this.#done) this.#connect(route.choosePool(), new Set(), 0);
    });
  }

  #connect(pool: UpstreamPool, tried: Set<Target>, attempt: number): void {
    this.#pool = pool;
    const ctx = { clientIp: this.#clientIp };
    const target = tried.size === 0 ? pool.select(ctx) : pool.select(ctx, (t) => isAvailable(t) && !tried.has(t));
    if (target === undefined) return this.#end(tried.size === 0 ? 'no_healthy_upstream' : 'connect_error');
    tried.add(target);
    this.#target = target;
    this.#release = target.acquire();
    const { host, port } = target.endpoint;
    const t0 = performance.now();
    const up = netConnect({ host, port, allowHalfOpen: true, noDelay: true });
    this.#up = up;
    const settings = pool.settings;
    const timer = setTimeout(() => up.destroy(new GatewayError('upstream_connect', `connect timeout after ${settings.connect.connectTimeout} ms`)), settings.connect.connectTimeout);
    // The session may end while this connect is pending (the client left): #end destroys the
    // socket without an error, so neither handler below runs; the timer goes with the socket.
    up.once('close', () => clearTimeout(timer));
    const failed = (err: Error): void => {
      clearTimeout(timer);
      up.off('connect', connected);
      up.destroy();
      this.#up = undefined;
      this.#release?.();
      this.#release = undefined;
      this.#target = undefined;
      const code = (err as NodeJS.ErrnoException).code;
      const gerr = err instanceof GatewayError ? err : new GatewayError('upstream_connect', `connect ${code ?? err.message}`, { cause: err, beforeSend: true });
      this.#w.attempted(pool, target, gerr);
      if (this.#done) return;
      if (attempt < settings.retries) return this.#connect(pool, tried, attempt + 1);
      this.#end('connect_error', gerr.message);
    };
    const connected = (): void => {
      clearTimeout(timer);
      up.off('error', failed);
      this.#connectMs = Math.round((performance.now() - t0) * 1000) / 1000;
      this.#w.attempted(pool, target, undefined);
      if (this.#done) {
        up.destroy();
        return;
      }
      this.#relay(pool, target, up);
    };
    up.once('error', failed);
    up.once('connect', connected);
  }

  /** Both sides are open: the PROXY header, the peeked bytes, then bytes both ways. */
  #relay(pool: UpstreamPool, target: Target, up: Socket): void {
    this.#relaying = true;
    this.#proxy.bind(this, target);
    up.on('error', this.#onUpError);
    up.on('close', this.#onUpClose);
    const version = pool.settings.connect.proxyProtocol;
    if (version !== 'off') {
      // Behind a balancer that sent a PROXY header, both of its ends go on, as HAProxy does.
      const dest = proxiedDestination(this.#client);
      up.write(proxyHeader(version, {
        sourceAddress: this.#clientIp,
        sourcePort: this.#clientPort,
        destAddress: dest?.address ?? this.#client.localAddress ?? '',
        destPort: dest?.port ?? this.#client.localPort ?? 0,
      }));
    }
    const peeked = this.#reader?.bytes;
    this.#reader = undefined;
    if (peeked !== undefined && peeked.length > 0) {
      this.#bytesIn += peeked.length;
      up.write(peeked);
    }
    const down = this.#down;
    this.#lastActivity = performance.now();
    this.#armIdle();
    down.on('data', (chunk: Buffer) => {
      this.#bytesIn += chunk.length;
      this.#lastActivity = performance.now();
      if (!up.write(chunk)) down.pause();
    });
    up.on('drain', () => down.resume());
    up.on('data', (chunk: Buffer) => {
      this.#bytesOut += chunk.length;
      this.#lastActivity = performance.now();
      if (!down.write(chunk)) up.pause();
    });
    down.on('drain', () => up.resume());
    const downEnd = (): void => {
      if (this.#downEnded) return;
      this.#downEnded = true;
      this.#termination ??= 'client_close';
      // The client's FIN goes on to the target; the target may still answer (half-close).
      up.end();
      this.#halfClosed();
    };
    down.on('end', downEnd);
    up.on('end', () => {
      this.#upEnded = true;
      this.#termination ??= 'upstream_close';
      down.end();
      this.#halfClosed();
    });
    // The relay was not reading while the target connected: data waiting in the buffer flows now.
    down.resume();
    // A FIN that came with the hello, or alone while the target was connecting, ended the stream
    // before anyone listened for 'end' (soak: tcp-echo fin-first): it goes on to the target now.
    if (down.readableEnded) downEnd();
  }

  /** One side sent its FIN: the other has halfCloseTimeout to finish. */
  #halfClosed(): void {
    if (this.#downEnded && this.#upEnded) {
      clearTimeout(this.#halfClose);
      return;
    }
    const ms = this.#route!.halfCloseTimeout;
    if (this.#halfClose !== undefined || ms <= 0) return;
    this.#halfClose = setTimeout(() => this.#end(this.#termination ?? 'client_close', 'half-close timeout'), ms);
  }

  #armIdle(): void {
    const idle = this.#route!.idleTimeout;
    if (idle <= 0) return;
    const check = (): void => {
      const quiet = performance.now() - this.#lastActivity;
      if (quiet >= idle) return this.#end('idle_timeout');
      this.#timer = setTimeout(check, idle - quiet);
    };
    this.#timer = setTimeout(check, idle);
  }

  readonly #onClientError = (): void => {
    this.#termination ??= 'client_close';
    // While relaying, 'close' follows and lets the target side finish; before, nothing is left to do.
    if (!this.#relaying) this.#end('client_close');
    else this.#up?.destroy();
  };

  readonly #onClientClose = (): void => {
    this.#downClosed = true;
    // Gone before the relay started (peeking, or the target still connecting): nothing to finish.
    if (!this.#relaying || this.#upClosed) return this.#end(this.#termination ?? 'client_close');
    // Both FINs seen: the target side closes on its own. Otherwise (a reset, or the client's
    // socket gone before the target finished) nothing more can reach the client.
    if (!this.#upEnded) {
      this.#termination ??= 'client_close';
      this.#up!.destroy();
    }
  };

  readonly #onUpError = (): void => {
    this.#termination ??= 'upstream_close';
    this.#down.destroy();
  };

  readonly #onUpClose = (): void => {
    this.#upClosed = true;
    if (this.#downClosed) return this.#end(this.#termination ?? 'upstream_close');
    if (!this.#downEnded) {
      this.#termination ??= 'upstream_close';
      this.#down.destroy();
    }
  };

  /** Closes the session from outside (target down, shutdown). */
  abort(termination: Termination): void {
    this.#termination = termination;
    this.#end(termination);
  }

  #end(termination: Termination, detail?: string): void {
    if (this.#done) return;
    this.#done = true;
    const reason = this.#termination ?? termination;
    clearTimeout(this.#timer);
    clearTimeout(this.#halfClose);
    this.#stopPeekIfAny();
    // Late errors of the sockets being destroyed must not become unhandled 'error' events.
    this.#client.on('error', ignore);
    this.#down.on('error', ignore);
    this.#down.destroy();
    this.#client.destroy();
    if (this.#up !== undefined) {
      this.#up.on('error', ignore);
      this.#up.destroy();
    }
    this.#release?.();
    this.#release = undefined;
    const route = this.#route;
    if (route !== undefined && this.#admitted) {
      this.#proxy.release(route, this.#clientIp);
      this.#w.metrics.tcpOpen(this.#listener.name, route.name, -1);
    }
    this.#proxy.forget(this, this.#target);
    const seconds = (performance.now() - this.#started) / 1000;
    const routeName = route?.name ?? '';
    const poolName = this.#pool?.name ?? '';
    this.#w.metrics.tcpEnded(this.#listener.name, routeName, poolName, reason, this.#bytesIn, this.#bytesOut, seconds);
    this.#w.access?.info({
      connId: this.#id,
      listener: this.#listener.name,
      clientIp: this.#clientIp,
      clientPort: this.#clientPort,
      sni: this.#sni ?? null,
      alpn: this.#alpn.length > 0 ? this.#alpn.join(',') : null,
      route: route?.name ?? null,
      pool: this.#pool?.name ?? null,
      target: this.#target?.url ?? null,
      connectMs: this.#connectMs ?? null,
      durationMs: Math.round(seconds * 1e6) / 1000,
      bytesIn: this.#bytesIn,
      bytesOut: this.#bytesOut,
      termination: reason,
      ...(detail !== undefined ? { detail } : {}),
    }, 'connection');
  }

  #stopPeekIfAny(): void {
    if (this.#reader !== undefined) {
      this.#client.off('readable', this.#onPeek);
      this.#client.off('end', this.#onPeekEnd);
    }
  }
}

function ignore(): void {}

/** True when `bytes` cannot be the start of any TLS record (its content type or major version says so). */
function notTls(bytes: Buffer): boolean {
  if (bytes.length === 0) return false;
  // A record starts with a content type (20..24 in TLS 1.0-1.3) and major version 3.
  return bytes[0] < 20 || bytes[0] > 24 || (bytes.length > 1 && bytes[1] !== 3);
}

// The L4 listeners of one gateway process (SPEC §7): each `listeners.tcp` entry (optionally
// behind a PROXY protocol receiver), each `listeners.udp` entry, and the front of the shared
// HTTPS port that passes through the connections whose SNI a tcpRoute on `https` claims and
// hands every other one to the HTTPS server untouched.
import type { EventEmitter } from 'node:events';
import { Server as NetServer } from 'node:net';
import type { Socket } from 'node:net';
import type { StaticConfig } from '../config/schema.ts';
import { proxiedAddress, proxyProtocolFront } from '../server/proxy-protocol.ts';
import { listen } from '../server/listener.ts';
import type { Target } from '../upstream/target.ts';
import { HelloReader } from './hello.ts';
import { TcpProxy } from './tcp.ts';
import type { TcpListenerSettings, TcpWiring } from './tcp.ts';
import { UdpListener } from './udp.ts';

/** The bound L4 addresses by listener name ("host:port"). */
export interface L4Addresses {
  tcp: Record<string, string>;
  udp: Record<string, string>;
}

/** A gateway's L4 listeners, from binding to the drain. */
export class L4Listeners {
  readonly #config: StaticConfig;
  readonly #w: TcpWiring;
  readonly #shared: boolean;
  readonly tcp: TcpProxy;
  readonly #servers: NetServer[] = [];
  readonly #udp: UdpListener[] = [];
  /** Sockets of the HTTPS front still being peeked (closed at once on shutdown). */
  readonly #peeking = new Set<Socket>();
  readonly addresses: L4Addresses = { tcp: {}, udp: {} };

  /** `shared`: this process is one of several workers binding the same addresses. */
  constructor(config: StaticConfig, wiring: TcpWiring, shared: boolean) {
    this.#config = config;
    this.#w = wiring;
    this.#shared = shared;
    this.tcp = new TcpProxy(wiring);
  }

  /** Binds every `listeners.tcp` and `listeners.udp` entry that is on; rejects on a bind error. */
  async listen(): Promise<void> {
    for (const [name, l] of Object.entries(this.#config.listeners.tcp)) {
      if (l.address === null) continue;
      const settings: TcpListenerSettings = { name, peekTimeout: l.peekTimeout };
      // allowHalfOpen: a client's FIN goes on to the target, which may still answer.
      const server = new NetServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.tcp.handle(socket, settings));
      let acceptor: NetServer = server;
      if (l.proxyProtocol) {
        acceptor = proxyProtocolFront(server, {
          timeout: l.peekTimeout,
          onReject: (reason, remote) => this.#w.log.debug({ listener: name, remote, reason }, 'PROXY protocol header rejected'),
        });
      }
      this.#servers.push(acceptor);
      this.addresses.tcp[name] = await listen(acceptor, l.address);
    }
    for (const [name, l] of Object.entries(this.#config.listeners.udp)) {
      if (l.address === null) continue;
      const u = new UdpListener({ name, address: l.address, sessionIdle: l.sessionIdle, maxSessions: l.maxSessions }, this.#w, this.#shared);
      this.#udp.push(u);
      this.addresses.udp[name] = await u.listen(this.#shared);
    }
  }

  /**
   * The front of the shared HTTPS port (a net.Server that never listens itself: the caller binds
   * it, or puts a PROXY protocol receiver in front of it). While tcpRoutes on `https` exist, it
   * reads each ClientHello: a name such a route claims is passed through (or terminated) to its
   * pool; every other connection goes to `https` with its bytes put back, as if read by nobody.
   */
  httpsFront(https: EventEmitter & NetServer, peekTimeout: number): NetServer {
    const settings: TcpListenerSettings = { name: 'https', peekTimeout };
    // Sockets as the HTTPS server would accept them itself; a passed-through one is made half-open by TcpProxy.
    const own = https as unknown as { allowHalfOpen?: boolean; noDelay?: boolean; keepAlive?: boolean; keepAliveInitialDelay?: number; highWaterMark?: number };
    const accept = { allowHalfOpen: own.allowHalfOpen ?? false, noDelay: own.noDelay ?? true, keepAlive: own.keepAlive ?? false, keepAliveInitialDelay: own.keepAliveInitialDelay ?? 0, highWaterMark: own.highWaterMark };
    const front = new NetServer(accept, (socket) => {
      const runtime = this.#w.runtime();
      if (!runtime.tcp.needsHello('https')) return void https.emit('connection', socket);
      this.#peek(socket, runtime, settings, https);
    });
    front.on('listening', () => https.emit('listening'));
    return front;
  }

  #peek(socket: Socket, runtime: ReturnType<TcpWiring['runtime']>, settings: TcpListenerSettings, https: EventEmitter): void {
    const reader = new HelloReader();
    let done = false;
    const finish = (): void => {
      done = true;
      clearTimeout(timer);
      this.#peeking.delete(socket);
      socket.off('readable', onReadable);
      socket.off('end', toHttps);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    // Not ours: the HTTPS server gets the socket and every byte read so far, and judges it.
    const toHttps = (): void => {
      if (done) return;
      finish();
      const bytes = reader.bytes;
      if (bytes.length > 0) socket.unshift(bytes);
      https.emit('connection', socket);
    };
    const onReadable = (): void => {
      for (let chunk: Buffer | null; !done && (chunk = socket.read() as Buffer | null) !== null; ) {
        const r = reader.push(chunk);
        if (r.kind === 'more') continue;
        if (r.kind === 'bad') return toHttps();
        // Behind a PROXY protocol balancer the client is the one its header carried, as the
        // session that takes the socket over will log and count it.
        const clientIp = proxiedAddress(socket)?.address ?? socket.remoteAddress ?? '';
        const m = runtime.tcp.match('https', { sni: r.sni, alpn: r.alpn, clientIp });
        if (m === undefined) return toHttps();
        finish();
        this.tcp.handle(socket, settings, { reader, route: m.value, runtime });
        return;
      }
    };
    const onError = (): void => {
      finish();
      socket.destroy();
    };
    const onClose = (): void => finish();
    const timer = setTimeout(toHttps, settings.peekTimeout);
    this.#peeking.add(socket);
    socket.on('readable', onReadable);
    socket.on('end', toHttps);
    socket.on('error', onError);
    socket.on('close', onClose);
  }

  /** Health checks made `target` unavailable: closes its connections when its pool says so. */
  targetDown(target: Target, close: boolean): void {
    this.tcp.targetDown(target, close);
  }

  /**
   * Shutdown (SPEC §7): the listeners close at once; established connections flow for up to
   * `graceMs`, then are closed. Resolves when every session is over.
   */
  async drain(graceMs: number): Promise<void> {
    for (const s of this.#servers) s.close();
    for (const s of this.#peeking) s.destroy();
    await Promise.all([this.tcp.drain(graceMs), ...this.#udp.map((u) => u.drain(graceMs))]);
  }
}

// The listeners of one gateway process: HTTPS (HTTP/2 and HTTP/1.1, the certificates' SNI), HTTP
// (or its redirect to HTTPS), each optionally behind a PROXY protocol front, and the admin API;
// the request and upgrade handlers wired to the routing table in force, the metrics and passive
// health; and their graceful close.
import type { Middleware } from '../middleware/types.ts';
import type { Server } from 'node:http';
import type { Http2SecureServer } from 'node:http2';
import type { Server as NetServer, Socket } from 'node:net';
import { adminAuth, createAdminServer } from '../admin/admin.ts';
import type { AdminSource } from '../admin/admin.ts';
import type { ListenAddress } from '../config/address.ts';
import type { StaticConfig } from '../config/schema.ts';
import type { GatewayError } from '../errors.ts';
import type { AccessLogger, Logger } from '../observe/logger.ts';
import type { Metrics } from '../observe/metrics.ts';
import type { Runtime } from '../runtime.ts';
import { trustPredicate } from '../runtime.ts';
import { createContinueHandler, createHandler } from '../server/handler.ts';
import { closeGracefully, createHttpServer, createHttpsServer, listen, trackConnections } from '../server/listener.ts';
import type { TrackedConnections } from '../server/listener.ts';
import { proxyProtocolFront } from '../server/proxy-protocol.ts';
import { secureOptions } from '../server/tls/index.ts';
import { createUpgradeHandler } from '../server/upgrade.ts';
import type { UpstreamPool } from '../upstream/pool.ts';
import type { Target } from '../upstream/target.ts';
import type { GatewayCerts } from './certs.ts';

/** The bound addresses ("host:port"), null for a listener that is off. */
export interface BoundAddresses {
  http: string | null;
  https: string | null;
  admin: string | null;
  /** SPEC §7: the L4 listeners by name. */
  tcp: Record<string, string>;
  udp: Record<string, string>;
}

/** What the listeners need from the gateway that owns them. */
export interface ListenerWiring {
  readonly config: StaticConfig;
  readonly log: Logger;
  readonly access: AccessLogger | undefined;
  readonly env: NodeJS.ProcessEnv;
  readonly metrics: Metrics;
  readonly certs: GatewayCerts;
  /** The routing table in force, read by each request at its start. */
  readonly runtime: () => Runtime;
  /** One finished upstream attempt, `err` undefined on success (metrics, passive health). */
  readonly attempted: (pool: UpstreamPool, target: Target, err: GatewayError | undefined) => void;
  /** What the admin API reads. */
  readonly adminSource: () => AdminSource;
  /** The front of the HTTPS port that passes through tcpRoutes' names (l4/listeners.ts). */
  readonly httpsFront: (server: Http2SecureServer) => NetServer;
}

/** A gateway's listeners, from binding to the drain. */
export class Listeners {
  readonly #w: ListenerWiring;
  readonly #servers: { server: Server | Http2SecureServer; tracked?: TrackedConnections; front?: NetServer }[] = [];
  #admin: Server | undefined;
  /** The bound listener addresses, filled in as each one binds. */
  readonly addresses: BoundAddresses = { http: null, https: null, admin: null, tcp: {}, udp: {} };

  constructor(w: ListenerWiring) {
    this.#w = w;
  }

  #limits() {
    const c = this.#w.config;
    return {
      clientHeader: c.timeouts.clientHeader,
      clientIdle: c.timeouts.clientIdle,
      maxHeaderSize: c.limits.maxHeaderSize,
      maxConnections: c.limits.maxConnections,
    };
  }

  #handlerOptions(scheme: 'http' | 'https') {
    const w = this.#w;
    const c = w.config;
    const metrics = w.metrics;
    return {
      scheme,
      runtime: w.runtime,
      trusted: trustPredicate(c.trustedProxies),
      access: w.access,
      log: w.log,
      bodyLimits: { retryBuffer: c.limits.retryBuffer, maxBodySize: c.limits.maxBodySize, idleTimeout: c.timeouts.clientIdle },
      writeIdleTimeout: c.timeouts.clientIdle,
      ambiguousPaths: c.security.ambiguousPaths,
      onAttempt: w.attempted,
      onDone: (route: string, pool: string, method: string, status: number, seconds: number) => metrics.request(route, pool, method, status, seconds),
      onRejected: (route: string, m: Middleware) => metrics.middlewareRejection(route, m.name, m.kind),
    };
  }

  #countConnections(server: Server | Http2SecureServer, listener: string): void {
    const metrics = this.#w.metrics;
    server.on('connection', (socket: Socket) => {
      metrics.connections(listener, 1);
      socket.once('close', () => metrics.connections(listener, -1));
    });
  }

  /**
   * Binds a public listener, behind a PROXY protocol front when the listener asks for one (a
   * connection without a valid header is then closed); returns the bound "host:port".
   */
  async #bind(server: Server | Http2SecureServer, addr: ListenAddress, proxyProtocol: boolean, tracked: TrackedConnections | undefined, l4Front?: NetServer): Promise<string> {
    if (!proxyProtocol && l4Front === undefined) {
      this.#servers.push({ server, tracked });
      return listen(server, addr);
    }
    if (!proxyProtocol) {
      l4Front!.maxConnections = this.#w.config.limits.maxConnections;
      this.#servers.push({ server, tracked, front: l4Front });
      return listen(l4Front!, addr);
    }
    const front = proxyProtocolFront(l4Front ?? server, {
      timeout: this.#w.config.timeouts.clientHeader,
      // A balancer's TCP health check (connect, close) lands here too: debug, not warn.
      onReject: (reason, remote) => this.#w.log.debug({ remote, reason }, 'PROXY protocol header rejected'),
    });
    // emit('connection') bypasses the server's own limit: the front enforces it.
    front.maxConnections = this.#w.config.limits.maxConnections;
    this.#servers.push({ server, tracked, front });
    return listen(front, addr);
  }

  /** Binds every listener that is on: HTTPS, HTTP, then the admin API; rejects on a bind error. */
  async listen(): Promise<void> {
    const c = this.#w.config;
    const l = c.listeners;
    // HTTPS first: the HTTP listener's redirect needs its bound port.
    let httpsPort: number | undefined;
    if (l.https.address !== null) {
      const certs = this.#w.certs;
      await certs.first();
      const store = certs.store;
      const httpsOptions = {
        ...this.#handlerOptions('https'),
        // 421 only when both names pick a certificate and they differ (RFC 9110 §15.5.20).
        // SPEC §7: and a name tcpRoutes pass through on this port is never served as HTTP here.
        misdirected: (sni: string | undefined, host: string) =>
          (sni !== undefined && host !== '' && store.certFor(sni) !== store.certFor(host)) || (host !== '' && this.#w.runtime().tcp.claimsName('https', host)),
        hsts: l.https.hsts ? 'max-age=31536000' : undefined,
      };
      const handler = createHandler(httpsOptions);
      const server = createHttpsServer(handler, this.#limits(), {
        secure: secureOptions(certs.policy),
        defaultCert: store.defaultCert!.pem,
        sniCallback: store.sniCallback,
      });
      server.on('checkContinue', createContinueHandler(httpsOptions, handler) as never);
      store.attach(server, certs.policy);
      const tracked = trackConnections(server);
      // Upgraded TLS sockets are already in tracked.sockets, which shutdown destroys at its deadline.
      server.on('upgrade', createUpgradeHandler({ ...httpsOptions, tunnels: tracked.sockets }));
      this.#countConnections(server, 'https');
      this.addresses.https = await this.#bind(server, l.https.address, l.https.proxyProtocol, tracked, this.#w.httpsFront(server));
      httpsPort = Number(this.addresses.https.split(':').pop());
      certs.watch();
    }
    if (l.http.address !== null) {
      if (l.http.redirectToHttps && httpsPort === undefined) this.#w.log.warn('redirectToHttps is on but the HTTPS listener is off; serving HTTP');
      const httpOptions = {
        ...this.#handlerOptions('http'),
        redirectToHttps: l.http.redirectToHttps && httpsPort !== undefined ? { port: httpsPort } : undefined,
      };
      const handler = createHandler(httpOptions);
      const server = createHttpServer(handler, this.#limits());
      server.on('checkContinue', createContinueHandler(httpOptions, handler));
      // closeAllConnections no longer sees upgraded sockets: shutdown destroys the tunnels via `tracked`.
      const tunnels = new Set<Socket>();
      server.on('upgrade', createUpgradeHandler({ ...httpOptions, tunnels }));
      this.#countConnections(server, 'http');
      this.addresses.http = await this.#bind(server, l.http.address, l.http.proxyProtocol, { sessions: new Set(), sockets: tunnels });
    }
    const admin = c.admin.address;
    if (admin !== null) {
      const server = createAdminServer(this.#w.adminSource(), adminAuth(admin, this.#w.env));
      this.#admin = server;
      this.addresses.admin = await listen(server, admin);
    }
  }

  /** Closes the public listeners: in-flight requests get up to `graceMs`, then what is left is cut. */
  async closePublic(graceMs: number): Promise<void> {
    await Promise.all(this.#servers.map((s) => closeGracefully(s.server, graceMs, s.tracked, s.front)));
  }

  /** Closes the admin API (last, so readiness reads "not ready" while the public listeners drain). */
  async closeAdmin(): Promise<void> {
    if (this.#admin !== undefined) await closeGracefully(this.#admin, 0);
  }
}

// Public HTTP listener: node:http with the timeouts and limits of waygate.yaml, and the
// connection bookkeeping graceful shutdown needs.
import { createServer } from 'node:http';
import type { IncomingMessage, RequestListener, Server } from 'node:http';
import { createSecureServer } from 'node:http2';
import type { Http2SecureServer } from 'node:http2';
import type { AddressInfo, Server as NetServer } from 'node:net';
import type { SecureContext } from 'node:tls';
import { isH2cUpgrade, MAX_HEADER_FIELDS } from './validate.ts';

/** Where to bind. */
export interface ListenAddress {
  host: string;
  port: number;
}

/** Client-side limits and timeouts of a listener (ms and bytes). */
export interface ListenerLimits {
  clientHeader: number;
  clientIdle: number;
  maxHeaderSize: number;
  maxConnections: number;
}

/** Creates a public HTTP/1.1 server for `handler` with the given limits (not yet listening). */
export function createHttpServer(handler: RequestListener, limits: ListenerLimits): Server {
  const server: Server = createServer(
    {
      // Headers must arrive within clientHeader; the whole-request timeout is off so large,
      // slow uploads are not cut (body idleness is the upstream idle timeout's business).
      headersTimeout: limits.clientHeader,
      requestTimeout: 0,
      keepAliveTimeout: limits.clientIdle,
      maxHeaderSize: limits.maxHeaderSize,
      // How often Node checks headersTimeout; its 30 s default would let a slow client overstay.
      connectionsCheckingInterval: Math.min(1000, limits.clientHeader),
      shouldUpgradeCallback: (req): boolean => upgradeUnlessH2c(server, req),
    },
    handler,
  );
  server.maxConnections = limits.maxConnections;
  // Past this many header fields Node answers 431 and closes (its default, 2000, is far above
  // what any client sends; see validate.ts).
  server.maxHeadersCount = MAX_HEADER_FIELDS;
  return server;
}

/**
 * Node's default sends every request with an Upgrade header to the 'upgrade' listener (the
 * WebSocket path, which refuses anything else). An `Upgrade: h2c` is instead served as the plain
 * HTTP/1.1 request it also is (RFC 9110 §7.8: a server may ignore Upgrade); the Upgrade and
 * HTTP2-Settings fields are then dropped on the way upstream (forward/headers.ts).
 */
function upgradeUnlessH2c(server: { listenerCount(event: string): number }, req: IncomingMessage): boolean {
  return !isH2cUpgrade(req) && server.listenerCount('upgrade') > 0;
}

/** Concurrent streams per HTTP/2 connection: Node's default is unbounded (2^32-1). */
export const H2_MAX_CONCURRENT_STREAMS = 100;

/** TLS material of the HTTPS listener. */
export interface HttpsIdentity {
  /** Settings spread into the server and every context (versions, ciphers, curves). */
  secure: Record<string, unknown>;
  /** The certificate for clients that send no SNI (PEM). */
  defaultCert: { cert: string; key: string };
  sniCallback: (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void;
}

/**
 * Creates the HTTPS listener: one server for HTTP/2 (ALPN h2) and HTTP/1.1 (fallback), with
 * bounded HTTP/2 stream concurrency and header-list size (not yet listening).
 */
export function createHttpsServer(handler: RequestListener, limits: ListenerLimits, id: HttpsIdentity): Http2SecureServer {
  const server = createSecureServer(
    {
      allowHTTP1: true,
      ...id.secure,
      cert: id.defaultCert.cert,
      key: id.defaultCert.key,
      SNICallback: id.sniCallback,
      settings: { maxConcurrentStreams: H2_MAX_CONCURRENT_STREAMS, maxHeaderListSize: limits.maxHeaderSize },
      maxSessionInvalidFrames: 100,
      // A TCP connection that does not finish the TLS handshake in time is dropped (Node: 120 s).
      handshakeTimeout: limits.clientHeader,
    },
    handler as unknown as Parameters<typeof createSecureServer>[1],
  );
  server.maxConnections = limits.maxConnections;
  // The HTTP/1.1 fallback runs node:http's connection listener on this server, which reads
  // maxHeadersCount (HTTP/2 streams are counted in validate.ts) and shouldUpgradeCallback from it;
  // createSecureServer does not take them as options.
  const h1 = server as unknown as { maxHeadersCount: number; shouldUpgradeCallback: (req: IncomingMessage) => boolean };
  h1.maxHeadersCount = MAX_HEADER_FIELDS;
  h1.shouldUpgradeCallback = (req) => upgradeUnlessH2c(server, req);
  // An idle HTTP/2 session or HTTP/1.1 keep-alive connection is closed after clientIdle.
  server.setTimeout(limits.clientIdle);
  // node:http2's HTTP/1.1 fallback does not apply node:http's headersTimeout: the first request's
  // headers must arrive within clientHeader, else 408 and close (later ones: the idle timeout).
  const pending = new WeakMap<object, NodeJS.Timeout>();
  server.on('secureConnection', (socket) => {
    if (socket.alpnProtocol === 'h2') return;
    const timer = setTimeout(() => {
      socket.end('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      socket.destroySoon();
    }, limits.clientHeader);
    timer.unref();
    pending.set(socket, timer);
    socket.once('close', () => clearTimeout(timer));
  });
  server.on('request', (req) => {
    if (req.httpVersionMajor === 2) return;
    const timer = pending.get(req.socket);
    if (timer !== undefined) {
      clearTimeout(timer);
      pending.delete(req.socket);
    }
  });
  // A WebSocket handshake never emits 'request', yet its headers did arrive: without this its
  // tunnel would get the 408 above mid-session. Wrapped so the answer itself is unchanged.
  const shouldUpgrade = h1.shouldUpgradeCallback;
  h1.shouldUpgradeCallback = (req) => {
    clearTimeout(pending.get(req.socket));
    pending.delete(req.socket);
    return shouldUpgrade(req);
  };
  return server;
}

/** Formats a bound address as "host:port" ("[::1]:8080" for IPv6). */
export function formatAddress(a: AddressInfo): string {
  return a.family === 'IPv6' || a.address.includes(':') ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

/** Binds `server` to `addr`; resolves with the bound "host:port" or rejects with the bind error. */
export function listen(server: Server | Http2SecureServer | NetServer, addr: ListenAddress): Promise<string> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen({ host: addr.host, port: addr.port }, () => {
      server.off('error', onError);
      resolve(formatAddress(server.address() as AddressInfo));
    });
  });
}

/**
 * Stops accepting, lets in-flight requests finish for up to `graceMs`, closes idle keep-alive
 * connections at once and whatever is left at the deadline. Resolves when the server is closed.
 */
/** Connections of an HTTPS listener, tracked for shutdown (node:http2 has no closeAllConnections). */
export interface TrackedConnections {
  sessions: Set<import('node:http2').ServerHttp2Session>;
  sockets: Set<import('node:net').Socket>;
}

/** Starts tracking the sessions and sockets of an HTTPS listener; returns the sets. */
export function trackConnections(server: Http2SecureServer): TrackedConnections {
  const t: TrackedConnections = { sessions: new Set(), sockets: new Set() };
  server.on('session', (session) => {
    t.sessions.add(session);
    session.once('close', () => t.sessions.delete(session));
  });
  server.on('secureConnection', (socket) => {
    t.sockets.add(socket);
    socket.once('close', () => t.sockets.delete(socket));
  });
  return t;
}

export function closeGracefully(server: Server | Http2SecureServer, graceMs: number, tracked?: TrackedConnections, front?: NetServer): Promise<void> {
  const sessions = tracked?.sessions;
  // With PROXY protocol the front accepts the connections; the server itself never listens.
  const acceptor = front ?? server;
  return new Promise((resolve) => {
    const closeAll = (): void => {
      if ('closeAllConnections' in server) server.closeAllConnections();
      for (const s of sessions ?? []) s.destroy();
      for (const s of tracked?.sockets ?? []) s.destroy();
    };
    if (!acceptor.listening) {
      closeAll();
      resolve();
      return;
    }
    const timer = setTimeout(closeAll, graceMs);
    timer.unref();
    acceptor.close(() => {
      clearTimeout(timer);
      resolve();
    });
    // Stops node:http's connection checker; it reports "not running", which is expected here.
    if (front !== undefined) server.close(() => {});
    if ('closeIdleConnections' in server) server.closeIdleConnections();
    // HTTP/2: GOAWAY lets in-flight streams finish while the client opens no new ones.
    for (const s of sessions ?? []) s.close();
  });
}

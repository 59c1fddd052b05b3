// Public HTTP listener: node:http with the timeouts and limits of waygate.yaml, and the
// connection bookkeeping graceful shutdown needs.
import { createServer } from 'node:http';
import type { RequestListener, Server } from 'node:http';
import type { AddressInfo } from 'node:net';

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
  const server = createServer(
    {
      // Headers must arrive within clientHeader; the whole-request timeout is off so large,
      // slow uploads are not cut (body idleness is the upstream idle timeout's business).
      headersTimeout: limits.clientHeader,
      requestTimeout: 0,
      keepAliveTimeout: limits.clientIdle,
      maxHeaderSize: limits.maxHeaderSize,
      // How often Node checks headersTimeout; its 30 s default would let a slow client overstay.
      connectionsCheckingInterval: Math.min(1000, limits.clientHeader),
    },
    handler,
  );
  server.maxConnections = limits.maxConnections;
  return server;
}

/** Formats a bound address as "host:port" ("[::1]:8080" for IPv6). */
export function formatAddress(a: AddressInfo): string {
  return a.family === 'IPv6' || a.address.includes(':') ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

/** Binds `server` to `addr`; resolves with the bound "host:port" or rejects with the bind error. */
export function listen(server: Server, addr: ListenAddress): Promise<string> {
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
export function closeGracefully(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      server.closeAllConnections();
      resolve();
      return;
    }
    const timer = setTimeout(() => server.closeAllConnections(), graceMs);
    timer.unref();
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}

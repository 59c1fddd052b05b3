// A small, real authentication service for forwardAuth's tests and the soak: an HTTP (or HTTPS)
// server on 127.0.0.1 port 0 whose answer is switched per request — allow, redirect to a login
// page, deny, hang, reset mid-answer — and that can die and come back on the same port. It
// records every request it got and counts its connections (keep-alive checks count them).
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

/** What the service does with one request. */
export type AuthBehaviour = 'allow' | 'redirect' | 'deny401' | 'deny403' | 'error500' | 'oversize' | 'hang' | 'reset';

/** One request the service got. */
export interface AuthSeen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: string[];
  /** The body bytes it carried (a check must carry none). */
  readonly body: Buffer;
}

/** The login page a `redirect` answer points to, and what it sets. */
export const LOGIN_URL = 'https://login.example.com/?next=%2F';
/** The cookie a `redirect` answer sets. */
export const LOGIN_COOKIE = 'auth_state=xyz; Path=/; HttpOnly';
/** The body of a `redirect` answer. */
export const LOGIN_BODY = '<html><body><a href="https://login.example.com/">Log in</a></body></html>';
/** The body size of an `oversize` answer: 2 MiB. */
export const OVERSIZE_BYTES = 2 * 1024 * 1024;
/** The challenge of a `deny401` answer. */
export const CHALLENGE = 'Bearer realm="waygate-test"';

/** A running auth service. */
export interface AuthService {
  /** http(s)://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  /** What every request gets unless `decide` says otherwise; switch it any time. */
  behaviour: AuthBehaviour;
  /** Per-request choice (takes precedence over `behaviour` when it returns one). */
  decide: ((req: IncomingMessage) => AuthBehaviour | undefined) | undefined;
  /** Identity fields an `allow` answer carries (repeated values as arrays). */
  identity: Record<string, string | string[]>;
  /** Every request received, in order. */
  readonly seen: AuthSeen[];
  /** TCP connections accepted since start. */
  readonly connections: number;
  /** Resolves once `n` requests have been received. */
  waitForRequests(n: number): Promise<void>;
  /** Closes the listener and every connection (hanging ones included): the service is gone. */
  die(): Promise<void>;
  /** Listens again on the same port after die(). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** Starts an auth service; `tls` makes it HTTPS with that certificate. */
export async function startAuthService(opts: { behaviour?: AuthBehaviour; identity?: Record<string, string | string[]>; tls?: { cert: string; key: string } } = {}): Promise<AuthService> {
  const seen: AuthSeen[] = [];
  const sockets = new Set<Socket>();
  const waiters: (() => void)[] = [];
  let connections = 0;
  let port = 0;
  let listening = false;

  const answer = (req: IncomingMessage, res: ServerResponse, body: Buffer): void => {
    seen.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body });
    for (const w of waiters.splice(0)) w();
    const what = svc.decide?.(req) ?? svc.behaviour;
    switch (what) {
      case 'allow':
        res.writeHead(200, { ...svc.identity, 'content-type': 'text/plain' });
        res.end('ok');
        return;
      case 'redirect':
        res.writeHead(302, { location: LOGIN_URL, 'set-cookie': LOGIN_COOKIE, 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        res.end(LOGIN_BODY);
        return;
      case 'deny401':
        res.writeHead(401, { 'www-authenticate': CHALLENGE, 'content-type': 'text/plain' });
        res.end('unauthorized by test auth');
        return;
      case 'deny403':
        res.writeHead(403, { 'content-type': 'text/plain' });
        res.end('forbidden by test auth');
        return;
      case 'error500':
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('auth service error');
        return;
      case 'oversize':
        // A denial whose body is over what waygate keeps of an auth answer (1 MiB).
        res.writeHead(401, { 'content-type': 'text/plain' });
        res.end(Buffer.alloc(OVERSIZE_BYTES, 0x61));
        return;
      case 'hang':
        // Never answered: the socket stays open until waygate gives up or die()/close().
        return;
      case 'reset':
        // A head promising more than is sent, then the socket is destroyed mid-body.
        res.writeHead(200, { ...svc.identity, 'content-length': '1000' });
        res.write('partial', () => req.socket.destroy());
        return;
    }
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => answer(req, res, Buffer.concat(chunks)));
    req.on('error', () => {});
  };
  const server: Server = opts.tls === undefined ? createServer(onRequest) : createTlsServer({ cert: opts.tls.cert, key: opts.tls.key }, onRequest);
  // Keep-alive connections must outlive the gateway's idle time (4 s) for reuse to be observable.
  server.keepAliveTimeout = 30_000;
  server.on('connection', (s: Socket) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', () => {});

  const listen = (p: number): Promise<void> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(p, '127.0.0.1', () => {
        server.off('error', reject);
        listening = true;
        port = (server.address() as AddressInfo).port;
        resolve();
      });
    });
  const stop = (): Promise<void> =>
    new Promise((resolve) => {
      if (!listening) return resolve();
      listening = false;
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    });

  await listen(0);
  const svc: AuthService = {
    url: `${opts.tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`,
    port,
    behaviour: opts.behaviour ?? 'allow',
    decide: undefined,
    identity: opts.identity ?? { 'x-user': 'alice', 'x-email': 'alice@example.com' },
    seen,
    get connections() {
      return connections;
    },
    async waitForRequests(n) {
      while (seen.length < n) await new Promise<void>((r) => waiters.push(r));
    },
    die: stop,
    restart: () => listen(port),
    close: stop,
  };
  return svc;
}

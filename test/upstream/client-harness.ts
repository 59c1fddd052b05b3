// Drives an UpstreamClient (upstream/client.ts) against real upstream sockets, and checks the
// contract's ordering rules on every call: onStart once and first, inside request(); nothing after
// the one terminal call (onEnd or onError); onError never inside another call or inside abort().
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { UpstreamClient, UpstreamController, UpstreamHandler } from '../../src/upstream/client.ts';
export { closedPort } from '../refusing-port.ts';

export interface Outcome {
  status?: number;
  interim: number[];
  rawHeaders: string[];
  body: string;
  trailers?: Readonly<Record<string, string>>;
  error?: Error & { code?: string };
  /** Body bytes reported sent. */
  sent: number;
  replays: number;
  /** Broken contract rules, as sentences; every test expects none. */
  violations: string[];
}

export interface Call {
  method?: string;
  path?: string;
  headers?: string[];
  body?: Buffer | Readable | null;
  responseTimeout?: number;
  idleTimeout?: number;
  replayable?: boolean;
  onStart?: (c: UpstreamController) => void;
  onHeaders?: (c: UpstreamController, status: number) => void;
  onData?: (c: UpstreamController, chunk: Buffer) => void;
}

/**
 * Runs one request through `client`; resolves when it ends either way, two turns of the event
 * loop later: undici frees a kept-alive connection for the next request one full turn after the
 * response (its client-h1 schedules that with setImmediate after calling the handler), the
 * builtin client at once; so a test's next request finds the connection free with either.
 */
export function call(client: UpstreamClient, c: Call = {}): Promise<Outcome> {
  return new Promise<Outcome>((done) => {
    const resolve = (o: Outcome): void => void setImmediate(() => setImmediate(() => done(o)));
    const o: Outcome = { interim: [], rawHeaders: [], body: '', sent: 0, replays: 0, violations: [] };
    let controller: UpstreamController | undefined;
    let inRequest = true;
    let inCall = 0;
    let ended = false;
    const enter = (name: string): void => {
      if (ended) o.violations.push(`${name} after the end`);
      if (controller === undefined && name !== 'onStart') o.violations.push(`${name} before onStart`);
      inCall++;
    };
    const leave = (): void => {
      inCall--;
    };
    const wrap = (ctl: UpstreamController): UpstreamController => ({
      pause: () => ctl.pause(),
      resume: () => ctl.resume(),
      abort: (reason) => {
        inCall++;
        ctl.abort(reason);
        inCall--;
      },
      get aborted() {
        return ctl.aborted;
      },
    });
    const handler: UpstreamHandler = {
      onStart: (ctl) => {
        enter('onStart');
        if (controller !== undefined) o.violations.push('onStart twice');
        if (!inRequest) o.violations.push('onStart outside request()');
        controller = wrap(ctl);
        c.onStart?.(controller);
        leave();
      },
      onReplay: () => {
        enter('onReplay');
        o.replays++;
        leave();
      },
      onBodySent: (n) => {
        enter('onBodySent');
        o.sent += n;
        leave();
      },
      onInterim: (status) => {
        enter('onInterim');
        o.interim.push(status);
        leave();
      },
      onHeaders: (status, _reason, raw) => {
        enter('onHeaders');
        if (o.status !== undefined) o.violations.push('onHeaders twice');
        o.status = status;
        o.rawHeaders = [...raw];
        c.onHeaders?.(controller!, status);
        leave();
      },
      onData: (chunk) => {
        enter('onData');
        if (o.status === undefined) o.violations.push('onData before onHeaders');
        o.body += chunk.toString('latin1');
        c.onData?.(controller!, chunk);
        leave();
      },
      onEnd: (trailers) => {
        enter('onEnd');
        if (o.status === undefined) o.violations.push('onEnd before onHeaders');
        ended = true;
        o.trailers = trailers;
        leave();
        resolve(o);
      },
      onError: (err) => {
        if (inCall > 0) o.violations.push('onError inside another call');
        if (inRequest) o.violations.push('onError inside request()');
        enter('onError');
        ended = true;
        o.error = err;
        leave();
        resolve(o);
      },
    };
    client.request(
      {
        method: c.method ?? 'GET',
        path: c.path ?? '/',
        headers: c.headers ?? ['host', 'up.test'],
        body: c.body ?? null,
        responseTimeout: c.responseTimeout ?? 10_000,
        idleTimeout: c.idleTimeout ?? 10_000,
        replayable: c.replayable ?? false,
      },
      handler,
    );
    inRequest = false;
    if (controller === undefined) o.violations.push('no onStart inside request()');
  });
}

/** Closes what a test opened (each test file calls closeAll in afterEach). */
const closers: (() => Promise<unknown> | void)[] = [];

/** Registers something to close after the test. */
export function track(close: () => Promise<unknown> | void): void {
  closers.push(close);
}

/** Closes everything registered, newest first. */
export async function closeAll(): Promise<void> {
  for (const close of closers.splice(0).reverse()) await close();
}

/** A raw upstream: `answer` gets each request head (as text), the socket and the request's index on it; counts connections. */
export async function rawUpstream(answer: (head: string, sock: Socket, n: number) => void): Promise<{ port: number; connections: () => number; sockets: Set<Socket> }> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    connections++;
    sockets.add(sock);
    sock.setNoDelay(true);
    sock.on('error', () => {});
    sock.on('close', () => sockets.delete(sock));
    let buf = '';
    let n = 0;
    let body = 0;
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      for (;;) {
        // A body announced by Content-Length is skipped, so pipelined heads stay findable.
        if (body > 0) {
          const k = Math.min(body, buf.length);
          body -= k;
          buf = buf.slice(k);
          if (body > 0) return;
        }
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        const cl = /\r\ncontent-length: *(\d+)/i.exec(head);
        body = cl === null ? 0 : Number(cl[1]);
        answer(head, sock, n++);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  track(async () => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { port: (server.address() as AddressInfo).port, connections: () => connections, sockets };
}

/** A node:http upstream. */
export async function httpUpstream(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ port: number; server: HttpServer }> {
  const server = createHttpServer(handle);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  track(() => {
    server.closeAllConnections();
    server.close();
  });
  return { port: (server.address() as AddressInfo).port, server };
}

/** Writes `bytes` one at a time, each in its own write and turn of the event loop. */
export async function writeSlowly(sock: Socket, bytes: string): Promise<void> {
  for (const ch of bytes) {
    if (sock.destroyed) return;
    await new Promise<void>((r) => sock.write(ch, 'latin1', () => r()));
    await new Promise((r) => setImmediate(r));
  }
}


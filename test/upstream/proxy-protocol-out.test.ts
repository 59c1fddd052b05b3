// PROXY protocol out for HTTP pools (SPEC §7, `proxyProtocol: v1 | v2` on a pool): every upstream
// connection starts with a header announcing the client's connection, before the request and
// before TLS; an upstream connection serves one client connection only. Real sockets only: the
// backends are waygate's own PROXY receiver in front of node:http / node:https / ws, and NGINX
// (`listen … proxy_protocol`). A transparent TCP tap in front of a backend records the exact
// bytes waygate wrote first on each connection.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { createServer as createHttpsServer } from 'node:https';
import { connect, createServer as createNetServer } from 'node:net';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { parseProxyHeader, proxiedAddress, proxyProtocolFront } from '../../src/server/proxy-protocol.ts';
import type { ProxyInfo } from '../../src/server/proxy-protocol.ts';
import { startGateway, startHttpsGateway, startUpstream } from '../helpers.ts';
import type { TestGateway, Upstream } from '../helpers.ts';
import { makeCa, makeLeaf } from '../tls-helpers.ts';

// --- backends -------------------------------------------------------------------------------

/** A connection through the tap: the first bytes waygate sent on it, and whether it is closed. */
interface TapConn {
  bytes: Buffer;
  closed: boolean;
}

/** A transparent TCP relay to `target` that records the first 4 KiB each connection sent. */
interface Tap {
  port: number;
  conns: TapConn[];
  close(): Promise<void>;
}

async function startTap(target: number): Promise<Tap> {
  const conns: TapConn[] = [];
  const sockets = new Set<Socket>();
  const server = createNetServer((down) => {
    const conn: TapConn = { bytes: Buffer.alloc(0), closed: false };
    conns.push(conn);
    const up = connect(target, '127.0.0.1');
    for (const s of [down, up]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        down.destroy();
        up.destroy();
        conn.closed = true;
      });
    }
    down.on('data', (chunk: Buffer) => {
      if (conn.bytes.length < 4096) conn.bytes = Buffer.concat([conn.bytes, chunk]);
      up.write(chunk);
    });
    up.on('data', (chunk: Buffer) => down.write(chunk));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    conns,
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

/** The PROXY header at the start of a tapped connection, and the bytes after it. */
function headerOf(conn: TapConn): { info: ProxyInfo; raw: Buffer; rest: Buffer } {
  const r = parseProxyHeader(conn.bytes);
  if (r === 'incomplete' || r instanceof Error) throw new Error(`no PROXY header first: ${conn.bytes.subarray(0, 40).toString('latin1')}`);
  return { info: r.info, raw: conn.bytes.subarray(0, r.length), rest: conn.bytes.subarray(r.length) };
}

let connIds = new WeakMap<object, number>();
let nextConn = 0;
/** A number per backend connection (the object its requests arrive on). */
function connId(socket: object): number {
  let id = connIds.get(socket);
  if (id === undefined) connIds.set(socket, (id = ++nextConn));
  return id;
}

/** Answers JSON: which backend connection, and the client address the PROXY header carried. */
function reporter(req: IncomingMessage, res: ServerResponse): void {
  const body = JSON.stringify({ conn: connId(req.socket), source: proxiedAddress(req.socket) ?? null, path: req.url });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Greets each WebSocket with the client address the PROXY header carried. */
function greeter(server: Server): WebSocketServer {
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws, req) => ws.send(JSON.stringify({ source: proxiedAddress(req.socket) ?? null })));
  return wss;
}

/** A PROXY-protocol receiver (waygate's own) in front of `server`, on 127.0.0.1. */
async function behindReceiver(server: Server): Promise<{ port: number; close(): Promise<void> }> {
  const rejected: string[] = [];
  const front = proxyProtocolFront(server, { timeout: 2000, onReject: (reason) => rejected.push(reason) });
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
  return {
    port: (front.address() as AddressInfo).port,
    close: () => new Promise<void>((r) => {
      (server as Server).closeAllConnections?.();
      front.close(() => r());
    }),
  };
}

// --- clients --------------------------------------------------------------------------------

interface Answer {
  status: number;
  body: string;
}

/** One client connection to waygate (raw TCP, HTTP/1.1 keep-alive), optionally sending its own PROXY header first. */
class Client {
  readonly socket: Socket;
  #buf = Buffer.alloc(0);
  #waiting: (() => void) | undefined;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, chunk]);
      this.#waiting?.();
    });
    socket.on('close', () => this.#waiting?.());
  }

  static open(host: string, port: number, preamble?: string | Buffer): Promise<Client> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        socket.on('error', () => {});
        if (preamble !== undefined) socket.write(preamble);
        resolve(new Client(socket));
      });
    });
  }

  get localPort(): number {
    return this.socket.localPort!;
  }

  async get(path: string): Promise<Answer> {
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: gw.test\r\n\r\n`);
    for (;;) {
      const end = this.#buf.indexOf('\r\n\r\n');
      if (end !== -1) {
        const head = this.#buf.toString('latin1', 0, end);
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? NaN);
        if (Number.isNaN(length)) throw new Error(`no content-length in ${head}`);
        if (this.#buf.length >= end + 4 + length) {
          const body = this.#buf.toString('utf8', end + 4, end + 4 + length);
          this.#buf = this.#buf.subarray(end + 4 + length);
          return { status: Number(head.split(' ')[1]), body };
        }
      }
      if (this.socket.destroyed) throw new Error(`connection closed; got ${this.#buf.toString('latin1')}`);
      await new Promise<void>((r) => (this.#waiting = r));
    }
  }

  close(): Promise<void> {
    return new Promise((r) => {
      if (this.socket.closed) return r();
      this.socket.once('close', () => r());
      this.socket.end();
    });
  }
}

async function json(client: Client, path: string): Promise<{ conn: number; source: { address: string; port: number } | null }> {
  const a = await client.get(path);
  expect(a.status, a.body).toBe(200);
  return JSON.parse(a.body);
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

function hasIPv6Loopback(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createNetServer();
    s.once('error', () => resolve(false));
    s.listen(0, '::1', () => s.close(() => resolve(true)));
  });
}

// --- the gateway under test -------------------------------------------------------------------

const closers: (() => Promise<void>)[] = [];
let dir: string;
let httpTap: Tap;
let httpsTap: Tap;
let plain: Upstream;
let routes: string;
let gw: TestGateway;

beforeAll(async () => {
  connIds = new WeakMap();
  dir = await mkdtemp(join(tmpdir(), 'waygate-pp-out-'));
  const ca = await makeCa();
  const leaf = await makeLeaf(['backend.internal'], ca);
  await writeFile(join(dir, 'ca.pem'), ca.cert);

  const http = createServer(reporter);
  greeter(http);
  const httpFront = await behindReceiver(http);
  httpTap = await startTap(httpFront.port);
  const https = createHttpsServer({ cert: leaf.cert, key: leaf.key }, reporter);
  greeter(https as unknown as Server);
  const httpsFront = await behindReceiver(https as unknown as Server);
  httpsTap = await startTap(httpsFront.port);
  plain = await startUpstream(reporter);
  closers.push(() => httpTap.close(), () => httpFront.close(), () => httpsTap.close(), () => httpsFront.close(), () => plain.close());

  const tls = `tls: { ca: ${join(dir, 'ca.pem')}, serverName: backend.internal }`;
  routes = `
pools:
  v1: { targets: ["http://127.0.0.1:${httpTap.port}"], proxyProtocol: v1, retries: 0 }
  v2: { targets: ["http://127.0.0.1:${httpTap.port}"], proxyProtocol: v2, retries: 0 }
  tls1: { targets: ["https://127.0.0.1:${httpsTap.port}"], proxyProtocol: v1, retries: 0, ${tls} }
  tls2: { targets: ["https://127.0.0.1:${httpsTap.port}"], proxyProtocol: v2, retries: 0, ${tls} }
  plain: { targets: ["${plain.url}"] }
routes:
  - { name: v1, match: { path: "/v1/*" }, pool: v1 }
  - { name: v2, match: { path: "/v2/*" }, pool: v2 }
  - { name: tls1, match: { path: "/tls1/*" }, pool: tls1 }
  - { name: tls2, match: { path: "/tls2/*" }, pool: tls2 }
  - { name: plain, match: { path: "/plain/*" }, pool: plain }
`;
  gw = await startGateway(routes);
  closers.unshift(() => gw.close());
});

afterAll(async () => {
  for (const close of closers) await close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** The tapped connections opened while `fn` ran. */
async function opened<T>(tap: Tap, fn: () => Promise<T>): Promise<{ result: T; conns: TapConn[] }> {
  const before = tap.conns.length;
  const result = await fn();
  return { result, conns: tap.conns.slice(before) };
}

describe('the header', () => {
  test.each(['v1', 'v2'] as const)('%s: announces the client address and port and waygate\'s listener, first on the connection', async (v) => {
    const c = await Client.open('127.0.0.1', gw.port);
    const { result, conns } = await opened(httpTap, () => json(c, `/${v}/a`));
    expect(result.source).toEqual({ address: '127.0.0.1', port: c.localPort });
    expect(conns).toHaveLength(1);
    const { info, raw, rest } = headerOf(conns[0]);
    expect(info).toEqual({ version: v === 'v1' ? 1 : 2, command: 'PROXY', family: 'TCP4', sourceAddress: '127.0.0.1', sourcePort: c.localPort, destAddress: '127.0.0.1', destPort: gw.port });
    if (v === 'v1') expect(raw.toString('latin1')).toBe(`PROXY TCP4 127.0.0.1 127.0.0.1 ${c.localPort} ${gw.port}\r\n`);
    else expect(raw.length).toBe(16 + 12);
    // The request follows the header, and nothing comes between them.
    expect(rest.toString('latin1')).toMatch(new RegExp(`^GET /${v}/a HTTP/1\\.1\\r\\n`));
    await c.close();
  });

  test('IPv6: a client over ::1 is announced as TCP6', async (ctx) => {
    if (!(await hasIPv6Loopback())) return ctx.skip('no ::1 on this machine');
    const g6 = await startGateway(routes, (c) => {
      c.listeners.http.address = { host: '::1', port: 0 };
    });
    try {
      for (const v of ['v1', 'v2'] as const) {
        const c = await Client.open('::1', g6.port);
        const { result, conns } = await opened(httpTap, () => json(c, `/${v}/six`));
        expect(result.source).toEqual({ address: '::1', port: c.localPort });
        const { info, raw } = headerOf(conns[0]);
        expect(info).toEqual({ version: v === 'v1' ? 1 : 2, command: 'PROXY', family: 'TCP6', sourceAddress: '::1', sourcePort: c.localPort, destAddress: '::1', destPort: g6.port });
        if (v === 'v1') expect(raw.toString('latin1')).toBe(`PROXY TCP6 ::1 ::1 ${c.localPort} ${g6.port}\r\n`);
        else expect(raw.length).toBe(16 + 36);
        await c.close();
      }
    } finally {
      await g6.close();
    }
  });

  test.each(['tls1', 'tls2'] as const)('%s: an https:// target gets the header before the TLS ClientHello', async (pool) => {
    const c = await Client.open('127.0.0.1', gw.port);
    const { result, conns } = await opened(httpsTap, () => json(c, `/${pool}/secure`));
    // The receiver stripped the header, then TLS (verified against the private CA) completed.
    expect(result.source).toEqual({ address: '127.0.0.1', port: c.localPort });
    expect(conns).toHaveLength(1);
    const { info, rest } = headerOf(conns[0]);
    expect(info.sourcePort).toBe(c.localPort);
    expect(info.destPort).toBe(gw.port);
    expect(rest[0]).toBe(0x16); // a TLS handshake record
    // Kept alive and reused by the same client connection: no second header, no second handshake.
    const again = await opened(httpsTap, () => json(c, `/${pool}/again`));
    expect(again.result.conn).toBe(result.conn);
    expect(again.conns).toHaveLength(0);
    await c.close();
  });
});

describe('upstream connections belong to one client connection', () => {
  test('two client connections never share one; each reuses its own', async () => {
    const a = await Client.open('127.0.0.1', gw.port);
    const b = await Client.open('127.0.0.1', gw.port);
    const a1 = await json(a, '/v2/1');
    // A's upstream connection is idle now: B must not get it.
    const b1 = await json(b, '/v2/1');
    expect(b1.conn).not.toBe(a1.conn);
    expect(b1.source?.port).toBe(b.localPort);
    const a2 = await json(a, '/v2/2');
    const b2 = await json(b, '/v2/2');
    const a3 = await json(a, '/v2/3');
    expect([a2.conn, a3.conn]).toEqual([a1.conn, a1.conn]);
    expect(b2.conn).toBe(b1.conn);
    expect([a1, a2, a3].map((r) => r.source?.port)).toEqual([a.localPort, a.localPort, a.localPort]);
    await Promise.all([a.close(), b.close()]);
  });

  test('concurrent requests of two clients each carry their own client address', async () => {
    const clients = await Promise.all([1, 2, 3, 4].map(() => Client.open('127.0.0.1', gw.port)));
    const replies = await Promise.all(clients.map((c) => json(c, '/v1/concurrent')));
    expect(replies.map((r) => r.source?.port)).toEqual(clients.map((c) => c.localPort));
    expect(new Set(replies.map((r) => r.conn)).size).toBe(4);
    await Promise.all(clients.map((c) => c.close()));
  });

  test('a pool without proxyProtocol still shares its kept-alive connections (unchanged)', async () => {
    const a = await Client.open('127.0.0.1', gw.port);
    const b = await Client.open('127.0.0.1', gw.port);
    const a1 = await json(a, '/plain/1');
    const b1 = await json(b, '/plain/1');
    expect(b1.conn).toBe(a1.conn);
    expect(a1.source).toBeNull();
    await Promise.all([a.close(), b.close()]);
  });

  test('the idle upstream connection of a client connection that went away is closed', async () => {
    const c = await Client.open('127.0.0.1', gw.port);
    const { conns } = await opened(httpTap, () => json(c, '/v1/leaving'));
    expect(conns).toHaveLength(1);
    expect(conns[0].closed).toBe(false);
    await c.close();
    // The pool's sweep runs every second.
    await until(() => conns[0].closed, 3000);
  });

  test('an idle upstream connection is closed after the keep-alive time even while its client stays', async () => {
    const c = await Client.open('127.0.0.1', gw.port);
    const { conns } = await opened(httpTap, () => json(c, '/v2/lingering'));
    await new Promise((r) => setTimeout(r, 1000));
    expect(conns[0].closed).toBe(false);
    // waygate keeps an idle upstream connection 4 s, swept once a second.
    await until(() => conns[0].closed, 6000);
    // The client's next request gets a fresh connection with the same header.
    const next = await opened(httpTap, () => json(c, '/v2/next'));
    expect(next.conns).toHaveLength(1);
    expect(headerOf(next.conns[0]).raw).toEqual(headerOf(conns[0]).raw);
    await c.close();
  }, 15_000);
});

describe('an HTTP/2 client connection', () => {
  test('its streams share upstream connections announced with its address; another session gets its own', async () => {
    const hg = await startHttpsGateway(routes);
    try {
      const ask = (session: ReturnType<typeof h2connect>, path: string): Promise<{ conn: number; source: { address: string; port: number } | null }> =>
        new Promise((resolve, reject) => {
          const stream = session.request({ ':path': path });
          let body = '';
          stream.setEncoding('utf8');
          stream.on('data', (c: string) => (body += c));
          stream.on('end', () => resolve(JSON.parse(body)));
          stream.on('error', reject);
        });
      const open = async (): Promise<{ session: ReturnType<typeof h2connect>; port: number }> => {
        const session = h2connect(`https://127.0.0.1:${hg.httpsPort}`, { rejectUnauthorized: false });
        await new Promise<void>((r, j) => session.once('connect', () => r()).once('error', j));
        return { session, port: (session.socket as Socket).localPort! };
      };
      const a = await open();
      const b = await open();
      const a1 = await ask(a.session, '/v2/h2');
      const b1 = await ask(b.session, '/v2/h2');
      const a2 = await ask(a.session, '/v2/h2-again');
      expect(a1.source).toEqual({ address: '127.0.0.1', port: a.port });
      expect(b1.source).toEqual({ address: '127.0.0.1', port: b.port });
      expect(a2.conn).toBe(a1.conn);
      expect(b1.conn).not.toBe(a1.conn);
      await Promise.all([a, b].map(({ session }) => new Promise<void>((r) => session.close(() => r()))));
    } finally {
      await hg.close();
    }
  });
});

describe('WebSocket upgrades', () => {
  function greeting(url: string): Promise<{ source: { address: string; port: number } | null; localPort: number }> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      let localPort = 0;
      ws.once('upgrade', (res) => (localPort = res.socket.localPort!));
      ws.once('message', (data) => {
        resolve({ ...JSON.parse(String(data)), localPort });
        ws.close();
      });
      ws.once('error', reject);
    });
  }

  test.each(['v1', 'v2', 'tls1', 'tls2'] as const)('%s: the tunnel\'s upstream connection starts with the header', async (pool) => {
    const tap = pool.startsWith('tls') ? httpsTap : httpTap;
    const { result, conns } = await opened(tap, () => greeting(`ws://127.0.0.1:${gw.port}/${pool}/ws`));
    expect(result.source).toEqual({ address: '127.0.0.1', port: result.localPort });
    expect(conns).toHaveLength(1);
    const { info, rest } = headerOf(conns[0]);
    expect(info.family).toBe('TCP4');
    expect([info.sourcePort, info.destPort]).toEqual([result.localPort, gw.port]);
    if (pool.startsWith('tls')) expect(rest[0]).toBe(0x16);
    else expect(rest.toString('latin1')).toMatch(new RegExp(`^GET /${pool}/ws HTTP/1\\.1\\r\\n`));
  });
});

describe('behind a listener that receives the PROXY protocol', () => {
  let front: TestGateway;
  beforeAll(async () => {
    front = await startGateway(routes, (c) => {
      c.listeners.http.proxyProtocol = true;
    });
  });
  afterAll(() => front.close());

  test('the address the client\'s own header carried is announced upstream', async () => {
    const c = await Client.open('127.0.0.1', front.port, 'PROXY TCP4 203.0.113.7 198.51.100.1 40001 443\r\n');
    const { result, conns } = await opened(httpTap, () => json(c, '/v1/carried'));
    expect(result.source).toEqual({ address: '203.0.113.7', port: 40001 });
    // Both ends of the header the balancer sent go on (as HAProxy does), its destination included.
    expect(headerOf(conns[0]).raw.toString('latin1')).toBe('PROXY TCP4 203.0.113.7 198.51.100.1 40001 443\r\n');
    // Its next request reuses the same upstream connection.
    expect((await json(c, '/v1/carried-again')).conn).toBe(result.conn);
    await c.close();
  });

  test('an IPv6 client announced to an IPv4 listener keeps both IPv6 ends of the header it came with', async () => {
    const c = await Client.open('127.0.0.1', front.port, 'PROXY TCP6 2001:db8::7 2001:db8::1 40002 443\r\n');
    const { result, conns } = await opened(httpTap, () => json(c, '/v2/carried6'));
    expect(result.source).toEqual({ address: '2001:db8::7', port: 40002 });
    expect(headerOf(conns[0]).info).toEqual({ version: 2, command: 'PROXY', family: 'TCP6', sourceAddress: '2001:db8::7', sourcePort: 40002, destAddress: '2001:db8::1', destPort: 443 });
    await c.close();
  });

  test('two clients announced with different addresses keep separate upstream connections', async () => {
    const a = await Client.open('127.0.0.1', front.port, 'PROXY TCP4 192.0.2.1 198.51.100.1 1111 443\r\n');
    const b = await Client.open('127.0.0.1', front.port, 'PROXY TCP4 192.0.2.2 198.51.100.1 2222 443\r\n');
    const a1 = await json(a, '/v2/x');
    const b1 = await json(b, '/v2/x');
    const a2 = await json(a, '/v2/y');
    expect(a1.source).toEqual({ address: '192.0.2.1', port: 1111 });
    expect(b1.source).toEqual({ address: '192.0.2.2', port: 2222 });
    expect(a2.conn).toBe(a1.conn);
    expect(b1.conn).not.toBe(a1.conn);
    await Promise.all([a.close(), b.close()]);
  });
});

// --- NGINX as the backend ----------------------------------------------------------------------

/** The nginx binary, installed with apt if missing and possible; a reason string when not. */
function findNginx(): string | { skip: string } {
  const known = ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx', '/usr/local/nginx/sbin/nginx'];
  const found = (): string | undefined => known.find((p) => existsSync(p)) ?? (spawnSync('sh', ['-c', 'command -v nginx']).stdout?.toString().trim() || undefined);
  let bin = found();
  if (bin !== undefined) return bin;
  if (spawnSync('sh', ['-c', 'command -v apt-get']).status !== 0) return { skip: 'nginx is not installed and apt-get is not available' };
  const apt = spawnSync('sh', ['-c', 'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light)'], { timeout: 240_000 });
  bin = found();
  return bin ?? { skip: `nginx is not installed and apt-get install nginx-light failed (${apt.status ?? apt.error?.message}): ${apt.stderr?.toString().slice(-300)}` };
}

const nginx = findNginx();
if (typeof nginx !== 'string') console.warn(`[proxy-protocol-out] skipping the NGINX tests: ${nginx.skip}`);

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s: NetServer = createNetServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

describe.skipIf(typeof nginx !== 'string')('NGINX as the backend (listen … proxy_protocol)', () => {
  let proc: ChildProcess;
  let prefix: string;
  let port: number;
  let ng: TestGateway;

  beforeAll(async () => {
    prefix = await mkdtemp(join(tmpdir(), 'waygate-pp-nginx-'));
    port = await freePort();
    const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${t}_temp_path ${join(prefix, t)};`).join('\n  ');
    await writeFile(join(prefix, 'nginx.conf'), `
daemon off;
master_process off;
worker_processes 1;
pid ${join(prefix, 'nginx.pid')};
error_log ${join(prefix, 'error.log')} warn;
events { worker_connections 128; }
http {
  access_log off;
  ${temp}
  keepalive_timeout 60s;
  server {
    listen 127.0.0.1:${port} proxy_protocol;
    location / {
      default_type text/plain;
      return 200 "$proxy_protocol_addr $proxy_protocol_port $proxy_protocol_server_addr $proxy_protocol_server_port $connection";
    }
  }
}
`);
    proc = spawn(nginx as string, ['-p', prefix, '-e', join(prefix, 'error.log'), '-c', join(prefix, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr!.on('data', (c: Buffer) => (stderr += c));
    const reap = (): void => void proc.kill('SIGKILL');
    process.once('exit', reap);
    proc.once('exit', () => process.off('exit', reap));
    // Up once its port accepts connections.
    for (const deadline = Date.now() + 10_000; ; ) {
      if (proc.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
      const up = await new Promise<boolean>((r) => {
        const s = connect(port, '127.0.0.1');
        s.once('connect', () => {
          s.destroy();
          r(true);
        });
        s.once('error', () => r(false));
      });
      if (up) break;
      if (Date.now() > deadline) throw new Error(`nginx did not listen: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    ng = await startGateway(`
pools:
  v1: { targets: ["http://127.0.0.1:${port}"], proxyProtocol: v1, retries: 0 }
  v2: { targets: ["http://127.0.0.1:${port}"], proxyProtocol: v2, retries: 0 }
routes:
  - { name: v1, match: { path: "/v1/*" }, pool: v1 }
  - { name: v2, match: { path: "/v2/*" }, pool: v2 }
`);
  });

  afterAll(async () => {
    await ng?.close();
    if (proc !== undefined && proc.exitCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    }
    if (prefix !== undefined) await rm(prefix, { recursive: true, force: true });
  });

  async function nginxSays(c: Client, path: string): Promise<{ addr: string; port: number; serverAddr: string; serverPort: number; conn: string }> {
    const a = await c.get(path);
    expect(a.status, a.body).toBe(200);
    const [addr, p, serverAddr, serverPort, conn] = a.body.split(' ');
    return { addr, port: Number(p), serverAddr, serverPort: Number(serverPort), conn };
  }

  test.each(['v1', 'v2'] as const)('%s: nginx sees the client address and port, and waygate\'s listener', async (v) => {
    const a = await Client.open('127.0.0.1', ng.port);
    const b = await Client.open('127.0.0.1', ng.port);
    const a1 = await nginxSays(a, `/${v}/a`);
    expect(a1).toMatchObject({ addr: '127.0.0.1', port: a.localPort, serverAddr: '127.0.0.1', serverPort: ng.port });
    const b1 = await nginxSays(b, `/${v}/b`);
    expect(b1).toMatchObject({ addr: '127.0.0.1', port: b.localPort });
    // Per client connection: its own nginx connection, reused by its next request.
    expect(b1.conn).not.toBe(a1.conn);
    expect((await nginxSays(a, `/${v}/a2`)).conn).toBe(a1.conn);
    expect((await nginxSays(b, `/${v}/b2`)).conn).toBe(b1.conn);
    await Promise.all([a.close(), b.close()]);
  });

  test('IPv6: nginx sees ::1 and the client port', async (ctx) => {
    if (!(await hasIPv6Loopback())) return ctx.skip('no ::1 on this machine');
    const g6 = await startGateway(`
pools:
  v1: { targets: ["http://127.0.0.1:${port}"], proxyProtocol: v1, retries: 0 }
  v2: { targets: ["http://127.0.0.1:${port}"], proxyProtocol: v2, retries: 0 }
routes:
  - { name: v1, match: { path: "/v1/*" }, pool: v1 }
  - { name: v2, match: { path: "/v2/*" }, pool: v2 }
`, (c) => {
      c.listeners.http.address = { host: '::1', port: 0 };
    });
    try {
      for (const v of ['v1', 'v2']) {
        const c = await Client.open('::1', g6.port);
        expect(await nginxSays(c, `/${v}/six`)).toMatchObject({ addr: '::1', port: c.localPort, serverAddr: '::1', serverPort: g6.port });
        await c.close();
      }
    } finally {
      await g6.close();
    }
  });
});

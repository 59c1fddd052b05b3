// WebSocket upgrades through the gateway (SPEC §4) with real `ws` clients and servers: echo,
// forwarded headers and rewrites, sticky pins, close propagation both ways, refusals and
// errors on the raw socket, no leaked in-flight counts or sockets, idle timeout, drain, and
// wss on the HTTPS listener (and to https:// targets).
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import type { RawData } from 'ws';
import { closedPort, rawExchange, startGateway } from '../helpers.ts';
import type { TestGateway } from '../helpers.ts';
import { makeCa, makeLeaf } from '../tls-helpers.ts';
import type { Pem } from '../tls-helpers.ts';

/** A `ws` upstream: echoes every message, records every handshake and connection. */
interface WsUpstream {
  url: string;
  wss: WebSocketServer;
  /** Handshake requests, in arrival order (refused ones included). */
  handshakes: { url: string; headers: IncomingHttpHeaders; socket: Socket }[];
  /** Handshakes parked by `hold`: call one to accept it. */
  held: (() => void)[];
  /** Resolves once `n` handshakes have arrived. */
  handshake(n: number): Promise<void>;
  /** Resolves with the (first) accepted connection whose handshake asked for `url`. */
  connection(url: string): Promise<WebSocket>;
  close(): Promise<void>;
}

/**
 * Starts a `ws` upstream (plain, or TLS with `tls`); `refuse` answers every handshake with that
 * status; `hold` parks every handshake in `held` until the test accepts it.
 */
async function startWsUpstream(o: { refuse?: number; tls?: Pem; hold?: boolean } = {}): Promise<WsUpstream> {
  const held: (() => void)[] = [];
  const arrivals: (() => void)[] = [];
  const server: Server = o.tls === undefined ? createServer() : createHttpsServer({ cert: o.tls.cert, key: o.tls.key });
  const handshakes: WsUpstream['handshakes'] = [];
  const wss = new WebSocketServer({
    server,
    verifyClient: (info: { req: IncomingMessage }, cb: (ok: boolean, code?: number, message?: string) => void) => {
      handshakes.push({ url: info.req.url!, headers: info.req.headers, socket: info.req.socket });
      for (const w of arrivals.splice(0)) w();
      if (o.hold) held.push(() => cb(true));
      else if (o.refuse === undefined) cb(true);
      else cb(false, o.refuse, 'refused by upstream');
    },
  });
  const byUrl = new Map<string, WebSocket>();
  const waiting = new Map<string, (ws: WebSocket) => void>();
  wss.on('connection', (ws, req) => {
    ws.on('error', () => {});
    ws.on('message', (data: RawData, isBinary: boolean) => {
      // Lets a client ask for an upstream-initiated close.
      if (!isBinary && data.toString() === 'close please') ws.close(4002, 'as asked');
      else ws.send(data as Buffer, { binary: isBinary });
    });
    const url = req.url!;
    if (!byUrl.has(url)) byUrl.set(url, ws);
    waiting.get(url)?.(ws);
    waiting.delete(url);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${o.tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`,
    wss,
    handshakes,
    held,
    handshake: async (n) => {
      while (handshakes.length < n) await new Promise<void>((r) => arrivals.push(r));
    },
    connection: (url) => {
      const ws = byUrl.get(url);
      return ws !== undefined ? Promise.resolve(ws) : new Promise((r) => waiting.set(url, r));
    },
    close: () => new Promise<void>((r) => {
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

/** Opens a WebSocket; resolves once open with the handshake response (rejects on a refusal). */
function open(url: string, options: WebSocket.ClientOptions = {}): Promise<{ ws: WebSocket; res: IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    let res: IncomingMessage | undefined;
    ws.once('upgrade', (r) => (res = r));
    ws.once('open', () => resolve({ ws, res: res! }));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, r) => reject(new Error(`unexpected response ${r.statusCode}`)));
  });
}

/** Attempts a WebSocket that must be refused; resolves with the HTTP response it got instead. */
function refused(url: string, options: WebSocket.ClientOptions = {}): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    ws.on('error', () => {});
    ws.once('open', () => reject(new Error('the upgrade was accepted')));
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => {
        req.destroy();
        resolve({ status: res.statusCode!, headers: res.headers, body });
      });
    });
  });
}

/** Resolves with the next message a socket receives. */
function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve) => ws.once('message', (data: RawData, isBinary: boolean) => resolve({ data: data as Buffer, isBinary })));
}

/** Resolves with the close code once a socket is closed (at once if it already is). */
function closed(ws: WebSocket): Promise<number> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve(-1);
  return new Promise((resolve) => ws.once('close', (code: number) => resolve(code)));
}

/** Polls `check` until it holds (counters that have no event of their own); fails after `ms`. */
async function settles(check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition did not settle in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The `waygate_open_connections` gauge of a listener. */
async function openConnections(gw: TestGateway, listener: string): Promise<number> {
  const m = await gw.gateway.metrics.registry.getSingleMetric('waygate_open_connections')!.get();
  return m.values.find((v) => v.labels.listener === listener)?.value ?? 0;
}

describe('WebSocket over the HTTP listener', () => {
  let up: WsUpstream;
  let a: WsUpstream;
  let b: WsUpstream;
  let deny: WsUpstream;
  let slow: WsUpstream;
  let gw: TestGateway;
  let ws: string;

  beforeAll(async () => {
    [up, a, b, deny, slow] = await Promise.all([startWsUpstream(), startWsUpstream(), startWsUpstream(), startWsUpstream({ refuse: 401 }), startWsUpstream({ hold: true })]);
    const dead = await closedPort();
    gw = await startGateway(`
pools:
  echo: { targets: ["${up.url}"] }
  idle: { targets: ["${up.url}"], timeouts: { idle: 300ms } }
  st:
    targets: ["${a.url}", "${b.url}"]
    sticky: { cookie: wsaff, onDown: fail }
  deny: { targets: ["${deny.url}"] }
  dead: { targets: ["http://127.0.0.1:${dead}"] }
  down: { targets: ["${up.url}"] }
  slow: { targets: ["${slow.url}"], timeouts: { response: 300ms } }
routes:
  - { name: echo, match: { path: /ws/* }, pool: echo, stripPrefix: /ws, requestHeaders: { set: { x-env: test } }, responseHeaders: { set: { x-route: echo } } }
  - { name: idle, match: { path: /idle }, pool: idle }
  - { name: st, match: { path: /st }, pool: st }
  - { name: deny, match: { path: /deny }, pool: deny }
  - { name: dead, match: { path: /dead }, pool: dead }
  - { name: down, match: { path: /down }, pool: down }
  - { name: slow, match: { path: /slow/* }, pool: slow }
  - { name: hello, match: { path: /hello }, respond: { status: 200, body: "hello" } }
`, undefined, { ...process.env, WAYGATE_SECRET: 'websocket-test-secret' });
    gw.gateway.pools.get('down')!.targets[0].setHealthy(false);
    ws = `ws://127.0.0.1:${gw.port}`;
  });
  afterAll(async () => {
    await gw.close();
    for (const accept of slow.held.splice(0)) accept();
    await Promise.all([up, a, b, deny, slow].map((u) => u.close()));
  });

  test('a 1 MiB binary message comes back byte-exact, and text messages as text', async () => {
    const { ws: c } = await open(`${ws}/ws/echo`);
    const big = randomBytes(1024 * 1024);
    c.send(big);
    const back = await nextMessage(c);
    expect(back.isBinary).toBe(true);
    expect(back.data.equals(big)).toBe(true);
    for (const text of ['hello', 'ünïcödé ✓', '']) {
      c.send(text);
      const m = await nextMessage(c);
      expect(m.isBinary).toBe(false);
      expect(m.data.toString()).toBe(text);
    }
    c.close();
    await closed(c);
  });

  test('the upstream sees the rewritten path, x-forwarded-*, the route headers and the request id', async () => {
    const before = up.handshakes.length;
    const { ws: c, res } = await open(`${ws}/ws/chat?room=1`, { headers: { 'x-request-id': 'ws-req-1', 'x-forwarded-for': '6.6.6.6' } });
    const h = up.handshakes[before];
    expect(h.url).toBe('/chat?room=1');
    expect(h.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(h.headers['x-forwarded-proto']).toBe('http');
    expect(h.headers['x-forwarded-host']).toBe(`127.0.0.1:${gw.port}`);
    expect(h.headers.host).toBe(`127.0.0.1:${gw.port}`);
    expect(h.headers['x-request-id']).toBe('ws-req-1');
    expect(h.headers['x-env']).toBe('test');
    expect(h.headers.upgrade).toBe('websocket');
    expect(h.headers.connection?.toLowerCase()).toBe('upgrade');
    expect(res.headers['x-request-id']).toBe('ws-req-1');
    expect(res.headers['x-route']).toBe('echo');
    c.close();
    await closed(c);

    const { ws: c2, res: res2 } = await open(`${ws}/ws/x`);
    const generated = up.handshakes[before + 1].headers['x-request-id'];
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);
    expect(res2.headers['x-request-id']).toBe(generated);
    c2.close();
    await closed(c2);
  });

  test('one access-log line per session, when it ends, with status 101, tunnel bytes and the route', async () => {
    const { ws: c } = await open(`${ws}/ws/logged`, { headers: { 'x-request-id': 'ws-log-1', 'user-agent': 'ws-test' } });
    c.send(Buffer.alloc(1000));
    await nextMessage(c);
    expect(gw.accessLogs().find((l) => l.reqId === 'ws-log-1')).toBeUndefined();
    c.close();
    await closed(c);
    const line = await gw.waitForLog((l) => l.msg === 'request' && l.reqId === 'ws-log-1');
    expect(line).toMatchObject({ method: 'GET', path: '/ws/logged', status: 101, route: 'echo', pool: 'echo', target: up.url, attempts: 1, clientIp: '127.0.0.1', userAgent: 'ws-test', proto: 'HTTP/1.1' });
    expect(line.bytesIn).toBeGreaterThanOrEqual(1000);
    expect(line.bytesOut).toBeGreaterThanOrEqual(1000);
    expect(typeof line.durationMs).toBe('number');
    expect(gw.accessLogs().filter((l) => l.reqId === 'ws-log-1')).toHaveLength(1);
    const metrics = await gw.gateway.metrics.registry.metrics();
    expect(metrics).toMatch(/waygate_requests_total\{[^}]*route="echo"[^}]*code="101"[^}]*\} \d+/);
  });

  test('sticky: a client with the cookie lands on the pinned target; one without gets pinned by the 101', async () => {
    const pool = gw.gateway.pools.get('st')!;
    const token = pool.sticky!.token(pool.targets[1]);
    const [beforeA, beforeB] = [a.handshakes.length, b.handshakes.length];
    for (let i = 0; i < 4; i++) {
      const { ws: c, res } = await open(`${ws}/st`, { headers: { cookie: `other=1; wsaff=${token}` } });
      expect(res.headers['set-cookie']).toBeUndefined();
      c.close();
      await closed(c);
    }
    expect(a.handshakes.length - beforeA).toBe(0);
    expect(b.handshakes.length - beforeB).toBe(4);

    const { ws: fresh, res } = await open(`${ws}/st`);
    const cookie = String(res.headers['set-cookie']);
    expect(cookie).toMatch(/^wsaff=[\w-]+; Path=\/; HttpOnly; SameSite=Lax$/);
    fresh.close();
    await closed(fresh);

    // onDown: fail — the pinned target is down: 503, not another target.
    pool.targets[1].setHealthy(false);
    try {
      const r = await refused(`${ws}/st`, { headers: { cookie: `wsaff=${token}` } });
      expect(r.status).toBe(503);
      expect(b.handshakes.length - beforeB).toBe(4);
    } finally {
      pool.targets[1].setHealthy(true);
    }
  });

  test('a client closing closes the upstream side, with its close code', async () => {
    const { ws: c } = await open(`${ws}/ws/close-client`);
    const server = await up.connection('/close-client');
    const upstreamClosed = closed(server);
    c.close(4000, 'bye');
    expect(await upstreamClosed).toBe(4000);
    await closed(c);
  });

  test('the upstream closing closes the client, with its close code', async () => {
    const { ws: c } = await open(`${ws}/ws/close-upstream`);
    const server = await up.connection('/close-upstream');
    const clientClosed = closed(c);
    server.close(4001, 'server bye');
    expect(await clientClosed).toBe(4001);
  });

  test('an upstream that dies (socket destroyed) closes the client within a second', async () => {
    const { ws: c } = await open(`${ws}/ws/kill-upstream`);
    const server = await up.connection('/kill-upstream');
    const clientClosed = closed(c);
    const t0 = performance.now();
    server.terminate();
    expect(await clientClosed).toBe(1006);
    expect(performance.now() - t0).toBeLessThan(1500);
  });

  test('a client that dies closes the upstream side within a second', async () => {
    const { ws: c } = await open(`${ws}/ws/kill-client`);
    const server = await up.connection('/kill-client');
    const upstreamClosed = closed(server);
    const t0 = performance.now();
    c.terminate();
    expect(await upstreamClosed).toBe(1006);
    expect(performance.now() - t0).toBeLessThan(1500);
  });

  test('an upstream refusing the handshake with 401: the client sees the 401 and the socket closes', async () => {
    const r = await refused(`${ws}/deny`, { headers: { 'x-request-id': 'denied-1' } });
    expect(r.status).toBe(401);
    expect(r.headers['x-request-id']).toBe('denied-1');
    expect(r.headers.connection).toBe('close');
    const line = await gw.waitForLog((l) => l.msg === 'request' && l.reqId === 'denied-1');
    expect(line).toMatchObject({ status: 401, route: 'deny', target: deny.url });
    await settles(() => gw.gateway.pools.get('deny')!.targets[0].inFlight === 0);
  });

  test('no route → 404 "no route"; no healthy target → 503 with retry-after; unreachable target → 502', async () => {
    const none = await refused(`${ws}/nowhere`);
    expect(none.status).toBe(404);
    expect(none.body).toBe('no route');
    expect(none.headers['x-request-id']).toBeDefined();
    expect(none.headers.connection).toBe('close');

    const down = await refused(`${ws}/down`);
    expect(down.status).toBe(503);
    expect(down.body).toBe('no healthy upstream');
    expect(down.headers['retry-after']).toBeDefined();

    const dead = await refused(`${ws}/dead`);
    expect(dead.status).toBe(502);
    expect(gw.gateway.pools.get('dead')!.targets[0].inFlight).toBe(0);
  });

  test('a handshake the upstream does not answer within timeouts.response gets 504', async () => {
    const r = await refused(`${ws}/slow/timeout`);
    expect(r.status).toBe(504);
    await settles(() => gw.gateway.pools.get('slow')!.targets[0].inFlight === 0);
  });

  test('a client leaving during the handshake: the target is released and the late upstream socket closed', async () => {
    const before = slow.handshakes.length;
    const c = new WebSocket(`${ws}/slow/leaving`);
    c.on('error', () => {});
    await slow.handshake(before + 1);
    const target = gw.gateway.pools.get('slow')!.targets[0];
    expect(target.inFlight).toBe(1);
    c.terminate();
    // The client socket is read during the handshake, so its FIN ends the attempt at once
    // (websocket-tunnel.test.ts shows it with a 60 s timeouts.response).
    await settles(() => target.inFlight === 0);
    const upstreamSocket = slow.handshakes[before].socket;
    const abandoned = upstreamSocket.destroyed ? Promise.resolve() : new Promise((r) => upstreamSocket.once('close', r));
    for (const accept of slow.held.splice(0)) accept();
    await abandoned;
    await settles(() => slow.wss.clients.size === 0);
  });

  test('a respond route answers the handshake itself on the raw socket', async () => {
    const r = await refused(`${ws}/hello`);
    expect(r.status).toBe(200);
    expect(r.body).toBe('hello');
  });

  test('an upgrade to anything but websocket gets 400 and the connection closes', async () => {
    const reply = await rawExchange(gw.port, 'GET /ws/x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: IRC/6.9\r\n\r\n');
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    expect(reply.toLowerCase()).toContain('connection: close');
    expect(reply.toLowerCase()).toContain('x-request-id: ');
    // A POST asking for websocket is no WebSocket handshake either (RFC 6455 §4.1: GET).
    const post = await rawExchange(gw.port, 'POST /ws/x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n');
    expect(post).toMatch(/^HTTP\/1\.1 400 /);
    expect(up.handshakes.some((h) => h.url === '/x' && h.headers.upgrade === 'IRC/6.9')).toBe(false);
  });

  test('a handshake that declares a body gets 400 and reaches no upstream (RFC 6455 §4.1 gives it none)', async () => {
    const before = up.handshakes.length;
    const key = 'dGhlIHNhbXBsZSBub25jZQ==';
    const sized = await rawExchange(gw.port, `GET /ws/body HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\nContent-Length: 5\r\n\r\nhello`);
    expect(sized).toMatch(/^HTTP\/1\.1 400 /);
    const chunked = await rawExchange(gw.port, `GET /ws/body HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`);
    expect(chunked).toMatch(/^HTTP\/1\.1 400 /);
    expect(up.handshakes.length).toBe(before);
  });

  test('an Upgrade list naming websocket among others is a WebSocket handshake; the upstream sees websocket alone', async () => {
    const before = up.handshakes.length;
    const socket = connect(gw.port, '127.0.0.1');
    socket.on('error', () => {});
    const head = new Promise<string>((resolve) => {
      let buf = '';
      socket.on('data', (c: Buffer) => {
        buf += c.toString('latin1');
        if (buf.includes('\r\n\r\n')) resolve(buf);
      });
    });
    socket.write('GET /ws/list HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c, WebSocket\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    expect(await head).toMatch(/^HTTP\/1\.1 101 /);
    const h = up.handshakes[before];
    expect(h.url).toBe('/list');
    expect(h.headers.upgrade).toBe('WebSocket');
    expect(h.headers['http2-settings']).toBeUndefined();
    const gone = new Promise((r) => socket.once('close', r));
    socket.destroy();
    await gone;
  });

  test('a silent tunnel is closed after the pool idle timeout', async () => {
    const { ws: c } = await open(`${ws}/idle`);
    const server = await up.connection('/idle');
    const upstreamClosed = closed(server);
    const t0 = performance.now();
    await closed(c);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
    await upstreamClosed;
  });

  test('500 open/close cycles leave no in-flight count and no open socket behind', async () => {
    const target = gw.gateway.pools.get('echo')!.targets[0];
    for (let round = 0; round < 50; round++) {
      await Promise.all(Array.from({ length: 10 }, async (_, j) => {
        const i = round * 10 + j;
        const { ws: c } = await open(`${ws}/ws/cycle`);
        c.send(`m${i}`);
        expect((await nextMessage(c)).data.toString()).toBe(`m${i}`);
        // Every way a session ends: client close, client dies, upstream closes.
        if (i % 3 === 0) c.close();
        else if (i % 3 === 1) c.terminate();
        else c.send('close please');
        await closed(c);
      }));
    }
    await settles(() => target.inFlight === 0);
    await settles(() => up.wss.clients.size === 0);
    await settles(async () => (await openConnections(gw, 'http')) === 0);
  });
});

describe('wss on the HTTPS listener, and to https:// targets', () => {
  let dir: string;
  let ca: Pem;
  let plain: WsUpstream;
  let secure: WsUpstream;
  let gw: TestGateway;
  let wss: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'waygate-wss-'));
    ca = await makeCa();
    const otherCa = await makeCa('someone else');
    const listenerCert = await makeLeaf(['localhost', '127.0.0.1'], ca);
    await writeFile(join(dir, 'default.crt'), listenerCert.cert);
    await writeFile(join(dir, 'default.key'), listenerCert.key);
    await writeFile(join(dir, 'ca.pem'), ca.cert);
    await writeFile(join(dir, 'other-ca.pem'), otherCa.cert);
    plain = await startWsUpstream();
    // The upstream's certificate names only "ws.internal": the gateway must check that name
    // (tls.serverName), not the address it dials nor the client's Host.
    secure = await startWsUpstream({ tls: await makeLeaf(['ws.internal'], ca) });
    gw = await startGateway(`
pools:
  plain: { targets: ["${plain.url}"] }
  secure: { targets: ["${secure.url}"], tls: { ca: ${dir}/ca.pem, serverName: ws.internal } }
  wrong-ca: { targets: ["${secure.url}"], tls: { ca: ${dir}/other-ca.pem, serverName: ws.internal } }
routes:
  - { name: plain, match: { path: /plain }, pool: plain }
  - { name: secure, match: { path: /secure }, pool: secure }
  - { name: wrong-ca, match: { path: /wrong-ca }, pool: wrong-ca }
`, (c) => {
      c.certsDir = dir;
      c.listeners.https.address = { host: '127.0.0.1', port: 0 };
      c.listeners.https.hsts = true;
    });
    wss = `wss://127.0.0.1:${gw.gateway.addresses.https!.split(':').pop()}`;
  });
  afterAll(async () => {
    await gw.close();
    await Promise.all([plain.close(), secure.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  test('a wss client reaches a plain upstream, which sees x-forwarded-proto https', async () => {
    const { ws: c, res } = await open(`${wss}/plain`, { ca: ca.cert, headers: { host: 'localhost' } });
    expect(res.headers['strict-transport-security']).toBe('max-age=31536000');
    const big = randomBytes(256 * 1024);
    c.send(big);
    expect((await nextMessage(c)).data.equals(big)).toBe(true);
    const h = plain.handshakes.at(-1)!;
    expect(h.headers['x-forwarded-proto']).toBe('https');
    expect(h.headers.host).toBe('localhost');
    const server = await plain.connection('/plain');
    const upstreamClosed = closed(server);
    c.close(4005);
    expect(await upstreamClosed).toBe(4005);
    await settles(() => gw.gateway.pools.get('plain')!.targets[0].inFlight === 0);
  });

  test('an https:// target is verified with the pool CA and tls.serverName', async () => {
    const { ws: c } = await open(`${wss}/secure`, { ca: ca.cert, headers: { host: 'localhost' } });
    c.send('over tls twice');
    expect((await nextMessage(c)).data.toString()).toBe('over tls twice');
    c.close();
    await closed(c);
    await settles(() => gw.gateway.pools.get('secure')!.targets[0].inFlight === 0);
  });

  test('an https:// target whose certificate the pool CA does not vouch for gets 502', async () => {
    const r = await refused(`${wss}/wrong-ca`, { ca: ca.cert, headers: { host: 'localhost' } });
    expect(r.status).toBe(502);
    expect(r.headers['strict-transport-security']).toBe('max-age=31536000');
    await settles(() => gw.gateway.pools.get('wrong-ca')!.targets[0].inFlight === 0);
  });
});

describe('drain', () => {
  test('closing the gateway ends open tunnels at the shutdown deadline instead of waiting for them, on both listeners', async () => {
    const up = await startWsUpstream();
    const gw = await startGateway(`
pools: { p: { targets: ["${up.url}"] } }
routes: [ { name: p, pool: p } ]
`, (c) => {
      c.listeners.https.address = { host: '127.0.0.1', port: 0 };
    });
    try {
      const { ws: c } = await open(`ws://127.0.0.1:${gw.port}/drain`);
      const { ws: t } = await open(`wss://127.0.0.1:${gw.gateway.addresses.https!.split(':').pop()}/drain-tls`, { rejectUnauthorized: false });
      const servers = [await up.connection('/drain'), await up.connection('/drain-tls')];
      const ends = [closed(c), closed(t), ...servers.map(closed)];
      const target = gw.gateway.pools.get('p')!.targets[0];
      expect(target.inFlight).toBe(2);
      // helpers' close() drains with a 1 s grace period.
      await gw.close();
      await Promise.all(ends);
      await settles(() => target.inFlight === 0);
    } finally {
      await up.close();
    }
  });
});

describe('listener timeouts', () => {
  test('a tunnel outlives clientHeader and clientIdle on both listeners', async () => {
    const up = await startWsUpstream();
    const gw = await startGateway(`
pools: { p: { targets: ["${up.url}"], timeouts: { idle: 10s } } }
routes: [ { name: p, pool: p } ]
`, (c) => {
      c.timeouts.clientHeader = 200;
      c.timeouts.clientIdle = 300;
      // A self-signed localhost certificate is generated into the temp certs dir.
      c.listeners.https.address = { host: '127.0.0.1', port: 0 };
    });
    try {
      const httpsPort = gw.gateway.addresses.https!.split(':').pop();
      const { ws: c1 } = await open(`ws://127.0.0.1:${gw.port}/plain`);
      const { ws: c2 } = await open(`wss://127.0.0.1:${httpsPort}/tls`, { rejectUnauthorized: false });
      // No event marks "a timer did not fire": wait well past both listener timeouts.
      await new Promise((r) => setTimeout(r, 800));
      for (const c of [c1, c2]) {
        expect(c.readyState, c === c1 ? 'ws' : 'wss').toBe(WebSocket.OPEN);
        c.send('still here');
        expect((await nextMessage(c)).data.toString()).toBe('still here');
        c.close();
        await closed(c);
      }
    } finally {
      await gw.close();
      await up.close();
    }
  });
});

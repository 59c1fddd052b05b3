// A bounded WebSocket stress (issue 12): many upgrades whose upstream greets at once, in a row
// and concurrently, then a seeded random mix of misbehaviour on both sides (clients that vanish
// before, during and after the handshake, half-close, send garbage; upstreams that die, reset
// the handshake, refuse). Afterwards the gateway must still serve, every target's in-flight
// count must be back to 0 and no socket may be left open in this process.
//
// WS_STRESS_SCALE=5 (say) multiplies every count for a longer run; WS_STRESS_SEED replays a mix.
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect, createServer as createNetServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import type { RawData } from 'ws';
import { send, startGateway } from '../helpers.ts';
import type { TestGateway } from '../helpers.ts';
import { makeLeaf } from '../tls-helpers.ts';

const SCALE = Math.max(1, Number(process.env.WS_STRESS_SCALE ?? 1));
const SEQUENTIAL = 100 * SCALE;
const CONCURRENT = 100 * SCALE;
const CHAOS = 200 * SCALE;
/** Chaos sessions in flight at once. */
const CHAOS_PARALLEL = 20;
const SEED = Number(process.env.WS_STRESS_SEED ?? Date.now() % 2 ** 31);
/** Longest a single session may take before the test calls it stuck. */
const SESSION_MS = 10_000;
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const GREETING = 'welcome';

/** mulberry32: a small seeded PRNG, so a failing mix can be replayed with WS_STRESS_SEED. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Resolves with `p`, or rejects after `ms` naming `what`. */
function within<T>(p: Promise<T>, what: string, ms = SESSION_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: stuck for ${ms} ms (seed ${SEED})`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `check` until it holds (counters that have no event of their own); fails after `ms`. */
async function settles(check: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} did not settle (seed ${SEED})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Sockets open in this process (gateway, upstreams and clients all live here). */
function openSockets(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'TLSWrap').length;
}

/** A `ws` upstream that greets every connection at once; `/kill/N` connections die N ms later. */
async function greetingUpstream(tls?: { cert: string; key: string }): Promise<{ url: string; wss: WebSocketServer; close(): Promise<void> }> {
  const server: Server = tls === undefined ? createServer() : createHttpsServer(tls);
  const wss = new WebSocketServer({
    server,
    verifyClient: (info: { req: IncomingMessage }, cb: (ok: boolean, code?: number) => void) => {
      if (info.req.url!.startsWith('/refuse')) cb(false, 503);
      else cb(true);
    },
  });
  wss.on('connection', (ws, req) => {
    ws.on('error', () => {});
    ws.send(GREETING);
    ws.on('message', (data: RawData, isBinary: boolean) => ws.send(data as Buffer, { binary: isBinary }));
    const kill = /^\/kill\/(\d+)/.exec(req.url!);
    if (kill !== null) setTimeout(() => ws.terminate(), Number(kill[1]));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `${tls === undefined ? 'http' : 'https'}://127.0.0.1:${(server.address() as AddressInfo).port}`,
    wss,
    close: () => new Promise<void>((r) => {
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

/**
 * A raw upstream: `/reset` handshakes are reset; any other gets the 101 and a greeting frame in
 * one write, and its first message after that closes the connection.
 */
async function rawUpstream(): Promise<{ url: string; open: Set<Socket>; close(): Promise<void> }> {
  const open = new Set<Socket>();
  const frame = Buffer.concat([Buffer.from([0x81, GREETING.length]), Buffer.from(GREETING)]);
  const server = createNetServer((socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    socket.on('error', () => {});
    let head = '';
    const onData = (c: Buffer): void => {
      head += c.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      if (head.startsWith('GET /reset')) return void socket.resetAndDestroy();
      // Whatever the client sends next (its close frame, in these tests) is answered with a
      // close frame and the end of the connection (RFC 6455 §5.5.1).
      socket.once('data', () => socket.end(Buffer.from([0x88, 0x00])));
      const key = /\r\nsec-websocket-key: *([^\r]+)/i.exec(head)![1];
      const accept = createHash('sha1').update(key + GUID).digest('base64');
      socket.write(Buffer.concat([Buffer.from(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`, 'latin1'), frame]));
    };
    socket.on('data', onData);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    open,
    close: () => new Promise<void>((r) => {
      for (const s of open) s.destroy();
      server.close(() => r());
    }),
  };
}

/** Opens a WebSocket and waits for its greeting; resolves with the socket. */
function greeted(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { rejectUnauthorized: false });
    ws.once('message', (data: RawData) => {
      if (data.toString() === GREETING) resolve(ws);
      else reject(new Error(`first message was ${data.toString()}`));
    });
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
    ws.once('close', () => reject(new Error('closed before the greeting')));
  });
}

/** Resolves once `ws` is closed. */
function closed(ws: WebSocket): Promise<void> {
  return ws.readyState === WebSocket.CLOSED ? Promise.resolve() : new Promise((r) => ws.once('close', () => r()));
}

/** Resolves once `socket` is closed. */
function socketClosed(socket: Socket): Promise<void> {
  return socket.destroyed ? Promise.resolve() : new Promise((r) => socket.once('close', () => r()));
}

/** A raw handshake on a new TCP connection (HTTP listener only). */
function rawHandshake(port: number, path: string): Socket {
  const s = connect(port, '127.0.0.1');
  s.on('error', () => {});
  s.write(`GET ${path} HTTP/1.1\r\nHost: stress\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n\r\n`);
  return s;
}

/** Resolves once `socket` has received the end of a response head. */
function headOf(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    let buf = '';
    const onData = (c: Buffer): void => {
      buf += c.toString('latin1');
      if (buf.includes('\r\n\r\n')) {
        socket.off('data', onData);
        socket.resume();
        resolve(buf);
      }
    };
    socket.on('data', onData);
    socket.once('close', () => resolve(buf));
  });
}

describe(`WebSocket stress (scale ${SCALE}, seed ${SEED})`, () => {
  let gw: TestGateway;
  let plain: Awaited<ReturnType<typeof greetingUpstream>>;
  let secure: Awaited<ReturnType<typeof greetingUpstream>>;
  let raw: Awaited<ReturnType<typeof rawUpstream>>;
  let ws: string;
  let wssListener: string;
  let baseline: number;

  beforeAll(async () => {
    plain = await greetingUpstream();
    secure = await greetingUpstream(await makeLeaf(['127.0.0.1']));
    raw = await rawUpstream();
    gw = await startGateway(`
pools:
  plain: { targets: ["${plain.url}"] }
  secure: { targets: ["${secure.url}"], tls: { verify: false } }
  raw: { targets: ["${raw.url}"] }
routes:
  - { name: plain, match: { path: /plain/* }, pool: plain, stripPrefix: /plain }
  - { name: secure, match: { path: /secure/* }, pool: secure, stripPrefix: /secure }
  - { name: raw, match: { path: /raw/* }, pool: raw, stripPrefix: /raw }
  - { name: ok, match: { path: /ok }, respond: { status: 200, body: "ok" } }
`, (c) => {
      // A self-signed localhost certificate is generated into the temp certs dir.
      c.listeners.https.address = { host: '127.0.0.1', port: 0 };
    });
    ws = `ws://127.0.0.1:${gw.port}`;
    wssListener = `wss://127.0.0.1:${gw.gateway.addresses.https!.split(':').pop()}`;
    baseline = openSockets();
  });
  afterAll(async () => {
    await gw?.close();
    await Promise.all([plain?.close(), secure?.close(), raw?.close()]);
  });

  test(`${SEQUENTIAL} upgrades in a row, each greeted first, over both listeners and to ws:// and wss:// targets`, async () => {
    const bases = [`${ws}/raw`, `${ws}/plain`, `${wssListener}/secure`, `${wssListener}/raw`];
    for (let i = 0; i < SEQUENTIAL; i++) {
      const c = await within(greeted(`${bases[i % bases.length]}/seq-${i}`), `sequential ${i}`);
      c.close();
      await within(closed(c), `sequential ${i} close`);
    }
  });

  test(`${CONCURRENT} upgrades at once, each greeted and echoed`, async () => {
    await Promise.all(Array.from({ length: CONCURRENT }, async (_, i) => {
      const c = await within(greeted(`${i % 2 === 0 ? ws : wssListener}/${i % 3 === 0 ? 'secure' : 'plain'}/con-${i}`), `concurrent ${i}`);
      const echoed = new Promise<string>((r) => c.once('message', (d: RawData) => r(d.toString())));
      c.send(`m${i}`);
      expect(await within(echoed, `concurrent ${i} echo`)).toBe(`m${i}`);
      c.close();
      await within(closed(c), `concurrent ${i} close`);
    }));
  });

  test(`${CHAOS} sessions of random misbehaviour on both sides`, async () => {
    const rand = prng(SEED);
    const kinds = ['normal', 'client-kill', 'kill-in-handshake', 'half-close', 'upstream-dies', 'handshake-reset', 'refused', 'garbage', 'wss-kill'] as const;
    const counts: Record<string, number> = {};
    const session = async (i: number, kind: (typeof kinds)[number], delay: number): Promise<void> => {
      counts[kind] = (counts[kind] ?? 0) + 1;
      switch (kind) {
        case 'normal': {
          const c = await greeted(`${ws}/plain/chaos-${i}`);
          c.close();
          return closed(c);
        }
        case 'client-kill': {
          const c = await greeted(`${ws}/raw/chaos-${i}`);
          c.terminate();
          return closed(c);
        }
        case 'kill-in-handshake': {
          // Gone before, during or just after the upstream handshake.
          const s = rawHandshake(gw.port, `/plain/chaos-${i}`);
          setTimeout(() => s.destroy(), delay);
          return socketClosed(s);
        }
        case 'half-close': {
          const s = rawHandshake(gw.port, `/raw/chaos-${i}`);
          await headOf(s);
          s.end();
          return socketClosed(s);
        }
        case 'upstream-dies': {
          const c = await greeted(`${ws}/plain/kill/${delay}`);
          return closed(c);
        }
        case 'handshake-reset': {
          const s = rawHandshake(gw.port, '/raw/reset');
          expect(await headOf(s)).toMatch(/^HTTP\/1\.1 502 /);
          return socketClosed(s);
        }
        case 'refused': {
          const s = rawHandshake(gw.port, '/plain/refuse');
          expect(await headOf(s)).toMatch(/^HTTP\/1\.1 503 /);
          return socketClosed(s);
        }
        case 'garbage': {
          // Not a WebSocket frame (reserved bits and opcode 0xF: RFC 6455 §5.2): the upstream fails
          // the connection (§7.1.7), the tunnel follows. Random bytes alone could announce a long
          // frame and leave the upstream waiting for its payload.
          const s = rawHandshake(gw.port, `/plain/chaos-${i}`);
          await headOf(s);
          s.write(Buffer.concat([Buffer.from([0xff]), randomBytes(63)]));
          return socketClosed(s);
        }
        case 'wss-kill': {
          const c = await greeted(`${wssListener}/secure/chaos-${i}`);
          setTimeout(() => c.terminate(), delay);
          return closed(c);
        }
      }
    };
    let next = 0;
    await Promise.all(Array.from({ length: CHAOS_PARALLEL }, async () => {
      while (next < CHAOS) {
        const i = next++;
        const kind = kinds[Math.floor(rand() * kinds.length)];
        const delay = Math.floor(rand() * 20);
        await within(session(i, kind, delay), `chaos ${i} (${kind}, ${delay} ms)`);
      }
    }));
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(CHAOS);
  });

  test('afterwards: still serving, every in-flight count at 0, no socket left open', async () => {
    const c = await within(greeted(`${ws}/raw/after`), 'the upgrade after the stress');
    c.close();
    await closed(c);
    expect((await send(`${gw.url}/ok`)).status).toBe(200);
    for (const pool of ['plain', 'secure', 'raw']) {
      const t = gw.gateway.pools.get(pool)!.targets[0];
      await settles(() => t.inFlight === 0, `${pool} in-flight`);
    }
    await settles(() => plain.wss.clients.size === 0 && secure.wss.clients.size === 0 && raw.open.size === 0, 'upstream connections');
    await settles(() => openSockets() <= baseline, 'open sockets');
    const m = await gw.gateway.metrics.registry.getSingleMetric('waygate_open_connections')!.get();
    expect(m.values.filter((v) => v.value !== 0)).toEqual([]);
  });
});

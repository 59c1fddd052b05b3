// Issue 12, defect 7: bytes an upstream sends right after its 101 (a greeting) must reach the
// client byte-exact, whether they share a TCP segment with the 101 or follow it, on the HTTP and
// the HTTPS listener, to ws:// and wss:// targets. The upstreams are raw `net`/`tls` servers, so
// the test decides exactly how the 101 and the greeting are written; the client is a raw socket
// that compares every byte after the 101 head. Bytes the client sends with its handshake, or
// while the upstream handshake is pending, must reach the upstream too, in order, and only after
// the upstream accepted the upgrade.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as netConnect, createServer as createNetServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startGateway } from '../helpers.ts';
import type { TestGateway } from '../helpers.ts';
import { makeCa, makeLeaf } from '../tls-helpers.ts';
import type { Pem } from '../tls-helpers.ts';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** Sequential upgrades per case: the defect lost a greeting about once in four. */
const ROUNDS = 8;

/** An unmasked server-to-client frame (RFC 6455 §5.2) carrying `payload`. */
function frame(payload: Buffer, opcode = 0x2): Buffer {
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x80 | opcode, n]) : n < 65536 ? Buffer.from([0x80 | opcode, 126, n >> 8, n & 0xff]) : Buffer.alloc(10);
  if (n >= 65536) {
    head[0] = 0x80 | opcode;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  return Buffer.concat([head, payload]);
}

/** How a raw upstream writes its 101 and greeting. */
type Mode = 'one-write' | 'two-writes';

/** A raw WebSocket upstream: one parsed handshake per connection, then what the test asks. */
interface RawUpstream {
  url: string;
  /** Everything each connection received after its handshake head, in connection order. */
  received: Buffer[][];
  close(): Promise<void>;
}

/**
 * Starts a raw upstream (TLS with `tls`). It reads the handshake head, answers 101 with the
 * RFC 6455 §4.2.2 accept key and `greeting` after it — in the same write, or in a second write
 * once the first was flushed — and keeps every byte it receives afterwards. With `holdUntil`
 * it answers only once the promise it returns for that connection resolves.
 */
async function startRawUpstream(mode: Mode, greeting: Buffer, o: { tls?: Pem; holdUntil?: (n: number) => Promise<void> } = {}): Promise<RawUpstream> {
  const received: Buffer[][] = [];
  const sockets = new Set<Socket>();
  const onConnection = (socket: Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const index = received.length;
    const after: Buffer[] = [];
    received.push(after);
    let head = Buffer.alloc(0);
    let upgraded = false;
    socket.on('data', (chunk: Buffer) => {
      if (upgraded) {
        after.push(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      upgraded = true;
      const rest = head.subarray(end + 4);
      if (rest.length > 0) after.push(rest);
      const key = /\r\nsec-websocket-key: *([^\r]+)/i.exec(head.subarray(0, end).toString('latin1'))![1];
      const accept = createHash('sha1').update(key + GUID).digest('base64');
      const answer = Buffer.from(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`, 'latin1');
      const reply = (): void => {
        if (mode === 'one-write') socket.write(Buffer.concat([answer, greeting]));
        else socket.write(answer, () => socket.write(greeting));
      };
      if (o.holdUntil === undefined) reply();
      else void o.holdUntil(index).then(reply);
    });
  };
  const server: Server = o.tls === undefined ? createNetServer(onConnection) : createTlsServer({ cert: o.tls.cert, key: o.tls.key }, onConnection);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${o.tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`,
    received,
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

/** A raw client connection through the gateway: its 101 head and every byte after it. */
interface RawClient {
  socket: Socket;
  /** Resolves with the response head (up to the blank line). */
  head: Promise<string>;
  /** Resolves once `n` bytes after the head have arrived, with all of them. */
  bytes(n: number): Promise<Buffer>;
}

/** Opens a raw WebSocket handshake to `path` on the gateway (TLS with `tlsCa`), sending `extra` in the same write. */
function rawClient(port: number, path: string, o: { tlsCa?: string; extra?: Buffer } = {}): RawClient {
  const socket: Socket = o.tlsCa === undefined ? netConnect(port, '127.0.0.1') : tlsConnect({ port, host: '127.0.0.1', ca: o.tlsCa, servername: 'localhost', ALPNProtocols: ['http/1.1'] });
  socket.on('error', () => {});
  const request = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n\r\n`, 'latin1');
  socket.write(o.extra === undefined ? request : Buffer.concat([request, o.extra]));
  let buf = Buffer.alloc(0);
  let headDone = false;
  let resolveHead!: (h: string) => void;
  const head = new Promise<string>((r) => (resolveHead = r));
  let body = Buffer.alloc(0);
  const waiters: { n: number; r: (b: Buffer) => void }[] = [];
  const check = (): void => {
    for (const w of waiters.splice(0)) {
      if (body.length >= w.n) w.r(body);
      else waiters.push(w);
    }
  };
  socket.on('data', (chunk: Buffer) => {
    if (headDone) {
      body = Buffer.concat([body, chunk]);
      return check();
    }
    buf = Buffer.concat([buf, chunk]);
    const end = buf.indexOf('\r\n\r\n');
    if (end === -1) return;
    headDone = true;
    resolveHead(buf.subarray(0, end).toString('latin1'));
    body = buf.subarray(end + 4);
    check();
  });
  return {
    socket,
    head,
    bytes: (n) => new Promise((r) => {
      waiters.push({ n, r });
      check();
    }),
  };
}

/** Resolves once `socket` is closed. */
function closedSocket(socket: Socket): Promise<void> {
  return socket.destroyed ? Promise.resolve() : new Promise((r) => socket.once('close', () => r()));
}

/**
 * Resolves with `p`, or fails after `ms` naming `what`: a lost byte shows as a clear failure,
 * not as the test's own timeout (the defect made these waits hang).
 */
function within<T>(p: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `check` until it holds (counters that have no event of their own); fails after `ms`. */
async function settles(check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition did not settle in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('a greeting sent with or right after the 101 reaches the client byte-exact', () => {
  let dir: string;
  let ca: Pem;
  let gw: TestGateway;
  const ups: RawUpstream[] = [];
  // A small text frame and a 70 kB binary one (several TCP segments, and over TLS several records).
  const greeting = Buffer.concat([frame(Buffer.from('hello from upstream'), 0x1), frame(randomBytes(70_000))]);
  let httpsPort: number;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'waygate-ws-greeting-'));
    ca = await makeCa();
    const listener = await makeLeaf(['localhost'], ca);
    await writeFile(join(dir, 'default.crt'), listener.cert);
    await writeFile(join(dir, 'default.key'), listener.key);
    await writeFile(join(dir, 'ca.pem'), ca.cert);
    const upstreamCert = await makeLeaf(['ws.internal'], ca);
    for (const mode of ['one-write', 'two-writes'] as const) {
      ups.push(await startRawUpstream(mode, greeting), await startRawUpstream(mode, greeting, { tls: upstreamCert }));
    }
    gw = await startGateway(`
pools:
  ws-one: { targets: ["${ups[0].url}"] }
  wss-one: { targets: ["${ups[1].url}"], tls: { ca: ${dir}/ca.pem, serverName: ws.internal } }
  ws-two: { targets: ["${ups[2].url}"] }
  wss-two: { targets: ["${ups[3].url}"], tls: { ca: ${dir}/ca.pem, serverName: ws.internal } }
routes:
  - { name: ws-one, match: { path: /ws-one }, pool: ws-one }
  - { name: wss-one, match: { path: /wss-one }, pool: wss-one }
  - { name: ws-two, match: { path: /ws-two }, pool: ws-two }
  - { name: wss-two, match: { path: /wss-two }, pool: wss-two }
`, (c) => {
      c.certsDir = dir;
      c.listeners.https.address = { host: '127.0.0.1', port: 0 };
    });
    httpsPort = Number(gw.gateway.addresses.https!.split(':').pop());
  });
  afterAll(async () => {
    await gw.close();
    await Promise.all(ups.map((u) => u.close()));
    await rm(dir, { recursive: true, force: true });
  });

  for (const listener of ['http', 'https'] as const) {
    for (const target of ['ws', 'wss'] as const) {
      for (const mode of ['one', 'two'] as const) {
        test(`${listener} listener, ${target}:// target, 101 and greeting in ${mode === 'one' ? 'one write' : 'two writes'}: ${ROUNDS} upgrades in a row`, async () => {
          const pool = `${target}-${mode}`;
          for (let i = 0; i < ROUNDS; i++) {
            const port = listener === 'http' ? gw.port : httpsPort;
            const c = rawClient(port, `/${pool}`, { tlsCa: listener === 'https' ? ca.cert : undefined });
            expect(await within(c.head, `round ${i}: the 101`)).toMatch(/^HTTP\/1\.1 101 /);
            const got = await within(c.bytes(greeting.length), `round ${i}: the greeting`);
            expect(got.length, `round ${i}`).toBe(greeting.length);
            expect(got.equals(greeting), `round ${i}`).toBe(true);
            const gone = closedSocket(c.socket);
            c.socket.destroy();
            await gone;
          }
          const t = gw.gateway.pools.get(pool)!.targets[0];
          await settles(() => t.inFlight === 0);
        });
      }
    }
  }
});

describe('client bytes sent before the 101 reach the upstream, after it accepted', () => {
  let gw: TestGateway;
  let up: RawUpstream;
  const releases: (() => void)[] = [];
  const arrivals: (() => void)[] = [];
  let connections = 0;

  beforeAll(async () => {
    // Answers only when the test says so: the client's later bytes arrive during the handshake.
    up = await startRawUpstream('one-write', frame(Buffer.from('hi')), {
      holdUntil: () => {
        connections++;
        for (const a of arrivals.splice(0)) a();
        return new Promise<void>((r) => releases.push(r));
      },
    });
    gw = await startGateway(`
pools: { p: { targets: ["${up.url}"] } }
routes: [ { name: p, pool: p } ]
`);
  });
  afterAll(async () => {
    for (const r of releases.splice(0)) r();
    await gw.close();
    await up.close();
  });

  test('the handshake\'s own head, then bytes sent while the upstream has not answered, in order', async () => {
    const early = frame(Buffer.from('sent with the handshake'));
    // More than HANDSHAKE_HOLD_BYTES: the client is paused while held, and resumed after the 101.
    const later = frame(randomBytes(200_000));
    const c = rawClient(gw.port, '/held', { extra: early });
    while (connections < 1) await new Promise<void>((r) => arrivals.push(r));
    // Nothing after the handshake head may reach an upstream that has not accepted the upgrade:
    // a refusing upstream would read it as the next request on a kept-alive connection.
    expect(up.received[0]).toEqual([]);
    await new Promise<void>((r) => c.socket.write(later, () => r()));
    releases.shift()!();
    expect(await within(c.head, 'the 101')).toMatch(/^HTTP\/1\.1 101 /);
    await within(c.bytes(4), 'the greeting');
    const want = Buffer.concat([early, later]);
    await settles(() => Buffer.concat(up.received[0]).length >= want.length);
    expect(Buffer.concat(up.received[0]).equals(want)).toBe(true);
    const gone = closedSocket(c.socket);
    c.socket.destroy();
    await gone;
    await settles(() => gw.gateway.pools.get('p')!.targets[0].inFlight === 0);
  });
});

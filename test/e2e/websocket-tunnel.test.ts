// The WebSocket tunnel's life (SPEC §4, issue 12), seen from raw sockets on both sides: what the
// 101 carries and what it never loses, the refusal relayed whole (or cut, never completed), a
// client leaving during the handshake, connect failures retried on another target, the connect
// timeout over a TLS handshake that never ends, half-close, and one access-log line per session
// with exact byte counts. Every path must release its target and close both sockets.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { closedPort, startGateway } from '../helpers.ts';
import type { TestGateway } from '../helpers.ts';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** The RFC 6455 §4.2.2 accept value for a handshake head. */
function acceptFor(head: string): string {
  const key = /\r\nsec-websocket-key: *([^\r]+)/i.exec(head)![1];
  return createHash('sha1').update(key + GUID).digest('base64');
}

/** A raw TCP upstream: `onHandshake` gets each connection once its handshake head arrived. */
interface RawServer {
  url: string;
  /** Handshake heads, in arrival order. */
  heads: string[];
  /** Connections accepted so far, and still open. */
  accepted: number;
  open: Set<Socket>;
  close(): Promise<void>;
}

/** `halfOpen`: the server's sockets stay writable after the gateway's FIN (allowHalfOpen). */
async function rawServer(onHandshake: (socket: Socket, head: string, rest: Buffer) => void, halfOpen = false): Promise<RawServer> {
  const s: RawServer = { url: '', heads: [], accepted: 0, open: new Set(), close: async () => {} };
  const server: Server = createServer({ allowHalfOpen: halfOpen }, (socket) => {
    s.accepted++;
    s.open.add(socket);
    socket.once('close', () => s.open.delete(socket));
    socket.on('error', () => {});
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      const head = buf.subarray(0, end).toString('latin1');
      s.heads.push(head);
      onHandshake(socket, head, buf.subarray(end + 4));
    };
    socket.on('data', onData);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  s.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  s.close = () => new Promise<void>((r) => {
    for (const c of s.open) c.destroy();
    server.close(() => r());
  });
  return s;
}

/** A raw client: sends a handshake (plus `extra`), collects the response head and what follows. */
interface RawClient {
  socket: Socket;
  head: Promise<string>;
  /** Every byte after the head, so far. */
  body(): Buffer;
  /** Resolves once `n` bytes followed the head. */
  bytes(n: number): Promise<Buffer>;
  /** Resolves with everything after the head once the gateway closed (or ended) the connection. */
  ended: Promise<Buffer>;
  closed: Promise<void>;
}

function rawClient(port: number, path: string, o: { extra?: Buffer; headers?: string; allowHalfOpen?: boolean } = {}): RawClient {
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: o.allowHalfOpen ?? false });
  socket.on('error', () => {});
  const req = `GET ${path} HTTP/1.1\r\nHost: t.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n${o.headers ?? ''}\r\n`;
  socket.write(o.extra === undefined ? req : Buffer.concat([Buffer.from(req, 'latin1'), o.extra]));
  let buf = Buffer.alloc(0);
  // Kept as chunks, joined when asked: 16 MiB in 64 KiB reads must not be copied 256 times.
  const chunks: Buffer[] = [];
  let length = 0;
  const body = (): Buffer => {
    if (chunks.length > 1) chunks.splice(0, chunks.length, Buffer.concat(chunks));
    return chunks[0] ?? Buffer.alloc(0);
  };
  let headDone = false;
  let resolveHead!: (h: string) => void;
  const head = new Promise<string>((r) => (resolveHead = r));
  const waiters: { n: number; r: (b: Buffer) => void }[] = [];
  const check = (): void => {
    for (const w of waiters.splice(0)) (length >= w.n ? w.r(body()) : waiters.push(w));
  };
  const add = (chunk: Buffer): void => {
    if (chunk.length === 0) return;
    chunks.push(chunk);
    length += chunk.length;
    check();
  };
  socket.on('data', (chunk: Buffer) => {
    if (headDone) return add(chunk);
    buf = Buffer.concat([buf, chunk]);
    const end = buf.indexOf('\r\n\r\n');
    if (end === -1) return;
    headDone = true;
    resolveHead(buf.subarray(0, end).toString('latin1'));
    add(buf.subarray(end + 4));
  });
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  const ended = new Promise<Buffer>((r) => {
    socket.once('end', () => r(body()));
    socket.once('close', () => r(body()));
  });
  return { socket, head, body, bytes: (n) => new Promise((r) => (waiters.push({ n, r }), check())), ended, closed };
}

/** The 101 a raw upstream sends for `head`, with `extra` header lines. */
function switching(head: string, extra = ''): string {
  return `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(head)}\r\n${extra}\r\n`;
}

/** Polls `check` until it holds (counters that have no event of their own); fails after `ms`. */
async function settles(check: () => boolean, ms = 5000, every = 10): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition did not settle in time');
    await new Promise((r) => setTimeout(r, every));
  }
}

/** Resolves with `p`, or fails after `ms` naming `what` (a stalled relay fails fast and clearly). */
function within<T>(p: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Waits until `length()` is above 0 and unchanged between two looks `every` ms apart. */
async function steady(length: () => number, every = 200): Promise<number> {
  let last = -1;
  await settles(() => {
    const now = length();
    const same = now > 0 && now === last;
    last = now;
    return same;
  }, 10_000, every);
  return last;
}

/** Lower-cased header map of a raw response head. */
function headerMap(head: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const line of head.split('\r\n').slice(1)) {
    const i = line.indexOf(':');
    const name = line.slice(0, i).toLowerCase();
    m.set(name, [...(m.get(name) ?? []), line.slice(i + 1).trim()]);
  }
  return m;
}

describe('the tunnel, from raw sockets', () => {
  let gw: TestGateway;
  const servers: RawServer[] = [];
  let echo: RawServer;
  let refuse: RawServer;
  let cut: RawServer;
  let bigRefuse: RawServer;
  let bigSocket: Socket | undefined;
  let flood: RawServer;
  let floodSocket: Socket | undefined;
  let sinkSocket: Socket | undefined;
  const bigBody = randomBytes(16 * 1024 * 1024);
  let hold: RawServer;
  let halfClose: RawServer;
  let bye: RawServer;
  let dead: number;
  const greeting = randomBytes(3000);

  const port = (): number => gw.port;
  const target = (pool: string, i = 0) => gw.gateway.pools.get(pool)!.targets[i];

  beforeAll(async () => {
    // 101 (with header lines the route must rewrite), a greeting, then an echo of everything.
    echo = await rawServer((socket, head, rest) => {
      socket.write(switching(head, 'X-Powered-By: raw\r\nKeep-Alive: timeout=5\r\nX-Request-Id: upstream-id\r\n'));
      socket.write(greeting);
      if (rest.length > 0) socket.write(rest);
      socket.on('data', (c: Buffer) => socket.write(c));
      socket.on('end', () => socket.end());
    });
    // A refusal with a chunked body in several writes.
    refuse = await rawServer((socket) => {
      socket.write('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nX-Upstream: yes\r\nConnection: keep-alive\r\n\r\n');
      socket.write('5\r\nnot y\r\n');
      socket.write('4\r\net, \r\n6\r\nfriend\r\n0\r\n\r\n');
    });
    // A refusal announcing 1000 bytes that sends 10 and resets.
    cut = await rawServer((socket) => {
      socket.write('HTTP/1.1 401 Unauthorized\r\nContent-Length: 1000\r\n\r\n0123456789', () => socket.resetAndDestroy());
    });
    // A refusal with a body far larger than every buffer on the way.
    bigRefuse = await rawServer((socket) => {
      bigSocket = socket;
      socket.write(`HTTP/1.1 403 Forbidden\r\nContent-Length: ${bigBody.length}\r\n\r\n`);
      socket.write(bigBody);
    });
    // After its 101, floods the client with 16 MiB; or (`/sink`) reads nothing until told to.
    flood = await rawServer((socket, head) => {
      socket.write(switching(head));
      if (head.startsWith('GET /sink')) {
        sinkSocket = socket;
        socket.pause();
        return;
      }
      floodSocket = socket;
      socket.write(bigBody);
      socket.on('end', () => socket.end());
    });
    // Never answers.
    hold = await rawServer(() => {});
    // Accepts; after the client's FIN sends a last frame, then its own FIN.
    halfClose = await rawServer((socket, head) => {
      const got: Buffer[] = [];
      socket.write(switching(head));
      socket.on('data', (c: Buffer) => got.push(c));
      socket.on('end', () => {
        socket.write(Buffer.concat([Buffer.from('after your FIN, you sent: '), ...got]));
        socket.end();
      });
    }, true);
    // 101, greeting and FIN in one write.
    bye = await rawServer((socket, head) => {
      socket.end(Buffer.concat([Buffer.from(switching(head), 'latin1'), greeting]));
    });
    servers.push(echo, refuse, cut, bigRefuse, flood, hold, halfClose, bye);
    dead = await closedPort();
    gw = await startGateway(`
pools:
  echo: { targets: ["${echo.url}"] }
  refuse: { targets: ["${refuse.url}"] }
  cut: { targets: ["${cut.url}"] }
  big: { targets: ["${bigRefuse.url}"] }
  flood: { targets: ["${flood.url}"] }
  hold: { targets: ["${hold.url}"], timeouts: { response: 60s } }
  half: { targets: ["${halfClose.url}"] }
  bye: { targets: ["${bye.url}"] }
  retry: { targets: ["http://127.0.0.1:${dead}", "${echo.url}"], retries: 1 }
  noretry: { targets: ["http://127.0.0.1:${dead}"], retries: 0 }
routes:
  - name: echo
    match: { path: /echo }
    pool: echo
    responseHeaders: { set: { x-route: echo, connection: close }, remove: [upgrade, x-powered-by] }
  - { name: refuse, match: { path: /refuse }, pool: refuse, responseHeaders: { set: { x-route: refuse } } }
  - { name: cut, match: { path: /cut }, pool: cut }
  - { name: big, match: { path: /big }, pool: big }
  - { name: flood, match: { path: /flood }, pool: flood }
  - { name: sink, match: { path: /sink }, pool: flood }
  - { name: hold, match: { path: /hold }, pool: hold }
  - { name: half, match: { path: /half }, pool: half }
  - { name: bye, match: { path: /bye }, pool: bye }
  - { name: retry, match: { path: /retry }, pool: retry }
  - { name: noretry, match: { path: /noretry }, pool: noretry }
  - { name: moved, match: { path: /moved }, redirect: { to: "https://{host}/new{path}", status: 308 } }
`);
  });
  afterAll(async () => {
    await gw.close();
    await Promise.all(servers.map((s) => s.close()));
  });

  test('the 101 keeps Connection and Upgrade whatever the route says, loses hop-by-hop fields, gets the route\'s other headers and the request id', async () => {
    const c = rawClient(port(), '/echo', { headers: 'X-Request-Id: client-id-1\r\n' });
    const head = await c.head;
    expect(head).toMatch(/^HTTP\/1\.1 101 /);
    const h = headerMap(head);
    expect(h.get('connection')).toEqual(['Upgrade']);
    expect(h.get('upgrade')).toEqual(['websocket']);
    expect(h.get('sec-websocket-accept')).toHaveLength(1);
    expect(h.get('x-route')).toEqual(['echo']);
    expect(h.get('x-request-id')).toEqual(['client-id-1']);
    expect(h.has('x-powered-by')).toBe(false);
    expect(h.has('keep-alive')).toBe(false);
    expect((await c.bytes(greeting.length)).equals(greeting)).toBe(true);
    c.socket.destroy();
    await c.closed;
  });

  test('one access-log line per session with the exact tunnel bytes each way', async () => {
    const early = randomBytes(700);
    const later = randomBytes(5000);
    const c = rawClient(port(), '/echo', { extra: early, headers: 'X-Request-Id: bytes-1\r\n' });
    await c.head;
    await c.bytes(greeting.length + early.length);
    c.socket.write(later);
    const all = await c.bytes(greeting.length + early.length + later.length);
    expect(all.equals(Buffer.concat([greeting, early, later]))).toBe(true);
    c.socket.end();
    await c.closed;
    const line = await gw.waitForLog((l) => l.msg === 'request' && l.reqId === 'bytes-1');
    expect(line).toMatchObject({ status: 101, route: 'echo', pool: 'echo', target: echo.url, attempts: 1, bytesIn: early.length + later.length, bytesOut: greeting.length + early.length + later.length });
    await settles(() => target('echo').inFlight === 0);
    expect(gw.accessLogs().filter((l) => l.reqId === 'bytes-1')).toHaveLength(1);
  });

  test('a refusal reaches the client whole: status, headers, the chunked body, then the close', async () => {
    const c = rawClient(port(), '/refuse', { headers: 'X-Request-Id: refused-1\r\n', extra: Buffer.from('GET /admin HTTP/1.1\r\nHost: x\r\n\r\n') });
    const head = await c.head;
    expect(head).toMatch(/^HTTP\/1\.1 403 Forbidden/);
    const h = headerMap(head);
    expect(h.get('x-upstream')).toEqual(['yes']);
    expect(h.get('x-route')).toEqual(['refuse']);
    expect(h.get('x-request-id')).toEqual(['refused-1']);
    expect(h.get('connection')).toEqual(['close']);
    const body = (await c.ended).toString('latin1');
    // Re-framed by waygate: chunked, ending with the last chunk.
    expect(body.replace(/\r\n[0-9a-f]+\r\n/g, '').replace(/^[0-9a-f]+\r\n/, '').replace(/\r\n$/, '')).toBe('not yet, friend');
    expect(body.endsWith('0\r\n\r\n')).toBe(true);
    await c.closed;
    const line = await gw.waitForLog((l) => l.msg === 'request' && l.reqId === 'refused-1');
    expect(line).toMatchObject({ status: 403, target: refuse.url, attempts: 1, bytesIn: 0, bytesOut: 15 });
    // What the client sent after its handshake never reached the refusing upstream.
    expect(refuse.heads.some((hd) => hd.includes('/admin'))).toBe(false);
    await settles(() => target('refuse').inFlight === 0 && refuse.open.size === 0);
  });

  test('a refusal cut by the upstream is cut for the client too, never a complete response', async () => {
    const c = rawClient(port(), '/cut');
    const head = await c.head;
    expect(head).toMatch(/^HTTP\/1\.1 401 /);
    expect(headerMap(head).get('content-length')).toEqual(['1000']);
    const body = await c.ended;
    expect(body.length).toBeLessThan(1000);
    await c.closed;
    await settles(() => target('cut').inFlight === 0);
  });

  test('a refusal body is relayed with backpressure: a client that stops reading holds the upstream back, then gets every byte', async () => {
    const c = rawClient(port(), '/big');
    c.socket.pause();
    // With backpressure the upstream is left holding most of its 16 MiB; without, waygate would
    // have read it all into memory and the upstream's buffer would run empty.
    expect(await steady(() => bigSocket?.writableLength ?? 0)).toBeGreaterThan(bigBody.length / 2);
    c.socket.resume();
    const head = await c.head;
    expect(head).toMatch(/^HTTP\/1\.1 403 /);
    const body = await within(c.ended, 'the rest of the refusal');
    expect(body.length).toBe(bigBody.length);
    expect(body.equals(bigBody)).toBe(true);
    await c.closed;
    await settles(() => target('big').inFlight === 0);
  });

  test('tunnel bytes flow with backpressure both ways: a side that stops reading holds the other back', async () => {
    // Upstream → client.
    const c = rawClient(port(), '/flood');
    await c.head;
    c.socket.pause();
    expect(await steady(() => floodSocket?.writableLength ?? 0)).toBeGreaterThan(bigBody.length / 2);
    c.socket.resume();
    expect((await within(c.bytes(bigBody.length), 'the flood')).equals(bigBody)).toBe(true);
    c.socket.end();
    await c.closed;

    // Client → upstream: the client's writes back up into its own buffer.
    const d = rawClient(port(), '/sink');
    await d.head;
    d.socket.write(bigBody);
    expect(await steady(() => d.socket.writableLength)).toBeGreaterThan(bigBody.length / 2);
    const got: Buffer[] = [];
    let n = 0;
    const all = new Promise<void>((r) => sinkSocket!.on('data', (chunk: Buffer) => {
      got.push(chunk);
      n += chunk.length;
      if (n >= bigBody.length) r();
    }));
    sinkSocket!.resume();
    await within(all, 'the upload');
    expect(Buffer.concat(got).equals(bigBody)).toBe(true);
    d.socket.destroy();
    await d.closed;
    await settles(() => target('flood').inFlight === 0 && flood.open.size === 0);
  });

  test('a client that closes during the handshake releases the target at once and closes the upstream connection', async () => {
    const before = hold.accepted;
    const failures = target('hold').failures;
    const c = rawClient(port(), '/hold', { headers: 'X-Request-Id: leaving-1\r\n' });
    await settles(() => hold.heads.length > 0 && hold.accepted > before);
    expect(target('hold').inFlight).toBe(1);
    // A FIN, not a reset: read during the handshake, it ends the attempt long before timeouts.response (60 s).
    c.socket.end();
    await c.closed;
    await settles(() => target('hold').inFlight === 0 && hold.open.size === 0);
    const line = await gw.waitForLog((l) => l.msg === 'request' && l.reqId === 'leaving-1');
    expect(line).toMatchObject({ status: 499, route: 'hold', target: hold.url, attempts: 1 });
    // The client's leaving is not the target's failure.
    expect(target('hold').failures).toBe(failures);
  });

  test('a target that refuses connections is retried on another one (retries), and answered 502 without', async () => {
    for (let i = 0; i < 4; i++) {
      const c = rawClient(port(), '/retry', { headers: `X-Request-Id: retry-${i}\r\n` });
      expect(await c.head).toMatch(/^HTTP\/1\.1 101 /);
      expect((await c.bytes(greeting.length)).equals(greeting)).toBe(true);
      c.socket.destroy();
      await c.closed;
    }
    const lines = await Promise.all([0, 1, 2, 3].map((i) => gw.waitForLog((l) => l.msg === 'request' && l.reqId === `retry-${i}`)));
    expect(lines.every((l) => l.status === 101 && l.target === echo.url)).toBe(true);
    // Round-robin sends half of the first attempts to the dead target.
    expect(lines.some((l) => l.attempts === 2)).toBe(true);
    await settles(() => target('retry', 0).inFlight === 0 && target('retry', 1).inFlight === 0);

    const c = rawClient(port(), '/noretry');
    expect(await c.head).toMatch(/^HTTP\/1\.1 502 /);
    await c.closed;
    expect(target('noretry').inFlight).toBe(0);
  });

  test('half-close: the client\'s FIN reaches the upstream, which can still answer before closing', async () => {
    const c = rawClient(port(), '/half', { allowHalfOpen: true });
    await c.head;
    c.socket.end('last words');
    const body = await c.ended;
    expect(body.toString()).toBe('after your FIN, you sent: last words');
    await c.closed;
    await settles(() => target('half').inFlight === 0 && halfClose.open.size === 0);
  });

  test('101, greeting and FIN in one segment: the client gets all of it, then the close', async () => {
    const c = rawClient(port(), '/bye');
    expect(await c.head).toMatch(/^HTTP\/1\.1 101 /);
    const body = await c.ended;
    expect(body.equals(greeting)).toBe(true);
    await c.closed;
    await settles(() => target('bye').inFlight === 0);
  });

  test('a redirect route answers the handshake itself', async () => {
    const c = rawClient(port(), '/moved');
    const head = await c.head;
    expect(head).toMatch(/^HTTP\/1\.1 308 /);
    expect(headerMap(head).get('location')).toEqual(['https://t.example/new/moved']);
    await c.closed;
  });

  test('no socket is left open on either side', async () => {
    await settles(() => [echo, refuse, cut, bigRefuse, flood, hold, halfClose, bye].every((s) => s.open.size === 0));
    for (const name of ['echo', 'refuse', 'cut', 'big', 'flood', 'hold', 'half', 'bye', 'noretry']) expect(target(name).inFlight, name).toBe(0);
  });
});

describe('the connect timeout covers the TLS handshake', () => {
  test('a wss:// target that accepts TCP and never answers TLS gets 504 after timeouts.connect', async () => {
    const silent = await rawServer(() => {});
    // Accepts and reads, never writes a byte: the TLS ClientHello goes unanswered.
    const tlsUrl = silent.url.replace('http:', 'https:');
    const gw = await startGateway(`
pools: { mute: { targets: ["${tlsUrl}"], timeouts: { connect: 300ms, response: 60s } } }
routes: [ { name: mute, pool: mute } ]
`);
    try {
      const t0 = performance.now();
      const c = rawClient(gw.port, '/mute');
      expect(await c.head).toMatch(/^HTTP\/1\.1 504 /);
      expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
      await c.closed;
      const t = gw.gateway.pools.get('mute')!.targets[0];
      await settles(() => t.inFlight === 0 && silent.open.size === 0);
    } finally {
      await gw.close();
      await silent.close();
    }
  });
});

describe('TLS material node:tls refuses', () => {
  test('a pool client certificate that is not PEM: the handshake gets 502, and the gateway keeps serving', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'waygate-ws-badcert-'));
    await writeFile(join(dir, 'client.crt'), 'not a certificate\n');
    await writeFile(join(dir, 'client.key'), 'not a key\n');
    const up = await rawServer(() => {});
    const gw = await startGateway(`
pools: { bad: { targets: ["${up.url.replace('http:', 'https:')}"], tls: { cert: ${dir}/client.crt, key: ${dir}/client.key }, timeouts: { connect: 2s } } }
routes:
  - { name: bad, match: { path: /bad }, pool: bad }
  - { name: ok, match: { path: /ok }, respond: { status: 200, body: ok } }
`);
    try {
      // tls.connect throws at once for such a key pair: it must become this handshake's 502.
      const c = rawClient(gw.port, '/bad');
      expect(await c.head).toMatch(/^HTTP\/1\.1 502 /);
      await c.closed;
      expect(gw.gateway.pools.get('bad')!.targets[0].inFlight).toBe(0);
      const ok = rawClient(gw.port, '/ok');
      expect(await ok.head).toMatch(/^HTTP\/1\.1 200 /);
      await ok.closed;
    } finally {
      await gw.close();
      await up.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

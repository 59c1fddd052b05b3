// Helpers of the L4 end-to-end tests (test/e2e/l4-*.test.ts): real TCP backends that record
// every connection, clients that wait on events (bytes received, FIN, close) rather than on
// sleeps, ClientHellos captured from Node's own TLS client and re-framed, and the gateway
// plumbing (listener tweaks, the bound port, the "connection" log line).
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer } from 'node:net';
import { Duplex } from 'node:stream';
import type { AddressInfo, Server, Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { ConnectionOptions } from 'node:tls';
import type { StaticConfig } from '../src/config/schema.ts';
import type { TestGateway } from './helpers.ts';

export type Line = Record<string, unknown>;

export const sha = (b: Buffer | readonly Buffer[]): string => {
  const h = createHash('sha256');
  for (const x of Buffer.isBuffer(b) ? [b] : b) h.update(x);
  return h.digest('hex');
};

const total = (l: readonly Buffer[]): number => l.reduce((n, b) => n + b.length, 0);

/** Something that changes: waiters re-check their condition on every change. */
export class Signal {
  #waiters: (() => void)[] = [];
  fire(): void {
    for (const w of this.#waiters.splice(0)) w();
  }
  /** Resolves once `cond` holds (checked now and on every fire); rejects after `ms`. */
  async until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
    const deadline = performance.now() + ms;
    while (!cond()) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}

/** One end of a TCP connection with what it received and its state, observable through `signal`. */
export class Peer {
  readonly socket: Socket;
  readonly received: Buffer[] = [];
  readonly signal = new Signal();
  ended = false;
  closed = false;
  error: NodeJS.ErrnoException | undefined;
  /** The local port, kept once connected (a closed socket no longer reports it). */
  localPort = 0;

  constructor(socket: Socket, opts: { collect?: boolean } = {}) {
    this.socket = socket;
    if (opts.collect !== false) {
      socket.on('data', (d: Buffer) => {
        this.received.push(d);
        this.signal.fire();
      });
    }
    socket.on('end', () => {
      this.ended = true;
      this.signal.fire();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.error = err;
      this.signal.fire();
    });
    socket.on('close', () => {
      this.closed = true;
      this.signal.fire();
    });
  }

  get length(): number {
    return total(this.received);
  }
  bytes(): Buffer {
    return Buffer.concat(this.received);
  }
  text(): string {
    return this.bytes().toString('latin1');
  }
  untilBytes(n: number, ms?: number): Promise<void> {
    return this.signal.until(() => this.length >= n || this.closed, `${n} bytes (got ${this.length})`, ms).then(() => {
      if (this.length < n) throw new Error(`closed after ${this.length} of ${n} bytes`);
    });
  }
  untilText(s: string, ms?: number): Promise<void> {
    return this.signal.until(() => this.text().includes(s) || this.closed, JSON.stringify(s), ms).then(() => {
      if (!this.text().includes(s)) throw new Error(`closed without ${JSON.stringify(s)}; got ${JSON.stringify(this.text())}`);
    });
  }
  untilEnded(ms?: number): Promise<void> {
    return this.signal.until(() => this.ended || this.closed, 'FIN', ms);
  }
  untilClosed(ms?: number): Promise<void> {
    return this.signal.until(() => this.closed, 'close', ms);
  }
}

/** A TCP backend on loopback that keeps every connection; `onConnection` says what it does (default: echo). */
export interface Backend {
  url: string;
  host: string;
  port: number;
  server: Server;
  conns: Peer[];
  signal: Signal;
  untilConns(n: number, ms?: number): Promise<void>;
  /** Stops listening (accepted connections stay open). */
  stopListening(): Promise<void>;
  close(): Promise<void>;
}

export const echo = (p: Peer): void => {
  p.socket.on('data', (d: Buffer) => {
    if (!p.socket.write(d)) {
      p.socket.pause();
      p.socket.once('drain', () => p.socket.resume());
    }
  });
  p.socket.on('end', () => p.socket.end());
};

export async function backend(onConnection: (p: Peer) => void = echo, opts: { host?: string; collect?: boolean; wrap?: (s: Server) => Server } = {}): Promise<Backend> {
  const host = opts.host ?? '127.0.0.1';
  const conns: Peer[] = [];
  const signal = new Signal();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    const p = new Peer(socket, { collect: opts.collect });
    conns.push(p);
    onConnection(p);
    signal.fire();
  });
  const listening = opts.wrap?.(server) ?? server;
  await new Promise<void>((r) => listening.listen(0, host, r));
  const port = (listening.address() as AddressInfo).port;
  // close() stops accepting at once; its callback waits for the accepted connections to close.
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopped ??= new Promise<void>((r) => listening.close(() => r())));
  const stopListening = async (): Promise<void> => {
    void stop();
  };
  return {
    url: `tcp://${host.includes(':') ? `[${host}]` : host}:${port}`,
    host,
    port,
    server: listening,
    conns,
    signal,
    untilConns: (n, ms) => signal.until(() => conns.length >= n, `${n} backend connections (got ${conns.length})`, ms),
    stopListening,
    async close() {
      for (const c of conns) c.socket.destroy();
      await stop();
    },
  };
}

/**
 * Connects a client. A FIN from waygate ends this side too, unless `halfOpen` (then this side
 * stays writable until it ends itself).
 */
export async function dial(port: number, opts: { host?: string; localAddress?: string; collect?: boolean; halfOpen?: boolean } = {}): Promise<Peer> {
  const socket = connect({ port, host: opts.host ?? '127.0.0.1', localAddress: opts.localAddress, allowHalfOpen: opts.halfOpen ?? false, noDelay: true });
  const p = new Peer(socket, { collect: opts.collect });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  p.localPort = socket.localPort!;
  return p;
}

/** Writes `n` random bytes in 64 KiB chunks, honouring backpressure; resolves with their sha256 once all are written. */
export async function pump(socket: Socket, n: number): Promise<string> {
  const h = createHash('sha256');
  const block = 64 * 1024;
  for (let off = 0; off < n; off += block) {
    const chunk = randomBytes(Math.min(block, n - off));
    h.update(chunk);
    if (!socket.write(chunk)) {
      await new Promise<void>((resolve, reject) => {
        const done = (): void => {
          socket.off('drain', done);
          socket.off('close', closed);
          resolve();
        };
        const closed = (): void => {
          socket.off('drain', done);
          reject(new Error(`socket closed after ${off} of ${n} bytes`));
        };
        socket.once('drain', done);
        socket.once('close', closed);
      });
    }
  }
  return h.digest('hex');
}

/** Writes `bytes` one byte per write, each after the previous one was flushed (its write callback). */
export async function trickle(socket: Socket, bytes: Buffer): Promise<void> {
  socket.setNoDelay(true);
  for (let i = 0; i < bytes.length; i++) {
    await new Promise<void>((resolve, reject) => socket.write(bytes.subarray(i, i + 1), (err) => (err ? reject(err) : resolve())));
  }
}

/** The bound port of L4 listener `name`. */
export const tcpPort = (gw: TestGateway, name = 'edge'): number => Number(gw.gateway.addresses.tcp[name].split(':').pop());

type TcpListener = StaticConfig['listeners']['tcp'][string];
/** A tweak that sets `listeners.tcp` to the given listeners on 127.0.0.1:0 (peekTimeout 5 s unless said). */
export function tcpListeners(spec: Record<string, Partial<TcpListener>>): (c: StaticConfig) => void {
  return (c) => {
    c.listeners.tcp = Object.fromEntries(Object.entries(spec).map(([name, l]) => [name, { address: { host: '127.0.0.1', port: 0 }, proxyProtocol: false, peekTimeout: 5000, ...l }]));
  };
}

/** The n-th "connection" line (0-based) at or after index `from`, waiting for it. */
export async function connectionLine(gw: TestGateway, pred: (l: Line) => boolean = () => true, from = 0, ms = 15_000): Promise<Line> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no matching "connection" line within ${ms} ms; the last ones: ${JSON.stringify(gw.logs.filter((l) => l.msg === 'connection').slice(-3))}`)), ms);
  });
  try {
    return await Promise.race([gw.waitForLog((l) => l.msg === 'connection' && pred(l), from), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves once `socket` is fully closed. */
export const closedOf = (socket: Socket): Promise<void> => (socket.closed ? Promise.resolve() : new Promise((r) => socket.once('close', () => r())));

// ---- ClientHellos ----

/**
 * The ClientHello a Node TLS client sends for `options`, as captured by a raw TCP server that
 * never answers: complete (all the records of its handshake message), nothing after it.
 */
export async function captureHello(options: ConnectionOptions): Promise<Buffer> {
  const server = createServer();
  const sockets: Socket[] = [];
  const got = new Promise<Buffer>((resolve, reject) => {
    server.on('connection', (s) => {
      sockets.push(s);
      const chunks: Buffer[] = [];
      s.on('error', () => {});
      s.on('data', (d: Buffer) => {
        chunks.push(d);
        const b = Buffer.concat(chunks);
        const end = helloEnd(b);
        if (end !== undefined) resolve(b.subarray(0, end));
      });
      s.on('end', () => reject(new Error(`client ended after ${Buffer.concat(chunks).length} bytes`)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const client = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options });
  client.on('error', () => {});
  try {
    return await got;
  } finally {
    client.destroy();
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
}

/** Where the records holding the first handshake message end in `b`, undefined while incomplete. */
function helloEnd(b: Buffer): number | undefined {
  let off = 0;
  let hs = 0;
  let need: number | undefined;
  while (off + 5 <= b.length) {
    const len = b.readUInt16BE(off + 3);
    if (off + 5 + len > b.length) return undefined;
    hs += len;
    if (need === undefined && hs >= 4) need = 4 + (b.readUInt32BE(off + 5) & 0xffffff);
    off += 5 + len;
    if (need !== undefined && hs >= need) return off;
  }
  return undefined;
}

/** The handshake payload of a hello's records, re-split over `n` records of about equal size. */
export function reframe(hello: Buffer, n: number): Buffer {
  const payload: Buffer[] = [];
  for (let off = 0; off < hello.length; ) {
    const len = hello.readUInt16BE(off + 3);
    payload.push(hello.subarray(off + 5, off + 5 + len));
    off += 5 + len;
  }
  const body = Buffer.concat(payload);
  const out: Buffer[] = [];
  const size = Math.ceil(body.length / n);
  for (let i = 0; i < n; i++) {
    const part = body.subarray(i * size, Math.min(body.length, (i + 1) * size));
    const header = Buffer.from([22, 3, 1, 0, 0]);
    header.writeUInt16BE(part.length, 3);
    out.push(header, part);
  }
  return Buffer.concat(out);
}

/** The number of TLS records in `b` (which holds whole records). */
export function recordCount(b: Buffer): number {
  let n = 0;
  for (let off = 0; off + 5 <= b.length; off += 5 + b.readUInt16BE(off + 3)) n++;
  return n;
}

/**
 * A duplex over `raw` for tls.connect({ socket }): the TLS client's ClientHello is held until
 * complete, re-split over `records` TLS records and written one byte per segment when `bytewise`;
 * everything after it passes through untouched. The handshake then goes on as usual, so the far
 * end must reassemble the hello to complete it.
 */
export function reframingSocket(raw: Socket, records: number, bytewise: boolean): Duplex & { hello?: Buffer } {
  let pending: Buffer | null = Buffer.alloc(0);
  const d: Duplex & { hello?: Buffer } = new Duplex({
    write(chunk: Buffer, _enc, cb) {
      if (pending === null) {
        raw.write(chunk, cb);
        return;
      }
      pending = Buffer.concat([pending, chunk]);
      const end = helloEnd(pending);
      if (end === undefined) return cb();
      const hello = reframe(pending.subarray(0, end), records);
      d.hello = hello;
      const rest = pending.subarray(end);
      pending = null;
      void (async () => {
        if (bytewise) await trickle(raw, hello);
        else raw.write(hello);
        if (rest.length > 0) raw.write(rest);
      })().then(() => cb(), cb);
    },
    read() {
      raw.resume();
    },
    final(cb) {
      raw.end();
      cb();
    },
    destroy(err, cb) {
      raw.destroy();
      cb(err);
    },
  });
  raw.on('data', (c: Buffer) => {
    if (!d.push(c)) raw.pause();
  });
  raw.on('end', () => d.push(null));
  raw.on('error', (err) => d.destroy(err));
  raw.on('close', () => d.destroy());
  return d;
}

export { randomBytes };

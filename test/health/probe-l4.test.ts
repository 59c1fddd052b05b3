// L4 health probes (src/health/probe-l4.ts) against real sockets on 127.0.0.1: connect and
// send-expect over TCP, send-expect over UDP, the PROXY header every probe kind (HTTP included)
// writes to a pool with proxyProtocol v1/v2 as read by waygate's own receiver, aborts, and the
// checker flipping a tcp:// target it probes. Waits are on conditions, never fixed sleeps.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import type { RemoteInfo } from 'node:dgram';
import { createServer as createHttpServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { generate } from 'selfsigned';
import { afterEach, describe, expect, test } from 'vitest';
import { HealthChecker } from '../../src/health/checker.ts';
import type { ProbeConfig } from '../../src/health/checker.ts';
import { probe } from '../../src/health/probe.ts';
import type { ProbeResult } from '../../src/health/probe.ts';
import { MAX_REPLY_BYTES, probeL4 } from '../../src/health/probe-l4.ts';
import type { L4ProbeRequest } from '../../src/health/probe-l4.ts';
import { parseProxyHeader } from '../../src/server/proxy-protocol.ts';
import { trackTimers } from './track-timers.ts';
import type { ProxyInfo } from '../../src/server/proxy-protocol.ts';
import { closedPort } from '../refusing-port.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

/** Resolves when `cond()` holds, re-checked every 5 ms; rejects after `ms` naming `what`. */
async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** One accepted connection as the server saw it. */
interface Conn {
  socket: Socket;
  /** Bytes received (after the PROXY header, for a receiver). */
  data: Buffer;
  /** The peer's FIN arrived. */
  ended: boolean;
  /** An error code on the server side (ECONNRESET: the probe reset rather than closed). */
  error: string | undefined;
  closed: boolean;
}

interface TcpServer {
  port: number;
  origin: string;
  conns: Conn[];
  /** PROXY receivers: what each connection's header said (or the parser's error). */
  headers: (ProxyInfo | string)[];
  close(): Promise<void>;
}

/**
 * A real TCP server on 127.0.0.1 (`port` 0: any). `onConn` is called for each connection (after
 * its PROXY header when `proxy` is set); `onData` with what the connection has received so far
 * (`raw`: nothing is read, `onConn` takes the socket over).
 */
async function tcpServer(opts: { onConn?: (c: Conn) => void; onData?: (c: Conn) => void; proxy?: boolean; raw?: boolean; port?: number } = {}): Promise<TcpServer> {
  const conns: Conn[] = [];
  const headers: (ProxyInfo | string)[] = [];
  const server: Server = createServer((socket) => {
    const c: Conn = { socket, data: Buffer.alloc(0), ended: false, error: undefined, closed: false };
    socket.on('end', () => (c.ended = true));
    socket.on('error', (e: NodeJS.ErrnoException) => (c.error = e.code ?? e.message));
    socket.on('close', () => (c.closed = true));
    const serve = (): void => {
      conns.push(c);
      if (!opts.raw) socket.on('data', (d: Buffer) => {
        c.data = Buffer.concat([c.data, d]);
        opts.onData?.(c);
      });
      opts.onConn?.(c);
    };
    if (!opts.proxy) return serve();
    readProxyHeader(socket, headers, serve);
  });
  await new Promise<void>((r) => server.listen(opts.port ?? 0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const t: TcpServer = {
    port,
    origin: `tcp://127.0.0.1:${port}`,
    conns,
    headers,
    close: () => new Promise<void>((r) => {
      server.close(() => r());
      for (const c of conns) c.socket.destroy();
    }),
  };
  cleanups.push(() => t.close());
  return t;
}

/**
 * Reads a PROXY header off `socket` with waygate's receiver parser, the way the real front does
 * ('readable' + read(), never flowing, bytes after the header unshifted), records it in
 * `headers`, then calls `next`. Anything that is not a valid header first is recorded as the
 * parser's error and the connection is destroyed.
 */
function readProxyHeader(socket: Socket, headers: (ProxyInfo | string)[], next: () => void): void {
  let buf = Buffer.alloc(0);
  const onReadable = (): void => {
    for (let chunk: Buffer | null; (chunk = socket.read() as Buffer | null) !== null; ) {
      buf = Buffer.concat([buf, chunk]);
      const r = parseProxyHeader(buf);
      if (r === 'incomplete') continue;
      socket.off('readable', onReadable);
      if (r instanceof Error) {
        headers.push(r.message);
        socket.destroy();
        return;
      }
      headers.push(r.info);
      if (r.length < buf.length) socket.unshift(buf.subarray(r.length));
      next();
      return;
    }
  };
  socket.on('readable', onReadable);
}

/** A real UDP server on 127.0.0.1 answering each datagram with `reply(msg)` (nothing when undefined). */
async function udpServer(reply: (msg: Buffer) => Buffer | string | undefined): Promise<{ origin: string; received: Buffer[] }> {
  const received: Buffer[] = [];
  const s = createSocket('udp4');
  s.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
    received.push(msg);
    const r = reply(msg);
    if (r !== undefined) s.send(r, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
  return { origin: `udp://127.0.0.1:${s.address().port}`, received };
}

/**
 * A loopback UDP port that answers a datagram with ICMP port unreachable, below the ephemeral range
 * for the reason test/refusing-port.ts gives: the first that refuses a datagram right now.
 */
async function closedUdpPort(): Promise<number> {
  for (let port = 1; port < 1024; port++) {
    const refused = await new Promise<boolean>((resolve) => {
      const s = createSocket('udp4');
      let code: string | undefined;
      const t = setTimeout(() => s.close(), 200);
      s.on('error', (e: NodeJS.ErrnoException) => {
        code = e.code;
        clearTimeout(t);
        s.close();
      });
      s.on('close', () => resolve(code === 'ECONNREFUSED'));
      s.connect(port, '127.0.0.1', () => s.send('x'));
    });
    if (refused) return port;
  }
  throw new Error('no refusing UDP port below 1024 on 127.0.0.1');
}

/** Open sockets of this process (TCP, TLS and UDP handles). */
function openSockets(): number {
  return process.getActiveResourcesInfo().filter((k) => k === 'TCPSocketWrap' || k === 'TLSWrap' || k === 'UDPWrap').length;
}

/**
 * openSockets() once handles closed just before (a closedPort() check, a previous test's server
 * side) have gone: the count unchanged across a few event-loop turns. node closes a socket's fd at
 * destroy()/close(), but lists its handle until libuv's close callback, which for a dgram socket
 * (and a net socket's connect error) comes after the event the probe settles on.
 */
async function quietSockets(): Promise<number> {
  for (;;) {
    const n = openSockets();
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
    if (openSockets() === n) return n;
  }
}


const connectCfg = (over: Partial<L4ProbeRequest> = {}): L4ProbeRequest => ({ type: 'connect', send: '', expect: undefined, proxyProtocol: 'off', timeout: 2000, ...over });
const sendExpect = (send: string, expect: string, over: Partial<L4ProbeRequest> = {}): L4ProbeRequest => ({ type: 'send-expect', send, expect, proxyProtocol: 'off', timeout: 2000, ...over });

/**
 * A TCP port whose connects hang: a listener in a child process that blocks its event loop right
 * after listen(), so it never accept()s, with its accept queue filled here. Linux drops a SYN to a
 * listener whose accept queue is full (no RST), so a further connect gets no answer until its own
 * timeout. Loopback has no unroutable address to black-hole a SYN otherwise, and an in-process
 * server cannot stop node from accepting (maxConnections accepts and then closes).
 */
async function blackHolePort(): Promise<number> {
  const code = [
    "const s = require('node:net').createServer();",
    "s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {",
    '  process.stdout.write(s.address().port + "\\n");',
    '  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);',
    '});',
  ].join('\n');
  const child: ChildProcess = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d;
      if (out.includes('\n')) resolve(Number(out.trim()));
    });
    child.on('exit', (c) => reject(new Error(`black hole listener exited with ${c}`)));
  });
  // Fill the accept queue: connect until a connect gets no answer within 300 ms.
  const fillers: Socket[] = [];
  cleanups.push(() => fillers.forEach((s) => s.destroy()));
  for (let i = 0; i < 64; i++) {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => {});
    fillers.push(s);
    const connected = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 300);
      s.once('connect', () => {
        clearTimeout(t);
        resolve(true);
      });
    });
    if (!connected) return port;
  }
  throw new Error('the accept queue never filled');
}

describe('connect', () => {
  test('a listening target is ok, and the probe closes with a FIN, not a reset', async () => {
    const up = await tcpServer();
    const before = await quietSockets();
    const r = await probeL4(up.origin, connectCfg());
    expect(r.ok).toBe(true);
    expect(r.reason).toMatch(/^connected in \d+ ms$/);
    await until(() => up.conns.length === 1 && up.conns[0]!.closed, 'the server to see the close');
    expect(await quietSockets()).toBe(before);
    expect(up.conns[0]).toMatchObject({ ended: true, error: undefined });
    expect(up.conns[0]!.data.length).toBe(0);
  });

  test('a target that speaks first (a banner) is still a plain connect', async () => {
    const up = await tcpServer({ onConn: (c) => c.socket.write('220 ready\r\n') });
    const r = await probeL4(up.origin, connectCfg());
    expect(r.ok).toBe(true);
    await until(() => up.conns[0]?.closed === true, 'the close');
    expect(up.conns[0]!.error).toBeUndefined();
  });

  test('a closed port fails with "connect ECONNREFUSED"', async () => {
    expect(await probeL4(`tcp://127.0.0.1:${await closedPort()}`, connectCfg())).toEqual({ ok: false, reason: 'connect ECONNREFUSED' });
  });

  test('a connect that gets no answer fails with "connect timeout after …"', async () => {
    const port = await blackHolePort();
    const started = Date.now();
    const r = await probeL4(`tcp://127.0.0.1:${port}`, connectCfg({ timeout: 300 }));
    expect(r).toEqual({ ok: false, reason: 'connect timeout after 300ms' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    // Whole seconds are written as config writes them.
    const r2 = await probeL4(`tcp://127.0.0.1:${port}`, connectCfg({ timeout: 1000 }));
    expect(r2).toEqual({ ok: false, reason: 'connect timeout after 1s' });
  });

  test('bad origins and schemes resolve with a reason', async () => {
    expect(await probeL4('tcp://127.0.0.1', connectCfg())).toEqual({ ok: false, reason: 'invalid origin "tcp://127.0.0.1"' });
    expect(await probeL4('http://127.0.0.1:80', connectCfg())).toEqual({ ok: false, reason: 'unsupported scheme http:' });
    expect(await probeL4('udp://127.0.0.1:53', connectCfg())).toEqual({ ok: false, reason: 'a udp:// target is checked with send-expect' });
  });
});

describe('send-expect over TCP', () => {
  test('a reply matched across segments ("+PO", then "NG\\r\\n") is ok; send went out as bytes', async () => {
    const up = await tcpServer({
      onConn: (c) => c.socket.setNoDelay(true),
      onData: (c) => {
        if (!c.data.toString('latin1').endsWith('\r\n')) return;
        c.socket.write('+PO');
        // Apart in time so they leave as two segments.
        setTimeout(() => c.socket.write('NG\r\n'), 30);
      },
    });
    const r = await probeL4(up.origin, sendExpect('PING\r\n', '+PONG'));
    expect(r.ok).toBe(true);
    expect(r.reason).toMatch(/^matched "\+PONG" in \d+ ms$/);
    expect(up.conns[0]!.data.toString('latin1')).toBe('PING\r\n');
    await until(() => up.conns[0]!.closed, 'the close');
    expect(up.conns[0]).toMatchObject({ ended: true, error: undefined });
  });

  test('send is latin1: every character one byte', async () => {
    const up = await tcpServer({ onData: (c) => c.data.length >= 3 && c.socket.write('ok') });
    expect((await probeL4(up.origin, sendExpect('\x00\xe9\xff', 'ok'))).ok).toBe(true);
    expect([...up.conns[0]!.data]).toEqual([0x00, 0xe9, 0xff]);
  });

  test('a wrong reply on a connection kept open fails at the timeout, showing the reply escaped', async () => {
    const up = await tcpServer({ onData: (c) => c.socket.write('-ERR unknown command "PING"\t\x00\r\n') });
    const r = await probeL4(up.origin, sendExpect('PING\r\n', '+PONG', { timeout: 300 }));
    expect(r).toEqual({ ok: false, reason: 'expected "+PONG", got "-ERR unknown command \\"PING\\"\\t\\x00\\r\\n", timeout after 300ms' });
  });

  test('a wrong reply then a close fails as soon as the peer closes', async () => {
    const up = await tcpServer({ onData: (c) => c.socket.end('-ERR unknown command\r\n') });
    const started = Date.now();
    const r = await probeL4(up.origin, sendExpect('PING\r\n', '+PONG', { timeout: 10_000 }));
    expect(r).toEqual({ ok: false, reason: 'expected "+PONG", got "-ERR unknown command\\r\\n", then the connection closed' });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  test('a peer that closes before the expected text (part of it, or nothing) fails', async () => {
    const part = await tcpServer({ onData: (c) => c.socket.end('+PO') });
    expect(await probeL4(part.origin, sendExpect('PING\r\n', '+PONG'))).toEqual({ ok: false, reason: 'expected "+PONG", got "+PO", then the connection closed' });
    const none = await tcpServer({ onConn: (c) => c.socket.end() });
    expect(await probeL4(none.origin, sendExpect('PING\r\n', '+PONG'))).toEqual({ ok: false, reason: 'expected "+PONG", got nothing, then the connection closed' });
  });

  test('a reset before the expected text names the error', async () => {
    const up = await tcpServer({ onData: (c) => c.socket.resetAndDestroy() });
    expect(await probeL4(up.origin, sendExpect('PING\r\n', '+PONG'))).toEqual({ ok: false, reason: 'expected "+PONG", got nothing, then ECONNRESET' });
  });

  test(`no match within ${MAX_REPLY_BYTES / 1024} KiB fails without waiting for the timeout; the reason shows the start`, async () => {
    const up = await tcpServer({ onConn: (c) => c.socket.write(Buffer.alloc(MAX_REPLY_BYTES + 10_000, 'x')) });
    const r = await probeL4(up.origin, sendExpect('', 'OK', { timeout: 20_000 }));
    expect(r).toEqual({ ok: false, reason: `expected "OK", got "${'x'.repeat(64)}"… (${MAX_REPLY_BYTES} bytes), no match in the first 64 KiB` });
  });

  test('a server that speaks first: send "" writes nothing and the banner is matched', async () => {
    const up = await tcpServer({ onConn: (c) => c.socket.write('220 mail.example ESMTP ready\r\n') });
    const r = await probeL4(up.origin, sendExpect('', '220 '));
    expect(r.ok).toBe(true);
    expect(r.reason).toMatch(/^matched "220 " in \d+ ms$/);
    await until(() => up.conns[0]?.closed === true, 'the close');
    expect(up.conns[0]).toMatchObject({ ended: true, error: undefined });
    expect(up.conns[0]!.data.length).toBe(0);
  });

  test('a server that never answers fails at the timeout with nothing received', async () => {
    const up = await tcpServer();
    expect(await probeL4(up.origin, sendExpect('PING\r\n', '+PONG', { timeout: 200 }))).toEqual({ ok: false, reason: 'expected "+PONG", got nothing, timeout after 200ms' });
    await until(() => up.conns[0]?.closed === true, 'the timed-out connection to close');
  });

  test('abort closes the socket at once', async () => {
    const up = await tcpServer();
    const ac = new AbortController();
    const pending = probeL4(up.origin, sendExpect('PING\r\n', '+PONG', { timeout: 60_000 }), ac.signal);
    await until(() => up.conns[0]?.data.length === 6, 'the probe to send');
    const started = Date.now();
    ac.abort();
    expect(await pending).toEqual({ ok: false, reason: 'aborted' });
    expect(Date.now() - started).toBeLessThan(1000);
    await until(() => up.conns[0]!.closed, 'the server to see the aborted connection close', 1000);
    // Already aborted: nothing is opened.
    const accepted = up.conns.length;
    expect(await probeL4(up.origin, sendExpect('PING\r\n', '+PONG'), ac.signal)).toEqual({ ok: false, reason: 'aborted' });
    expect(up.conns.length).toBe(accepted);
  });

  test('settled probes leave no socket or timer behind', async () => {
    const pong = await tcpServer({ onData: (c) => c.socket.write('+PONG\r\n') });
    const silent = await tcpServer();
    const udp = await udpServer(() => 'PONG');
    const mute = await udpServer(() => undefined);
    const refused = await closedPort();
    const before = await quietSockets();
    const timers = trackTimers();
    const results = await Promise.all([
      probeL4(pong.origin, connectCfg()),
      probeL4(pong.origin, sendExpect('PING\r\n', '+PONG')),
      probeL4(silent.origin, sendExpect('PING\r\n', '+PONG', { timeout: 100 })),
      probeL4(`tcp://127.0.0.1:${refused}`, connectCfg()),
      probeL4(udp.origin, sendExpect('PING', 'PONG')),
      probeL4(mute.origin, sendExpect('PING', 'PONG', { timeout: 100 })),
    ]).finally(() => timers.restore());
    expect(results.map((r) => r.ok)).toEqual([true, true, false, false, true, false]);
    expect(timers.created()).toBeGreaterThanOrEqual(6);
    expect(timers.live.size).toBe(0);
    // Client sockets are closed when a probe settles; the server side notices a moment later.
    await until(() => [...pong.conns, ...silent.conns].every((c) => c.closed), 'server-side sockets to close');
    expect(await quietSockets()).toBe(before);
  });
});

describe('send-expect over UDP', () => {
  test('one datagram out, the first reply contains expect: ok', async () => {
    const up = await udpServer((msg) => (msg.toString('latin1') === 'PING\r\n' ? 'PONG from udp' : 'what?'));
    const r = await probeL4(up.origin, sendExpect('PING\r\n', 'PONG'));
    expect(r.ok).toBe(true);
    expect(r.reason).toMatch(/^matched "PONG" in \d+ ms$/);
    expect(up.received.map((b) => b.toString('latin1'))).toEqual(['PING\r\n']);
  });

  test('a reply without expect fails with what came back', async () => {
    const up = await udpServer(() => 'NXDOMAIN\n');
    expect(await probeL4(up.origin, sendExpect('PING', 'PONG'))).toEqual({ ok: false, reason: 'expected "PONG", got "NXDOMAIN\\n"' });
  });

  test('no reply fails at the timeout', async () => {
    const up = await udpServer(() => undefined);
    expect(await probeL4(up.origin, sendExpect('PING', 'PONG', { timeout: 200 }))).toEqual({ ok: false, reason: 'udp timeout after 200ms: no reply' });
    expect(up.received).toHaveLength(1);
  });

  test('ICMP port unreachable fails with "udp ECONNREFUSED"', async () => {
    const port = await closedUdpPort();
    expect(await probeL4(`udp://127.0.0.1:${port}`, sendExpect('PING', 'PONG', { timeout: 5000 }))).toEqual({ ok: false, reason: 'udp ECONNREFUSED' });
  });

  test('abort closes the socket at once', async () => {
    const up = await udpServer(() => undefined);
    const ac = new AbortController();
    const before = await quietSockets();
    const pending = probeL4(up.origin, sendExpect('PING', 'PONG', { timeout: 60_000 }), ac.signal);
    await until(() => up.received.length === 1, 'the datagram');
    ac.abort();
    expect(await pending).toEqual({ ok: false, reason: 'aborted' });
    expect(await quietSockets()).toBe(before);
  });
});

describe('PROXY header of probes', () => {
  const local = (v: 'v1' | 'v2'): Partial<ProxyInfo> => (v === 'v1' ? { version: 1, family: 'UNKNOWN' } : { version: 2, command: 'LOCAL' });

  test.each(['v1', 'v2'] as const)('%s: a connect probe starts its connection with the LOCAL header', async (v) => {
    const up = await tcpServer({ proxy: true });
    const r = await probeL4(up.origin, connectCfg({ proxyProtocol: v }));
    expect(r.ok).toBe(true);
    await until(() => up.conns[0]?.closed === true, 'the close');
    expect(up.headers).toHaveLength(1);
    expect(up.headers[0]).toMatchObject(local(v));
    expect(up.conns[0]!.data.length).toBe(0);
    expect(up.conns[0]!.error).toBeUndefined();
  });

  test.each(['v1', 'v2'] as const)('%s: a send-expect probe sends the header, then `send`', async (v) => {
    const up = await tcpServer({ proxy: true, onData: (c) => c.data.toString('latin1') === 'PING\r\n' && c.socket.write('+PONG\r\n') });
    const r = await probeL4(up.origin, sendExpect('PING\r\n', '+PONG', { proxyProtocol: v }));
    expect(r.ok).toBe(true);
    expect(up.headers).toEqual([expect.objectContaining(local(v))]);
    expect(up.conns[0]!.data.toString('latin1')).toBe('PING\r\n');
  });

  test('without proxyProtocol nothing precedes `send`', async () => {
    const up = await tcpServer({ onData: (c) => c.socket.write('+PONG\r\n') });
    expect((await probeL4(up.origin, sendExpect('PING\r\n', '+PONG'))).ok).toBe(true);
    expect(up.conns[0]!.data.toString('latin1')).toBe('PING\r\n');
  });

  async function httpBehindProxy(secure: boolean): Promise<{ port: number; headers: (ProxyInfo | string)[]; requests: string[]; cert: string }> {
    const requests: string[] = [];
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      requests.push(`${req.method} ${req.url}`);
      res.end('ok');
    };
    const pems = secure ? await generate([{ name: 'commonName', value: 'health.internal' }], { keyType: 'ec', algorithm: 'sha256' }) : undefined;
    const cert = pems?.cert ?? '';
    const server = pems !== undefined ? createHttpsServer({ key: pems.private, cert: pems.cert }, handler) : createHttpServer(handler);
    // The HTTP server never listens: the receiver hands it each socket after the header (and
    // reads nothing itself, so node:http gets every byte).
    const front = await tcpServer({ proxy: true, raw: true, onConn: (c) => server.emit('connection', c.socket) });
    return { port: front.port, headers: front.headers, requests, cert };
  }

  test.each(['v1', 'v2'] as const)('%s: an HTTP probe writes the header before the request', async (v) => {
    const t = await httpBehindProxy(false);
    const r = await probe(`http://127.0.0.1:${t.port}`, { path: '/health', timeout: 2000, expectStatus: [[200, 399]], proxyProtocol: v });
    expect(r).toEqual({ ok: true, reason: 'status 200', status: 200 });
    expect(t.headers).toEqual([expect.objectContaining(local(v))]);
    expect(t.requests).toEqual(['GET /health']);
  });

  test.each(['v1', 'v2'] as const)('%s: an https probe writes the header before the TLS handshake, and still verifies the certificate', async (v) => {
    const t = await httpBehindProxy(true);
    const origin = `https://127.0.0.1:${t.port}`;
    const cfg = { path: '/health', timeout: 2000, expectStatus: [[200, 399]] as [number, number][], proxyProtocol: v };
    expect(await probe(origin, cfg, { ca: t.cert, servername: 'health.internal' })).toEqual({ ok: true, reason: 'status 200', status: 200 });
    expect(t.headers).toEqual([expect.objectContaining(local(v))]);
    expect(t.requests).toEqual(['GET /health']);
    // Verification is not lost on this path: no CA, or a wrong name, fails in the TLS phase.
    expect(await probe(origin, cfg)).toMatchObject({ ok: false, reason: expect.stringMatching(/^tls [A-Z_]+$/) });
    expect(await probe(origin, cfg, { ca: t.cert, servername: 'other.internal' })).toEqual({ ok: false, reason: 'tls ERR_TLS_CERT_ALTNAME_INVALID' });
    expect(await probe(origin, cfg, { rejectUnauthorized: false })).toMatchObject({ ok: true });
  });

  test('an HTTP probe with proxyProtocol to a closed port fails as a connect error, and leaves nothing behind', async () => {
    const port = await closedPort();
    const before = await quietSockets();
    const r = await probe(`http://127.0.0.1:${port}`, { path: '/', timeout: 2000, expectStatus: [[200, 399]], proxyProtocol: 'v2' });
    expect(r).toEqual({ ok: false, reason: 'connect ECONNREFUSED' });
    expect(await quietSockets()).toBe(before);
  });
});

describe('HealthChecker with tcp:// targets', () => {
  const l4Config = (over: Partial<ProbeConfig> = {}): ProbeConfig => ({
    type: 'connect',
    path: '/',
    send: '',
    expect: undefined,
    proxyProtocol: 'off',
    interval: 50,
    timeout: 1000,
    unhealthyAfter: 3,
    healthyAfter: 2,
    expectStatus: [[200, 399]],
    ...over,
  });

  function recording() {
    const changes: { healthy: boolean; reason: string }[] = [];
    const probes: ProbeResult[] = [];
    const checker = new HealthChecker<{ origin: string }>((_t, healthy, reason) => changes.push({ healthy, reason }), { random: () => 0.5, onProbe: (_t, r) => probes.push(r) });
    cleanups.push(() => checker.stop());
    return { checker, changes, probes };
  }

  test('a connect-checked target flips unhealthy after unhealthyAfter failures and back after healthyAfter successes', async () => {
    let up = await tcpServer();
    const port = up.port;
    const target = { origin: up.origin };
    const r = recording();
    r.checker.sync([{ target, config: l4Config() }]);
    await until(() => r.probes.length >= 2, 'two probes');
    expect(r.probes.every((p) => p.ok)).toBe(true);
    expect(r.checker.status(target)?.lastResult).toMatch(/^connected in \d+ ms$/);

    await up.close();
    const mark = r.probes.length;
    await until(() => r.changes.length === 1, 'the target to be evicted');
    expect(r.changes[0]).toEqual({ healthy: false, reason: '3 consecutive failures: connect ECONNREFUSED' });
    // A probe in flight at the close may still have connected; the 3 after it did not.
    expect(r.probes.length - mark).toBeGreaterThanOrEqual(3);
    expect(r.checker.status(target)).toMatchObject({ healthy: false, lastResult: 'connect ECONNREFUSED' });

    up = await tcpServer({ port });
    await until(() => r.changes.length === 2, 'the target to be readmitted');
    expect(r.changes[1]).toEqual({ healthy: true, reason: '2 consecutive successes' });
    expect(r.checker.status(target)?.healthy).toBe(true);
  });

  test('send-expect and udp targets report their reasons; stop() aborts a hanging probe at once', async () => {
    const pong = await tcpServer({ onData: (c) => c.socket.write('+PONG\r\n') });
    const wrong = await tcpServer({ onData: (c) => c.socket.end('-ERR\r\n') });
    const hang = await tcpServer();
    const udp = await udpServer(() => 'PONG');
    const tPong = { origin: pong.origin };
    const tWrong = { origin: wrong.origin };
    const tHang = { origin: hang.origin };
    const tUdp = { origin: udp.origin };
    const r = recording();
    const se = l4Config({ type: 'send-expect', send: 'PING\r\n', expect: '+PONG', unhealthyAfter: 1 });
    r.checker.sync([
      { target: tPong, config: se },
      { target: tWrong, config: se },
      { target: tHang, config: { ...se, timeout: 60_000 } },
      { target: tUdp, config: { ...se, send: 'PING', expect: 'PONG' } },
    ]);
    await until(() => r.checker.status(tWrong)?.healthy === false && r.checker.status(tPong)?.lastResult != null && r.checker.status(tUdp)?.lastResult != null, 'results');
    expect(r.checker.status(tPong)).toMatchObject({ healthy: true, lastResult: expect.stringMatching(/^matched "\+PONG" in \d+ ms$/) });
    expect(r.checker.status(tWrong)).toMatchObject({ healthy: false, lastResult: 'expected "+PONG", got "-ERR\\r\\n", then the connection closed' });
    expect(r.changes).toContainEqual({ healthy: false, reason: '1 consecutive failure: expected "+PONG", got "-ERR\\r\\n", then the connection closed' });
    expect(r.checker.status(tUdp)).toMatchObject({ healthy: true, lastResult: expect.stringMatching(/^matched "PONG" in \d+ ms$/) });

    await until(() => hang.conns.length === 1 && hang.conns[0]!.data.length === 6, 'the hanging probe to send');
    const started = Date.now();
    await r.checker.stop();
    expect(Date.now() - started).toBeLessThan(1000);
    await until(() => hang.conns[0]!.closed, 'the hanging probe connection to close', 1000);
  });
});

describe('against a real redis-server', () => {
  test('send "PING\\r\\n", expect "+PONG"', async () => {
    // Not skipped when missing: a machine without redis-server must fail here, not pass silently.
    const which = spawnSync('which', ['redis-server'], { encoding: 'utf8' });
    expect(which.status, 'redis-server is not installed (apt-get install -y -qq redis-server)').toBe(0);
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const redis = spawn(which.stdout.trim(), ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    redis.stdout.on('data', (d: Buffer) => (log += d));
    redis.stderr.on('data', (d: Buffer) => (log += d));
    cleanups.push(() => new Promise<void>((resolve) => {
      if (redis.exitCode !== null || redis.signalCode !== null) return resolve();
      redis.once('exit', () => resolve());
      redis.kill('SIGKILL');
    }));
    await until(() => log.includes('Ready to accept connections') || redis.exitCode !== null, 'redis-server to start', 10_000);
    expect(redis.exitCode, log).toBeNull();

    const origin = `tcp://127.0.0.1:${port}`;
    const r = await probeL4(origin, sendExpect('PING\r\n', '+PONG'));
    expect(r.ok, r.reason).toBe(true);
    expect(r.reason).toMatch(/^matched "\+PONG" in \d+ ms$/);
    expect((await probeL4(origin, connectCfg())).ok).toBe(true);
    // Redis keeps the connection open after an error: the probe fails at its timeout, showing it.
    const bad = await probeL4(origin, sendExpect('PONG\r\n', '+PONG', { timeout: 300 }));
    expect(bad.ok).toBe(false);
    expect(bad.reason).toMatch(/^expected "\+PONG", got "-ERR unknown command 'PONG'.*", timeout after 300ms$/);
  });
});

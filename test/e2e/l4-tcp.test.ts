// TCP balancing through real sockets (SPEC §7): streams both ways with backpressure and
// half-close, the idle and half-close timeouts, server-first protocols, the ClientHello peek (one
// byte per segment, a post-quantum hello, a hello over three records, bad bytes, timeouts),
// routing precedence and no-route, connect retry, limits, least-connections and ip-hash,
// PROXY protocol out, onTargetDown, 1 GiB through a slow reader, and a real redis-server pair.
// Every termination reason is read off the "connection" log line.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseProxyHeader, proxiedAddress, proxyProtocolFront } from '../../src/server/proxy-protocol.ts';
import { closedPort, send, startGateway } from '../helpers.ts';
import type { TestGateway } from '../helpers.ts';
import { backend, captureHello, connectionLine, dial, echo, Peer, pump, recordCount, reframe, sha, Signal, tcpListeners, tcpPort, trickle } from '../l4-helpers.ts';
import type { Backend, Line } from '../l4-helpers.ts';

const MB = 1024 * 1024;
const cleanups: (() => Promise<unknown> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
/** Registers a backend or gateway for closing after the file. */
function own<T extends { close(): Promise<unknown> }>(x: T): T {
  cleanups.push(() => x.close());
  return x;
}
/** A client whose socket is destroyed after the file whatever happens. */
async function client(...args: Parameters<typeof dial>): Promise<Peer> {
  const p = await dial(...args);
  cleanups.push(() => void p.socket.destroy());
  return p;
}
const byPort = (p: Peer, listener?: string) => (l: Line): boolean => l.clientPort === p.localPort && (listener === undefined || l.listener === listener);

describe('streams', () => {
  let gw: TestGateway;
  const b: Record<string, Backend> = {};
  beforeAll(async () => {
    b.echo = own(await backend());
    // Sends its own 10 MB as soon as a client connects, reads everything the client sends, then FINs.
    b.bulk = own(await backend((p) => {
      void pump(p.socket, 10 * MB).then((h) => {
        (p as Peer & { sent?: string }).sent = h;
        p.socket.end();
      }, () => {});
    }));
    // Answers only after the client's FIN, with what it got.
    b.half = own(await backend((p) => p.socket.on('end', () => p.socket.end(`got ${p.length} bytes: ${p.text()}`))));
    // FINs first, keeps reading.
    b.finFirst = own(await backend((p) => p.socket.end('220 bye\r\n')));
    // Never finishes its side.
    b.hang = own(await backend(() => {}));
    b.banner = own(await backend((p) => {
      p.socket.write('220 ready\r\n');
      echo(p);
    }));
    gw = own(await startGateway(`pools:
${Object.values(b).map((x, i) => `  p${i}: { targets: ["${x.url}"] }`).join('\n')}
tcpRoutes:
  - { name: echo, listener: echo, pool: p0 }
  - { name: bulk, listener: bulk, pool: p1 }
  - { name: half, listener: half, pool: p2 }
  - { name: finfirst, listener: finfirst, pool: p3 }
  - { name: hang, listener: hang, pool: p4, halfCloseTimeout: 300ms }
  - { name: idle, listener: idle, pool: p0, idleTimeout: 300ms }
  - { name: noidle, listener: noidle, pool: p0, idleTimeout: 0s }
  - { name: banner, listener: banner, pool: p5 }
  - { name: finhang, listener: finhang, pool: p3, halfCloseTimeout: 300ms }
`, tcpListeners({ echo: {}, bulk: {}, half: {}, finfirst: {}, hang: {}, idle: {}, noidle: {}, banner: {}, finhang: {} }), process.env, { watchRoutes: false }));
  });

  test('echo both ways', async () => {
    const c = await client(tcpPort(gw, 'echo'));
    c.socket.write('ping');
    await c.untilText('ping');
    c.socket.write('pong');
    await c.untilText('pingpong');
    expect(b.echo.conns.at(-1)!.text()).toBe('pingpong');
    c.socket.end();
    await c.untilClosed();
    expect(await connectionLine(gw, byPort(c))).toMatchObject({ route: 'echo', target: b.echo.url, bytesIn: 8, bytesOut: 8, termination: 'client_close' });
  });

  test('10 MB each way at once: the sha256 of what was sent equals that of what was received, both ways', async () => {
    const c = await client(tcpPort(gw, 'bulk'), { halfOpen: true });
    const sent = await pump(c.socket, 10 * MB);
    c.socket.end();
    await c.untilClosed();
    expect(c.error).toBeUndefined();
    const up = b.bulk.conns.at(-1)! as Peer & { sent?: string };
    await up.untilClosed();
    expect(up.length).toBe(10 * MB);
    expect(sha(up.received)).toBe(sent);
    expect(c.length).toBe(10 * MB);
    expect(sha(c.received)).toBe(up.sent);
    const line = await connectionLine(gw, byPort(c));
    expect(line).toMatchObject({ route: 'bulk', bytesIn: 10 * MB, bytesOut: 10 * MB });
    expect(['client_close', 'upstream_close']).toContain(line.termination);
  });

  test('half-close, client first: after the client\'s FIN the server still answers, then both close', async () => {
    const c = await client(tcpPort(gw, 'half'), { halfOpen: true });
    c.socket.end('question');
    await c.untilClosed();
    expect(c.text()).toBe('got 8 bytes: question');
    expect(c.ended).toBe(true);
    expect(await connectionLine(gw, byPort(c))).toMatchObject({ route: 'half', bytesIn: 8, bytesOut: 21, termination: 'client_close' });
  });

  test('half-close, server first: after the server\'s FIN the client still sends, and the server gets it', async () => {
    const c = await client(tcpPort(gw, 'finfirst'), { halfOpen: true });
    await c.untilEnded();
    expect(c.text()).toBe('220 bye\r\n');
    expect(c.closed).toBe(false);
    c.socket.end('late words');
    await c.untilClosed();
    const up = b.finFirst.conns.at(-1)!;
    await up.untilClosed();
    expect(up.text()).toBe('late words');
    expect(await connectionLine(gw, byPort(c))).toMatchObject({ route: 'finfirst', bytesIn: 10, bytesOut: 9, termination: 'upstream_close' });
  });

  test('halfCloseTimeout: a server that never finishes after the client\'s FIN is closed, both sides', async () => {
    const n = b.hang.conns.length;
    const c = await client(tcpPort(gw, 'hang'));
    await b.hang.untilConns(n + 1);
    const up = b.hang.conns[n];
    const t0 = performance.now();
    c.socket.end('bye');
    await up.untilEnded();
    expect(up.text()).toBe('bye');
    await c.untilClosed();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
    const line = await connectionLine(gw, byPort(c));
    expect(line).toMatchObject({ route: 'hang', termination: 'client_close', detail: 'half-close timeout' });
    // The server's side is closed too: it had the FIN already, so it learns on writing (a reset).
    for (let i = 0; i < 100 && !up.closed; i++) await new Promise<void>((r) => up.socket.write('late', () => setTimeout(r, 10)));
    expect(up.closed).toBe(true);
    expect(up.error?.code).toMatch(/^(EPIPE|ECONNRESET)$/);
  });

  test('halfCloseTimeout: a client that never finishes after the server\'s FIN is closed, both sides', async () => {
    const n = b.finFirst.conns.length;
    const c = await client(tcpPort(gw, 'finhang'), { halfOpen: true });
    await c.untilEnded();
    const t0 = performance.now();
    await b.finFirst.untilConns(n + 1);
    const up = b.finFirst.conns[n];
    // waygate closes the server side at the timeout: the server, half-open, sees the FIN.
    await up.untilClosed();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
    const line = await connectionLine(gw, byPort(c));
    expect(line).toMatchObject({ route: 'finhang', termination: 'upstream_close', detail: 'half-close timeout' });
    // The client had the FIN already: it learns on writing (a reset).
    for (let i = 0; i < 100 && !c.closed; i++) await new Promise<void>((r) => c.socket.write('late', () => setTimeout(r, 10)));
    expect(c.closed).toBe(true);
  });

  test('idleTimeout closes both sides (idle_timeout) while a route with idleTimeout 0 stays open', async () => {
    const quiet = await client(tcpPort(gw, 'noidle'));
    quiet.socket.write('a');
    await quiet.untilText('a');
    const quietUp = b.echo.conns.at(-1)!;
    const c = await client(tcpPort(gw, 'idle'));
    c.socket.write('b');
    await c.untilText('b');
    const up = b.echo.conns.at(-1)!;
    const t0 = performance.now();
    await c.untilClosed();
    await up.untilClosed();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(200);
    expect(await connectionLine(gw, byPort(c))).toMatchObject({ route: 'idle', termination: 'idle_timeout', bytesIn: 1, bytesOut: 1 });
    // Twice the other route's idleTimeout later, the one with 0 is still open and still echoes.
    await new Promise((r) => setTimeout(r, 600));
    expect(quiet.closed).toBe(false);
    expect(quietUp.closed).toBe(false);
    quiet.socket.write('c');
    await quiet.untilText('ac');
    quiet.socket.end();
    await quiet.untilClosed();
    expect(await connectionLine(gw, byPort(quiet))).toMatchObject({ route: 'noidle', termination: 'client_close' });
  });

  test('a banner-first server on a catch-all route: the client gets "220 ready" without sending anything', async () => {
    const c = await client(tcpPort(gw, 'banner'));
    await c.untilText('220 ready\r\n');
    c.socket.write('EHLO x\r\n');
    await c.untilText('220 ready\r\nEHLO x\r\n');
    c.socket.end();
    await c.untilClosed();
    expect(await connectionLine(gw, byPort(c))).toMatchObject({ route: 'banner', sni: null, bytesIn: 8, bytesOut: 19, termination: 'client_close' });
  });
});

describe('the ClientHello peek and routing by SNI', () => {
  let gw: TestGateway;
  const b: Record<string, Backend> = {};
  let helloA: Buffer;
  beforeAll(async () => {
    // These backends only record (and FIN back after the client's FIN): the client's bytes, hello included, must arrive unaltered.
    for (const name of ['exact', 'wild', 'regex', 'office', 'any']) b[name] = own(await backend((p) => p.socket.on('end', () => p.socket.end())));
    gw = own(await startGateway(`pools:
  exact: { targets: ["${b.exact.url}"] }
  wild: { targets: ["${b.wild.url}"] }
  regex: { targets: ["${b.regex.url}"] }
  office: { targets: ["${b.office.url}"] }
  any: { targets: ["${b.any.url}"] }
tcpRoutes:
  - { name: mixed-tls, listener: mixed, match: { sni: a.example.com }, pool: exact }
  - { name: mixed-any, listener: mixed, pool: any }
  - { name: wild, listener: sni, match: { sni: "*.example.com" }, pool: wild }
  - { name: exact, listener: sni, match: { sni: a.example.com }, pool: exact }
  - { name: regex, listener: sni, match: { sni: "~^db[0-9]+\\\\.example\\\\.org$" }, pool: regex }
  - { name: office, listener: plain, match: { clientIp: 10.0.0.0/8 }, pool: office }
`, tcpListeners({ sni: { peekTimeout: 300 }, plain: {}, mixed: { peekTimeout: 300 } }), process.env, { watchRoutes: false }));
    helloA = await captureHello({ servername: 'a.example.com', ALPNProtocols: ['h2'] });
  });

  const noneReached = (): void => {
    for (const x of Object.values(b)) expect(x.conns).toHaveLength(0);
  };

  /** Sends `bytes` (`how`), expects them to reach `to` unaltered; returns the connection line. */
  async function routes(bytes: Buffer, to: Backend, how: 'whole' | 'bytewise' = 'whole', listener = 'sni'): Promise<Line> {
    const before = to.conns.length;
    const c = await client(tcpPort(gw, listener));
    if (how === 'bytewise') await trickle(c.socket, bytes);
    else c.socket.write(bytes);
    await to.untilConns(before + 1);
    const up = to.conns[before];
    await up.untilBytes(bytes.length);
    expect(up.bytes().equals(bytes)).toBe(true);
    c.socket.end();
    await c.untilClosed();
    return connectionLine(gw, byPort(c));
  }

  test('non-TLS bytes on a listener with sni routes: closed, bad_hello, nothing reaches a pool', async () => {
    const c = await client(tcpPort(gw, 'sni'));
    c.socket.write('GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n');
    await c.untilClosed();
    expect(c.length).toBe(0);
    expect(await connectionLine(gw, byPort(c))).toMatchObject({ listener: 'sni', route: null, pool: null, target: null, termination: 'bad_hello', bytesIn: 0 });
    noneReached();
  });

  test('no hello within peekTimeout (300ms): closed, peek_timeout — silent, and a hello cut half-way', async () => {
    const silent = await client(tcpPort(gw, 'sni'));
    const t0 = performance.now();
    const partial = await client(tcpPort(gw, 'sni'));
    partial.socket.write(helloA.subarray(0, helloA.length >> 1));
    await silent.untilClosed();
    await partial.untilClosed();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
    expect(await connectionLine(gw, byPort(silent))).toMatchObject({ termination: 'peek_timeout', route: null });
    expect(await connectionLine(gw, byPort(partial))).toMatchObject({ termination: 'peek_timeout', route: null });
    noneReached();
  });

  test('a hello written one byte per segment still routes, unaltered', async () => {
    const line = await routes(helloA, b.exact, 'bytewise');
    expect(line).toMatchObject({ sni: 'a.example.com', alpn: 'h2', route: 'exact', bytesIn: helloA.length, termination: 'client_close' });
  });

  test('Node\'s default post-quantum hello (> 1.5 KB) routes', async () => {
    const pq = await captureHello({ servername: 'big.example.com' });
    expect(pq.length).toBeGreaterThan(1500);
    expect(recordCount(pq)).toBe(1);
    expect(await routes(pq, b.wild)).toMatchObject({ sni: 'big.example.com', route: 'wild' });
  });

  test('a real hello re-framed over three TLS records routes by its SNI, its bytes unaltered', async () => {
    const three = reframe(await captureHello({ servername: 'db42.example.org' }), 3);
    expect(recordCount(three)).toBe(3);
    expect(await routes(three, b.regex)).toMatchObject({ sni: 'db42.example.org', route: 'regex' });
    // Written one byte at a time as well.
    expect(await routes(reframe(helloA, 3), b.exact, 'bytewise')).toMatchObject({ sni: 'a.example.com', route: 'exact' });
  });

  test('bytes after the hello in the same segment go on with it, in order and unaltered', async () => {
    const both = Buffer.concat([helloA, Buffer.from('\x17\x03\x03\x00\x05early')]);
    expect(await routes(both, b.exact)).toMatchObject({ route: 'exact', bytesIn: both.length });
  });

  test('precedence: exact SNI over a wildcard that also matches; the wildcard covers one label only', async () => {
    expect(await routes(helloA, b.exact)).toMatchObject({ route: 'exact' });
    expect(await routes(await captureHello({ servername: 'b.example.com' }), b.wild)).toMatchObject({ route: 'wild' });
    // x.b.example.com is two labels under example.com: no route.
    for (const name of ['x.b.example.com', 'db42.example.org.evil.net']) {
      const counts = Object.values(b).map((x) => x.conns.length);
      const c = await client(tcpPort(gw, 'sni'));
      c.socket.write(await captureHello({ servername: name }));
      await c.untilClosed();
      expect(await connectionLine(gw, byPort(c))).toMatchObject({ sni: name, route: null, pool: null, target: null, termination: 'no_route' });
      expect(Object.values(b).map((x) => x.conns.length)).toEqual(counts);
    }
  });

  test('no route: closed with termination no_route, and nothing reaches any pool (sni, no sni, clientIp)', async () => {
    const counts = Object.values(b).map((x) => x.conns.length);
    const noSni = await client(tcpPort(gw, 'sni'));
    noSni.socket.write(await captureHello({}));
    await noSni.untilClosed();
    expect(await connectionLine(gw, byPort(noSni))).toMatchObject({ sni: null, route: null, termination: 'no_route' });
    // A listener without sni routes, whose only route wants another client network.
    const outsider = await client(tcpPort(gw, 'plain'));
    outsider.socket.write('hello?');
    await outsider.untilClosed();
    expect(outsider.length).toBe(0);
    expect(await connectionLine(gw, byPort(outsider))).toMatchObject({ listener: 'plain', clientIp: '127.0.0.1', route: null, pool: null, termination: 'no_route', bytesIn: 0 });
    expect(Object.values(b).map((x) => x.conns.length)).toEqual(counts);
  });

  // SPEC §7: non-TLS bytes are closed "where only SNI routes exist"; beside a route without sni
  // or alpn they are that route's, as they came.
  test('a listener with an sni route and a catch-all: TLS for the name goes to its route, anything else (non-TLS bytes included) to the catch-all', async () => {
    expect(await routes(helloA, b.exact, 'whole', 'mixed')).toMatchObject({ route: 'mixed-tls', sni: 'a.example.com' });
    expect(await routes(await captureHello({ servername: 'other.example.net' }), b.any, 'whole', 'mixed')).toMatchObject({ route: 'mixed-any', sni: 'other.example.net' });
    const ssh = Buffer.from('SSH-2.0-OpenSSH_9.2\r\n');
    expect(await routes(ssh, b.any, 'whole', 'mixed')).toMatchObject({ route: 'mixed-any', sni: null, bytesIn: ssh.length, termination: 'client_close' });
    // A hello that is TLS but broken is still refused.
    const broken = Buffer.from(helloA);
    broken[5] = 2; // a ServerHello's handshake type
    const c = await client(tcpPort(gw, 'mixed'));
    c.socket.write(broken);
    await c.untilClosed();
    expect(await connectionLine(gw, byPort(c))).toMatchObject({ listener: 'mixed', route: null, termination: 'bad_hello' });
  });
});

describe('targets: connect retry, health, limits, balancing', () => {
  let gw: TestGateway;
  const b: Record<string, Backend> = {};
  let refused: number;
  beforeAll(async () => {
    refused = await closedPort();
    for (const name of ['live', 'sick', 'lim', 'lc1', 'lc2']) b[name] = own(await backend());
    gw = own(await startGateway(`pools:
  retry: { targets: ["tcp://127.0.0.1:${refused}", "${b.live.url}"], retries: 1 }
  dead: { targets: ["tcp://127.0.0.1:${refused}", "tcp://127.0.0.2:${refused}"], retries: 1 }
  sick: { targets: ["${b.sick.url}"] }
  lim: { targets: ["${b.lim.url}"] }
  lc: { targets: ["${b.lc1.url}", "${b.lc2.url}"], balance: least-connections }
tcpRoutes:
  - { name: retry, listener: retry, pool: retry }
  - { name: dead, listener: dead, pool: dead }
  - { name: sick, listener: sick, pool: sick }
  - { name: max, listener: max, pool: lim, limits: { maxConnections: 2 } }
  - { name: per, listener: per, pool: lim, limits: { perClient: 1 } }
  - { name: lc, listener: lc, pool: lc }
`, tcpListeners({ retry: {}, dead: {}, sick: {}, max: {}, per: {}, lc: {} }), process.env, { watchRoutes: false }));
  });

  /** Closes a client and waits for its connection line (its target released, its limits freed). */
  async function finish(c: Peer): Promise<Line> {
    c.socket.destroy();
    return connectionLine(gw, byPort(c));
  }

  async function served(port: number, opts: Parameters<typeof dial>[1] = {}): Promise<Peer> {
    const c = await client(port, opts);
    c.socket.write('hi');
    await c.untilText('hi');
    return c;
  }

  test('a pool of [refusing port, live server] with retries: 1 serves every client, on the live server', async () => {
    for (let i = 0; i < 4; i++) {
      const c = await served(tcpPort(gw, 'retry'));
      c.socket.end();
      await c.untilClosed();
      expect(await connectionLine(gw, byPort(c))).toMatchObject({ route: 'retry', target: b.live.url, termination: 'client_close' });
    }
    expect(b.live.conns).toHaveLength(4);
    // Round-robin sent some of them to the refusing port first: those connects failed and were retried.
    const metrics = (await send(`${gw.admin}/metrics`)).body;
    const failedConnects = [...metrics.matchAll(/^waygate_upstream_requests_total\{([^}]*)\} (\d+)$/gm)]
      .filter((m) => m[1].includes('pool="retry"') && m[1].includes(`target="tcp://127.0.0.1:${refused}"`))
      .reduce((n, m) => n + Number(m[2]), 0);
    expect(failedConnects).toBeGreaterThanOrEqual(1);
  });

  test('a pool of only refusing ports: closed, termination connect_error', async () => {
    const c = await client(tcpPort(gw, 'dead'));
    c.socket.write('hi');
    await c.untilClosed();
    expect(c.length).toBe(0);
    const line = await connectionLine(gw, byPort(c));
    expect(line).toMatchObject({ route: 'dead', pool: 'dead', termination: 'connect_error', connectMs: null });
    expect(String(line.detail)).toContain('ECONNREFUSED');
  });

  test('every target marked unhealthy: closed, termination no_healthy_upstream, nothing reaches it', async () => {
    const targets = gw.gateway.pools.get('sick')!.targets;
    for (const t of targets) t.setHealthy(false);
    try {
      const c = await client(tcpPort(gw, 'sick'));
      await c.untilClosed();
      expect(await connectionLine(gw, byPort(c))).toMatchObject({ route: 'sick', pool: 'sick', target: null, termination: 'no_healthy_upstream' });
      expect(b.sick.conns).toHaveLength(0);
    } finally {
      for (const t of targets) t.setHealthy(true);
    }
    await finish(await served(tcpPort(gw, 'sick')));
  });

  test('limits.maxConnections: the connection over it is closed (limit); a slot freed is taken again', async () => {
    const port = tcpPort(gw, 'max');
    const held = [await served(port), await served(port)];
    const over = await client(port);
    await over.untilClosed();
    expect(await connectionLine(gw, byPort(over))).toMatchObject({ route: 'max', pool: null, target: null, termination: 'limit' });
    held[0].socket.end();
    await held[0].untilClosed();
    await connectionLine(gw, byPort(held[0]));
    const again = await served(port);
    for (const c of [held[1], again]) await finish(c);
  });

  test('limits.perClient: a second connection from one address is closed (limit); another address is served', async () => {
    const port = tcpPort(gw, 'per');
    const first = await served(port);
    const second = await client(port);
    await second.untilClosed();
    expect(await connectionLine(gw, byPort(second))).toMatchObject({ route: 'per', clientIp: '127.0.0.1', termination: 'limit' });
    const other = await served(port, { localAddress: '127.0.0.2' });
    expect(gw.gateway.pools.get('lim')!.targets[0].inFlight).toBe(2);
    for (const c of [first, other]) await finish(c);
  });

  test('least-connections counts open connections: while one is held on a target, every new one goes to the other', async () => {
    const port = tcpPort(gw, 'lc');
    const pool = gw.gateway.pools.get('lc')!;
    const held = await served(port);
    const heldLine = (): Promise<Line> => connectionLine(gw, byPort(held));
    const heldOn = b.lc1.conns.length === 1 ? b.lc1 : b.lc2;
    const other = heldOn === b.lc1 ? b.lc2 : b.lc1;
    expect(heldOn.conns).toHaveLength(1);
    for (let i = 0; i < 5; i++) {
      const c = await served(port);
      expect(pool.targets.map((t) => t.inFlight).sort()).toEqual([1, 1]);
      c.socket.end();
      await c.untilClosed();
      expect(await connectionLine(gw, byPort(c))).toMatchObject({ route: 'lc', target: other.url });
    }
    expect(heldOn.conns).toHaveLength(1);
    expect(other.conns).toHaveLength(5);
    held.socket.end();
    expect(await heldLine()).toMatchObject({ target: heldOn.url });
  });
});

describe('ip-hash', () => {
  test('removing one target remaps only the clients it had (client addresses from PROXY v1 headers)', async () => {
    const bs = [own(await backend()), own(await backend()), own(await backend())];
    const routes = (list: Backend[]): string => `pools:\n  ih: { targets: [${list.map((x) => `"${x.url}"`).join(', ')}], balance: ip-hash }\ntcpRoutes:\n  - { name: ih, listener: pp, pool: ih }\n`;
    const gw = own(await startGateway(routes(bs), tcpListeners({ pp: { proxyProtocol: true } }), process.env, { watchRoutes: false }));
    const port = tcpPort(gw, 'pp');
    const ips = Array.from({ length: 48 }, (_, i) => `10.${i % 7}.${i}.${(i * 37) % 250}`);
    async function map(): Promise<Map<string, string>> {
      const out = new Map<string, string>();
      for (const ip of ips) {
        const from = gw.logs.length;
        const c = await client(port);
        c.socket.write(`PROXY TCP4 ${ip} 127.0.0.1 40000 ${port}\r\nx`);
        await c.untilText('x');
        c.socket.end();
        await c.untilClosed();
        const line = await connectionLine(gw, (l) => l.clientIp === ip, from);
        expect(line).toMatchObject({ clientPort: 40000, route: 'ih', termination: 'client_close' });
        out.set(ip, String(line.target));
      }
      return out;
    }
    const before = await map();
    const gone = bs[2].url;
    const moved = ips.filter((ip) => before.get(ip) === gone);
    // Every target has some of 48 clients.
    for (const x of bs) expect([...before.values()].filter((t) => t === x.url).length).toBeGreaterThan(0);
    await writeFile(join(gw.routesDir, 'routes.yaml'), routes(bs.slice(0, 2)));
    expect(await gw.gateway.reload()).toMatchObject({ ok: true });
    const after = await map();
    for (const ip of ips) {
      if (before.get(ip) === gone) expect(after.get(ip)).not.toBe(gone);
      else expect(after.get(ip), ip).toBe(before.get(ip));
    }
    expect(moved.length).toBeGreaterThan(0);
  });
});

/** Whether this machine can listen on ::1. */
const v6 = await new Promise<boolean>((resolve) => {
  const s = createServer();
  s.once('error', () => resolve(false));
  s.listen(0, '::1', () => s.close(() => resolve(true)));
});

describe('PROXY protocol out', () => {
  let gw: TestGateway;
  /** waygate's own receiver in front of a net server, recording the client address each connection carried. */
  const receivers: Record<string, Backend & { carried: { address: string; port: number }[] }> = {};
  const raw: Record<string, Backend> = {};
  beforeAll(async () => {
    for (const v of ['v1', 'v2']) {
      const carried: { address: string; port: number }[] = [];
      const x = own(await backend((p) => {
        carried.push(proxiedAddress(p.socket)!);
        echo(p);
      }, { wrap: (s) => proxyProtocolFront(s, { timeout: 5000 }) }));
      receivers[v] = Object.assign(x, { carried });
      raw[v] = own(await backend(() => {}));
    }
    gw = own(await startGateway(`pools:
  pp1: { targets: ["${receivers.v1.url}"], proxyProtocol: v1 }
  pp2: { targets: ["${receivers.v2.url}"], proxyProtocol: v2 }
  raw1: { targets: ["${raw.v1.url}"], proxyProtocol: v1 }
  raw2: { targets: ["${raw.v2.url}"], proxyProtocol: v2 }
tcpRoutes:
  - { name: pp1, listener: pp1, pool: pp1 }
  - { name: pp2, listener: pp2, pool: pp2 }
  - { name: raw1, listener: raw1, pool: raw1 }
  - { name: raw2, listener: raw2, pool: raw2 }
  - { name: sni1, listener: sni1, match: { sni: a.example.com }, pool: raw1 }
  - { name: chained, listener: chained, pool: raw1 }
${v6 ? '  - { name: pp2v6, listener: pp2v6, pool: pp2 }\n  - { name: raw1v6, listener: raw1v6, pool: raw1 }\n' : ''}`, tcpListeners({
      pp1: {}, pp2: {}, raw1: {}, raw2: {}, sni1: {}, chained: { proxyProtocol: true },
      ...(v6 ? { pp2v6: { address: { host: '::1', port: 0 } }, raw1v6: { address: { host: '::1', port: 0 } } } : {}),
    }), process.env, { watchRoutes: false }));
  });

  test.each(['v1', 'v2'])('%s over IPv4: the exact header is written at connect, before the client says anything', async (v) => {
    const port = tcpPort(gw, `raw${v.slice(1)}`);
    const c = await client(port);
    const target = raw[v];
    const n = target.conns.length;
    await target.untilConns(n + 1);
    const up = target.conns[n];
    const expected = v === 'v1' ? `PROXY TCP4 127.0.0.1 127.0.0.1 ${c.localPort} ${port}\r\n`.length : 16 + 12;
    await up.untilBytes(expected);
    const parsed = parseProxyHeader(up.bytes());
    expect(parsed).toEqual({ length: expected, info: { version: Number(v.slice(1)), command: 'PROXY', family: 'TCP4', sourceAddress: '127.0.0.1', sourcePort: c.localPort, destAddress: '127.0.0.1', destPort: port } });
    if (v === 'v1') expect(up.text()).toBe(`PROXY TCP4 127.0.0.1 127.0.0.1 ${c.localPort} ${port}\r\n`);
    // Then the client's bytes, after the header.
    c.socket.write('data');
    await up.untilBytes(expected + 4);
    expect(up.bytes().subarray(expected).toString()).toBe('data');
    c.socket.destroy();
  });

  test.each(['v1', 'v2'])('%s to waygate\'s own PROXY receiver: it records the client\'s address and port, the client silent', async (v) => {
    const target = receivers[v];
    const n = target.conns.length;
    const c = await client(tcpPort(gw, `pp${v.slice(1)}`));
    // The receiver hands the connection on only once it parsed a header: the client has sent nothing.
    await target.untilConns(n + 1);
    expect(c.socket.bytesWritten).toBe(0);
    expect(target.carried[n]).toEqual({ address: '127.0.0.1', port: c.localPort });
    c.socket.write('echo');
    await c.untilText('echo');
    c.socket.end();
    await c.untilClosed();
  });

  test('on a listener that peeks: the header first, then the ClientHello exactly as the client sent it', async () => {
    const hello = await captureHello({ servername: 'a.example.com' });
    const port = tcpPort(gw, 'sni1');
    const n = raw.v1.conns.length;
    const c = await client(port);
    c.socket.write(hello);
    await raw.v1.untilConns(n + 1);
    const header = Buffer.from(`PROXY TCP4 127.0.0.1 127.0.0.1 ${c.localPort} ${port}\r\n`);
    const up = raw.v1.conns[n];
    await up.untilBytes(header.length + hello.length);
    expect(up.bytes().equals(Buffer.concat([header, hello]))).toBe(true);
    c.socket.destroy();
  });

  test('behind a PROXY protocol listener, the client address the incoming header carried goes on (IPv4)', async () => {
    const port = tcpPort(gw, 'chained');
    const n = raw.v1.conns.length;
    const c = await client(port);
    c.socket.write(`PROXY TCP4 10.1.2.3 10.9.9.9 40000 5432\r\n`);
    await raw.v1.untilConns(n + 1);
    const up = raw.v1.conns[n];
    await up.untilText('\r\n');
    const parsed = parseProxyHeader(up.bytes());
    expect(parsed).toMatchObject({ info: { family: 'TCP4', sourceAddress: '10.1.2.3', sourcePort: 40000 } });
    c.socket.destroy();
  });

  // Regression: the header out announced waygate's own listener as the destination, not the one the incoming header carried.
  test('behind a PROXY protocol listener, both ends of the incoming header go on (an IPv6 client carried over IPv4)', async () => {
    const port = tcpPort(gw, 'chained');
    const n = raw.v1.conns.length;
    const c = await client(port);
    c.socket.write(`PROXY TCP6 2001:db8::1 2001:db8::2 40000 5432\r\n`);
    await raw.v1.untilConns(n + 1);
    const up = raw.v1.conns[n];
    await up.untilText('\r\n');
    expect(up.text()).toBe('PROXY TCP6 2001:db8::1 2001:db8::2 40000 5432\r\n');
    c.socket.destroy();
  });

  test.runIf(v6)('over IPv6 (::1): v2 carries the IPv6 client to the receiver, v1 writes TCP6', async () => {
    const target = receivers.v2;
    const n = target.conns.length;
    const c = await client(tcpPort(gw, 'pp2v6'), { host: '::1' });
    await target.untilConns(n + 1);
    expect(target.carried[n]).toEqual({ address: '::1', port: c.localPort });
    c.socket.destroy();

    const port = tcpPort(gw, 'raw1v6');
    const m = raw.v1.conns.length;
    const d = await client(port, { host: '::1' });
    await raw.v1.untilConns(m + 1);
    const header = `PROXY TCP6 ::1 ::1 ${d.localPort} ${port}\r\n`;
    await raw.v1.conns[m].untilBytes(header.length);
    expect(raw.v1.conns[m].text()).toBe(header);
    d.socket.destroy();
  });
});

describe('onTargetDown', () => {
  test('close: a health check eviction closes the live connections (target_down); keep: they flow on', async () => {
    const closeB = own(await backend());
    const keepB = own(await backend());
    const hc = '{ type: connect, interval: 100ms, timeout: 1s, unhealthyAfter: 1, healthyAfter: 1 }';
    const gw = own(await startGateway(`pools:
  c: { targets: ["${closeB.url}"], healthCheck: ${hc}, onTargetDown: close }
  k: { targets: ["${keepB.url}"], healthCheck: ${hc}, onTargetDown: keep }
tcpRoutes:
  - { name: c, listener: c, pool: c }
  - { name: k, listener: k, pool: k }
`, tcpListeners({ c: {}, k: {} }), process.env, { watchRoutes: false }));
    const closing = await client(tcpPort(gw, 'c'));
    const keeping = await client(tcpPort(gw, 'k'));
    for (const x of [closing, keeping]) {
      x.socket.write('1');
      await x.untilText('1');
    }
    // The listeners stop (connect probes are refused); the accepted sockets stay open.
    await closeB.stopListening();
    await keepB.stopListening();
    await closing.untilClosed();
    await closeB.conns[0].untilClosed();
    expect(await connectionLine(gw, byPort(closing))).toMatchObject({ route: 'c', target: closeB.url, termination: 'target_down', bytesIn: 1, bytesOut: 1 });
    await gw.waitForLog((l) => l.msg === 'target failed health checks' && l.target === keepB.url);
    expect(keeping.closed).toBe(false);
    keeping.socket.write('2');
    await keeping.untilText('12');
    keeping.socket.end();
    await keeping.untilClosed();
    expect(await connectionLine(gw, byPort(keeping))).toMatchObject({ route: 'k', target: keepB.url, termination: 'client_close', bytesIn: 2, bytesOut: 2 });
  });
});

describe('backpressure', () => {
  test('1 GiB from a backend writing as fast as TCP allows to a client reading slowly: bytes in flight and RSS stay bounded', async () => {
    const SIZE = 1024 * MB;
    const block = Buffer.alloc(256 * 1024, 7);
    let sent = 0;
    const src = own(await backend((p) => {
      const write = (): void => {
        while (sent < SIZE) {
          const n = Math.min(block.length, SIZE - sent);
          sent += n;
          if (!p.socket.write(n === block.length ? block : block.subarray(0, n))) return void p.socket.once('drain', write);
        }
        p.socket.end();
      };
      write();
    }, { collect: false }));
    const gw = own(await startGateway(`pools:\n  src: { targets: ["${src.url}"] }\ntcpRoutes:\n  - { name: bulk, listener: bulk, pool: src }\n`, tcpListeners({ bulk: {} }), process.env, { watchRoutes: false }));
    // RSS from before the transfer, and from once 128 MiB went through (by then the allocator and
    // the garbage collector have reached their steady state: from there on, growth would mean
    // bytes piling up).
    const base = process.memoryUsage().rss;
    let peak = base;
    let warm: number | undefined;
    let warmPeak = 0;
    const sampler = setInterval(() => {
      const rss = process.memoryUsage().rss;
      peak = Math.max(peak, rss);
      if (warm === undefined && got >= 128 * MB) warm = rss;
      if (warm !== undefined) warmPeak = Math.max(warmPeak, rss);
    }, 50);
    // The reader reads into one reused buffer (onread), so what this process allocates per byte
    // is waygate's own; every 4 MiB it stops reading for 10 ms, well below what the writer does.
    let got = 0;
    let sinceBreak = 0;
    let inFlight = 0;
    const sock = createConnection({
      port: tcpPort(gw, 'bulk'),
      host: '127.0.0.1',
      onread: {
        buffer: Buffer.alloc(64 * 1024),
        callback: (n: number): boolean => {
          got += n;
          sinceBreak += n;
          inFlight = Math.max(inFlight, sent - got);
          if (sinceBreak < 4 * MB) return true;
          sinceBreak = 0;
          setTimeout(() => sock.resume(), 10);
          return false;
        },
      },
    });
    const c = new Peer(sock, { collect: false });
    cleanups.push(() => void sock.destroy());
    await new Promise<void>((r) => sock.once('connect', () => r()));
    c.localPort = sock.localPort!;
    const t0 = performance.now();
    try {
      await c.signal.until(() => c.closed, '1 GiB', 60_000);
    } finally {
      clearInterval(sampler);
    }
    const seconds = (performance.now() - t0) / 1000;
    const growth = peak - base;
    const steady = warm === undefined ? 0 : warmPeak - warm;
    console.log(`[l4-tcp] ${SIZE / MB} MiB through a slow reader: ${seconds.toFixed(2)} s (${(SIZE / MB / seconds).toFixed(0)} MiB/s); RSS growth ${(growth / MB).toFixed(1)} MB from the start (base ${(base / MB).toFixed(0)} MB, peak ${(peak / MB).toFixed(0)} MB), ${(steady / MB).toFixed(1)} MB after the first 128 MiB; most bytes in flight ${(inFlight / MB).toFixed(1)} MiB`);
    expect(c.error).toBeUndefined();
    expect(got).toBe(SIZE);
    // Written but not yet read: the kernel's socket buffers of both hops plus waygate's bounded
    // buffers, nowhere near the gigabyte a relay without backpressure would pile up.
    expect(inFlight).toBeLessThan(64 * MB);
    // Bounded, not tight: most of the growth is the garbage of ~64 KiB reads awaiting collection.
    expect(growth).toBeLessThan(128 * MB);
    expect(steady).toBeLessThan(48 * MB);
    expect(await connectionLine(gw, byPort(c))).toMatchObject({ route: 'bulk', bytesOut: SIZE, bytesIn: 0, termination: 'upstream_close' });
  }, 60_000);
});

describe('backpressure, client to server', () => {
  test('256 MiB from a client writing as fast as TCP allows to a server reading slowly: bytes in flight stay bounded', async () => {
    const SIZE = 256 * MB;
    let read = 0;
    let sinceBreak = 0;
    const sink = own(await backend((p) => {
      p.socket.on('data', (d: Buffer) => {
        read += d.length;
        sinceBreak += d.length;
        if (sinceBreak < 4 * MB) return;
        sinceBreak = 0;
        p.socket.pause();
        setTimeout(() => p.socket.resume(), 10);
      });
      p.socket.on('end', () => p.socket.end());
    }, { collect: false }));
    const gw = own(await startGateway(`pools:\n  sink: { targets: ["${sink.url}"] }\ntcpRoutes:\n  - { name: up, listener: up, pool: sink }\n`, tcpListeners({ up: {} }), process.env, { watchRoutes: false }));
    const c = await client(tcpPort(gw, 'up'), { collect: false });
    const block = Buffer.alloc(256 * 1024, 3);
    let written = 0;
    let inFlight = 0;
    const t0 = performance.now();
    while (written < SIZE) {
      written += block.length;
      inFlight = Math.max(inFlight, written - read);
      if (!c.socket.write(block)) await new Promise<void>((r) => c.socket.once('drain', () => r()));
    }
    c.socket.end();
    await c.untilClosed();
    const seconds = (performance.now() - t0) / 1000;
    console.log(`[l4-tcp] 256 MiB client to slow server: ${seconds.toFixed(2)} s, most bytes in flight ${(inFlight / MB).toFixed(1)} MiB`);
    expect(read).toBe(SIZE);
    expect(inFlight).toBeLessThan(64 * MB);
    expect(await connectionLine(gw, byPort(c))).toMatchObject({ route: 'up', bytesIn: SIZE, bytesOut: 0, termination: 'client_close' });
  });
});

describe('a real redis-server pair', () => {
  const servers: { proc: ChildProcess; port: number; url: string }[] = [];
  afterAll(async () => {
    for (const s of servers) {
      if (s.proc.exitCode === null && s.proc.signalCode === null) {
        const gone = new Promise<void>((r) => s.proc.once('exit', () => r()));
        s.proc.kill('SIGKILL');
        await gone;
      }
    }
  });

  async function freePort(): Promise<number> {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    return port;
  }

  async function startRedis(bin: string): Promise<{ proc: ChildProcess; port: number; url: string }> {
    for (let attempt = 0; ; attempt++) {
      const port = await freePort();
      const proc = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
      const entry = { proc, port, url: `tcp://127.0.0.1:${port}` };
      servers.push(entry);
      let log = '';
      const ready = new Signal();
      const exited = { yes: false };
      proc.stdout!.on('data', (d: Buffer) => {
        log += d;
        ready.fire();
      });
      proc.stderr!.on('data', (d: Buffer) => (log += d));
      proc.once('exit', () => {
        exited.yes = true;
        ready.fire();
      });
      await ready.until(() => log.includes('Ready to accept connections') || exited.yes, 'redis-server to start', 15_000);
      if (!exited.yes) return entry;
      if (attempt >= 2) throw new Error(`redis-server did not start: ${log}`);
    }
  }

  const resp = (...args: string[]): string => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;

  /** Sends one command on `c` and expects `reply`, byte for byte, as its answer. */
  async function ask(c: Peer, cmd: string, reply: string): Promise<void> {
    const before = c.length;
    c.socket.write(cmd);
    await c.signal.until(() => c.length - before >= reply.length || c.closed, `the reply to ${JSON.stringify(cmd)}`);
    expect(c.bytes().subarray(before).toString()).toBe(reply);
  }

  test('SET/GET through a round-robin tcpRoute; each key lives on the instance the connection line names', async () => {
    let bin = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).stdout.trim();
    if (bin === '') {
      spawnSync('apt-get', ['install', '-y', '-qq', 'redis-server'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
      bin = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).stdout.trim();
    }
    expect(bin, 'redis-server is not installed (apt-get install -y -qq redis-server)').not.toBe('');
    const [r1, r2] = [await startRedis(bin), await startRedis(bin)];
    const gw = own(await startGateway(`pools:
  redis:
    targets: ["${r1.url}", "${r2.url}"]
    balance: round-robin
    healthCheck: { type: send-expect, send: "PING\\r\\n", expect: "+PONG", interval: 1s }
tcpRoutes:
  - { name: cache, listener: redis, pool: redis }
`, tcpListeners({ redis: {} }), process.env, { watchRoutes: false }));
    const owner = new Map<string, string>();
    for (let i = 0; i < 6; i++) {
      const key = `waygate:l4:${i}:${process.pid}`;
      const c = await client(tcpPort(gw, 'redis'));
      await ask(c, resp('SET', key, `value-${i}`), '+OK\r\n');
      await ask(c, resp('GET', key), `$${`value-${i}`.length}\r\nvalue-${i}\r\n`);
      await ask(c, resp('QUIT'), '+OK\r\n');
      await c.untilClosed();
      const line = await connectionLine(gw, byPort(c));
      expect(line).toMatchObject({ route: 'cache', pool: 'redis' });
      expect(['client_close', 'upstream_close']).toContain(line.termination);
      owner.set(key, String(line.target));
    }
    // Both instances took some (round-robin), and each key is exactly where the line said.
    expect(new Set(owner.values())).toEqual(new Set([r1.url, r2.url]));
    for (const r of [r1, r2]) {
      const direct = await client(r.port);
      for (const [key, target] of owner) {
        const v = `value-${key.split(':')[2]}`;
        await ask(direct, resp('EXISTS', key), target === r.url ? ':1\r\n' : ':0\r\n');
        if (target === r.url) await ask(direct, resp('GET', key), `$${v.length}\r\n${v}\r\n`);
      }
      direct.socket.destroy();
    }
  });
});

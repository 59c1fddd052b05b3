// TLS at layer 4 through real sockets (SPEC §7): passthrough by SNI to node:tls backends with
// their own certificates (the client sees the backend's certificate; 10 MB each way hash equal),
// exact, wildcard and regex SNI routes, `tls: terminate` with the certificates of certs/, and
// the shared HTTPS port: passthrough names go to their backends, every other name is served by
// waygate's HTTPS, and an HTTP request whose Host is a passthrough name gets 421.
import { X509Certificate } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import type { ConnectionOptions, Server as TlsServer, TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startGateway, startHttpsGateway } from '../helpers.ts';
import type { TestGateway } from '../helpers.ts';
import { backend, connectionLine, Peer, pump, recordCount, reframingSocket, sha, Signal, tcpListeners, tcpPort } from '../l4-helpers.ts';
import type { Backend, Line } from '../l4-helpers.ts';
import { makeLeaf } from '../tls-helpers.ts';
import type { Pem } from '../tls-helpers.ts';

const MB = 1024 * 1024;
const cleanups: (() => Promise<unknown> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
function own<T extends { close(): Promise<unknown> }>(x: T): T {
  cleanups.push(() => x.close());
  return x;
}

const fingerprint = (pem: Pem): string => new X509Certificate(pem.cert).fingerprint256;

/** A node:tls backend with its own certificate; each connection is kept with what it received. */
interface TlsBackend {
  url: string;
  port: number;
  pem: Pem;
  server: TlsServer;
  conns: (Peer & { sent?: string })[];
  signal: Signal;
  close(): Promise<void>;
}

/** `onSecure` says what a connection does (default: echo). */
async function tlsBackend(names: string[], onSecure?: (p: Peer & { sent?: string }) => void): Promise<TlsBackend> {
  const pem = await makeLeaf(names);
  const conns: TlsBackend['conns'] = [];
  const signal = new Signal();
  const server = createTlsServer({ cert: pem.cert, key: pem.key, allowHalfOpen: true }, (s) => {
    const p = new Peer(s);
    conns.push(p);
    if (onSecure !== undefined) onSecure(p);
    else {
      s.on('data', (d: Buffer) => s.write(d));
      s.on('end', () => s.end());
    }
    signal.fire();
  });
  server.on('tlsClientError', () => {});
  // Every accepted socket, handshake done or not, so close() ends them all.
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `tcp://127.0.0.1:${port}`,
    port,
    pem,
    server,
    conns,
    signal,
    close: () => new Promise<void>((r) => {
      for (const c of conns) c.socket.destroy();
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

/** A TLS client through waygate on `port`; resolves once the handshake is done. */
async function tlsClient(port: number, options: ConnectionOptions & { halfOpen?: boolean }): Promise<Peer & { tls: TLSSocket; raw: Socket; rawPort: number }> {
  const raw = connect({ port, host: '127.0.0.1', allowHalfOpen: options.halfOpen ?? false });
  cleanups.push(() => void raw.destroy());
  await new Promise<void>((resolve, reject) => {
    raw.once('connect', resolve);
    raw.once('error', reject);
  });
  const rawPort = raw.localPort!;
  const tls = tlsConnect({ socket: raw, rejectUnauthorized: false, ...options });
  const p = new Peer(tls) as Peer & { tls: TLSSocket; raw: Socket; rawPort: number };
  p.localPort = rawPort;
  await new Promise<void>((resolve, reject) => {
    tls.once('secureConnect', resolve);
    tls.once('error', reject);
  });
  return Object.assign(p, { tls, raw, rawPort });
}

/** A raw connection to `port` carrying a TLS client whose hello goes over three records, one byte per segment. */
async function reframedTls(port: number, options: ConnectionOptions): Promise<{ tls: TLSSocket; raw: Socket; rawPort: number; peer: Peer }> {
  const raw = connect({ port, host: '127.0.0.1' });
  cleanups.push(() => void raw.destroy());
  await new Promise<void>((resolve, reject) => {
    raw.once('connect', resolve);
    raw.once('error', reject);
  });
  const rawPort = raw.localPort!;
  const framed = reframingSocket(raw, 3, true);
  const tls = tlsConnect({ socket: framed as unknown as Socket, rejectUnauthorized: false, ...options });
  const peer = new Peer(tls);
  peer.localPort = rawPort;
  await new Promise<void>((resolve, reject) => {
    tls.once('secureConnect', resolve);
    tls.once('error', reject);
  });
  expect(recordCount(framed.hello!)).toBe(3);
  expect(framed.hello!.length).toBeGreaterThan(1500);
  return { tls, raw, rawPort, peer };
}

/** Connects with a TLS hello for `servername` and expects waygate to close without a handshake. */
async function refused(port: number, servername: string): Promise<number> {
  const raw = connect({ port, host: '127.0.0.1' });
  cleanups.push(() => void raw.destroy());
  await new Promise<void>((resolve) => raw.once('connect', resolve));
  const rawPort = raw.localPort!;
  const tls = tlsConnect({ socket: raw, servername, rejectUnauthorized: false });
  const outcome = await new Promise<string>((resolve) => {
    tls.once('secureConnect', () => resolve('handshake'));
    tls.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    tls.once('close', () => resolve('closed'));
  });
  expect(outcome).not.toBe('handshake');
  return rawPort;
}

const byPort = (port: number) => (l: Line): boolean => l.clientPort === port;

describe('TLS passthrough by SNI on one listener', () => {
  let gw: TestGateway;
  let a: TlsBackend;
  let b: TlsBackend;
  beforeAll(async () => {
    // For a.example.com and b.example.com each sends its own 10 MB once the handshake is done,
    // reads all the client sends, then FINs; for other names it echoes.
    const bulk = (p: Peer & { sent?: string }): void => {
      if (!/^[ab]\.example\.com$/.test((p.socket as TLSSocket).servername || '')) {
        p.socket.on('data', (d: Buffer) => p.socket.write(d));
        p.socket.on('end', () => p.socket.end());
        return;
      }
      void pump(p.socket, 10 * MB).then((h) => {
        p.sent = h;
        p.socket.end();
      }, () => {});
    };
    a = own(await tlsBackend(['a.example.com', 'r7.example.net'], bulk));
    b = own(await tlsBackend(['b.example.com', '*.w.example.com'], bulk));
    gw = own(await startGateway(`pools:
  a: { targets: ["${a.url}"] }
  b: { targets: ["${b.url}"] }
tcpRoutes:
  - { name: a, listener: edge, match: { sni: a.example.com }, pool: a }
  - { name: b, listener: edge, match: { sni: b.example.com }, pool: b }
  - { name: wild, listener: edge, match: { sni: "*.w.example.com" }, pool: b }
  - { name: regex, listener: edge, match: { sni: "~^r[0-9]+\\\\.example\\\\.net$" }, pool: a }
`, tcpListeners({ edge: {} }), process.env, { watchRoutes: false }));
  });

  /** A full exchange through waygate with `servername`: 10 MB each way, hashed on both ends. */
  async function exchange(servername: string, to: TlsBackend, route: string): Promise<void> {
    const n = to.conns.length;
    const c = await tlsClient(tcpPort(gw), { servername, halfOpen: true });
    // The backend's own certificate: the bytes went through untouched.
    expect(c.tls.getPeerX509Certificate()!.fingerprint256).toBe(fingerprint(to.pem));
    const sent = await pump(c.tls, 10 * MB);
    c.tls.end();
    await c.untilClosed();
    expect(c.error).toBeUndefined();
    const up = to.conns[n];
    await up.untilClosed();
    expect(up.length).toBe(10 * MB);
    expect(sha(up.received)).toBe(sent);
    expect(c.length).toBe(10 * MB);
    expect(sha(c.received)).toBe(up.sent);
    const line = await connectionLine(gw, byPort(c.rawPort));
    expect(line).toMatchObject({ sni: servername, route, target: to.url });
    // The bytes on the wire: TLS records, a little more than the payload.
    expect(line.bytesIn as number).toBeGreaterThan(10 * MB);
    expect(line.bytesOut as number).toBeGreaterThan(10 * MB);
  }

  test('two names, two backends with their own certificates: each client sees its backend\'s certificate, 10 MB each way hash equal', async () => {
    await Promise.all([exchange('a.example.com', a, 'a'), exchange('b.example.com', b, 'b')]);
  });

  test('a real handshake whose hello goes over three records, one byte per segment, completes with the backend its SNI chose', async () => {
    const c = await reframedTls(tcpPort(gw), { servername: 'r7.example.net' });
    expect(c.tls.getPeerX509Certificate()!.fingerprint256).toBe(fingerprint(a.pem));
    c.tls.write('after a trickled hello');
    await c.peer.untilText('after a trickled hello');
    c.tls.end();
    await new Promise<void>((r) => (c.raw.closed ? r() : c.raw.once('close', () => r())));
    expect(await connectionLine(gw, byPort(c.rawPort))).toMatchObject({ sni: 'r7.example.net', route: 'regex', target: a.url, termination: 'client_close' });
  });

  test('a wildcard route (one label) and a regex route pass through to their backends; a name neither covers is closed (no_route)', async () => {
    for (const [name, to, route] of [['x.w.example.com', b, 'wild'], ['r7.example.net', a, 'regex']] as const) {
      const c = await tlsClient(tcpPort(gw), { servername: name });
      expect(c.tls.getPeerX509Certificate()!.fingerprint256).toBe(fingerprint(to.pem));
      c.tls.write(name);
      await c.untilText(name);
      c.tls.end();
      await c.untilClosed();
      expect(await connectionLine(gw, byPort(c.rawPort))).toMatchObject({ sni: name, route, target: to.url, termination: 'client_close' });
    }
    for (const name of ['y.x.w.example.com', 'r7.example.net.evil.org', 'rx.example.net']) {
      const port = await refused(tcpPort(gw), name);
      expect(await connectionLine(gw, byPort(port))).toMatchObject({ sni: name, route: null, pool: null, termination: 'no_route' });
    }
  });
});

describe('tls: terminate', () => {
  test('the client sees waygate\'s certificate from certs/, the backend receives plaintext, both ways and through a half-close', async () => {
    const term = await makeLeaf(['term.example.com']);
    const plain = own(await backend((p) => {
      p.socket.on('data', (d: Buffer) => p.socket.write(d.toString().toUpperCase()));
      p.socket.on('end', () => p.socket.end('BYE'));
    }));
    const gw = own(await startGateway(`pools:
  plain: { targets: ["${plain.url}"] }
tcpRoutes:
  - { name: term, listener: edge, match: { sni: term.example.com }, tls: terminate, pool: plain }
`, (c) => {
      tcpListeners({ edge: {} })(c);
      c.certsDir = join(c.routesDir, 'tls');
      mkdirSync(c.certsDir);
      writeFileSync(join(c.certsDir, 'term.crt'), term.cert);
      writeFileSync(join(c.certsDir, 'term.key'), term.key);
    }, process.env, { watchRoutes: false }));
    const c = await tlsClient(tcpPort(gw), { servername: 'term.example.com', halfOpen: true });
    expect(c.tls.getPeerX509Certificate()!.fingerprint256).toBe(fingerprint(term));
    c.tls.write('hello in plaintext');
    await c.untilText('HELLO IN PLAINTEXT');
    expect(plain.conns).toHaveLength(1);
    expect(plain.conns[0].text()).toBe('hello in plaintext');
    c.tls.end();
    await c.untilClosed();
    expect(c.text()).toBe('HELLO IN PLAINTEXTBYE');
    expect(await connectionLine(gw, byPort(c.rawPort))).toMatchObject({ sni: 'term.example.com', route: 'term', target: plain.url, bytesIn: 18, bytesOut: 21, termination: 'client_close' });
  });
});

/** An HTTPS request to waygate on `port` with SNI `servername` and Host `host`. */
function httpsGet(port: number, servername: string, host: string): Promise<{ status: number; body: string; cert: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, servername, path: '/', headers: { host }, rejectUnauthorized: false, agent: false }, (res) => {
      const cert = (res.socket as TLSSocket).getPeerX509Certificate()!.fingerprint256;
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString(), cert }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the shared HTTPS port', () => {
  let gw: TestGateway & { httpsPort: number };
  let pass: TlsBackend;
  let wild: TlsBackend;
  let plain: Backend;
  let term: Pem;
  beforeAll(async () => {
    pass = own(await tlsBackend(['pass.example.com']));
    wild = own(await tlsBackend(['*.pass.example.org']));
    plain = own(await backend((p) => {
      p.socket.on('data', (d: Buffer) => p.socket.write(d.toString().toUpperCase()));
      p.socket.on('end', () => p.socket.end());
    }));
    term = await makeLeaf(['term.example.com']);
    gw = own(await startHttpsGateway(`pools:
  pass: { targets: ["${pass.url}"] }
  wild: { targets: ["${wild.url}"] }
  plain: { targets: ["${plain.url}"] }
routes: [ { name: site, respond: { body: served by waygate } } ]
tcpRoutes:
  - { name: pass, listener: https, match: { sni: pass.example.com }, pool: pass }
  - { name: wild, listener: https, match: { sni: "*.pass.example.org" }, pool: wild }
  - { name: term, listener: https, match: { sni: term.example.com }, tls: terminate, pool: plain }
`, (c) => {
      writeFileSync(join(c.certsDir, 'term.crt'), term.cert);
      writeFileSync(join(c.certsDir, 'term.key'), term.key);
    }));
  });

  test('tls: terminate on the HTTPS port: waygate\'s certificate for the name, plaintext to the backend', async () => {
    const c = await tlsClient(gw.httpsPort, { servername: 'term.example.com' });
    expect(c.tls.getPeerX509Certificate()!.fingerprint256).toBe(fingerprint(term));
    c.tls.write('plain words');
    await c.untilText('PLAIN WORDS');
    expect(plain.conns.at(-1)!.text()).toBe('plain words');
    c.tls.end();
    await c.untilClosed();
    expect(await connectionLine(gw, byPort(c.rawPort))).toMatchObject({ listener: 'https', sni: 'term.example.com', route: 'term', bytesIn: 11, bytesOut: 11 });
  });

  test('hellos over three records, one byte per segment: a passthrough name still reaches its backend, another name is served by waygate\'s HTTPS', async () => {
    const p = await reframedTls(gw.httpsPort, { servername: 'pass.example.com' });
    expect(p.tls.getPeerX509Certificate()!.fingerprint256).toBe(fingerprint(pass.pem));
    p.tls.write('ping');
    await p.peer.untilText('ping');
    p.tls.end();
    await p.peer.untilClosed();
    expect(await connectionLine(gw, byPort(p.rawPort))).toMatchObject({ route: 'pass', termination: 'client_close' });
    // Not claimed: every byte read while peeking is handed to the HTTPS server, which completes the handshake.
    const h = await reframedTls(gw.httpsPort, { servername: 'localhost' });
    expect(h.tls.getPeerX509Certificate()!.fingerprint256).not.toBe(fingerprint(pass.pem));
    h.tls.write('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    await h.peer.untilClosed();
    expect(h.peer.text()).toMatch(/^HTTP\/1\.1 200 /);
    expect(h.peer.text()).toContain('served by waygate');
  });

  test('a passthrough name reaches its TLS backend with the backend\'s own certificate, bytes both ways', async () => {
    for (const [name, to, route] of [['pass.example.com', pass, 'pass'], ['db.pass.example.org', wild, 'wild']] as const) {
      const c = await tlsClient(gw.httpsPort, { servername: name });
      expect(c.tls.getPeerX509Certificate()!.fingerprint256).toBe(fingerprint(to.pem));
      c.tls.write(`hello ${name}`);
      await c.untilText(`hello ${name}`);
      c.tls.end();
      await c.untilClosed();
      expect(await connectionLine(gw, byPort(c.rawPort))).toMatchObject({ listener: 'https', sni: name, route, target: to.url, termination: 'client_close' });
    }
  });

  test('any other name is served by waygate\'s HTTPS: its own certificate, the HTTP route answers', async () => {
    const r = await httpsGet(gw.httpsPort, 'localhost', 'localhost');
    expect(r).toMatchObject({ status: 200, body: 'served by waygate' });
    expect(r.cert).not.toBe(fingerprint(pass.pem));
    expect(r.cert).not.toBe(fingerprint(wild.pem));
    expect(pass.conns.filter((c) => !c.closed)).toHaveLength(0);
  });

  test('an HTTPS request with the SNI of another name but Host = a passthrough name gets 421', async () => {
    for (const host of ['pass.example.com', 'pass.example.com:443', 'x.pass.example.org']) {
      expect((await httpsGet(gw.httpsPort, 'localhost', host)).status, host).toBe(421);
    }
    expect((await httpsGet(gw.httpsPort, 'localhost', 'localhost')).status).toBe(200);
  });
});

describe('the shared HTTPS port behind a PROXY protocol balancer', () => {
  test('a passthrough route with clientIp matches the client address of the PROXY header, not the balancer\'s', async () => {
    const pass = own(await tlsBackend(['office.example.com']));
    const gw = own(await startHttpsGateway(`pools:
  pass: { targets: ["${pass.url}"] }
routes: [ { name: site, respond: { body: served by waygate } } ]
tcpRoutes:
  - { name: office, listener: https, match: { sni: office.example.com, clientIp: 10.0.0.0/8 }, pool: pass }
`, (c) => {
      c.listeners.https.proxyProtocol = true;
    }));
    const via = async (clientIp: string): Promise<{ cert: string; rawPort: number }> => {
      const raw = connect({ port: gw.httpsPort, host: '127.0.0.1' });
      cleanups.push(() => void raw.destroy());
      await new Promise<void>((resolve) => raw.once('connect', resolve));
      const rawPort = raw.localPort!;
      raw.write(`PROXY TCP4 ${clientIp} 127.0.0.1 50000 443\r\n`);
      const tls = tlsConnect({ socket: raw, servername: 'office.example.com', rejectUnauthorized: false });
      await new Promise<void>((resolve, reject) => {
        tls.once('secureConnect', resolve);
        tls.once('error', reject);
      });
      const cert = tls.getPeerX509Certificate()!.fingerprint256;
      // An exchange first: the client's Finished must reach the server before this side goes.
      const echoed = new Promise<void>((resolve) => tls.once('data', () => resolve()));
      tls.write('ping');
      await echoed;
      tls.end();
      await new Promise<void>((resolve) => raw.once('close', () => resolve()));
      return { cert, rawPort };
    };
    // From the office network: passed through to the backend.
    const inside = await via('10.1.2.3');
    expect(inside.cert).toBe(fingerprint(pass.pem));
    expect(await connectionLine(gw, (l) => l.clientIp === '10.1.2.3')).toMatchObject({ listener: 'https', route: 'office', clientPort: 50000 });
    // From elsewhere: no tcpRoute claims it, waygate's HTTPS serves it with its own certificate.
    const outside = await via('192.0.2.1');
    expect(outside.cert).not.toBe(fingerprint(pass.pem));
    expect(pass.conns).toHaveLength(1);
  });
});


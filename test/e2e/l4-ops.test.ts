// L4 in operation (SPEC §7), through real sockets: reload keeps established connections flowing
// byte-for-byte to their target while new ones follow the new routes; an invalid reload is
// refused; shutdown closes the listeners at once and drains up to the grace; --workers serves TCP
// and UDP; the connection line, /metrics, /status and /explain.
import { createHash, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import { afterEach, describe, expect, test } from 'vitest';
import { explainRequest } from '../../src/admin/explain.ts';
import type { StaticConfig } from '../../src/config/schema.ts';
import { gatewayStatus } from '../../src/gateway/status.ts';
import { send, startCli, startGateway } from '../helpers.ts';
import type { TestGateway } from '../helpers.ts';
import { makeLeaf } from '../tls-helpers.ts';

type Line = Record<string, unknown>;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A TCP echo backend on 127.0.0.1 that keeps every connection's received bytes. */
interface TcpBackend {
  url: string;
  port: number;
  server: Server;
  conns: { received: Buffer[]; socket: Socket }[];
  bytes(i: number): Buffer;
  close(): Promise<void>;
}

async function tcpBackend(): Promise<TcpBackend> {
  const conns: TcpBackend['conns'] = [];
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    const c = { received: [] as Buffer[], socket };
    conns.push(c);
    socket.on('data', (d: Buffer) => {
      c.received.push(d);
      socket.write(d);
    });
    socket.on('end', () => socket.end());
    socket.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `tcp://127.0.0.1:${port}`,
    port,
    server,
    conns,
    bytes: (i) => Buffer.concat(conns[i].received),
    close: () => new Promise<void>((r) => {
      for (const c of conns) c.socket.destroy();
      server.close(() => r());
    }),
  };
}

/** A client connection through waygate that collects what comes back. */
interface Client {
  socket: Socket;
  sent: Buffer[];
  got: Buffer[];
  /** Writes `n` random bytes and resolves once as many bytes in total came back as were sent. */
  stream(n: number): Promise<void>;
  /** Resolves when the socket closed. */
  closed: Promise<void>;
}

async function client(port: number): Promise<Client> {
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const sent: Buffer[] = [];
  const got: Buffer[] = [];
  let waiters: (() => void)[] = [];
  socket.on('data', (d: Buffer) => {
    got.push(d);
    for (const w of waiters.splice(0)) w();
  });
  socket.on('error', () => {});
  // The far side's FIN ends this side too once it has been read (a client that is done).
  socket.on('end', () => socket.end());
  const closed = new Promise<void>((r) => socket.once('close', () => {
    for (const w of waiters.splice(0)) w();
    r();
  }));
  const total = (l: Buffer[]): number => l.reduce((n, b) => n + b.length, 0);
  return {
    socket,
    sent,
    got,
    closed,
    async stream(n) {
      // Several writes, so the stream spans many segments.
      for (let off = 0; off < n; off += 16 * 1024) {
        const chunk = randomBytes(Math.min(16 * 1024, n - off));
        sent.push(chunk);
        socket.write(chunk);
      }
      while (total(got) < total(sent)) {
        if (socket.destroyed) throw new Error(`connection closed after ${total(got)} of ${total(sent)} bytes`);
        await new Promise<void>((r) => (waiters = [...waiters, r]));
      }
    },
  };
}

/** Resolves with the error code of a connect to `port` (undefined if it connected). */
function connectOutcome(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(undefined);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code));
  });
}

/** Connects and resolves with how the connection went: bytes received and whether waygate closed it. */
function closedByPeer(port: number, bytes: string): Promise<{ received: number }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let received = 0;
    s.on('data', (d: Buffer) => (received += d.length));
    s.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? undefined : reject(err)));
    s.on('close', () => resolve({ received }));
    s.write(bytes);
  });
}

const tcpPort = (gw: TestGateway, name = 'edge'): number => Number(gw.gateway.addresses.tcp[name].split(':').pop());

const edge = (c: StaticConfig): void => {
  c.listeners.tcp = { edge: { address: { host: '127.0.0.1', port: 0 }, proxyProtocol: false, peekTimeout: 5000 } };
};

/** Every sample of /metrics named `name` whose labels include `labels`. */
async function samples(gw: TestGateway | string, name: string, labels: Record<string, string> = {}): Promise<{ labels: Record<string, string>; value: number }[]> {
  const text = (await send(`${typeof gw === 'string' ? gw : gw.admin}/metrics`)).body;
  const out: { labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) out.push({ labels: got, value: Number(m[3]) });
  }
  return out;
}
async function metric(gw: TestGateway | string, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const all = await samples(gw, name, labels);
  return all.length === 0 ? undefined : all[0].value;
}

const SPEC_FIELDS = ['connId', 'listener', 'clientIp', 'clientPort', 'sni', 'alpn', 'route', 'pool', 'target', 'connectMs', 'durationMs', 'bytesIn', 'bytesOut', 'termination'];

describe('reload with L4 routes', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  const pools = (a: TcpBackend, b: TcpBackend): string => `pools:\n  a: { targets: ["${a.url}"] }\n  b: { targets: ["${b.url}"] }\n`;

  test('an established connection keeps flowing byte-for-byte to its target when its route changes pool, then disappears; new connections follow the new routes', async () => {
    const a = await tcpBackend();
    const b = await tcpBackend();
    cleanup.push(() => a.close(), () => b.close());
    const gw = await startGateway(`${pools(a, b)}tcpRoutes:\n  - { name: db, listener: edge, pool: a }\n`, edge, process.env, { watchRoutes: false });
    cleanup.push(() => gw.close());
    const port = tcpPort(gw);

    const long = await client(port);
    await long.stream(100_000);
    expect(a.conns).toHaveLength(1);

    // The route now goes to pool b.
    await writeFile(join(gw.routesDir, 'routes.yaml'), `${pools(a, b)}tcpRoutes:\n  - { name: db, listener: edge, pool: b }\n`);
    expect(await gw.gateway.reload()).toMatchObject({ ok: true });
    await long.stream(100_000);
    const fresh = await client(port);
    await fresh.stream(1000);
    expect(b.conns).toHaveLength(1);
    expect(a.conns).toHaveLength(1);
    fresh.socket.end();
    await fresh.closed;

    // The route is gone: a new connection is closed with nothing forwarded; the old one flows on.
    await writeFile(join(gw.routesDir, 'routes.yaml'), pools(a, b));
    expect(await gw.gateway.reload()).toMatchObject({ ok: true });
    const from = gw.logs.length;
    expect(await closedByPeer(port, 'hello?')).toEqual({ received: 0 });
    const refused = await gw.waitForLog((l) => l.msg === 'connection' && l.termination === 'no_route', from);
    expect(refused).toMatchObject({ listener: 'edge', route: null, pool: null, target: null, bytesIn: 0, bytesOut: 0 });
    expect(a.conns).toHaveLength(1);
    expect(b.conns).toHaveLength(1);
    await long.stream(100_000);

    long.socket.end();
    await long.closed;
    const sent = Buffer.concat(long.sent);
    expect(sent.length).toBe(300_000);
    expect(sha(a.bytes(0))).toBe(sha(sent));
    expect(sha(Buffer.concat(long.got))).toBe(sha(sent));
    const line = await gw.waitForLog((l) => l.msg === 'connection' && l.target === a.url);
    expect(line).toMatchObject({ route: 'db', pool: 'a', bytesIn: 300_000, bytesOut: 300_000, termination: 'client_close' });
  });

  test('a reload with an invalid L4 config is rejected with located errors, and the routes in force keep serving', async () => {
    const a = await tcpBackend();
    const b = await tcpBackend();
    cleanup.push(() => a.close(), () => b.close());
    const good = `${pools(a, b)}tcpRoutes:\n  - { name: db, listener: edge, pool: a }\n`;
    const gw = await startGateway(good, edge, process.env, { watchRoutes: false });
    cleanup.push(() => gw.close());
    const port = tcpPort(gw);
    const long = await client(port);
    await long.stream(10_000);
    const file = join(gw.routesDir, 'routes.yaml');

    // A listener waygate.yaml does not have.
    await writeFile(file, `${pools(a, b)}tcpRoutes:\n  - { name: db, listener: edgee, pool: b }\n`);
    let r = await gw.gateway.reload();
    expect(r.ok).toBe(false);
    expect(!r.ok && r.errors.join('\n')).toContain(`${file}:5:27 tcpRoutes[0].listener: unknown tcp listener "edgee" (did you mean "edge"?): waygate.yaml's listeners.tcp has edge`);
    // A schema error in an L4 pool.
    await writeFile(file, `pools:\n  a: { targets: ["tcp://127.0.0.1"] }\n  b: { targets: ["${b.url}"] }\ntcpRoutes:\n  - { name: db, listener: edge, pool: b }\n`);
    r = await gw.gateway.reload();
    expect(!r.ok && r.errors.join('\n')).toMatch(/routes\.yaml:2:\d+ pools\.a\.targets\[0\]: a tcp:\/\/ target needs a port/);
    // A connect: test that fails.
    await writeFile(file, `${pools(a, b)}tcpRoutes:\n  - { name: db, listener: edge, pool: b }\ntests:\n  - { connect: "tcp://db", listener: edge, expect: { pool: a } }\n`);
    r = await gw.gateway.reload();
    expect(!r.ok && r.errors.join('\n')).toContain('tests[0]: expected pool "a", got "b"');

    // The routes in force are the first ones: new connections still go to pool a.
    const fresh = await client(port);
    await fresh.stream(1000);
    expect(a.conns).toHaveLength(2);
    expect(b.conns).toHaveLength(0);
    await long.stream(10_000);
    expect(sha(a.bytes(0))).toBe(sha(Buffer.concat(long.sent)));
    const status = JSON.parse((await send(`${gw.admin}/status`)).body) as { config: { version: number; lastReload: { ok: boolean; errors: string[] } } };
    expect(status.config.version).toBe(1);
    expect(status.config.lastReload.ok).toBe(false);
    expect(await metric(gw, 'waygate_config_reloads_total', { result: 'failure' })).toBe(3);
    fresh.socket.destroy();
    long.socket.destroy();
  });
});

describe('shutdown with L4 connections', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function setup(): Promise<{ gw: TestGateway; a: TcpBackend }> {
    const a = await tcpBackend();
    cleanup.push(() => a.close());
    const gw = await startGateway(`pools:\n  a: { targets: ["${a.url}"] }\ntcpRoutes:\n  - { name: db, listener: edge, pool: a }\n`, edge, process.env, { watchRoutes: false });
    // gateway.close() is the test's; only the routes directory is left to remove.
    cleanup.push(() => rm(gw.routesDir, { recursive: true, force: true }));
    return { gw, a };
  }

  test('close(grace) refuses new connections at once, lets an established one flow until the grace, then closes it (termination shutdown)', async () => {
    const { gw, a } = await setup();
    const port = tcpPort(gw);
    const c = await client(port);
    await c.stream(20_000);
    const grace = 2000;
    const t0 = performance.now();
    const closing = gw.gateway.close(grace);
    let resolvedAt: number | undefined;
    void closing.then(() => (resolvedAt = performance.now()));
    expect(await connectOutcome(port)).toBe('ECONNREFUSED');
    // Still flowing during the grace, byte for byte.
    await c.stream(50_000);
    await c.stream(50_000);
    expect(resolvedAt).toBeUndefined();
    await c.closed;
    const closedAt = performance.now() - t0;
    await closing;
    expect(closedAt).toBeGreaterThanOrEqual(grace - 100);
    expect(closedAt).toBeLessThan(grace + 5000);
    expect(sha(a.bytes(0))).toBe(sha(Buffer.concat(c.sent)));
    expect(sha(Buffer.concat(c.got))).toBe(sha(Buffer.concat(c.sent)));
    const line = await gw.waitForLog((l) => l.msg === 'connection');
    expect(line).toMatchObject({ route: 'db', target: a.url, termination: 'shutdown', bytesIn: 120_000, bytesOut: 120_000 });
  });

  test('close(grace) resolves as soon as the last connection finishes by itself, well before the grace', async () => {
    const { gw } = await setup();
    const port = tcpPort(gw);
    const c = await client(port);
    await c.stream(1000);
    const t0 = performance.now();
    const closing = gw.gateway.close(20_000);
    expect(await connectOutcome(port)).toBe('ECONNREFUSED');
    await c.stream(1000);
    c.socket.end();
    await c.closed;
    await closing;
    expect(performance.now() - t0).toBeLessThan(10_000);
    const line = await gw.waitForLog((l) => l.msg === 'connection');
    expect(line).toMatchObject({ termination: 'client_close', bytesIn: 2000, bytesOut: 2000 });
  });
});

describe('observability of L4 connections', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  const listeners = (c: StaticConfig): void => {
    c.listeners.tcp = {
      edge: { address: { host: '127.0.0.1', port: 0 }, proxyProtocol: false, peekTimeout: 5000 },
      raw: { address: { host: '127.0.0.1', port: 0 }, proxyProtocol: false, peekTimeout: 5000 },
    };
    c.listeners.udp = { dns: { address: { host: '127.0.0.1', port: 0 }, sessionIdle: 30_000, maxSessions: 100 } };
  };
  const routes = (echo: TcpBackend, pg: string): string => `pools:
  echo: { targets: ["${echo.url}"] }
  pg:
    targets: ["${pg}", { url: "tcp://127.0.0.2:1", weight: 2 }]
    healthCheck: { type: connect, interval: 1h, unhealthyAfter: 1 }
  dns: { targets: ["udp://127.0.0.1:5353"] }
tcpRoutes:
  - { name: db, listener: edge, match: { sni: db.example.com, alpn: [postgresql] }, pool: pg }
  - { name: wild, listener: edge, match: { sni: "*.example.com" }, pool: pg }
  - { name: office, listener: edge, match: { sni: db.example.com, clientIp: 192.168.0.0/16 }, priority: 0, pool: pg }
  - { name: plain, listener: raw, pool: echo }
udpRoutes:
  - { name: resolver, listener: dns, pool: dns }
`;

  test('one "connection" line per connection with exactly the SPEC fields; the tcp metrics count it, with exact bytes', async () => {
    const echo = await tcpBackend();
    cleanup.push(() => echo.close());
    const gw = await startGateway(routes(echo, 'tcp://127.0.0.1:9'), listeners);
    cleanup.push(() => gw.close());
    const c = await client(tcpPort(gw, 'raw'));
    const clientPort = c.socket.localPort;
    await c.stream(40_000);
    // While it is open: the open-connections gauge and the target's in-flight count.
    expect(await metric(gw, 'waygate_tcp_open_connections', { listener: 'raw', route: 'plain' })).toBe(1);
    expect(await metric(gw, 'waygate_target_in_flight', { pool: 'echo', target: echo.url })).toBe(1);
    await c.stream(2_000);
    c.socket.end();
    await c.closed;
    const line = await gw.waitForLog((l) => l.msg === 'connection');
    const { level: _level, time: _time, msg: _msg, ...fields } = line;
    expect(Object.keys(fields).sort()).toEqual([...SPEC_FIELDS].sort());
    expect(fields).toMatchObject({
      listener: 'raw', clientIp: '127.0.0.1', clientPort, sni: null, alpn: null,
      route: 'plain', pool: 'echo', target: echo.url, bytesIn: 42_000, bytesOut: 42_000, termination: 'client_close',
    });
    expect(typeof fields.connId).toBe('string');
    expect(fields.connectMs as number).toBeGreaterThanOrEqual(0);
    expect(fields.durationMs as number).toBeGreaterThanOrEqual(fields.connectMs as number);
    expect(gw.logs.filter((l) => l.msg === 'connection')).toHaveLength(1);

    expect(await metric(gw, 'waygate_tcp_connections_total', { listener: 'raw', route: 'plain', pool: 'echo', termination: 'client_close' })).toBe(1);
    expect(await metric(gw, 'waygate_tcp_open_connections', { listener: 'raw', route: 'plain' })).toBe(0);
    expect(await metric(gw, 'waygate_target_in_flight', { pool: 'echo', target: echo.url })).toBe(0);
    expect(await metric(gw, 'waygate_tcp_bytes_total', { route: 'plain', pool: 'echo', direction: 'in' })).toBe(42_000);
    expect(await metric(gw, 'waygate_tcp_bytes_total', { route: 'plain', pool: 'echo', direction: 'out' })).toBe(42_000);
    expect(await metric(gw, 'waygate_tcp_connection_duration_seconds_count', { route: 'plain', pool: 'echo' })).toBe(1);
    expect(await metric(gw, 'waygate_tcp_connection_duration_seconds_bucket', { route: 'plain', pool: 'echo', le: '+Inf' })).toBe(1);
    expect(await metric(gw, 'waygate_tcp_connection_duration_seconds_sum', { route: 'plain', pool: 'echo' })).toBeCloseTo((fields.durationMs as number) / 1000, 2);
    // A connection nothing routes is counted too.
    expect(await closedByPeer(tcpPort(gw, 'edge'), 'not tls')).toEqual({ received: 0 });
    await gw.waitForLog((l) => l.msg === 'connection' && l.listener === 'edge');
    expect(await metric(gw, 'waygate_tcp_connections_total', { listener: 'edge', route: '', pool: '', termination: 'bad_hello' })).toBe(1);
  });

  test('a TLS connection passed through by SNI logs its sni and alpn, and the bytes on the wire both ways', async () => {
    const leaf = await makeLeaf(['db.example.com']);
    const tls = createTlsServer({ cert: leaf.cert, key: leaf.key, ALPNProtocols: ['postgresql'] }, (s) => {
      s.on('data', (d: Buffer) => s.write(d));
      s.on('end', () => s.end());
      s.on('error', () => {});
    });
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise<void>((r) => tls.close(() => r())));
    const echo = await tcpBackend();
    cleanup.push(() => echo.close());
    const pg = `tcp://127.0.0.1:${(tls.address() as AddressInfo).port}`;
    // The second target of pg never answers a connect: only the first takes connections.
    const gw = await startGateway(routes(echo, pg), listeners);
    cleanup.push(() => gw.close());
    await gw.waitForLog((l) => l.msg === 'target failed health checks' && l.target === 'tcp://127.0.0.2:1');
    const raw = connect(tcpPort(gw, 'edge'), '127.0.0.1');
    const s = tlsConnect({ socket: raw, servername: 'db.example.com', ALPNProtocols: ['postgresql'], rejectUnauthorized: false });
    await new Promise<void>((r, j) => {
      s.once('secureConnect', r);
      s.once('error', j);
    });
    expect(s.alpnProtocol).toBe('postgresql');
    // The backend's own certificate: the bytes were passed through, not terminated.
    expect(s.getPeerCertificate().subjectaltname).toBe('DNS:db.example.com');
    const echoed = new Promise<string>((r) => s.once('data', (d: Buffer) => r(d.toString())));
    s.write('SELECT 1');
    expect(await echoed).toBe('SELECT 1');
    s.end();
    await new Promise<void>((r) => raw.once('close', () => r()));
    const line = await gw.waitForLog((l) => l.msg === 'connection' && l.listener === 'edge');
    expect(line).toMatchObject({ sni: 'db.example.com', alpn: 'postgresql', route: 'db', pool: 'pg', target: pg, bytesIn: raw.bytesWritten, bytesOut: raw.bytesRead });
    expect(await metric(gw, 'waygate_tcp_bytes_total', { route: 'db', pool: 'pg', direction: 'in' })).toBe(raw.bytesWritten);
  });

  test('/explain names the L4 route, the rejected ones with reasons, the tls mode and the target; an unknown listener says so', async () => {
    const echo = await tcpBackend();
    cleanup.push(() => echo.close());
    const gw = await startGateway(routes(echo, echo.url), listeners);
    cleanup.push(() => gw.close());
    await gw.waitForLog((l) => l.msg === 'target failed health checks' && l.target === 'tcp://127.0.0.2:1');
    const get = async (q: string): Promise<Record<string, unknown>> => {
      const r = await send(`${gw.admin}/explain?${q}`);
      expect(r.status).toBe(200);
      return JSON.parse(r.body) as Record<string, unknown>;
    };
    const e = await get('listener=edge&sni=db.example.com&alpn=postgresql&clientIp=10.1.2.3');
    expect(e).toMatchObject({
      connection: { listener: 'edge', transport: 'tcp', sni: 'db.example.com', alpn: ['postgresql'], clientIp: '10.1.2.3' },
      peeks: true,
      route: 'db',
      tls: 'passthrough',
      sniMatch: 'exact',
      action: 'forward',
    });
    expect(e.rejected).toEqual([
      { route: 'wild', reason: 'outranked by "db" (exact sni over wildcard)' },
      { route: 'office', reason: 'client 10.1.2.3 not in 192.168.0.0/16' },
    ]);
    expect(e.pools).toEqual([{ pool: 'pg', weight: 1, target: echo.url, why: 'round-robin', skipped: [{ url: 'tcp://127.0.0.2:1', reason: 'failing health checks' }] }]);

    // Without the alpn the wildcard route wins; from the office the office route does.
    expect((await get('listener=edge&sni=db.example.com&clientIp=10.1.2.3')).route).toBe('wild');
    expect((await get('listener=edge&sni=db.example.com&alpn=h2&clientIp=192.168.1.1')).route).toBe('office');
    // No SNI: nothing on edge matches, the connection is closed.
    expect(await get('listener=edge&clientIp=10.1.2.3')).toMatchObject({ route: null, result: 'closed: no route' });
    // The plain listener peeks nothing; UDP routes are explained too.
    expect(await get('listener=raw')).toMatchObject({ route: 'plain', peeks: false, tls: 'none' });
    expect(await get('listener=dns&clientIp=10.0.0.1')).toMatchObject({ connection: { transport: 'udp' }, route: 'resolver', pools: [{ pool: 'dns', target: 'udp://127.0.0.1:5353' }] });

    // No tcpRoute on the shared HTTPS port: everything there is served as HTTPS.
    expect(await get('listener=https&sni=www.example.com')).toMatchObject({ route: null, result: 'served as HTTPS (no tcpRoute claims it)', note: 'no tcpRoute names listener "https": every connection to the HTTPS port is served as HTTPS' });
    const unknown = await get('listener=edgee');
    expect(unknown).toMatchObject({ route: null, result: 'closed: no route' });
    expect(String(unknown.note)).toContain('"edgee"');
    // Bad input is a 400.
    expect((await send(`${gw.admin}/explain?listener=edge&clientIp=nope`)).status).toBe(400);
  });

  test('explainConnection, given the configured listeners, tells an unknown listener from one without routes', async () => {
    const echo = await tcpBackend();
    cleanup.push(() => echo.close());
    const gw = await startGateway(routes(echo, 'tcp://127.0.0.1:9'), listeners);
    cleanup.push(() => gw.close());
    const listenersOf = { tcp: ['edge', 'raw', 'idle'], udp: ['dns'] };
    const q = (listener: string) => ({ url: '', method: '', headers: [], cookies: [], l4: { listener, sni: undefined, alpn: [], clientIp: '127.0.0.1' } });
    const unknown = explainRequest(gw.gateway.runtime, q('edgee'), 'reject', listenersOf);
    expect(unknown).toMatchObject({ route: null, result: 'closed: no route', note: 'unknown listener "edgee" (did you mean "edge"?): waygate.yaml has tcp listeners edge, raw, idle and udp listeners dns' });
    const idle = explainRequest(gw.gateway.runtime, q('idle'), 'reject', listenersOf);
    expect(idle).toMatchObject({ route: null, note: 'no tcpRoute names listener "idle": its connections are closed' });
  });

  /** What /status must say of the routes() config while one connection is open on `plain`. */
  function expectL4Status(status: Record<string, unknown>, gw: TestGateway, echo: TcpBackend): void {
    expect(status.listeners).toMatchObject({ tcp: gw.gateway.addresses.tcp, udp: gw.gateway.addresses.udp });
    expect(status.tcpRoutes).toEqual([
      { name: 'db', listener: 'edge', sni: ['db.example.com'], alpn: ['postgresql'], clientIp: [], priority: 0, tls: 'passthrough', pools: ['pg'] },
      { name: 'wild', listener: 'edge', sni: ['*.example.com'], alpn: [], clientIp: [], priority: 0, tls: 'passthrough', pools: ['pg'] },
      { name: 'office', listener: 'edge', sni: ['db.example.com'], alpn: [], clientIp: ['192.168.0.0/16'], priority: 0, tls: 'passthrough', pools: ['pg'] },
      { name: 'plain', listener: 'raw', sni: [], alpn: [], clientIp: [], priority: 0, tls: 'none', pools: ['echo'] },
    ]);
    expect(status.udpRoutes).toEqual([{ name: 'resolver', listener: 'dns', clientIp: [], priority: 0, pools: ['dns'] }]);
    const pools = status.pools as { name: string; kind: string; targets: { url: string; inFlight: number; weight: number }[] }[];
    expect(pools.map((p) => [p.name, p.kind])).toEqual([['echo', 'tcp'], ['pg', 'tcp'], ['dns', 'udp']]);
    expect(pools.find((p) => p.name === 'echo')!.targets).toEqual([expect.objectContaining({ url: echo.url, inFlight: 1, healthy: true })]);
    expect(pools.find((p) => p.name === 'pg')!.targets.map((t) => [t.url, t.weight])).toEqual([['tcp://127.0.0.1:9', 1], ['tcp://127.0.0.2:1', 2]]);
    expect(pools.find((p) => p.name === 'dns')!.targets.map((t) => t.url)).toEqual(['udp://127.0.0.1:5353']);
  }

  test('gatewayStatus, given the L4 listeners, lists the tcpRoutes, the udpRoutes and the L4 pools with their targets', async () => {
    const echo = await tcpBackend();
    cleanup.push(() => echo.close());
    const gw = await startGateway(routes(echo, 'tcp://127.0.0.1:9'), listeners);
    cleanup.push(() => gw.close());
    const c = await client(tcpPort(gw, 'raw'));
    await c.stream(1000);
    const g = gw.gateway;
    const status = gatewayStatus({ ready: true, listeners: g.addresses, runtime: g.runtime, routesDir: gw.routesDir, lastReload: undefined, pools: g.pools.values(), checkOf: () => undefined, certs: g.certificates });
    expectL4Status(JSON.parse(JSON.stringify(status)) as Record<string, unknown>, gw, echo);
    c.socket.destroy();
  });

  // Regression: Gateway.status() passed the HTTP listeners' addresses, so /status lacked the L4 ones.
  test('/status lists the tcpRoutes, the udpRoutes and the L4 pools with their targets', async () => {
    const echo = await tcpBackend();
    cleanup.push(() => echo.close());
    const gw = await startGateway(routes(echo, 'tcp://127.0.0.1:9'), listeners);
    cleanup.push(() => gw.close());
    const c = await client(tcpPort(gw, 'raw'));
    await c.stream(1000);
    expectL4Status(JSON.parse((await send(`${gw.admin}/status`)).body) as Record<string, unknown>, gw, echo);
    c.socket.destroy();
  });
});

/** A port that was free a moment ago (bound on port 0, then released). */
async function freePort(kind: 'tcp' | 'udp'): Promise<number> {
  if (kind === 'tcp') {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    return port;
  }
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Sends one datagram from a fresh socket and resolves with the reply (retrying on a busy machine). */
async function udpAsk(to: string, msg: string): Promise<{ reply: string; from: string }> {
  const [host, port] = [to.slice(0, to.lastIndexOf(':')), Number(to.slice(to.lastIndexOf(':') + 1))];
  const s = createSocket('udp4');
  try {
    for (let attempt = 0; ; attempt++) {
      const got = new Promise<{ reply: string; from: string } | undefined>((resolve) => {
        const t = setTimeout(() => resolve(undefined), attempt < 4 ? 1000 : 5000);
        s.once('message', (m, rinfo) => {
          clearTimeout(t);
          resolve({ reply: m.toString(), from: `${rinfo.address}:${rinfo.port}` });
        });
      });
      s.send(msg, port, host);
      const r = await got;
      if (r !== undefined) return r;
      if (attempt >= 4) throw new Error(`no UDP reply from ${to}`);
    }
  } finally {
    s.close();
  }
}

describe('waygate --workers 2 with L4 listeners', () => {
  test('serves TCP and UDP from every worker; the listening line names the tcp and udp addresses', async () => {
    const echo = await tcpBackend();
    const udp = createSocket('udp4');
    udp.on('message', (m, r) => udp.send(`u:${m}`, r.port, r.address));
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    const cwd = await mkdtemp(join(tmpdir(), 'waygate-l4-workers-'));
    const [tcpAt, udpAt] = [await freePort('tcp'), await freePort('udp')];
    await writeFile(join(cwd, 'waygate.yaml'), `listeners:
  http: { address: "127.0.0.1:0" }
  https: { address: "off" }
  tcp:
    edge: { address: "127.0.0.1:${tcpAt}" }
  udp:
    dns: { address: "127.0.0.1:${udpAt}", sessionIdle: 1m }
admin: { address: "127.0.0.1:0" }
timeouts: { shutdown: 2s }
`);
    await mkdir(join(cwd, 'routes'));
    await writeFile(join(cwd, 'routes', 'l4.yaml'), `pools:
  echo: { targets: ["${echo.url}"] }
  dns: { targets: ["udp://127.0.0.1:${udp.address().port}"] }
tcpRoutes:
  - { name: echo, listener: edge, pool: echo }
udpRoutes:
  - { name: dns, listener: dns, pool: dns }
`);
    const cli = await startCli(['--workers', '2'], {}, cwd);
    try {
      const listening = cli.lines.find((l) => l.msg === 'listening')!;
      expect(listening).toMatchObject({ tcp: { edge: `127.0.0.1:${tcpAt}` }, udp: { dns: `127.0.0.1:${udpAt}` }, workers: 2 });
      // Several connections and client sockets, so both workers take some.
      for (let i = 0; i < 6; i++) {
        const c = await client(tcpAt);
        await c.stream(5000);
        expect(sha(Buffer.concat(c.got))).toBe(sha(Buffer.concat(c.sent)));
        c.socket.end();
        await c.closed;
      }
      for (let i = 0; i < 6; i++) expect(await udpAsk(`127.0.0.1:${udpAt}`, `q${i}`)).toEqual({ reply: `u:q${i}`, from: `127.0.0.1:${udpAt}` });
      await cli.waitForLine(() => cli.lines.filter((l) => l.msg === 'connection' && l.route === 'echo').length >= 6);
      const pids = new Set(cli.lines.filter((l) => l.msg === 'connection').map((l) => l.pid));
      expect(pids.size).toBeGreaterThanOrEqual(1);
      // The primary's /metrics sums the workers' L4 counters.
      const admin = `http://${cli.addresses.admin}`;
      expect(await metric(admin, 'waygate_tcp_connections_total', { listener: 'edge', route: 'echo', pool: 'echo', termination: 'client_close' })).toBe(6);
      expect(await metric(admin, 'waygate_tcp_bytes_total', { route: 'echo', pool: 'echo', direction: 'in' })).toBe(30_000);
      const sessions = await samples(admin, 'waygate_udp_sessions', { listener: 'dns', route: 'dns' });
      expect(sessions.reduce((n, s) => n + s.value, 0)).toBe(6);
    } finally {
      expect(await cli.stop('SIGTERM')).toBe(0);
      await echo.close();
      udp.close();
      await rm(cwd, { recursive: true, force: true });
    }
    // Drained: every UDP session ended with a line of its own.
    expect(cli.lines.filter((l) => l.msg === 'connection' && l.transport === 'udp')).toHaveLength(6);
  });

  test('port 0 for a TCP and a UDP listener: every worker serves the one port the listening line names', async () => {
    const echo = await tcpBackend();
    const udp = createSocket('udp4');
    udp.on('message', (m, r) => udp.send(`u:${m}`, r.port, r.address));
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    const cwd = await mkdtemp(join(tmpdir(), 'waygate-l4-workers-'));
    await writeFile(join(cwd, 'waygate.yaml'), `listeners:
  http: { address: "off" }
  https: { address: "off" }
  tcp: { edge: { address: "127.0.0.1:0" } }
  udp: { dns: { address: "127.0.0.1:0", sessionIdle: 1m } }
admin: { address: "off" }
timeouts: { shutdown: 1s }
`);
    await mkdir(join(cwd, 'routes'));
    await writeFile(join(cwd, 'routes', 'l4.yaml'), `pools:
  echo: { targets: ["${echo.url}"] }
  dns: { targets: ["udp://127.0.0.1:${udp.address().port}"] }
tcpRoutes: [ { name: echo, listener: edge, pool: echo } ]
udpRoutes: [ { name: dns, listener: dns, pool: dns } ]
`);
    const cli = await startCli(['--workers', '2'], {}, cwd);
    let stopped = false;
    try {
      const listening = cli.lines.find((l) => l.msg === 'listening') as { tcp: Record<string, string>; udp: Record<string, string> };
      const [tcpAt, udpAt] = [listening.tcp.edge, listening.udp.dns];
      expect(tcpAt).toMatch(/^127\.0\.0\.1:[1-9]\d*$/);
      expect(udpAt).toMatch(/^127\.0\.0\.1:[1-9]\d*$/);
      // Both workers bound the same ports.
      const workers = cli.lines.filter((l) => l.msg === 'worker listening');
      expect(workers).toHaveLength(2);
      for (const w of workers) expect([w.tcp, w.udp]).toEqual([{ edge: tcpAt }, { dns: udpAt }]);
      const c = await client(Number(tcpAt.split(':')[1]));
      await c.stream(5000);
      c.socket.end();
      await c.closed;
      // Sixteen client addresses: the kernel spreads them over both workers' sockets.
      for (let i = 0; i < 16; i++) expect(await udpAsk(udpAt, `q${i}`)).toEqual({ reply: `u:q${i}`, from: udpAt });
      expect(await cli.stop('SIGTERM')).toBe(0);
      stopped = true;
      const udpLines = cli.lines.filter((l) => l.msg === 'connection' && l.transport === 'udp');
      expect(udpLines).toHaveLength(16);
      expect(new Set(udpLines.map((l) => l.pid)).size).toBe(2);
    } finally {
      if (!stopped) await cli.stop('SIGKILL');
      await echo.close();
      udp.close();
      await rm(cwd, { recursive: true, force: true });
    }
  });
});

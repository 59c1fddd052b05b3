// UDP balancing through real sockets (SPEC §7): sessions per client address bound to one target,
// replies from the listener's address, sessionIdle, the bounded session table, a refusing target,
// the waygate_udp_sessions gauge and a send-expect health check over UDP.
import { createSocket } from 'node:dgram';
import type { RemoteInfo, Socket } from 'node:dgram';
import { afterEach, describe, expect, test } from 'vitest';
import type { StaticConfig } from '../../src/config/schema.ts';
import { send, startGateway } from '../helpers.ts';
import type { TestGateway } from '../helpers.ts';

type Line = Record<string, unknown>;

/** A UDP backend on 127.0.0.1: answers "TAG:<datagram>" ("pong" to "ping"), or nothing when silent. */
interface UdpBackend {
  url: string;
  port: number;
  /** Datagrams received, with the source port they came from. */
  received: { msg: string; port: number }[];
  close(): Promise<void>;
}

async function udpBackend(tag: string, opts: { silent?: boolean } = {}): Promise<UdpBackend> {
  const s = createSocket('udp4');
  const received: UdpBackend['received'] = [];
  s.on('message', (msg, rinfo) => {
    received.push({ msg: msg.toString(), port: rinfo.port });
    if (opts.silent) return;
    s.send(msg.toString() === 'ping' ? 'pong' : `${tag}:${msg}`, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const port = s.address().port;
  return { url: `udp://127.0.0.1:${port}`, port, received, close: () => new Promise<void>((r) => s.close(() => r())) };
}

/** A UDP port nothing listens on (bound, then released): a datagram to it gets ICMP port unreachable. */
async function closedUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A client socket with a queue of the datagrams it received. */
interface UdpClient {
  socket: Socket;
  port: number;
  send(msg: string): Promise<void>;
  /** The next reply (already received or to come); rejects after `ms`. */
  next(ms?: number): Promise<{ msg: string; rinfo: RemoteInfo }>;
  /** Every reply received so far. */
  replies: { msg: string; rinfo: RemoteInfo }[];
  close(): Promise<void>;
}

async function udpClient(to: string): Promise<UdpClient> {
  const [host, port] = [to.slice(0, to.lastIndexOf(':')), Number(to.slice(to.lastIndexOf(':') + 1))];
  const socket = createSocket('udp4');
  const replies: UdpClient['replies'] = [];
  let read = 0;
  const waiters: (() => void)[] = [];
  socket.on('message', (m, rinfo) => {
    replies.push({ msg: m.toString(), rinfo });
    for (const w of waiters.splice(0)) w();
  });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  return {
    socket,
    port: socket.address().port,
    replies,
    send: (msg) => new Promise<void>((resolve, reject) => socket.send(msg, port, host, (err) => (err ? reject(err) : resolve()))),
    async next(ms = 5000) {
      const deadline = Date.now() + ms;
      while (replies.length <= read) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no UDP reply within ${ms} ms`);
        await new Promise<void>((r) => {
          const t = setTimeout(r, left);
          waiters.push(() => {
            clearTimeout(t);
            r();
          });
        });
      }
      return replies[read++];
    },
    close: () => new Promise<void>((r) => socket.close(() => r())),
  };
}

/** Sends `msg` and waits for its reply; resends a few times in case a datagram was dropped on a busy machine. */
async function ask(c: UdpClient, msg: string): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    await c.send(msg);
    try {
      for (;;) {
        const r = await c.next(attempt < 3 ? 1500 : 5000);
        if (r.msg.endsWith(`:${msg}`) || r.msg === 'pong') return r.msg;
      }
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
}

const udpListener = (sessionIdle = 30_000, maxSessions = 10_000) => (c: StaticConfig): void => {
  c.listeners.udp = { dns: { address: { host: '127.0.0.1', port: 0 }, sessionIdle, maxSessions } };
};

/** The value of one sample of /metrics, or undefined when the series is absent. */
async function metric(gw: TestGateway, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const text = (await send(`${gw.admin}/metrics`)).body;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    const m = /^(\S+?)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

const connectionLine = (pred: (l: Line) => boolean) => (l: Line): boolean => l.msg === 'connection' && l.transport === 'udp' && pred(l);

describe('UDP sessions', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function setup(targets: string[], sessionIdle?: number, maxSessions?: number, pool = ''): Promise<TestGateway> {
    const gw = await startGateway(
      `pools:\n  dns:\n    targets: [${targets.map((t) => JSON.stringify(t)).join(', ')}]\n${pool}udpRoutes:\n  - { name: dns, listener: dns, pool: dns }\n`,
      udpListener(sessionIdle, maxSessions),
    );
    cleanup.push(() => gw.close());
    return gw;
  }
  async function client(gw: TestGateway): Promise<UdpClient> {
    const c = await udpClient(gw.gateway.addresses.udp.dns);
    cleanup.push(() => c.close());
    return c;
  }
  async function backend(tag: string, opts?: { silent?: boolean }): Promise<UdpBackend> {
    const b = await udpBackend(tag, opts);
    cleanup.push(() => b.close());
    return b;
  }

  test('a client socket is bound to one target; the next client goes to the other (round-robin); replies come from the listener address', async () => {
    const a = await backend('a');
    const b = await backend('b');
    const gw = await setup([a.url, b.url]);
    const listen = gw.gateway.addresses.udp.dns;
    expect(listen).toMatch(/^127\.0\.0\.1:\d+$/);
    const listenPort = Number(listen.split(':')[1]);

    const c1 = await client(gw);
    const first = await ask(c1, 'q1');
    const tag1 = first.split(':')[0];
    for (let i = 2; i <= 6; i++) expect(await ask(c1, `q${i}`)).toBe(`${tag1}:q${i}`);
    // The reply came from the address the client sent to, not from waygate's upstream socket.
    for (const r of c1.replies) expect({ address: r.rinfo.address, port: r.rinfo.port }).toEqual({ address: '127.0.0.1', port: listenPort });

    const c2 = await client(gw);
    const tag2 = (await ask(c2, 'x1')).split(':')[0];
    expect(tag2).not.toBe(tag1);
    expect(await ask(c2, 'x2')).toBe(`${tag2}:x2`);
    expect(await ask(c1, 'q7')).toBe(`${tag1}:q7`);

    // Each session used one upstream socket: one source port per client at each backend.
    const ports = (x: UdpBackend): Set<number> => new Set(x.received.map((d) => d.port));
    expect(ports(a).size).toBe(1);
    expect(ports(b).size).toBe(1);
    expect(gw.gateway.addresses.udp.dns).toBe(listen);
  });

  test('a session idle for sessionIdle is dropped (idle_timeout, logged with its bytes); a later datagram starts a new one', async () => {
    const a = await backend('a');
    const gw = await setup([a.url], 300);
    const c = await client(gw);
    expect(await ask(c, 'hello')).toBe('a:hello');
    const line = await gw.waitForLog(connectionLine((l) => l.termination === 'idle_timeout'));
    expect(line).toMatchObject({ listener: 'dns', route: 'dns', pool: 'dns', target: a.url, clientIp: '127.0.0.1', clientPort: c.port, termination: 'idle_timeout' });
    expect(line.durationMs as number).toBeGreaterThanOrEqual(250);
    // The fields of a TCP connection's line (SPEC §7), plus the transport.
    const { level: _level, time: _time, msg: _msg, ...fields } = line;
    expect(Object.keys(fields).sort()).toEqual(['connId', 'listener', 'clientIp', 'clientPort', 'sni', 'alpn', 'route', 'pool', 'target', 'connectMs', 'durationMs', 'bytesIn', 'bytesOut', 'termination', 'transport'].sort());
    expect(line).toMatchObject({ bytesIn: 5, bytesOut: 7, sni: null, alpn: null });
    expect(await metric(gw, 'waygate_udp_sessions', { listener: 'dns', route: 'dns' })).toBe(0);

    const from = gw.logs.length;
    expect(await ask(c, 'again')).toBe('a:again');
    // A new session: a new upstream socket (source port) at the backend, and a second log line.
    expect(new Set(a.received.map((d) => d.port)).size).toBe(2);
    const second = await gw.waitForLog(connectionLine((l) => l.termination === 'idle_timeout'), from);
    expect(second.connId).not.toBe(line.connId);
  });

  test('past maxSessions a new client gets nothing while the existing ones are served', async () => {
    const a = await backend('a');
    const gw = await setup([a.url], 30_000, 2);
    const c1 = await client(gw);
    const c2 = await client(gw);
    expect(await ask(c1, 'one')).toBe('a:one');
    expect(await ask(c2, 'two')).toBe('a:two');
    const c3 = await client(gw);
    await c3.send('three');
    await gw.waitForLog((l) => l.msg === 'UDP session table full; datagrams from new clients are dropped');
    // The sessions in the table keep being served, and the new client got nothing.
    expect(await ask(c1, 'one-b')).toBe('a:one-b');
    expect(await ask(c2, 'two-b')).toBe('a:two-b');
    await c3.send('three-b');
    expect(await ask(c1, 'one-c')).toBe('a:one-c');
    expect(c3.replies).toEqual([]);
    expect(a.received.map((d) => d.msg)).not.toContain('three');
    expect(a.received.map((d) => d.msg)).not.toContain('three-b');
    expect(await metric(gw, 'waygate_udp_sessions', { listener: 'dns', route: 'dns' })).toBe(2);
  });

  test('a target that refuses (ICMP port unreachable) ends the session; the next datagram starts a new one', async () => {
    const port = await closedUdpPort();
    const gw = await setup([`udp://127.0.0.1:${port}`]);
    const c = await client(gw);
    await c.send('anyone?');
    const line = await gw.waitForLog(connectionLine(() => true));
    expect(line).toMatchObject({ route: 'dns', pool: 'dns', target: `udp://127.0.0.1:${port}`, bytesOut: 0, termination: 'connect_error' });
    expect(await metric(gw, 'waygate_udp_sessions', { listener: 'dns', route: 'dns' })).toBe(0);
    expect(await metric(gw, 'waygate_upstream_requests_total', { pool: 'dns', target: `udp://127.0.0.1:${port}`, outcome: 'connect_error' })).toBeGreaterThanOrEqual(1);
    expect(c.replies).toEqual([]);
  });

  test('the waygate_udp_sessions gauge counts client addresses per listener and route', async () => {
    const a = await backend('a');
    // Long enough that no session expires before the scrapes below, even on a busy machine.
    const gw = await setup([a.url], 2000);
    const clients = [await client(gw), await client(gw), await client(gw)];
    for (const [i, c] of clients.entries()) await ask(c, `m${i}`);
    expect(await metric(gw, 'waygate_udp_sessions', { listener: 'dns', route: 'dns' })).toBe(3);
    // Two more datagrams from one client: still one session for it.
    await ask(clients[0], 'm0b');
    expect(await metric(gw, 'waygate_udp_sessions', { listener: 'dns', route: 'dns' })).toBe(3);
    let ended = 0;
    while (ended < 3) {
      await gw.waitForLog(() => gw.logs.filter(connectionLine((l) => l.termination === 'idle_timeout')).length > ended);
      ended = gw.logs.filter(connectionLine((l) => l.termination === 'idle_timeout')).length;
    }
    expect(await metric(gw, 'waygate_udp_sessions', { listener: 'dns', route: 'dns' })).toBe(0);
  });

  test('a send-expect health check over UDP marks a silent target unhealthy; new sessions go to the answering one', async () => {
    const good = await backend('good');
    const silent = await backend('silent', { silent: true });
    const gw = await setup([good.url, silent.url], 30_000, 10_000, '    healthCheck: { type: send-expect, send: ping, expect: pong, interval: 200ms, timeout: 1s, unhealthyAfter: 1, healthyAfter: 1 }\n');
    const down = await gw.waitForLog((l) => l.msg === 'target failed health checks' && l.target === silent.url);
    expect(down.reason).toMatch(/udp timeout/);
    expect(silent.received.some((d) => d.msg === 'ping')).toBe(true);
    expect(await metric(gw, 'waygate_target_healthy', { pool: 'dns', target: silent.url })).toBe(0);
    expect(await metric(gw, 'waygate_target_healthy', { pool: 'dns', target: good.url })).toBe(1);
    // The answering target was never marked down.
    expect(gw.logs.some((l) => l.msg === 'target failed health checks' && l.target === good.url)).toBe(false);
    for (let i = 0; i < 4; i++) {
      const c = await client(gw);
      expect(await ask(c, `s${i}`)).toBe(`good:s${i}`);
    }
    expect(silent.received.filter((d) => d.msg !== 'ping')).toEqual([]);
    const status = JSON.parse((await send(`${gw.admin}/status`)).body) as { pools: { name: string; targets: { url: string; healthy: boolean }[] }[] };
    expect(status.pools.find((p) => p.name === 'dns')!.targets).toEqual(expect.arrayContaining([
      expect.objectContaining({ url: good.url, healthy: true }),
      expect.objectContaining({ url: silent.url, healthy: false }),
    ]));
  });
});

// probe() against real servers on 127.0.0.1 port 0: statuses, ranges, timeouts, refused and reset
// connections, TLS, and that a settled probe leaves no socket or timer behind.
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createHttpsServer, Server as HttpsServer } from 'node:https';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { generate } from 'selfsigned';
import { afterEach, describe, expect, test } from 'vitest';
import { formatStatusRanges, probe, PROBE_USER_AGENT, statusInRanges } from '../../src/health/probe.ts';
import type { ProbeRequest, StatusRange } from '../../src/health/probe.ts';
import { closedPort } from '../refusing-port.ts';
import { trackTimers } from './track-timers.ts';

const DEFAULT_RANGES: StatusRange[] = [[200, 399]];

/** A real server that counts connections and records each request with the socket it came on. */
interface TestServer {
  origin: string;
  server: Server;
  requests: { url: string; headers: IncomingHttpHeaders; socket: Socket }[];
  /** Connections accepted so far. */
  accepted: number;
  /** Connections still open on the server side. */
  open: Set<Socket>;
  close(): Promise<void>;
}

const servers: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void, server: Server = createServer()): Promise<TestServer> {
  const t: TestServer = {
    origin: '',
    server,
    requests: [],
    accepted: 0,
    open: new Set(),
    close: () => new Promise<void>((r) => {
      for (const s of t.open) s.destroy();
      server.close(() => r());
    }),
  };
  server.on('connection', (s: Socket) => {
    t.accepted++;
    t.open.add(s);
    s.on('close', () => t.open.delete(s));
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    t.requests.push({ url: req.url!, headers: req.headers, socket: req.socket });
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const scheme = server instanceof HttpsServer ? 'https' : 'http';
  t.origin = `${scheme}://127.0.0.1:${(server.address() as AddressInfo).port}`;
  servers.push(t);
  return t;
}

/** Answers with the status named by the path ("/status/204"), 200 otherwise. */
function statusFromPath(req: IncomingMessage, res: ServerResponse): void {
  const m = /^\/status\/(\d{3})$/.exec(req.url!);
  res.writeHead(m ? Number(m[1]) : 200, { 'content-type': 'text/plain' });
  res.end('body');
}


/** Resolves when `cond()` holds, polling; rejects after `ms` naming `what`. */
async function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Open sockets of this process (client and server side). */
function openSockets(): number {
  return process.getActiveResourcesInfo().filter((k) => k === 'TCPSocketWrap' || k === 'TLSWrap').length;
}


const cfg = (over: Partial<ProbeRequest> = {}): ProbeRequest => ({ path: '/health', timeout: 2000, expectStatus: DEFAULT_RANGES, ...over });

describe('probe: statuses', () => {
  test('a 200 is healthy, sent as one GET with the health-check user-agent and connection: close', async () => {
    const up = await serve(statusFromPath);
    const r = await probe(up.origin, cfg());
    expect(r).toEqual({ ok: true, reason: 'status 200', status: 200 });
    expect(up.requests).toHaveLength(1);
    expect(up.requests[0]!.url).toBe('/health');
    expect(up.requests[0]!.headers['user-agent']).toBe(PROBE_USER_AGENT);
    expect(up.requests[0]!.headers['user-agent']).toBe('waygate-health-check');
    expect(up.requests[0]!.headers.connection).toBe('close');
  });

  test('a 503 fails the default 200-399 with a reason naming status and range', async () => {
    const up = await serve(statusFromPath);
    const r = await probe(up.origin, cfg({ path: '/status/503' }));
    expect(r).toEqual({ ok: false, reason: 'status 503 not in 200-399', status: 503 });
  });

  test('a path with a query string is sent as is', async () => {
    const up = await serve(statusFromPath);
    await probe(up.origin, cfg({ path: '/health?full=1' }));
    expect(up.requests[0]!.url).toBe('/health?full=1');
  });

  // expectStatus "200,204,300-399"
  const custom: StatusRange[] = [[200, 200], [204, 204], [300, 399]];
  test.each([
    [200, true],
    [204, true],
    [300, true],
    [302, true],
    [399, true],
    [201, false],
    [404, false],
    [500, false],
  ])('with expectStatus 200,204,300-399 a %i is ok=%s', async (status, ok) => {
    const up = await serve(statusFromPath);
    const r = await probe(up.origin, cfg({ path: `/status/${status}`, expectStatus: custom }));
    expect(r.ok).toBe(ok);
    expect(r.status).toBe(status);
    expect(r.reason).toBe(ok ? `status ${status}` : `status ${status} not in 200,204,300-399`);
  });

  test('formatStatusRanges and statusInRanges agree with the config syntax', () => {
    expect(formatStatusRanges(DEFAULT_RANGES)).toBe('200-399');
    expect(formatStatusRanges(custom)).toBe('200,204,300-399');
    expect(formatStatusRanges([])).toBe('none');
    expect(statusInRanges(399, DEFAULT_RANGES)).toBe(true);
    expect(statusInRanges(400, DEFAULT_RANGES)).toBe(false);
    expect(statusInRanges(200, [])).toBe(false);
  });
});

describe('probe: failures', () => {
  test('a server that never answers fails with "timeout after Nms" and its connection is closed', async () => {
    const up = await serve(() => {});
    const started = Date.now();
    const r = await probe(up.origin, cfg({ timeout: 150 }));
    expect(r).toEqual({ ok: false, reason: 'timeout after 150ms' });
    // Loose: the deadline is not cut short (timers may fire a millisecond early).
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    await waitFor(() => up.open.size === 0, 'the server to see the probe connection closed');
  });

  test('the timeout covers a TLS handshake that never completes', async () => {
    const open = new Set<Socket>();
    const tcp = createNetServer((s) => {
      // Reading is what lets the server notice the client's close.
      s.resume();
      open.add(s);
      s.on('close', () => open.delete(s));
    });
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    servers.push({ close: () => new Promise<void>((r) => { for (const s of open) s.destroy(); tcp.close(() => r()); }) });
    const r = await probe(`https://127.0.0.1:${(tcp.address() as AddressInfo).port}`, cfg({ timeout: 150 }));
    expect(r).toEqual({ ok: false, reason: 'timeout after 150ms' });
    await waitFor(() => open.size === 0, 'the half-open TLS connection to close');
  });

  test('a closed port fails with "connect ECONNREFUSED"', async () => {
    const r = await probe(`http://127.0.0.1:${await closedPort()}`, cfg());
    expect(r).toEqual({ ok: false, reason: 'connect ECONNREFUSED' });
  });

  test('a connection reset instead of a response fails with "connection reset"', async () => {
    const up = await serve((req) => req.socket.resetAndDestroy());
    expect(await probe(up.origin, cfg())).toEqual({ ok: false, reason: 'connection reset' });
  });

  test('a connection closed without a response says so', async () => {
    const up = await serve((req) => req.socket.end());
    expect(await probe(up.origin, cfg())).toEqual({ ok: false, reason: 'connection closed before response' });
  });

  test('a response that is not HTTP fails as a bad response', async () => {
    const tcp = createNetServer((s) => s.once('data', () => s.end('SSH-2.0-OpenSSH_9.6\r\n\r\n')));
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    servers.push({ close: () => new Promise<void>((r) => tcp.close(() => r())) });
    const r = await probe(`http://127.0.0.1:${(tcp.address() as AddressInfo).port}`, cfg());
    expect(r.ok).toBe(false);
    expect(r.reason).toMatch(/^bad response HPE_/);
  });

  test('an aborted probe settles with "aborted" and closes its connection', async () => {
    const up = await serve(() => {});
    const ac = new AbortController();
    const pending = probe(up.origin, cfg({ timeout: 20_000 }), undefined, ac.signal);
    await waitFor(() => up.requests.length === 1, 'the probe to arrive');
    ac.abort();
    expect(await pending).toEqual({ ok: false, reason: 'aborted' });
    await waitFor(() => up.open.size === 0, 'the aborted connection to close');
  });
});

describe('probe: connections and resources', () => {
  test('every probe opens a new connection, even to a keep-alive server', async () => {
    const up = await serve(statusFromPath);
    up.server.keepAliveTimeout = 60_000;
    for (let i = 0; i < 3; i++) expect((await probe(up.origin, cfg())).ok).toBe(true);
    expect(up.accepted).toBe(3);
    expect(new Set(up.requests.map((r) => r.socket)).size).toBe(3);
    await waitFor(() => up.open.size === 0, 'all probe connections to close');
  });

  test('an endless body is cut after a bounded read: the probe settles with the status, long before its timeout', async () => {
    const up = await serve((_req, res) => {
      res.writeHead(200);
      const chunk = Buffer.alloc(16 * 1024, 'x');
      const pump = (): void => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
    });
    const started = Date.now();
    const r = await probe(up.origin, cfg({ timeout: 20_000 }));
    expect(r).toEqual({ ok: true, reason: 'status 200', status: 200 });
    expect(Date.now() - started).toBeLessThan(20_000);
    await waitFor(() => up.open.size === 0, 'the streaming connection to close');
  });

  test('settled probes leave no socket or timer behind', async () => {
    const ok = await serve(statusFromPath);
    const hang = await serve(() => {});
    const refused = `http://127.0.0.1:${await closedPort()}`;
    const before = openSockets();
    const timers = trackTimers();
    const results = await Promise.all([
      probe(ok.origin, cfg()),
      probe(ok.origin, cfg({ path: '/status/500' })),
      probe(hang.origin, cfg({ timeout: 100 })),
      probe(refused, cfg()),
    ]).finally(() => timers.restore());
    expect(results.map((r) => r.ok)).toEqual([true, false, false, false]);
    // Each probe armed its deadline; none is left armed once they have settled.
    expect(timers.created()).toBeGreaterThanOrEqual(4);
    expect(timers.live.size).toBe(0);
    // Client sockets are closed when probe() settles; the server side notices a moment later.
    await waitFor(() => ok.open.size === 0 && hang.open.size === 0, 'server-side sockets to close');
    expect(openSockets()).toBe(before);
  });
});

describe('probe: https', () => {
  const certs = generate([{ name: 'commonName', value: 'health.internal' }], { keyType: 'ec', algorithm: 'sha256' });

  async function tlsServer(): Promise<{ origin: string; cert: string }> {
    const pems = await certs;
    const up = await serve(statusFromPath, createHttpsServer({ key: pems.private, cert: pems.cert }));
    return { origin: up.origin, cert: pems.cert };
  }

  test('an untrusted certificate fails the probe in the TLS phase', async () => {
    const { origin } = await tlsServer();
    const r = await probe(origin, cfg());
    expect(r.ok).toBe(false);
    expect(r.reason).toMatch(/^tls [A-Z_]+$/);
  });

  test('with the CA and the server name the probe succeeds', async () => {
    const { origin, cert } = await tlsServer();
    expect(await probe(origin, cfg(), { ca: cert, servername: 'health.internal' })).toEqual({ ok: true, reason: 'status 200', status: 200 });
  });

  test('the certificate is checked against the server name: right CA, wrong name fails', async () => {
    const { origin, cert } = await tlsServer();
    const r = await probe(origin, cfg(), { ca: cert, servername: 'other.internal' });
    expect(r).toEqual({ ok: false, reason: 'tls ERR_TLS_CERT_ALTNAME_INVALID' });
  });

  test('rejectUnauthorized: false accepts any certificate', async () => {
    const { origin } = await tlsServer();
    expect((await probe(origin, cfg(), { rejectUnauthorized: false })).ok).toBe(true);
  });
});

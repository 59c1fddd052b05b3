// HTTP/1.1 pipelining (SPEC §4, issue 12 defect 9; RFC 9112 §9.3.2): requests pipelined on one
// client connection reach the upstream one at a time, in the order sent, and their responses come
// back in that order. Raw `net` sockets write the requests back to back in one write (no client
// library pipelines, and none would keep them in one segment); the upstream records when each
// request arrives and when its response finishes, so "one at a time" is checked, not only order.
// HTTP/2 streams are independent: a slow stream does not hold up another one.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as h2connect } from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startGateway, startUpstream } from '../helpers.ts';
import type { TestGateway, Upstream } from '../helpers.ts';
import { makeLeaf } from '../tls-helpers.ts';

/** What the upstream saw, in order: "start /x" when a request arrived, "end /x" when its response finished. */
let events: string[] = [];
/** Requests the upstream holds unanswered until the test releases them, by path. */
const held = new Map<string, () => void>();
/** Resolvers waiting for an upstream event. */
let eventWaiters: (() => void)[] = [];
let up: Upstream;
let gw: TestGateway;
let certs: string;
let httpsPort = 0;

function record(e: string): void {
  events.push(e);
  for (const w of eventWaiters.splice(0)) w();
}

/** Resolves once the upstream recorded `e`. */
async function upstreamSaw(e: string): Promise<void> {
  while (!events.includes(e)) await new Promise<void>((r) => eventWaiters.push(r));
}

/**
 * The upstream: reads the whole body, then answers "<path> <body length>". Paths under /hold/
 * wait until the test calls `held.get(path)()`; the others answer after a few event-loop turns,
 * long enough that a request sent alongside would arrive before the response finishes.
 */
function upstreamHandler(req: IncomingMessage, res: ServerResponse): void {
  const path = req.url!;
  record(`start ${path}`);
  let bytes = 0;
  req.on('data', (c: Buffer) => (bytes += c.length));
  res.on('finish', () => record(`end ${path}`));
  // The gateway gave up on the request (its connection to the upstream closed unanswered).
  res.on('close', () => {
    if (!res.writableFinished) record(`aborted ${path}`);
  });
  req.on('end', () => {
    const answer = (): void => {
      const body = `${path} ${bytes}`;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (path.startsWith('/hold/')) held.set(path, answer);
    else setTimeout(answer, 15);
  });
}

beforeAll(async () => {
  up = await startUpstream(upstreamHandler);
  certs = await mkdtemp(join(tmpdir(), 'waygate-certs-'));
  const local = await makeLeaf(['localhost', '127.0.0.1']);
  await writeFile(join(certs, 'default.crt'), local.cert);
  await writeFile(join(certs, 'default.key'), local.key);
  gw = await startGateway(`
pools:
  p: { targets: ["${up.url}"] }
routes:
  - { name: local, match: { path: /local }, respond: { status: 200, body: local } }
  - { name: api, match: { path: /api/* }, pool: p }
  - { name: hold, match: { path: /hold/* }, pool: p }
`, (c) => {
    c.certsDir = certs;
    c.listeners.https.address = { host: '127.0.0.1', port: 0 };
  });
  httpsPort = Number(gw.gateway.addresses.https!.split(':').pop());
});
afterAll(async () => {
  for (const release of held.values()) release();
  await gw.close();
  await up.close();
  await rm(certs, { recursive: true, force: true });
});

/** In-flight requests of the one target, as /status reports them. */
function inFlight(): number {
  const pools = gw.gateway.status().pools as { targets: { inFlight: number }[] }[];
  return pools[0].targets[0].inFlight;
}

/** A raw client connection that collects everything it receives. */
interface RawClient {
  sock: Socket;
  /** Everything received so far, latin1. */
  text(): string;
  /** Resolves once `n` complete responses arrived (each with a Content-Length body). */
  responses(n: number): Promise<{ status: string; body: string }[]>;
  /** Resolves when the connection closed. */
  closed: Promise<void>;
}

/** `tls`: over the HTTPS listener with ALPN http/1.1 (its HTTP/1.1 fallback), else plain HTTP. */
function rawClient(tls = false): RawClient {
  const sock: Socket = tls
    ? tlsConnect({ port: httpsPort, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] })
    : connect(gw.port, '127.0.0.1');
  let buf = '';
  let waiters: (() => void)[] = [];
  sock.on('data', (c: Buffer) => {
    buf += c.toString('latin1');
    for (const w of waiters.splice(0)) w();
  });
  sock.on('error', () => {});
  const closed = new Promise<void>((r) => sock.on('close', () => {
    r();
    for (const w of waiters.splice(0)) w();
  }));
  const parse = (): { status: string; body: string }[] => {
    const out: { status: string; body: string }[] = [];
    let at = 0;
    for (;;) {
      const headEnd = buf.indexOf('\r\n\r\n', at);
      if (headEnd === -1) return out;
      const head = buf.slice(at, headEnd);
      const len = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.length < headEnd + 4 + len) return out;
      out.push({ status: head.split(' ')[1], body: buf.slice(headEnd + 4, headEnd + 4 + len) });
      at = headEnd + 4 + len;
    }
  };
  return {
    sock,
    text: () => buf,
    closed,
    async responses(n) {
      while (parse().length < n) {
        if (sock.destroyed) throw new Error(`connection closed after ${parse().length} of ${n} responses: ${JSON.stringify(buf)}`);
        await new Promise<void>((r) => waiters.push(r));
      }
      return parse();
    },
  };
}

describe('HTTP/1.1 pipelining', () => {
  test('GET /1, POST /2 with a body, GET /3 in one write reach the upstream one at a time, in order, and answer in order', async () => {
    events = [];
    const c = rawClient();
    c.sock.write(
      'GET /api/1 HTTP/1.1\r\nHost: a.test\r\n\r\n' +
      'POST /api/2 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 11\r\n\r\nhello world' +
      'GET /api/3 HTTP/1.1\r\nHost: a.test\r\n\r\n',
    );
    const rs = await c.responses(3);
    expect(rs).toEqual([
      { status: '200', body: '/api/1 0' },
      { status: '200', body: '/api/2 11' },
      { status: '200', body: '/api/3 0' },
    ]);
    // Each request starts upstream only after the response before it finished.
    expect(events).toEqual(['start /api/1', 'end /api/1', 'start /api/2', 'end /api/2', 'start /api/3', 'end /api/3']);
    c.sock.destroy();
  });

  test('a request pipelined behind a slow one waits for it, while other connections are served', async () => {
    events = [];
    const c = rawClient();
    c.sock.write('GET /hold/slow HTTP/1.1\r\nHost: a.test\r\n\r\nGET /api/next HTTP/1.1\r\nHost: a.test\r\n\r\n');
    await upstreamSaw('start /hold/slow');
    // Another connection goes through meanwhile (so the gateway did process what it had read)…
    const other = rawClient();
    other.sock.write('GET /api/other HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n');
    expect(await other.responses(1)).toEqual([{ status: '200', body: '/api/other 0' }]);
    // …but the pipelined request is still queued behind the slow one: not forwarded, not counted.
    expect(events).not.toContain('start /api/next');
    expect(inFlight()).toBe(1);
    expect(c.text()).toBe('');
    held.get('/hold/slow')!();
    held.delete('/hold/slow');
    const rs = await c.responses(2);
    expect(rs.map((r) => r.body)).toEqual(['/hold/slow 0', '/api/next 0']);
    expect(events.filter((e) => e.includes('/hold/slow') || e.includes('/api/next')))
      .toEqual(['start /hold/slow', 'end /hold/slow', 'start /api/next', 'end /api/next']);
    c.sock.destroy();
  });

  test('a connection closed with requests queued forwards none of them, and the target has nothing in flight', async () => {
    events = [];
    const linesBefore = gw.accessLogs().length;
    const c = rawClient();
    c.sock.write(
      'GET /hold/gone HTTP/1.1\r\nHost: a.test\r\n\r\n' +
      'POST /api/queued-1 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello' +
      'GET /api/queued-2 HTTP/1.1\r\nHost: a.test\r\n\r\n',
    );
    await upstreamSaw('start /hold/gone');
    expect(inFlight()).toBe(1);
    c.sock.destroy();
    // Every exchange of the connection ends (one access line each): the forwarded one aborted
    // upstream, the queued ones without ever being sent.
    const lines = (await gw.waitForAccessLogs(linesBefore + 3)).slice(linesBefore);
    expect(lines.map((l) => [l.path, l.status, l.attempts]).sort()).toEqual([
      ['/api/queued-1', 499, 0],
      ['/api/queued-2', 499, 0],
      ['/hold/gone', 499, 1],
    ]);
    await upstreamSaw('aborted /hold/gone');
    expect(inFlight()).toBe(0);
    expect(events.filter((e) => e.startsWith('start'))).toEqual(['start /hold/gone']);
    held.delete('/hold/gone');
    // The pool still serves.
    const again = rawClient();
    again.sock.write('GET /api/after HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n');
    expect(await again.responses(1)).toEqual([{ status: '200', body: '/api/after 0' }]);
  });

  test('a request pipelined behind a refused one is not forwarded: 400 only, connection closed', async () => {
    events = [];
    const c = rawClient();
    c.sock.write('GET /api/..%2Fadmin HTTP/1.1\r\nHost: a.test\r\n\r\nGET /api/smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n');
    await c.closed;
    expect([...c.text().matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1])).toEqual(['400']);
    expect(events).toEqual([]);
  });

  test('requests pipelined behind an answer waygate gives itself (404, respond) are served in order', async () => {
    events = [];
    const c = rawClient();
    c.sock.write(
      'GET /nowhere HTTP/1.1\r\nHost: a.test\r\n\r\n' +
      'GET /local HTTP/1.1\r\nHost: a.test\r\n\r\n' +
      'GET /api/last HTTP/1.1\r\nHost: a.test\r\n\r\n',
    );
    const rs = await c.responses(3);
    expect(rs).toEqual([
      { status: '404', body: 'no route' },
      { status: '200', body: 'local' },
      { status: '200', body: '/api/last 0' },
    ]);
    c.sock.destroy();
  });

  test('many pipelined requests in one write are all served in order (bounded: 50)', async () => {
    events = [];
    const n = 50;
    const c = rawClient();
    let bytes = '';
    for (let i = 0; i < n; i++) {
      bytes += i % 3 === 1
        ? `POST /api/m${i} HTTP/1.1\r\nHost: a.test\r\nContent-Length: ${i}\r\n\r\n${'x'.repeat(i)}`
        : `GET /api/m${i} HTTP/1.1\r\nHost: a.test\r\n\r\n`;
    }
    c.sock.write(bytes);
    const rs = await c.responses(n);
    expect(rs.map((r) => r.body)).toEqual(Array.from({ length: n }, (_, i) => `/api/m${i} ${i % 3 === 1 ? i : 0}`));
    expect(events.filter((e) => e.startsWith('start'))).toEqual(Array.from({ length: n }, (_, i) => `start /api/m${i}`));
    c.sock.destroy();
  });
});

describe('HTTPS', () => {
  test('HTTP/1.1 over TLS (ALPN http/1.1): pipelined requests reach the upstream one at a time, in order', async () => {
    events = [];
    const c = rawClient(true);
    c.sock.write(
      'GET /api/t1 HTTP/1.1\r\nHost: localhost\r\n\r\n' +
      'POST /api/t2 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nabc' +
      'GET /api/t3 HTTP/1.1\r\nHost: localhost\r\n\r\n',
    );
    const rs = await c.responses(3);
    expect(rs.map((r) => r.body)).toEqual(['/api/t1 0', '/api/t2 3', '/api/t3 0']);
    expect(events).toEqual(['start /api/t1', 'end /api/t1', 'start /api/t2', 'end /api/t2', 'start /api/t3', 'end /api/t3']);
    c.sock.destroy();
  });
});

describe('HTTP/2', () => {
  test('streams on one connection are independent: a fast stream is answered while a slow one is held', async () => {
    events = [];
    const client = h2connect(`https://127.0.0.1:${httpsPort}`, { rejectUnauthorized: false });
    client.on('error', () => {});
    const get = (path: string): Promise<string> => new Promise((resolve, reject) => {
      const s = client.request({ ':path': path, ':authority': 'localhost' });
      let body = '';
      s.setEncoding('utf8');
      s.on('data', (c: string) => (body += c));
      s.on('end', () => resolve(body));
      s.on('error', reject);
      s.end();
    });
    const slow = get('/hold/h2');
    await upstreamSaw('start /hold/h2');
    expect(await get('/api/h2-fast')).toBe('/api/h2-fast 0');
    expect(events).not.toContain('end /hold/h2');
    held.get('/hold/h2')!();
    held.delete('/hold/h2');
    expect(await slow).toBe('/hold/h2 0');
    client.close();
  });
});

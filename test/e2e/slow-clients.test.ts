// Limits and slow clients (issue 5): body size (413) before forwarding or as soon as crossed,
// 100-continue, stalled uploads (408) vs slow-but-steady ones, clients that stop reading, a
// crowd of slowloris connections, HEAD/204/304 on a reused connection, SSE past the response
// timeout, and the path-safety audit.
import { EventEmitter, once } from 'node:events';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { rawExchange, send, startGateway, startUpstream } from '../helpers.ts';
import type { TestGateway, Upstream } from '../helpers.ts';

/** What the upstream saw of each request body: ended normally, or aborted part-way. */
const bodies = new Map<string, { bytes: number; ended: boolean; aborted: boolean }>();
/** Emits the path when its body ended or was aborted. */
const settled = new EventEmitter();
let up: Upstream;
let gw: TestGateway;
const IDLE = 600;

beforeAll(async () => {
  up = await startUpstream((req, res) => {
    const record = { bytes: 0, ended: false, aborted: false };
    bodies.set(req.url!, record);
    req.on('data', (c: Buffer) => (record.bytes += c.length));
    req.on('close', () => {
      if (!record.ended) {
        record.aborted = true;
        settled.emit(req.url!);
      }
    });
    req.on('end', () => {
      record.ended = true;
      settled.emit(req.url!);
      const u = req.url!;
      if (u.startsWith('/download')) {
        // 64 MiB in 64 KiB chunks, honouring backpressure.
        res.writeHead(200, { 'content-length': String(64 * 1024 * 1024) });
        res.on('close', () => settled.emit(res.writableFinished ? 'download-finished' : 'download-aborted'));
        let left = 1024;
        const chunk = Buffer.alloc(64 * 1024, 1);
        const pump = (): void => {
          while (left > 0) {
            left--;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        pump();
        return;
      }
      if (u === '/hints') {
        res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
        return void res.writeHead(200, { 'content-type': 'text/plain' }).end('after hints');
      }
      if (u === '/head') return void res.writeHead(200, { 'content-length': '1000', 'content-type': 'text/plain' }).end();
      if (u === '/empty') return void res.writeHead(204).end();
      if (u === '/cached') return void res.writeHead(304, { etag: '"v1"' }).end();
      if (u === '/events') {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        let n = 0;
        const tick = setInterval(() => {
          res.write(`data: ${n}\n\n`);
          if (++n === 5) {
            clearInterval(tick);
            res.end();
          }
        }, 150);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ url: req.url, bytes: record.bytes }));
    });
  });
  gw = await startGateway(`
pools: { p: { targets: ["${up.url}"], timeouts: { response: 300ms } } }
routes:
  - { name: admin, match: { path: /admin/* }, respond: { body: admin-area } }
  - { name: app, pool: p }
`, (c) => {
    c.limits.maxBodySize = 64 * 1024;
    c.limits.retryBuffer = 4 * 1024;
    c.timeouts.clientIdle = IDLE;
  });
});
afterAll(async () => {
  await gw.close();
  await up.close();
});

/** Waits until the upstream has seen `path` and its body ended or was aborted. */
async function upstreamBody(path: string) {
  const b = bodies.get(path);
  if (b === undefined || (!b.ended && !b.aborted)) await once(settled, path);
  return bodies.get(path);
}

describe('request body limits', () => {
  test('a declared Content-Length over maxBodySize gets 413 and nothing is forwarded', async () => {
    const before = up.seen.length;
    const reply = await rawExchange(gw.port, `POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: ${128 * 1024}\r\n\r\n` + 'x'.repeat(1000));
    expect(reply).toMatch(/^HTTP\/1\.1 413 /);
    expect(reply.toLowerCase()).toContain('connection: close');
    expect(up.seen.length).toBe(before);
  });

  test('with Expect: 100-continue an over-limit body is refused before the client sends it', async () => {
    const reply = await rawExchange(gw.port, `PUT /big2 HTTP/1.1\r\nHost: a\r\nContent-Length: ${128 * 1024}\r\nExpect: 100-continue\r\n\r\n`);
    expect(reply).toMatch(/^HTTP\/1\.1 413 /);
    expect(reply).not.toContain('100 Continue');
  });

  test('with Expect: 100-continue a malformed request is refused before its body is invited', async () => {
    const reply = await rawExchange(gw.port, 'POST /x HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    expect(reply).not.toContain('100 Continue');
  });

  test('with Expect: 100-continue a body within the limit is invited and forwarded', async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const sock = connect(gw.port, '127.0.0.1');
      let got = '';
      sock.on('data', (c) => {
        got += c;
        if (got.startsWith('HTTP/1.1 100 Continue\r\n\r\n') && !got.includes('200 OK')) sock.write('hello');
        if (got.includes('"bytes":5')) {
          sock.destroy();
          resolve(got);
        }
      });
      sock.on('error', reject);
      sock.write('POST /continue HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
    });
    expect(reply).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
  });

  test('a chunked body that crosses maxBodySize gets 413 and the upstream request is aborted, never completed', async () => {
    const chunk = 'y'.repeat(8 * 1024);
    let payload = 'POST /chunked-big HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n';
    for (let i = 0; i < 12; i++) payload += `${(chunk.length).toString(16)}\r\n${chunk}\r\n`;
    payload += '0\r\n\r\n';
    const reply = await rawExchange(gw.port, payload);
    expect(reply).toMatch(/^HTTP\/1\.1 413 /);
    const seen = await upstreamBody('/chunked-big');
    expect(seen?.ended).toBe(false);
    expect(seen?.aborted).toBe(true);
    expect(seen!.bytes).toBeLessThanOrEqual(64 * 1024);
  });
});

describe('slow clients', () => {
  test('an upload that stalls longer than clientIdle gets 408 and the upstream request is aborted', async () => {
    const reply = await rawExchange(gw.port, `POST /stalled HTTP/1.1\r\nHost: a\r\nContent-Length: ${32 * 1024}\r\n\r\n` + 'z'.repeat(6 * 1024));
    expect(reply).toMatch(/^HTTP\/1\.1 408 /);
    const seen = await upstreamBody('/stalled');
    expect(seen?.ended).toBe(false);
  });

  test('a slow but steady upload (a chunk well within clientIdle each time) goes through whole', async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const req = request(`${gw.url}/steady`, { method: 'POST', agent: false, headers: { 'content-length': String(10 * 1024) } }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve(body));
      });
      req.on('error', reject);
      let sent = 0;
      const tick = setInterval(() => {
        req.write(Buffer.alloc(1024, 1));
        if (++sent === 10) {
          clearInterval(tick);
          req.end();
        }
      }, IDLE / 6);
    });
    expect(JSON.parse(reply).bytes).toBe(10 * 1024);
  });

  test('a client that stops reading a download is disconnected and the upstream response aborted', async () => {
    const sock: Socket = connect(gw.port, '127.0.0.1');
    sock.on('error', () => {});
    const outcome = Promise.race([once(settled, 'download-aborted').then(() => 'aborted'), once(settled, 'download-finished').then(() => 'finished')]);
    sock.write('GET /download HTTP/1.1\r\nHost: a\r\n\r\n');
    // Read the first bytes, then stop reading for good: 64 MiB cannot fit in socket buffers.
    await new Promise<void>((r) => sock.once('data', () => r()));
    sock.pause();
    expect(await outcome).toBe('aborted');
    sock.destroy();
    const pool = gw.gateway.pools.get('p')!;
    expect(pool.targets[0].inFlight).toBe(0);
  });

  test('2,000 idle slowloris connections do not stop a legitimate request', async () => {
    const crowd: Socket[] = [];
    await Promise.all(Array.from({ length: 2000 }, () => new Promise<void>((resolve) => {
      const s = connect(gw.port, '127.0.0.1', () => {
        s.write('GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ');
        resolve();
      });
      s.on('error', () => resolve());
      crowd.push(s);
    })));
    try {
      const r = await send(`${gw.url}/legit`);
      expect(r.status).toBe(200);
    } finally {
      for (const s of crowd) s.destroy();
    }
  }, 60_000);
});

describe('responses without a body and streams', () => {
  test('HEAD, 204 and 304 pass through and the connection stays usable for the next request', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const one = (path: string, method = 'GET') => new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
        request(`${gw.url}${path}`, { method, agent }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
        }).on('error', reject).end();
      });
      const head = await one('/head', 'HEAD');
      expect([head.status, head.headers['content-length'], head.body]).toEqual([200, '1000', '']);
      const empty = await one('/empty');
      expect([empty.status, empty.body]).toEqual([204, '']);
      const cached = await one('/cached');
      expect([cached.status, cached.headers.etag, cached.body]).toEqual([304, '"v1"', '']);
      const after = await one('/after');
      expect(JSON.parse(after.body).url).toBe('/after');
    } finally {
      agent.destroy();
    }
  });

  test('103 Early Hints reach the client before the final response', async () => {
    const got = await new Promise<{ info: { statusCode: number; headers: Record<string, unknown> }[]; status: number; body: string }>((resolve, reject) => {
      const info: { statusCode: number; headers: Record<string, unknown> }[] = [];
      const req = request(`${gw.url}/hints`, { agent: false }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ info, status: res.statusCode!, body }));
      });
      req.on('information', (i) => info.push({ statusCode: i.statusCode, headers: i.headers }));
      req.on('error', reject);
      req.end();
    });
    expect(got.info).toHaveLength(1);
    expect(got.info[0].statusCode).toBe(103);
    expect(got.info[0].headers.link).toBe('</style.css>; rel=preload; as=style');
    expect([got.status, got.body]).toEqual([200, 'after hints']);
  });

  test('server-sent events stream through unbuffered and are not cut by the response-header timeout', async () => {
    const events: { data: string; at: number }[] = [];
    const started = Date.now();
    await new Promise<void>((resolve, reject) => {
      request(`${gw.url}/events`, { agent: false }, (res) => {
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          for (const m of c.matchAll(/data: (\d+)/g)) events.push({ data: m[1], at: Date.now() - started });
        });
        res.on('end', resolve);
      }).on('error', reject).end();
    });
    expect(events.map((e) => e.data)).toEqual(['0', '1', '2', '3', '4']);
    // The stream outlived the 300 ms response timeout, and the first event arrived long before the last.
    expect(events[4].at).toBeGreaterThan(300);
    expect(events[0].at).toBeLessThan(events[4].at);
  });
});

describe('path safety', () => {
  // [path as sent, route it must reach: 'admin' | 'app' | 400, path the upstream must receive]
  const cases: [string, string | number, string?][] = [
    ['/api/../admin', 'admin'],
    ['/api/%2e%2e/admin', 'admin'],
    ['/api/.%2e/admin', 'admin'],
    // Ambiguous (SPEC §3): a backend decoding %2F, '\\' or twice would read a '..' segment.
    ['/api/..%2fadmin', 400],
    ['//admin', 'admin'],
    ['/api\\..\\admin', 400],
    ['/admin;x=1', 'app', '/admin;x=1'],
    ['/%61dmin', 'admin'],
    ['/admin%00', 400],
    ['/api/%252e%252e/admin', 400],
    ['/../admin', 400],
  ];
  test.each(cases)('%s → %s', async (path, expected, upstreamPath) => {
    const reply = await rawExchange(gw.port, `GET ${path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
    if (typeof expected === 'number') {
      expect(reply).toMatch(new RegExp(`^HTTP/1\\.1 ${expected} `));
      return;
    }
    expect(reply).toMatch(/^HTTP\/1\.1 200 /);
    const body = reply.slice(reply.indexOf('\r\n\r\n') + 4);
    if (expected === 'admin') {
      expect(body).toBe('admin-area');
    } else {
      const seen = JSON.parse(body.replace(/^[0-9a-f]+\r\n/, '').replace(/\r\n0\r\n\r\n$/, ''));
      expect(seen.url).toBe(upstreamPath);
      // The upstream never receives a raw dot-dot segment.
      expect(seen.url.split('/')).not.toContain('..');
    }
  });
});

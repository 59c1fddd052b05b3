// One conformance table, run against both upstream clients (the builtin HTTP/1.1 client and the
// undici adapter) over real sockets: framing, chunked with any split, trailers, interim responses,
// bodiless responses, connection reuse and when it must not happen, uploads, backpressure with
// reuse afterwards, timeouts, errors, aborts in every phase, close, TLS. A pool behaves the same
// whichever client serves it; where the two may differ by design, the case says so.
import { once } from 'node:events';
import { createServer as createHttpsServer } from 'node:https';
import { createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { afterEach, describe, expect, test } from 'vitest';
import { fromUpstreamError } from '../../src/errors.ts';
import type { UpstreamClient } from '../../src/upstream/client.ts';
import { H1Pool } from '../../src/upstream/h1/pool.ts';
import { UndiciClient } from '../../src/upstream/undici.ts';
import { makeCa, makeLeaf } from '../tls-helpers.ts';
import { call, closeAll, closedPort, httpUpstream, rawUpstream, track, writeSlowly } from './client-harness.ts';
import type { Outcome } from './client-harness.ts';

interface Tls {
  servername: string | undefined;
  ca?: string;
  cert?: string;
  key?: string;
  rejectUnauthorized: boolean;
}

interface Options {
  keepAliveTimeout?: number;
  connectTimeout?: number;
  tls?: Tls;
}

type Make = (port: number, o?: Options) => UpstreamClient;

const builtin: Make = (port, o = {}) => new H1Pool({ host: '127.0.0.1', port, connectTimeout: o.connectTimeout ?? 2000, keepAliveTimeout: o.keepAliveTimeout ?? 4000, tls: o.tls });
const undici: Make = (port, o = {}) => new UndiciClient({
  origin: `${o.tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`,
  connectTimeout: o.connectTimeout ?? 2000,
  keepAliveTimeout: o.keepAliveTimeout ?? 4000,
  h2: false,
  tls: o.tls === undefined ? undefined : { ca: o.tls.ca, cert: o.tls.cert, key: o.tls.key, rejectUnauthorized: o.tls.rejectUnauthorized },
  servername: o.tls?.servername,
});

afterEach(closeAll);

/** How the forwarder sees an error: the code that decides status, metrics and retries. */
const kind = (o: Outcome): string | undefined => (o.error === undefined ? undefined : fromUpstreamError(o.error).code);

/** Resolves after `ms`, for upstream pacing only (no test asserts on timing). */
const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Where the two clients differ by design. */
interface Traits {
  /**
   * undici closes a connection after a HEAD request and after a 304 carrying a Content-Length, for
   * servers that send a body there anyway (undici#258); the builtin client trusts RFC 9112 §6.3.
   */
  reusesAfterHeadOrLength304: boolean;
}

describe.each([
  ['builtin', builtin, { reusesAfterHeadOrLength304: true }],
  ['undici', undici, { reusesAfterHeadOrLength304: false }],
] as const)('%s client', (_name, make: Make, traits: Traits) => {
  function client(port: number, o?: Options): UpstreamClient {
    const c = make(port, o);
    track(() => c.close());
    return c;
  }

  test('sequential requests reuse one connection; method, path and the given headers reach the upstream', async () => {
    const heads: string[] = [];
    const up = await rawUpstream((head, sock) => {
      heads.push(head);
      sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Up: 1\r\n\r\nok');
    });
    const c = client(up.port);
    for (let i = 0; i < 3; i++) {
      const o = await call(c, { path: `/a?i=${i}`, headers: ['host', 'shop.test', 'x-forwarded-for', '10.0.0.1'] });
      expect(o).toMatchObject({ status: 200, body: 'ok', violations: [] });
      expect(o.rawHeaders).toEqual(['Content-Length', '2', 'X-Up', '1']);
    }
    expect(up.connections()).toBe(1);
    expect(heads[2].split('\r\n')[0]).toBe('GET /a?i=2 HTTP/1.1');
    expect(heads[2]).toMatch(/\r\nhost: shop\.test\r\n/i);
    expect(heads[2]).toMatch(/\r\nx-forwarded-for: 10\.0\.0\.1(\r\n|$)/i);
  });

  test('200 concurrent requests, chunked and sized, small and large: every response reaches its own request', async () => {
    const up = await httpUpstream((req, res) => {
      const n = Number(new URL(req.url!, 'http://x').searchParams.get('n'));
      const body = `${req.url}|`.repeat(1 + (n % 7) * 500);
      if (n % 2 === 0) res.setHeader('content-length', Buffer.byteLength(body));
      res.write(body.slice(0, 10));
      setImmediate(() => res.end(body.slice(10)));
    });
    const c = client(up.port);
    const outcomes = await Promise.all(Array.from({ length: 200 }, (_, n) => call(c, { path: `/r?n=${n}` })));
    outcomes.forEach((o, n) => {
      expect(o.error).toBeUndefined();
      expect(o.violations).toEqual([]);
      expect(o.body).toBe(`/r?n=${n}|`.repeat(1 + (n % 7) * 500));
    });
    expect((await call(c, { path: '/r?n=1' })).body).toBe('/r?n=1|'.repeat(501));
  });

  test('a response split into single bytes: head, chunked body with extensions, and trailers; the connection is reused', async () => {
    const up = await rawUpstream((_head, sock) => {
      void writeSlowly(sock, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;x=y\r\n!\r\n0\r\nX-Sum: 42\r\n\r\n');
    });
    const c = client(up.port);
    expect(await call(c)).toMatchObject({ status: 200, body: 'hello!', trailers: { 'x-sum': '42' }, violations: [] });
    expect((await call(c)).body).toBe('hello!');
    expect(up.connections()).toBe(1);
  });

  test('a chunked body cut at every possible point arrives whole, and the connection is reused each time', async () => {
    const response = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n';
    let split = 0;
    const up = await rawUpstream((_head, sock) => {
      const at = split;
      sock.write(response.slice(0, at), 'latin1');
      setImmediate(() => sock.write(response.slice(at), 'latin1'));
    });
    const c = client(up.port);
    for (split = 1; split < response.length; split++) {
      const o = await call(c);
      expect(o).toMatchObject({ status: 200, body: 'abcdef', violations: [] });
    }
    expect(up.connections()).toBe(1);
  });

  test('a body delimited by the close is read to the end, and the connection is not reused', async () => {
    const up = await rawUpstream((_head, sock) => {
      sock.write('HTTP/1.1 200 OK\r\n\r\nuntil ');
      sock.end('the close');
    });
    const c = client(up.port);
    expect((await call(c)).body).toBe('until the close');
    expect((await call(c)).body).toBe('until the close');
    expect(up.connections()).toBe(2);
  });

  test('HEAD, 204 and 304 have no body even with a Content-Length; the connection stays usable', async () => {
    const up = await rawUpstream((head, sock) => {
      const path = head.split(' ')[1];
      if (path === '/204') sock.write('HTTP/1.1 204 No Content\r\n\r\n');
      else if (path === '/304') sock.write('HTTP/1.1 304 Not Modified\r\n\r\n');
      else if (path === '/304-length') sock.write('HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n');
      else if (head.startsWith('HEAD ')) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n');
      else sock.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    });
    const c = client(up.port);
    expect(await call(c, { path: '/204' })).toMatchObject({ status: 204, body: '', violations: [] });
    expect(await call(c, { path: '/304' })).toMatchObject({ status: 304, body: '' });
    expect(await call(c)).toMatchObject({ status: 200, body: '' });
    expect(up.connections()).toBe(1);
    expect(await call(c, { path: '/304-length' })).toMatchObject({ status: 304, body: '', violations: [] });
    expect(await call(c, { method: 'HEAD' })).toMatchObject({ status: 200, body: '' });
    expect(await call(c)).toMatchObject({ status: 200, body: '' });
    expect(up.connections()).toBe(traits.reusesAfterHeadOrLength304 ? 1 : 3);
  });

  test('interim responses (103) reach the handler before the final one', async () => {
    const up = await rawUpstream((_head, sock) => {
      sock.write('HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx');
    });
    expect(await call(client(up.port))).toMatchObject({ interim: [103], status: 200, body: 'x', violations: [] });
  });

  test('Connection: close, a Keep-Alive hint too short to use, or bytes after the response: the next request gets a new connection', async () => {
    const up = await rawUpstream((head, sock) => {
      const path = head.split(' ')[1];
      if (path === '/close') sock.write('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx');
      else if (path === '/hint') sock.write('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: 1\r\n\r\nx');
      else if (path === '/extra') sock.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxJUNK');
      else sock.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx');
    });
    const c = client(up.port);
    for (const path of ['/close', '/hint', '/extra']) expect((await call(c, { path })).body).toBe('x');
    expect((await call(c)).body).toBe('x');
    expect(up.connections()).toBe(4);
  });

  test('an idle connection the upstream closed, or one past keepAliveTimeout, is not used again', async () => {
    let bye: Promise<unknown> | undefined;
    const up = await rawUpstream((head, sock) => {
      sock.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx');
      if (head.startsWith('GET /bye ')) {
        bye = once(sock, 'close');
        setImmediate(() => sock.end());
      }
    });
    const c = client(up.port, { keepAliveTimeout: 200 });
    await call(c, { path: '/bye' });
    await bye;
    expect((await call(c)).error).toBeUndefined();
    expect(up.connections()).toBe(2);
    await delay(600);
    expect((await call(c)).error).toBeUndefined();
    expect(up.connections()).toBe(3);
  });

  test('bytes on an idle connection drop it; the next request is unaffected', async () => {
    let first: Socket | undefined;
    const up = await rawUpstream((_head, sock) => {
      first ??= sock;
      sock.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx');
    });
    const c = client(up.port);
    await call(c);
    first!.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfalse');
    await once(first!, 'close');
    expect(await call(c)).toMatchObject({ status: 200, body: 'x', violations: [] });
    expect(up.connections()).toBe(2);
  });

  test('a kept-alive connection closed unanswered under a request not marked replayable: one send, one error', async () => {
    const seen: string[] = [];
    const up = await rawUpstream((head, sock, n) => {
      seen.push(`${head.split(' ')[1]} #${n}`);
      if (n === 0) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      else sock.destroy();
    });
    const c = client(up.port);
    expect((await call(c, { path: '/1' })).body).toBe('ok');
    const o = await call(c, { path: '/2', replayable: false });
    expect(kind(o)).toBe('upstream_reset');
    expect(o).toMatchObject({ replays: 0, violations: [] });
    expect(seen).toEqual(['/1 #0', '/2 #1']);
  });

  test('uploads: a buffer gets a Content-Length, a stream without one goes chunked, a stream with one goes as is', async () => {
    const up = await httpUpstream((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (ch: Buffer) => chunks.push(ch));
      req.on('end', () => res.end(JSON.stringify({ cl: req.headers['content-length'] ?? null, te: req.headers['transfer-encoding'] ?? null, body: Buffer.concat(chunks).toString() })));
    });
    const c = client(up.port);
    const buffered = await call(c, { method: 'PUT', body: Buffer.from('buffered') });
    expect(JSON.parse(buffered.body)).toEqual({ cl: '8', te: null, body: 'buffered' });
    expect(buffered.sent).toBe(8);
    const chunked = await call(c, { method: 'POST', body: Readable.from([Buffer.from('one,'), Buffer.from('two')]) });
    expect(JSON.parse(chunked.body)).toEqual({ cl: null, te: 'chunked', body: 'one,two' });
    expect(chunked.sent).toBe(7);
    const sized = await call(c, { method: 'POST', headers: ['host', 'x', 'content-length', '7'], body: Readable.from([Buffer.from('one,'), Buffer.from('two')]) });
    expect(JSON.parse(sized.body)).toEqual({ cl: '7', te: null, body: 'one,two' });
    const empty = await call(c, { method: 'POST' });
    expect(JSON.parse(empty.body)).toEqual({ cl: '0', te: null, body: '' });
  });

  test('a stream longer or shorter than its Content-Length fails the request', async () => {
    const up = await httpUpstream((req, res) => {
      req.resume();
      req.on('end', () => res.end('done'));
    });
    const c = client(up.port);
    const longer = await call(c, { method: 'POST', headers: ['host', 'x', 'content-length', '3'], body: Readable.from([Buffer.from('four')]) });
    expect(longer.error?.code).toBe('UND_ERR_REQ_CONTENT_LENGTH_MISMATCH');
    const shorter = await call(c, { method: 'POST', headers: ['host', 'x', 'content-length', '9'], body: Readable.from([Buffer.from('four')]) });
    expect(shorter.error?.code).toBe('UND_ERR_REQ_CONTENT_LENGTH_MISMATCH');
    expect([longer.violations, shorter.violations]).toEqual([[], []]);
  });

  test('an answer before the upload ended: the response is delivered and the connection is not reused', async () => {
    const up = await rawUpstream((_head, sock) => {
      sock.write('HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\n\r\nbig');
    });
    const c = client(up.port);
    const stream = new Readable({ read() {} });
    stream.on('error', () => {});
    stream.push(Buffer.from('part one'));
    const o = await call(c, { method: 'POST', body: stream });
    expect(o).toMatchObject({ status: 413, body: 'big', violations: [] });
    stream.destroy();
    await call(c);
    expect(up.connections()).toBe(2);
  });

  test('a response whose end is in the bytes held back while the handler is paused: the rest, in order, then the connection is reused', async () => {
    // Defect 3 of issue 12: the whole response in one write, paused on its first chunk.
    const up = await rawUpstream((_head, sock) => {
      sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n');
    });
    const c = client(up.port);
    let paused = false;
    let whilePaused = 0;
    let pauses = 0;
    const o = await call(c, {
      onData: (ctl) => {
        if (paused) whilePaused++;
        if (pauses === 0) {
          pauses++;
          paused = true;
          ctl.pause();
          setTimeout(() => {
            paused = false;
            ctl.resume();
          }, 50);
        }
      },
    });
    expect(o).toMatchObject({ status: 200, body: 'abcdef', violations: [] });
    expect(pauses).toBe(1);
    expect(whilePaused).toBe(0);
    // The same connection serves the next request (a paused socket would time it out).
    expect(await call(c, { responseTimeout: 5000 })).toMatchObject({ status: 200, body: 'abcdef' });
    expect(up.connections()).toBe(1);
  });

  test('backpressure on every chunk of a large body: byte-exact, then the connection is reused', async () => {
    const body = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
    const up = await httpUpstream((_req, res) => {
      res.setHeader('content-length', body.length);
      res.end(body);
    });
    const c = client(up.port);
    const received: Buffer[] = [];
    let paused = false;
    let whilePaused = 0;
    const o = await call(c, {
      onData: (ctl, chunk) => {
        if (paused) whilePaused++;
        received.push(Buffer.from(chunk));
        paused = true;
        ctl.pause();
        setImmediate(() => {
          paused = false;
          ctl.resume();
        });
      },
    });
    expect(o.violations).toEqual([]);
    expect(whilePaused).toBe(0);
    expect(Buffer.concat(received).equals(body)).toBe(true);
    expect((await call(c)).status).toBe(200);
  });

  test('response timeout and body idle timeout', async () => {
    const up = await rawUpstream((head, sock) => {
      if (head.startsWith('GET /body ')) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
    });
    const c = client(up.port);
    const head = await call(c, { path: '/head', responseTimeout: 100 });
    expect(head.error?.code).toBe('UND_ERR_HEADERS_TIMEOUT');
    const body = await call(c, { path: '/body', idleTimeout: 100 });
    expect(body).toMatchObject({ status: 200, body: 'abc', violations: [] });
    expect(body.error?.code).toBe('UND_ERR_BODY_TIMEOUT');
    expect([kind(head), kind(body)]).toEqual(['upstream_timeout', 'upstream_timeout']);
  });

  test('errors as the forwarder classifies them: refused, reset, cut short, ambiguous framing, oversized head, a transfer coding other than chunked', async () => {
    const refused = await call(client(await closedPort()));
    expect(kind(refused)).toBe('upstream_connect');
    const up = await rawUpstream((head, sock) => {
      const path = head.split(' ')[1];
      if (path === '/reset') sock.destroy();
      else if (path === '/short') sock.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
      else if (path === '/cl-te') sock.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
      else if (path === '/huge') sock.write(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
      else if (path === '/gzip-chunked') sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
      else if (path === '/gzip') sock.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc');
      // The fuzz found this one: llhttp reads "chunked<HTAB>" as no chunked, to the close.
      else if (path === '/chunked-tab') sock.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\t\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
      else if (path === '/status') sock.write('HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n');
    });
    const c = client(up.port);
    expect(kind(await call(c, { path: '/reset' }))).toBe('upstream_reset');
    const short = await call(c, { path: '/short' });
    expect(short).toMatchObject({ status: 200, body: 'abc' });
    // Either way a 502 with the response cut: the builtin client names the missing bytes.
    expect(['upstream_bad_response', 'upstream_reset']).toContain(kind(short));
    for (const path of ['/cl-te', '/huge', '/gzip-chunked', '/gzip', '/chunked-tab', '/status']) {
      const o = await call(c, { path });
      expect({ path, kind: kind(o), status: o.status }).toEqual({ path, kind: 'upstream_bad_response', status: undefined });
      expect(o.violations).toEqual([]);
    }
  });

  test('abort in onStart: one error, nothing sent', async () => {
    const up = await rawUpstream(() => {});
    const reason = new Error('not now');
    const o = await call(client(up.port), { onStart: (ctl) => ctl.abort(reason) });
    expect(o).toMatchObject({ error: reason, violations: [] });
    expect(up.connections()).toBe(0);
  });

  test('abort while the TLS handshake is pending: one error at once, not at the connect timeout', async () => {
    // Accepts TCP, reads, never answers the ClientHello.
    let accepted = false;
    const silent = createServer((s) => {
      s.resume();
      s.on('error', () => {});
      accepted = true;
    });
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    track(() => {
      silent.close();
    });
    const connectTimeout = 20_000;
    const c = client((silent.address() as AddressInfo).port, { connectTimeout, tls: { servername: 'x.test', rejectUnauthorized: true } });
    const reason = new Error('client gone');
    let abortedAt = 0;
    const o = await call(c, {
      onStart: (ctl) => {
        const t = setInterval(() => {
          if (!accepted) return;
          clearInterval(t);
          abortedAt = Date.now();
          ctl.abort(reason);
        }, 10);
      },
    });
    expect(o).toMatchObject({ error: reason, violations: [] });
    // Loose on purpose (a busy machine): the point is "not after the connect timeout".
    expect(Date.now() - abortedAt).toBeLessThan(connectTimeout / 2);
  });

  test('abort with the request sent and no answer yet: one error, the upstream sees the close', async () => {
    let closed: Promise<unknown> | undefined;
    const up = await rawUpstream((_head, sock) => {
      closed = once(sock, 'close');
    });
    const reason = new Error('enough');
    const c = client(up.port);
    const o = await call(c, {
      onStart: (ctl) => {
        const t = setInterval(() => {
          if (closed === undefined) return;
          clearInterval(t);
          ctl.abort(reason);
        }, 10);
      },
    });
    expect(o).toMatchObject({ error: reason, violations: [] });
    await closed;
  });

  test('abort in onHeaders: one error, after the call returned, and the connection is closed', async () => {
    const up = await rawUpstream((_head, sock) => {
      sock.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello');
    });
    const c = client(up.port);
    const reason = Object.assign(new Error('bad headers'), { code: 'X_TEST' });
    const o = await call(c, { onHeaders: (ctl) => ctl.abort(reason) });
    expect(o).toMatchObject({ error: reason, body: '', violations: [] });
    await call(c);
    expect(up.connections()).toBe(2);
  });

  test('abort mid-body: one error, and the connection is not reused', async () => {
    const up = await rawUpstream((_head, sock) => {
      sock.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello');
      setTimeout(() => sock.write('world'), 200);
    });
    const c = client(up.port);
    const reason = new Error('stop');
    const o = await call(c, { onData: (ctl) => ctl.abort(reason) });
    expect(o).toMatchObject({ error: reason, status: 200, violations: [] });
    await call(c);
    expect(up.connections()).toBe(2);
  });

  test('abort mid-upload: one error, the upstream sees the close', async () => {
    let closed: Promise<unknown> | undefined;
    const up = await rawUpstream((_head, sock) => {
      closed = once(sock, 'close');
    });
    const stream = new Readable({ read() {} });
    stream.on('error', () => {});
    stream.push(Buffer.from('some of it'));
    const reason = new Error('client gone');
    const c = client(up.port);
    const o = await call(c, {
      method: 'POST',
      body: stream,
      onStart: (ctl) => {
        const t = setInterval(() => {
          if (closed === undefined) return;
          clearInterval(t);
          ctl.abort(reason);
        }, 10);
      },
    });
    expect(o).toMatchObject({ error: reason, violations: [] });
    await closed;
    stream.destroy();
  });

  test('close() lets the request in flight finish, then refuses new ones with an error', async () => {
    let answer: (() => void) | undefined;
    const up = await rawUpstream((_head, sock) => {
      answer = () => sock.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate');
    });
    const c = make(up.port);
    const inFlight = call(c);
    while (answer === undefined) await new Promise((r) => setImmediate(r));
    let closed = false;
    const closing = c.close().then(() => (closed = true));
    await new Promise((r) => setImmediate(r));
    expect(closed).toBe(false);
    answer();
    expect((await inFlight).body).toBe('late');
    await closing;
    const after = await call(c);
    expect(['UND_ERR_CLOSED', 'UND_ERR_DESTROYED']).toContain(after.error?.code);
    expect(kind(after)).toBe('upstream_reset');
    expect(after.violations).toEqual([]);
  });

  test('TLS material node:tls refuses (a client key pair that is not PEM): the request fails, and close() still ends', async () => {
    const up = await rawUpstream(() => {});
    const c = make(up.port, { tls: { servername: 'x.test', cert: 'not a certificate', key: 'not a key', rejectUnauthorized: true } });
    const o = await call(c);
    expect(o.error).toBeDefined();
    expect(o.violations).toEqual([]);
    // The builtin client counted the connection busy before node:tls threw: close() never ended.
    await c.close();
  });

  test('a path with a space or a control byte is refused before anything is sent', async () => {
    const up = await rawUpstream(() => {});
    const c = client(up.port);
    for (const path of ['/a b', '/a\r\nx']) {
      const o = await call(c, { path });
      expect(o.error?.code).toBe('UND_ERR_INVALID_ARG');
      expect(o.violations).toEqual([]);
    }
    expect(up.connections()).toBe(0);
  });

  test('https: checked against the IP without SNI or against the configured name sent as SNI; a foreign CA is refused at connect, verify: false accepts it', async () => {
    const ca = await makeCa();
    const leaf = await makeLeaf(['127.0.0.1', 'api.internal'], ca);
    const seen: (string | false)[] = [];
    const server = createHttpsServer({ cert: leaf.cert, key: leaf.key }, (_req, res) => res.end('tls'));
    server.on('secureConnection', (s: TLSSocket) => seen.push((s as TLSSocket & { servername: string | false }).servername));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    track(() => {
      server.closeAllConnections();
      server.close();
    });
    const port = (server.address() as AddressInfo).port;
    expect(await call(client(port, { tls: { servername: undefined, ca: ca.cert, rejectUnauthorized: true } }))).toMatchObject({ status: 200, body: 'tls' });
    expect(seen.at(-1)).toBe(false);
    expect((await call(client(port, { tls: { servername: 'api.internal', ca: ca.cert, rejectUnauthorized: true } }))).body).toBe('tls');
    expect(seen.at(-1)).toBe('api.internal');
    const other = await makeCa('another CA');
    const refused = await call(client(port, { tls: { servername: 'api.internal', ca: other.cert, rejectUnauthorized: true } }));
    expect(refused.error?.code).toMatch(/CERT|SIGNATURE|ISSUER/);
    expect(fromUpstreamError(refused.error).beforeSend).toBe(true);
    expect((await call(client(port, { tls: { servername: 'api.internal', ca: other.cert, rejectUnauthorized: false } }))).body).toBe('tls');
  });
});

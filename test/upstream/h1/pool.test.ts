// waygate's HTTP/1.1 upstream client against real upstream sockets: connection reuse and when it
// must not happen, every body framing, uploads, backpressure, timeouts and errors.
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Dispatcher } from 'undici';
import { afterEach, describe, expect, test } from 'vitest';
import { H1Pool } from '../../../src/upstream/h1/pool.ts';
import { makeCa, makeLeaf } from '../../tls-helpers.ts';

interface Outcome {
  status?: number;
  interim: number[];
  rawHeaders: string[];
  body: string;
  trailers?: Record<string, string>;
  error?: Error & { code?: string };
  sent: number;
}

interface Call {
  method?: string;
  path?: string;
  headers?: string[];
  body?: Buffer | Readable | null;
  headersTimeout?: number;
  bodyTimeout?: number;
  /** Called with the controller at each data chunk. */
  onData?: (c: Dispatcher.DispatchController, chunk: Buffer) => void;
  onStart?: (c: Dispatcher.DispatchController, status: number) => void;
}

/** Runs one request through `pool` and resolves when it ends either way. */
function call(pool: H1Pool, c: Call = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const o: Outcome = { interim: [], rawHeaders: [], body: '', sent: 0 };
    const handler: Dispatcher.DispatchHandler = {
      onBodySent: (chunk: Buffer) => {
        o.sent += chunk.length;
      },
      onResponseStart: (controller, status) => {
        if (status < 200) {
          o.interim.push(status);
          return;
        }
        o.status = status;
        o.rawHeaders = (controller as unknown as { rawHeaders: string[] }).rawHeaders;
        c.onStart?.(controller, status);
      },
      onResponseData: (controller, chunk) => {
        o.body += chunk.toString('latin1');
        c.onData?.(controller, chunk);
      },
      onResponseEnd: (_controller, trailers) => {
        o.trailers = trailers as Record<string, string>;
        resolve(o);
      },
      onResponseError: (_controller, err) => {
        o.error = err;
        resolve(o);
      },
    } as Dispatcher.DispatchHandler;
    pool.dispatch(
      {
        method: (c.method ?? 'GET') as Dispatcher.HttpMethod,
        path: c.path ?? '/',
        headers: c.headers ?? ['host', 'up.test'],
        body: c.body ?? null,
        headersTimeout: c.headersTimeout ?? 10_000,
        bodyTimeout: c.bodyTimeout ?? 10_000,
      } as Dispatcher.DispatchOptions,
      handler,
    );
  });
}

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

/** A raw upstream: `answer` gets each request head (as text) and the socket; counts connections. */
async function rawUpstream(answer: (head: string, sock: Socket, n: number) => void): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    connections++;
    sockets.add(sock);
    sock.setNoDelay(true);
    sock.on('error', () => {});
    sock.on('close', () => sockets.delete(sock));
    let buf = '';
    let n = 0;
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      let end: number;
      while ((end = buf.indexOf('\r\n\r\n')) !== -1) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        answer(head, sock, n++);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closers.push(async () => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { port: (server.address() as AddressInfo).port, connections: () => connections };
}

/** A node:http upstream. */
async function httpUpstream(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ port: number; server: HttpServer }> {
  const server = createHttpServer(handle);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closers.push(async () => {
    server.closeAllConnections();
    server.close();
  });
  return { port: (server.address() as AddressInfo).port, server };
}

function pool(port: number, keepAliveTimeout = 4000): H1Pool {
  const p = new H1Pool({ host: '127.0.0.1', port, connectTimeout: 2000, keepAliveTimeout });
  closers.push(() => p.close());
  return p;
}

async function writeSlowly(sock: Socket, bytes: string): Promise<void> {
  for (const ch of bytes) {
    await new Promise<void>((r) => sock.write(ch, 'latin1', () => r()));
    await new Promise((r) => setImmediate(r));
  }
}

describe('H1Pool', () => {
  test('sequential requests reuse one connection; the head carries method, path and headers as given', async () => {
    const heads: string[] = [];
    const up = await rawUpstream((head, sock) => {
      heads.push(head);
      sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Up: 1\r\n\r\nok');
    });
    const p = pool(up.port);
    for (let i = 0; i < 3; i++) {
      const o = await call(p, { path: `/a?i=${i}`, headers: ['Host', 'shop.test', 'X-Forwarded-For', '10.0.0.1'] });
      expect(o).toMatchObject({ status: 200, body: 'ok', rawHeaders: ['Content-Length', '2', 'X-Up', '1'] });
    }
    expect(up.connections()).toBe(1);
    expect(heads[2]).toBe('GET /a?i=2 HTTP/1.1\r\nHost: shop.test\r\nX-Forwarded-For: 10.0.0.1');
  });

  test('header bytes above 0x7f go out exactly as they came in (latin1 strings, as Node decodes them)', async () => {
    const heads: string[] = [];
    const up = await rawUpstream((head, sock) => {
      heads.push(head);
      sock.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    });
    // "café" sent by a client in UTF-8 reaches waygate as the latin1 string "cafÃ©".
    const utf8AsLatin1 = Buffer.from('café', 'utf8').toString('latin1');
    await call(pool(up.port), { headers: ['host', 'x', 'x-name', utf8AsLatin1] });
    expect(Buffer.from(heads[0], 'latin1').includes(Buffer.from('x-name: café\r\n'.replace('\r\n', ''), 'utf8'))).toBe(true);
  });

  test('200 concurrent requests, chunked and sized, small and large: every response reaches its own request', async () => {
    const up = await httpUpstream((req, res) => {
      const n = Number(new URL(req.url!, 'http://x').searchParams.get('n'));
      const body = `${req.url}|`.repeat(1 + (n % 7) * 500);
      if (n % 2 === 0) res.setHeader('content-length', Buffer.byteLength(body));
      // Odd ones go chunked, in two writes, the second a little later.
      res.write(body.slice(0, 10));
      setImmediate(() => res.end(body.slice(10)));
    });
    const p = pool(up.port);
    const outcomes = await Promise.all(Array.from({ length: 200 }, (_, n) => call(p, { path: `/r?n=${n}` })));
    outcomes.forEach((o, n) => {
      expect(o.error).toBeUndefined();
      expect(o.body).toBe(`/r?n=${n}|`.repeat(1 + (n % 7) * 500));
    });
    // And the pool still works afterwards, on the connections it kept.
    expect((await call(p, { path: '/r?n=1' })).body).toBe('/r?n=1|'.repeat(501));
  });

  test('a response split into single bytes: head, chunked body and trailers', async () => {
    const up = await rawUpstream((_head, sock) => {
      void writeSlowly(sock, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;x=y\r\n!\r\n0\r\nX-Sum: 42\r\n\r\n');
    });
    const p = pool(up.port);
    const o = await call(p);
    expect(o).toMatchObject({ status: 200, body: 'hello!', trailers: { 'x-sum': '42' } });
    const again = await call(p);
    expect(again.body).toBe('hello!');
    expect(up.connections()).toBe(1);
  });

  test('a body delimited by the close is read to the end, and the connection is not reused', async () => {
    const up = await rawUpstream((_head, sock) => {
      sock.write('HTTP/1.1 200 OK\r\n\r\nuntil ');
      sock.end('the close');
    });
    const p = pool(up.port);
    expect((await call(p)).body).toBe('until the close');
    expect((await call(p)).body).toBe('until the close');
    expect(up.connections()).toBe(2);
  });

  test('HEAD, 204 and 304 have no body even with a Content-Length; the connection stays usable', async () => {
    const up = await rawUpstream((head, sock) => {
      const path = head.split(' ')[1];
      if (path === '/204') sock.write('HTTP/1.1 204 No Content\r\n\r\n');
      else if (path === '/304') sock.write('HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n');
      else sock.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n');
    });
    const p = pool(up.port);
    expect(await call(p, { method: 'HEAD' })).toMatchObject({ status: 200, body: '' });
    expect(await call(p, { path: '/204' })).toMatchObject({ status: 204, body: '' });
    expect(await call(p, { path: '/304' })).toMatchObject({ status: 304, body: '' });
    expect(up.connections()).toBe(1);
  });

  test('interim responses (103) reach the handler before the final one', async () => {
    const up = await rawUpstream((_head, sock) => {
      sock.write('HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx');
    });
    const o = await call(pool(up.port));
    expect(o).toMatchObject({ interim: [103], status: 200, body: 'x' });
  });

  test('connection: close, a short Keep-Alive hint, or bytes after the response: the next request gets a new connection', async () => {
    const up = await rawUpstream((head, sock) => {
      const path = head.split(' ')[1];
      if (path === '/close') sock.write('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx');
      else if (path === '/hint') sock.write('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: 1\r\n\r\nx');
      else if (path === '/extra') sock.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxJUNK');
      else sock.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx');
    });
    const p = pool(up.port);
    for (const path of ['/close', '/hint', '/extra']) {
      expect((await call(p, { path })).body).toBe('x');
    }
    expect((await call(p)).body).toBe('x');
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
    const p = pool(up.port, 200);
    await call(p, { path: '/bye' });
    // Fully closed on the upstream's side means the pool saw the FIN and answered it.
    await bye;
    expect((await call(p)).error).toBeUndefined();
    expect(up.connections()).toBe(2);
    await new Promise((r) => setTimeout(r, 400));
    expect((await call(p)).error).toBeUndefined();
    expect(up.connections()).toBe(3);
  });

  test('a kept-alive connection closed unanswered under a request: an idempotent one is sent once more on a new connection, a POST is not', async () => {
    // Every connection answers its first request and closes on the second without a word: what an
    // upstream idle timeout racing the request looks like from here.
    const seen: string[] = [];
    const up = await rawUpstream((head, sock, n) => {
      seen.push(`${head.split(' ')[0]} #${n}`);
      if (n === 0) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      else sock.destroy();
    });
    const p = pool(up.port);
    expect((await call(p)).body).toBe('ok');
    // Second request on the kept connection: closed, then sent again on a fresh one.
    expect(await call(p, { method: 'PUT', body: Buffer.from('same body') })).toMatchObject({ status: 200, body: 'ok' });
    expect(up.connections()).toBe(2);
    expect(seen).toEqual(['GET #0', 'PUT #1', 'PUT #0']);
    // A POST on the kept connection is not replayed.
    const post = await call(p, { method: 'POST', body: Buffer.from('x') });
    expect(['UND_ERR_SOCKET', 'ECONNRESET']).toContain(post.error?.code);
    expect(up.connections()).toBe(2);
  });

  test('a new connection closed unanswered is not retried', async () => {
    const up = await rawUpstream((_head, sock) => sock.destroy());
    const o = await call(pool(up.port));
    expect(['UND_ERR_SOCKET', 'ECONNRESET']).toContain(o.error?.code);
    expect(up.connections()).toBe(1);
  });

  test('bytes on an idle connection drop it; the next request is unaffected', async () => {
    let first: Socket | undefined;
    const up = await rawUpstream((_head, sock) => {
      first ??= sock;
      sock.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx');
    });
    const p = pool(up.port);
    await call(p);
    first!.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfalse');
    await once(first!, 'close');
    expect(await call(p)).toMatchObject({ status: 200, body: 'x' });
    expect(up.connections()).toBe(2);
  });

  test('uploads: a buffer gets a Content-Length, a stream without one goes chunked, a stream with one goes as is', async () => {
    const up = await httpUpstream((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => res.end(JSON.stringify({ cl: req.headers['content-length'] ?? null, te: req.headers['transfer-encoding'] ?? null, body: Buffer.concat(chunks).toString() })));
    });
    const p = pool(up.port);
    const buffered = await call(p, { method: 'PUT', body: Buffer.from('buffered') });
    expect(JSON.parse(buffered.body)).toEqual({ cl: '8', te: null, body: 'buffered' });
    expect(buffered.sent).toBe(8);
    const chunked = await call(p, { method: 'POST', body: Readable.from([Buffer.from('one,'), Buffer.from('two')]) });
    expect(JSON.parse(chunked.body)).toEqual({ cl: null, te: 'chunked', body: 'one,two' });
    const sized = await call(p, { method: 'POST', headers: ['host', 'x', 'content-length', '7'], body: Readable.from([Buffer.from('one,'), Buffer.from('two')]) });
    expect(JSON.parse(sized.body)).toEqual({ cl: '7', te: null, body: 'one,two' });
    const empty = await call(p, { method: 'POST' });
    expect(JSON.parse(empty.body)).toEqual({ cl: '0', te: null, body: '' });
  });

  test('a stream longer or shorter than its Content-Length fails the request', async () => {
    const up = await httpUpstream((req, res) => {
      req.resume();
      req.on('end', () => res.end('done'));
    });
    const p = pool(up.port);
    const longer = await call(p, { method: 'POST', headers: ['host', 'x', 'content-length', '3'], body: Readable.from([Buffer.from('four')]) });
    expect(longer.error?.code).toBe('UND_ERR_REQ_CONTENT_LENGTH_MISMATCH');
    const shorter = await call(p, { method: 'POST', headers: ['host', 'x', 'content-length', '9'], body: Readable.from([Buffer.from('four')]) });
    expect(shorter.error?.code).toBe('UND_ERR_REQ_CONTENT_LENGTH_MISMATCH');
  });

  test('an answer before the upload ended: the response is delivered, the body stream is stopped, the connection closed', async () => {
    const up = await rawUpstream((_head, sock) => {
      sock.write('HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\n\r\nbig');
    });
    const p = pool(up.port);
    const stream = new Readable({ read() {} });
    stream.push(Buffer.from('part one'));
    const o = await call(p, { method: 'POST', body: stream });
    expect(o).toMatchObject({ status: 413, body: 'big' });
    expect(stream.destroyed).toBe(true);
    await call(p);
    expect(up.connections()).toBe(2);
  });

  test('a handler that pauses gets nothing until it resumes, then the rest in order', async () => {
    const up = await rawUpstream((_head, sock) => {
      void writeSlowly(sock, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n3\r\nghi\r\n0\r\n\r\n');
    });
    let pausedAt = -1;
    let during = 0;
    const p = pool(up.port);
    const o = await call(p, {
      onData: (c, chunk) => {
        if (pausedAt === -1 && chunk.length > 0) {
          pausedAt = Date.now();
          c.pause();
          setTimeout(() => {
            during = 0;
            c.resume();
          }, 50);
        } else if (c.paused) during++;
      },
    });
    expect(o.body).toBe('abcdefghi');
    expect(during).toBe(0);
  });

  test('response timeout and body idle timeout', async () => {
    const up = await rawUpstream((head, sock) => {
      if (head.startsWith('GET /body ')) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
    });
    const p = pool(up.port);
    expect((await call(p, { path: '/head', headersTimeout: 100 })).error?.code).toBe('UND_ERR_HEADERS_TIMEOUT');
    const body = await call(p, { path: '/body', bodyTimeout: 100 });
    expect(body).toMatchObject({ status: 200, body: 'abc' });
    expect(body.error?.code).toBe('UND_ERR_BODY_TIMEOUT');
  });

  test('errors: refused connection, reset before the response, body cut short, bad framing, oversized head', async () => {
    const gone = createServer().listen(0, '127.0.0.1');
    await once(gone, 'listening');
    const refusedPort = (gone.address() as AddressInfo).port;
    gone.close();
    await once(gone, 'close');
    expect((await call(pool(refusedPort))).error?.code).toBe('ECONNREFUSED');

    const up = await rawUpstream((head, sock) => {
      const path = head.split(' ')[1];
      if (path === '/reset') sock.destroy();
      else if (path === '/short') sock.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
      else if (path === '/cl-te') sock.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
      else if (path === '/huge') sock.write(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    });
    const p = pool(up.port);
    expect((await call(p, { path: '/reset' })).error?.code).toBe('UND_ERR_SOCKET');
    const short = await call(p, { path: '/short' });
    expect(short).toMatchObject({ status: 200, body: 'abc' });
    expect(short.error?.code).toBe('UND_ERR_RES_CONTENT_LENGTH_MISMATCH');
    expect((await call(p, { path: '/cl-te' })).error?.code).toBe('HPE_UNEXPECTED_CONTENT_LENGTH');
    expect((await call(p, { path: '/huge' })).error?.code).toBe('HPE_HEADER_OVERFLOW');
  });

  test('abort from onResponseStart: one error, after the call returned, and the connection is closed', async () => {
    const up = await rawUpstream((_head, sock) => {
      sock.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello');
    });
    const p = pool(up.port);
    let inside = false;
    let errorInside: boolean | undefined;
    const reason = Object.assign(new Error('bad headers'), { code: 'X_TEST' });
    const o = await new Promise<Outcome>((resolve) => {
      const out: Outcome = { interim: [], rawHeaders: [], body: '', sent: 0 };
      p.dispatch({ method: 'GET', path: '/', headers: ['host', 'x'] } as Dispatcher.DispatchOptions, {
        onResponseStart: (c: Dispatcher.DispatchController) => {
          inside = true;
          c.abort(reason);
          inside = false;
        },
        onResponseData: (_c: unknown, chunk: Buffer) => {
          out.body += chunk.toString();
        },
        onResponseEnd: () => resolve(out),
        onResponseError: (_c: unknown, err: Error) => {
          errorInside = inside;
          out.error = err;
          resolve(out);
        },
      } as unknown as Dispatcher.DispatchHandler);
    });
    expect(o.error).toBe(reason);
    expect(o.body).toBe('');
    expect(errorInside).toBe(false);
    await call(p);
    expect(up.connections()).toBe(2);
  });

  test('close() lets the request in flight finish, then refuses new ones', async () => {
    let answer: (() => void) | undefined;
    const up = await rawUpstream((_head, sock) => {
      answer = () => sock.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate');
    });
    const p = new H1Pool({ host: '127.0.0.1', port: up.port, connectTimeout: 2000, keepAliveTimeout: 4000 });
    const inFlight = call(p);
    while (answer === undefined) await new Promise((r) => setImmediate(r));
    let closed = false;
    const closing = p.close().then(() => (closed = true));
    await new Promise((r) => setImmediate(r));
    expect(closed).toBe(false);
    answer();
    expect((await inFlight).body).toBe('late');
    await closing;
    expect(() => p.dispatch({ method: 'GET', path: '/', headers: [] } as Dispatcher.DispatchOptions, {} as Dispatcher.DispatchHandler)).toThrow(/closed/);
  });

  test('https: checked against the IP without SNI, or against a name sent as SNI; later connections resume the TLS session', async () => {
    const ca = await makeCa();
    const leaf = await makeLeaf(['127.0.0.1', 'api.internal'], ca);
    const seen: { sni: string | false; resumed: boolean }[] = [];
    const server = createHttpsServer({ cert: leaf.cert, key: leaf.key }, (_req, res) => res.end('tls'));
    server.on('secureConnection', (s: TLSSocket) => seen.push({ sni: (s as TLSSocket & { servername: string | false }).servername, resumed: s.isSessionReused() }));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    closers.push(async () => {
      server.closeAllConnections();
      server.close();
    });
    const port = (server.address() as AddressInfo).port;
    const tlsPool = (servername: string | undefined, trusted: string): H1Pool => {
      const p = new H1Pool({ host: '127.0.0.1', port, connectTimeout: 2000, keepAliveTimeout: 4000, tls: { servername, ca: trusted, rejectUnauthorized: true } });
      closers.push(() => p.close());
      return p;
    };
    const byIp = tlsPool(undefined, ca.cert);
    expect(await call(byIp)).toMatchObject({ status: 200, body: 'tls' });
    expect(seen[0].sni).toBe(false);
    // Several at once: new connections, each offered the first one's session.
    const many = await Promise.all([call(byIp), call(byIp), call(byIp)]);
    for (const o of many) expect(o.body).toBe('tls');
    expect(seen.length).toBeGreaterThan(1);
    expect(seen.slice(1).every((c) => c.resumed)).toBe(true);
    const byName = tlsPool('api.internal', ca.cert);
    expect((await call(byName)).body).toBe('tls');
    expect(seen.at(-1)!.sni).toBe('api.internal');
    // A certificate from another CA: a connect-time error, before anything was sent.
    const other = await makeCa('another CA');
    const refused = await call(tlsPool('api.internal', other.cert));
    expect(refused.error?.code).toMatch(/CERT|SIGNATURE|ISSUER/);
  });

  test('a path with a space or a control byte is refused before anything is sent', async () => {
    const up = await rawUpstream(() => {});
    const p = pool(up.port);
    expect(() => p.dispatch({ method: 'GET', path: '/a b', headers: [] } as Dispatcher.DispatchOptions, {} as Dispatcher.DispatchHandler)).toThrow(/invalid request path/);
    expect(() => p.dispatch({ method: 'GET', path: '/a\r\nx', headers: [] } as Dispatcher.DispatchOptions, {} as Dispatcher.DispatchHandler)).toThrow(/invalid request path/);
    expect(up.connections()).toBe(0);
  });
});

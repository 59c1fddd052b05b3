// Request smuggling and parsing (issue 5; RFC 9112 §2–§7, RFC 9110 §7, RFC 9113 §8): every input
// below is sent over a raw socket; "closed" means waygate closed the connection, "upstream" is the
// number of bytes the upstream received for that input (0 = nothing forwarded). "Node" = refused by
// Node's HTTP parser before any waygate code runs; "waygate" = src/server/validate.ts (or
// resolveRequest / forward/headers.ts where noted).
//
// | input                                                        | refused by      | status | closed | upstream |
// | ------------------------------------------------------------ | --------------- | ------ | ------ | -------- |
// | two Host lines (a.test, evil.test)                           | waygate         | 400    | yes    | 0        |
// | two Host lines, different case (Host / host)                 | waygate         | 400    | yes    | 0        |
// | empty Host (HTTP/1.1 and HTTP/1.0)                           | waygate         | 400    | yes    | 0        |
// | no Host in HTTP/1.1                                          | Node            | 400    | yes    | 0        |
// | Host with userinfo (evil.test@a.test)                        | resolveRequest  | 400    | yes    | 0        |
// | Host with a space inside                                     | resolveRequest  | 400    | yes    | 0        |
// | Host with bad port (:99999, :8x)                             | resolveRequest  | 400    | yes    | 0        |
// | GET http://evil.test/ with Host: a.test                      | waygate         | 400    | yes    | 0        |
// | GET http://evil.test@a.test/ with Host: a.test               | waygate         | 400    | yes    | 0        |
// | GET HTTP://A.test:80/x with Host: a.test (agrees)            | —               | 200    | —      | served   |
// | fragment in target (/a#b)                                    | resolveRequest  | 400    | yes    | 0        |
// | GET * (asterisk form)                                        | resolveRequest  | 400    | yes    | 0        |
// | target of 8 KiB + 1 byte                                     | waygate         | 414    | no (*) | 0        |
// | target of exactly 8 KiB                                      | —               | 200    | —      | served   |
// | invalid method token (G(T)                                   | Node            | 400    | yes    | 0        |
// | HTTP/0.9 request line                                        | waygate         | 400    | yes    | 0        |
// | "HTTP/2.0" request line on HTTP/1                            | waygate         | 400    | yes    | 0        |
// | HTTP/1.2                                                     | Node            | 400    | yes    | 0        |
// | CL.TE (CL: 6 + TE: chunked, "0\r\n\r\nG"; and a smuggled GET) | Node            | 400    | yes    | 0        |
// | TE.CL (CL: 4 + TE: chunked, 5c chunk holding a GPOST)        | Node            | 400    | yes    | 0        |
// | TE: chunked then Content-Length                              | Node            | 400    | yes    | 0        |
// | two differing Content-Length                                 | Node            | 400    | yes    | 0        |
// | TE: identity, chunked                                        | waygate         | 400    | yes    | 0        |
// | TE: gzip, chunked                                            | waygate         | 400    | yes    | 0        |
// | TE: chunked, chunked                                         | Node            | 400    | yes    | 0        |
// | TE: ,chunked                                                 | waygate         | 400    | yes    | 0        |
// | TE: gzip + TE: chunked (two lines)                           | waygate         | 400    | yes    | 0        |
// | TE: chunked + TE: chunked (two lines)                        | Node            | 400    | yes    | 0        |
// | TE: xchunked (Node would hand it to the handler)             | waygate         | 400    | yes    | 0        |
// | TE: chunked in HTTP/1.0                                      | waygate         | 400    | yes    | 0        |
// | chunk size "0x3"                                             | Node (body)     | 400    | yes    | 0        |
// | obs-fold (X-A: b\r\n c)                                      | Node            | 400    | yes    | 0        |
// | space before the colon (Transfer-Encoding : chunked)         | Node            | 400    | yes    | 0        |
// | NUL in a header value                                        | Node            | 400    | yes    | 0        |
// | bare LF line endings                                         | Node            | 400    | yes    | 0        |
// | 101 header fields                                            | Node (maxHeadersCount = 100) | 431 | yes | 0   |
// | 100 header fields                                            | —               | 200    | —      | served   |
// | 17 KiB of header bytes (limits.maxHeaderSize 16kb)           | Node            | 431    | yes    | 0        |
// | dup-Host request + pipelined GET in the same write           | waygate         | 400 only | yes  | 0        |
// | TE: gzip, chunked request + pipelined GET                    | waygate         | 400 only | yes  | 0        |
// | GET /../x + pipelined GET                                    | resolveRequest + waygate | 400 only | yes | 0 |
// | two pipelined GETs (control)                                 | —               | 200, 200 in order | — | served |
// | chunked POST "hello world" (control); TE: CHUNKED            | —               | 200    | —      | served   |
// | GET with a Content-Length body (control)                     | —               | 200    | —      | served   |
// | curl-like GET (control)                                      | —               | 200    | —      | served   |
// | X_Forwarded_For: 6.6.6.6, X_Custom (underscore names)        | headers.ts drops them | 200 | —  | served without them; XFF = peer |
// | Upgrade: h2c + HTTP2-Settings (curl --http2)                 | listener.ts + headers.ts | 200 HTTP/1.1 (no 101) | — | served without Upgrade/HTTP2-Settings |
// | HTTPS, HTTP/1.1: no Host / two Host / TE gzip, chunked       | Node / waygate / waygate | 400 | yes | 0      |
// | HTTPS, HTTP/1.1: 101 header fields                           | Node            | 431    | yes    | 0        |
// | HTTPS, HTTP/1.1: Upgrade: h2c                                | —               | 200    | —      | served without Upgrade |
// | HTTP/2: host: evil.test with :authority localhost            | waygate         | 400    | stream | 0        |
// | HTTP/2: 101 header fields                                    | waygate         | 431    | stream | 0        |
// | HTTP/2: x_forwarded_for                                      | headers.ts drops it | 200 | —     | served without it |
// (*) 414 comes after a complete, correctly framed request, so the connection stays usable (the
//     pipelined request behind it is served); the handler closes HTTP/1.1 connections on 400 only.
//
// Upstream responses (raw TCP upstream, retries 0):
// | upstream response                                             | client gets |
// | ------------------------------------------------------------- | ----------- |
// | Content-Length + Transfer-Encoding: chunked (either order)    | 502         |
// | Content-Length: 2 + Content-Length: 5                         | 502         |
// | Content-Length: 2, 5                                          | 502         |
// | Content-Length: 5 + Content-Length: 5 (identical)             | 502         |
// | obs-fold in a response header                                 | 502         |
// | TE: chunked twice                                             | 502         |
// | TE: gzip, chunked (any coding but one chunked; issue 12 #4)   | 502         |
// | bad chunk size after a 200 head                               | connection closed, no status line, no body |
// Both upstream clients refuse these (HPE_* → upstream_bad_response; test/upstream/conformance).
import { connect as h2connect } from 'node:http2';
import type { OutgoingHttpHeaders } from 'node:http2';
import { createServer as createNetServer, connect } from 'node:net';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { upstreamRequestHeaders } from '../../src/forward/headers.ts';
import { MAX_HEADER_FIELDS, MAX_TARGET_LENGTH } from '../../src/server/validate.ts';
import { startGateway, startHttpsGateway, startUpstream } from '../helpers.ts';
import type { HttpsTestGateway, TestGateway, Upstream } from '../helpers.ts';

let up: Upstream;
/** Bytes the upstream received on all its connections (so "nothing forwarded" means zero bytes). */
let upBytes = 0;
let bad: NetServer;
let badPort = 0;
let gw: TestGateway;

// Upstream responses with ambiguous framing, chosen by the request path.
const BAD_RESPONSES: Record<string, string> = {
  '/bad/cl-te': 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  '/bad/te-cl': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n',
  '/bad/cl-cl': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nhello',
  '/bad/cl-list': 'HTTP/1.1 200 OK\r\nContent-Length: 2, 5\r\n\r\nhello',
  '/bad/cl-same': 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello',
  '/bad/te-te': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  '/bad/te-gzip-chunked': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  '/bad/obs-fold': 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: a\r\n b\r\n\r\nhello',
  '/bad/bad-chunk': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
};

beforeAll(async () => {
  up = await startUpstream();
  up.server.on('connection', (s: Socket) => s.on('data', (c: Buffer) => (upBytes += c.length)));
  // A raw upstream that answers each request with the bytes BAD_RESPONSES names for its path.
  bad = createNetServer((sock) => {
    let buf = '';
    sock.on('error', () => {});
    sock.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      if (!buf.includes('\r\n\r\n')) return;
      const path = buf.split(' ')[1];
      sock.end(BAD_RESPONSES[path] ?? 'HTTP/1.1 500 Unknown\r\nContent-Length: 0\r\n\r\n');
    });
  });
  await new Promise<void>((r) => bad.listen(0, '127.0.0.1', r));
  badPort = (bad.address() as AddressInfo).port;
  gw = await startGateway(`
pools:
  p: { targets: ["${up.url}"] }
  bad: { targets: ["http://127.0.0.1:${badPort}"], retries: 0 }
routes:
  - { name: bad, match: { path: /bad/* }, pool: bad }
  - { name: r, pool: p }
`);
});
afterAll(async () => {
  await gw.close();
  await up.close();
  await new Promise<void>((r) => bad.close(() => r()));
});

interface Outcome {
  /** Everything received, latin1. */
  reply: string;
  /** First line of the reply. */
  status: string;
  /** True when waygate closed the connection (false: still open after `waitMs`). */
  closed: boolean;
}

/**
 * Sends raw bytes on a new connection (TLS with ALPN http/1.1 when `tlsPort` is given) and waits
 * until waygate closes it or `waitMs` passes.
 */
function exchange(bytes: string | Buffer, opts: { waitMs?: number; tlsPort?: number } = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const sock = opts.tlsPort === undefined
      ? connect(gw.port, '127.0.0.1')
      : tlsConnect({ port: opts.tlsPort, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    const chunks: Buffer[] = [];
    const done = (closed: boolean): void => {
      clearTimeout(timer);
      const reply = Buffer.concat(chunks).toString('latin1');
      resolve({ reply, status: reply.split('\r\n')[0], closed });
    };
    const timer = setTimeout(() => {
      sock.removeAllListeners('close');
      sock.destroy();
      done(false);
    }, opts.waitMs ?? 2000);
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', () => {}); // ECONNRESET after a refusal still counts as closed
    sock.on('close', () => done(true));
    sock.write(bytes);
  });
}

/** Sends `bytes`, expects `status` and a closed connection, and that the upstream got nothing. */
async function refused(bytes: string | Buffer, status = 400, tlsPort?: number): Promise<Outcome> {
  const seenBefore = up.seen.length;
  const bytesBefore = upBytes;
  const o = await exchange(bytes, { tlsPort });
  // Anything forwarded would be on the loopback within this time.
  await new Promise((r) => setTimeout(r, 50));
  expect(o.status).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
  expect(o.closed).toBe(true);
  expect(up.seen.length - seenBefore).toBe(0);
  expect(upBytes - bytesBefore).toBe(0);
  return o;
}

/** Counts "HTTP/1.1 NNN" status lines in a raw reply. */
function statuses(reply: string): string[] {
  return [...reply.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1]);
}

describe('Host', () => {
  test('two Host headers: 400, closed, nothing forwarded (Node keeps only the first)', async () => {
    await refused('GET / HTTP/1.1\r\nHost: a.test\r\nHost: evil.test\r\n\r\n');
  });
  test('two Host headers of different case: 400', async () => {
    await refused('GET / HTTP/1.1\r\nHost: a.test\r\nhost: a.test\r\n\r\n');
  });
  test('an empty Host in HTTP/1.1: 400', async () => {
    await refused('GET / HTTP/1.1\r\nHost: \r\n\r\n');
  });
  test('an empty Host in HTTP/1.0: 400', async () => {
    await refused('GET / HTTP/1.0\r\nHost:\r\n\r\n');
  });
  test('no Host in HTTP/1.1: 400 (Node)', async () => {
    await refused('GET / HTTP/1.1\r\n\r\n');
  });
  test('userinfo in Host: 400', async () => {
    await refused('GET / HTTP/1.1\r\nHost: evil.test@a.test\r\n\r\n');
  });
  test('a space inside Host: 400', async () => {
    await refused('GET / HTTP/1.1\r\nHost: a.test evil.test\r\n\r\n');
  });
  test('a bad port in Host: 400', async () => {
    await refused('GET / HTTP/1.1\r\nHost: a.test:99999\r\n\r\n');
    await refused('GET / HTTP/1.1\r\nHost: a.test:8x\r\n\r\n');
  });
});

describe('request target', () => {
  test('absolute form whose authority differs from Host: 400', async () => {
    await refused('GET http://evil.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n');
  });
  test('absolute form with userinfo: 400', async () => {
    await refused('GET http://evil.test@a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n');
  });
  test('absolute form that agrees with Host (case and default port aside) is served', async () => {
    const o = await exchange('GET HTTP://A.test:80/x?q=1 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n');
    expect(o.status).toBe('HTTP/1.1 200 OK');
    expect(up.seen.at(-1)!.url).toBe('/x?q=1');
  });
  test('a fragment in the target: 400', async () => {
    await refused('GET /a#b HTTP/1.1\r\nHost: a.test\r\n\r\n');
  });
  test('asterisk form on GET: 400', async () => {
    await refused('GET * HTTP/1.1\r\nHost: a.test\r\n\r\n');
  });
  test(`a target longer than ${MAX_TARGET_LENGTH} bytes: 414, nothing forwarded; framing is intact so the connection stays usable`, async () => {
    const seenBefore = up.seen.length;
    const long = '/' + 'a'.repeat(MAX_TARGET_LENGTH);
    const o = await exchange(`GET ${long} HTTP/1.1\r\nHost: a.test\r\n\r\nGET /after HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n`);
    expect(o.status).toMatch(/^HTTP\/1\.1 414 /);
    expect(statuses(o.reply)).toEqual(['414', '200']);
    expect(up.seen.slice(seenBefore).map((s) => s.url)).toEqual(['/after']);
  });
  test(`a target of exactly ${MAX_TARGET_LENGTH} bytes is served`, async () => {
    const o = await exchange(`GET /${'a'.repeat(MAX_TARGET_LENGTH - 1)} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n`);
    expect(o.status).toBe('HTTP/1.1 200 OK');
  });
});

describe('request line', () => {
  test('an invalid method token: 400 (Node)', async () => {
    await refused('G(T / HTTP/1.1\r\nHost: a.test\r\n\r\n');
  });
  test('an HTTP/0.9-style version: 400', async () => {
    await refused('GET / HTTP/0.9\r\nHost: a.test\r\n\r\n');
  });
  test('"HTTP/2.0" on an HTTP/1 connection: 400', async () => {
    await refused('GET / HTTP/2.0\r\nHost: a.test\r\n\r\n');
  });
  test('HTTP/1.2: 400 (Node)', async () => {
    await refused('GET / HTTP/1.2\r\nHost: a.test\r\n\r\n');
  });
});

describe('Transfer-Encoding and Content-Length', () => {
  test('classic CL.TE: 400 (Node), the smuggled request goes nowhere', async () => {
    await refused('POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG');
    await refused('POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 49\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\nX: x');
  });
  test('classic TE.CL: 400 (Node)', async () => {
    await refused('POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 15\r\n\r\nx=1\r\n0\r\n\r\n');
  });
  test('Transfer-Encoding: chunked before Content-Length: 400 (Node)', async () => {
    await refused('POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n');
  });
  test('two differing Content-Length headers: 400 (Node)', async () => {
    await refused('POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd');
  });
  test('Transfer-Encoding "identity, chunked": 400', async () => {
    await refused('POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n');
  });
  test('Transfer-Encoding "gzip, chunked": 400', async () => {
    await refused('POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n');
  });
  test('Transfer-Encoding "chunked, chunked": 400 (Node)', async () => {
    await refused('POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n');
  });
  test('Transfer-Encoding ",chunked": 400', async () => {
    await refused('POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n');
  });
  test('Transfer-Encoding split over two lines (gzip, then chunked): 400', async () => {
    await refused('POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
  });
  test('Transfer-Encoding: chunked twice: 400 (Node)', async () => {
    await refused('POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
  });
  test('an unknown coding ("xchunked"): 400', async () => {
    await refused('POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n');
  });
  test('Transfer-Encoding in HTTP/1.0: 400', async () => {
    await refused('POST / HTTP/1.0\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
  });
  test('a malformed chunk size: 400 (Node), the small body fails before any upstream attempt', async () => {
    await refused('POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n');
  });
});

describe('header syntax', () => {
  test('obs-fold (a line folded onto the previous header): 400 (Node)', async () => {
    await refused('GET / HTTP/1.1\r\nHost: a.test\r\nX-A: b\r\n c\r\n\r\n');
  });
  test('a space before the colon: 400 (Node)', async () => {
    await refused('GET / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n');
  });
  test('NUL in a header value: 400 (Node)', async () => {
    await refused('GET / HTTP/1.1\r\nHost: a.test\r\nX-A: b\0c\r\n\r\n');
  });
  test('a bare LF line ending: 400 (Node)', async () => {
    await refused('GET / HTTP/1.1\nHost: a.test\n\n');
  });
});

describe('limits', () => {
  test(`more than ${MAX_HEADER_FIELDS} header fields: 431 (Node, via maxHeadersCount), closed`, async () => {
    const extra = Array.from({ length: MAX_HEADER_FIELDS }, (_, i) => `X-H${i}: v\r\n`).join('');
    await refused(`GET / HTTP/1.1\r\nHost: a.test\r\n${extra}\r\n`, 431);
  });
  test(`exactly ${MAX_HEADER_FIELDS} header fields are served`, async () => {
    const extra = Array.from({ length: MAX_HEADER_FIELDS - 2 }, (_, i) => `X-H${i}: v\r\n`).join('');
    const o = await exchange(`GET / HTTP/1.1\r\nHost: a.test\r\n${extra}Connection: close\r\n\r\n`);
    expect(o.status).toBe('HTTP/1.1 200 OK');
  });
  test('header bytes over limits.maxHeaderSize (16kb): 431 (Node), closed', async () => {
    await refused(`GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`, 431);
  });
});

describe('pipelining', () => {
  test('a request pipelined behind a refused one (same write) is not forwarded', async () => {
    const o = await refused('GET / HTTP/1.1\r\nHost: a.test\r\nHost: evil.test\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n');
    expect(statuses(o.reply)).toEqual(['400']);
  });
  test('a request pipelined behind a bad Transfer-Encoding is not forwarded', async () => {
    const o = await refused('POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n');
    expect(statuses(o.reply)).toEqual(['400']);
  });
  test('a request pipelined behind a path refused by normalisation is not forwarded', async () => {
    const o = await refused('GET /../x HTTP/1.1\r\nHost: a.test\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n');
    expect(statuses(o.reply)).toEqual(['400']);
  });
  test('positive control: two pipelined GETs are served in order', async () => {
    const seenBefore = up.seen.length;
    const o = await exchange('GET /one HTTP/1.1\r\nHost: a.test\r\n\r\nGET /two HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n');
    expect(o.closed).toBe(true);
    expect(statuses(o.reply)).toEqual(['200', '200']);
    expect(o.reply.indexOf('"/one"')).toBeLessThan(o.reply.indexOf('"/two"'));
    expect(up.seen.slice(seenBefore).map((s) => s.url)).toEqual(['/one', '/two']);
  });
});

describe('what is forwarded', () => {
  test('positive control: a chunked POST is served with its body', async () => {
    const o = await exchange('POST /up HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n');
    expect(o.status).toBe('HTTP/1.1 200 OK');
    expect(o.reply).toContain('"body":"hello world"');
  });
  test('Transfer-Encoding "CHUNKED" (coding names are case-insensitive) is served', async () => {
    const o = await exchange('POST /up HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: CHUNKED\r\nConnection: close\r\n\r\n2\r\nok\r\n0\r\n\r\n');
    expect(o.status).toBe('HTTP/1.1 200 OK');
    expect(o.reply).toContain('"body":"ok"');
  });
  test('a body on a GET is not refused (RFC 9110 §9.3.1 gives it no meaning, but allows it)', async () => {
    const o = await exchange('GET / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc');
    expect(o.status).toBe('HTTP/1.1 200 OK');
  });
  test('a curl-like request is served', async () => {
    const o = await exchange('GET /c?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nConnection: close\r\n\r\n');
    expect(o.status).toBe('HTTP/1.1 200 OK');
  });
  test('header names with "_" are dropped (no x-forwarded-for alias), the request is served', async () => {
    const o = await exchange('GET /u HTTP/1.1\r\nHost: a.test\r\nX_Forwarded_For: 6.6.6.6\r\nX_Custom: 1\r\nX-Custom: 2\r\nConnection: close\r\n\r\n');
    expect(o.status).toBe('HTTP/1.1 200 OK');
    const raw = up.seen.at(-1)!.rawHeaders;
    const names = raw.filter((_, i) => i % 2 === 0);
    expect(names.some((n) => n.includes('_'))).toBe(false);
    expect(up.seen.at(-1)!.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(up.seen.at(-1)!.headers['x-custom']).toBe('2');
    expect(o.reply).not.toContain('6.6.6.6');
  });
  test('Upgrade: h2c and HTTP2-Settings are stripped; the request is answered as HTTP/1.1', async () => {
    const o = await exchange('GET /h2c HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n', { waitMs: 500 });
    expect(o.status).toBe('HTTP/1.1 200 OK');
    const h = up.seen.at(-1)!.headers;
    expect(up.seen.at(-1)!.url).toBe('/h2c');
    expect(h.upgrade).toBeUndefined();
    expect(h['http2-settings']).toBeUndefined();
    expect(String(h.connection ?? '')).not.toMatch(/upgrade/i);
  });
  test('on a WebSocket handshake (keepUpgrade) an h2c protocol is still removed from Upgrade', () => {
    const info = { clientIp: '1.2.3.4', proto: 'http', host: 'a.test', trusted: false, requestId: 'r', keepTeTrailers: false, keepUpgrade: true };
    const both = upstreamRequestHeaders(['Host', 'a.test', 'Connection', 'Upgrade', 'Upgrade', 'h2c, websocket', 'HTTP2-Settings', 'AAAA'], info, undefined);
    expect(both).toContain('websocket');
    expect(both.join('\n')).not.toMatch(/h2c|http2-settings/i);
    const only = upstreamRequestHeaders(['Host', 'a.test', 'Connection', 'Upgrade', 'Upgrade', 'H2C'], info, undefined);
    expect(only.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase())).not.toContain('upgrade');
    const ws = upstreamRequestHeaders(['Host', 'a.test', 'Connection', 'Upgrade', 'Upgrade', 'websocket'], info, undefined);
    expect(ws.slice(0, 6)).toEqual(['Host', 'a.test', 'Connection', 'upgrade', 'Upgrade', 'websocket']);
  });
});

describe('upstream responses with ambiguous framing become 502', () => {
  const get = (path: string): Promise<Outcome> => exchange(`GET ${path} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n`);
  // TE twice, and "gzip, chunked" (issue 12 defect 4: it reached the client de-chunked as gzip
  // bytes with nothing declaring them): any transfer coding but one chunked is refused, as in nginx.
  for (const path of ['/bad/cl-te', '/bad/te-cl', '/bad/cl-cl', '/bad/cl-list', '/bad/cl-same', '/bad/obs-fold', '/bad/te-te', '/bad/te-gzip-chunked']) {
    test(`${path.slice(5)}: 502, nothing of the upstream body`, async () => {
      const o = await get(path);
      expect(o.status).toMatch(/^HTTP\/1\.1 502 /);
      expect(o.reply).not.toContain('hello');
    });
  }
  test('a bad chunk after the response head: the client connection is closed, never a complete response', async () => {
    const o = await get('/bad/bad-chunk');
    expect(o.closed).toBe(true);
    expect(o.reply).not.toContain('hello');
    expect(o.reply).not.toMatch(/0\r\n\r\n$/);
  });
});

describe('HTTPS listener (HTTP/1.1 fallback and HTTP/2)', () => {
  let tgw: HttpsTestGateway;
  let tlsPort: number;

  beforeAll(async () => {
    tgw = await startHttpsGateway(`pools: { p: { targets: ["${up.url}"] } }\nroutes: [ { name: r, pool: p } ]\n`);
    tlsPort = tgw.httpsPort;
  });
  afterAll(async () => {
    await tgw.close();
  });

  /** One HTTP/2 request; resolves with its :status (0 when the stream was reset). */
  function h2status(headers: OutgoingHttpHeaders): Promise<number> {
    return new Promise((resolve, reject) => {
      const client = h2connect(`https://127.0.0.1:${tlsPort}`, { rejectUnauthorized: false });
      client.on('error', reject);
      const s = client.request(headers);
      let status = 0;
      s.on('response', (h) => (status = Number(h[':status'])));
      s.on('error', () => {});
      s.on('close', () => {
        client.close();
        resolve(status);
      });
      s.resume();
      s.end();
    });
  }

  test('HTTP/1.1 without Host: 400 (Node)', async () => {
    await refused('GET / HTTP/1.1\r\n\r\n', 400, tlsPort);
  });
  test('two Host headers: 400', async () => {
    await refused('GET / HTTP/1.1\r\nHost: localhost\r\nHost: evil.test\r\n\r\n', 400, tlsPort);
  });
  test('Transfer-Encoding "gzip, chunked": 400', async () => {
    await refused('POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n', 400, tlsPort);
  });
  test(`more than ${MAX_HEADER_FIELDS} header fields: 431 (maxHeadersCount set on this server too)`, async () => {
    const extra = Array.from({ length: MAX_HEADER_FIELDS }, (_, i) => `X-H${i}: v\r\n`).join('');
    await refused(`GET / HTTP/1.1\r\nHost: localhost\r\n${extra}\r\n`, 431, tlsPort);
  });
  test('Upgrade: h2c is served as HTTP/1.1, not handed to the upgrade path', async () => {
    const o = await exchange('GET /h2c-tls HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n', { tlsPort });
    expect(o.status).toBe('HTTP/1.1 200 OK');
    expect(up.seen.at(-1)!.url).toBe('/h2c-tls');
    expect(up.seen.at(-1)!.headers.upgrade).toBeUndefined();
  });
  test('HTTP/2: a Host that differs from :authority is refused with 400 and not forwarded', async () => {
    const before = up.seen.length;
    expect(await h2status({ ':path': '/', ':authority': 'localhost', host: 'evil.test' })).toBe(400);
    expect(up.seen.length).toBe(before);
    expect(await h2status({ ':path': '/h2-ok', ':authority': 'localhost:443', host: 'LOCALHOST' })).toBe(200);
    expect(up.seen.at(-1)!.url).toBe('/h2-ok');
  });
  test(`HTTP/2: more than ${MAX_HEADER_FIELDS} header fields: 431, not forwarded`, async () => {
    const before = up.seen.length;
    const many: OutgoingHttpHeaders = { ':path': '/', ':authority': 'localhost' };
    for (let i = 0; i <= MAX_HEADER_FIELDS; i++) many[`x-h${i}`] = 'v';
    expect(await h2status(many)).toBe(431);
    expect(up.seen.length).toBe(before);
  });
  test('HTTP/2: header names with "_" are not forwarded', async () => {
    expect(await h2status({ ':path': '/h2-underscore', ':authority': 'localhost', x_forwarded_for: '6.6.6.6' })).toBe(200);
    expect(up.seen.at(-1)!.url).toBe('/h2-underscore');
    expect(up.seen.at(-1)!.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(up.seen.at(-1)!.rawHeaders.some((n) => n.includes('_'))).toBe(false);
  });
});

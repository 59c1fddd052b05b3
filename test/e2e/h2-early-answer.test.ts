// HTTP/2 uploads answered before their body ended (found by the soak): a POST over HTTP/2 with
// more body than the stream's flow-control window, to a pool that refuses connections, got its
// 502 while the client was still sending; waygate neither read the rest nor reset the stream, so
// the client's last DATA waited for window credit that never came, its stream never closed, its
// session never closed, and waygate held the connection (CLOSE_WAIT once the client gave up).
// Now the stream ends with RST_STREAM NO_ERROR once the response is out (RFC 9113 §8.1), and a
// response sent early by the upstream still arrives whole.
import { once } from 'node:events';
import { createServer } from 'node:http';
import { connect, constants } from 'node:http2';
import type { ClientHttp2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { closedPort, startHttpsGateway } from '../helpers.ts';
import type { HttpsTestGateway } from '../helpers.ts';

// Answers at once with 200 KiB, reading nothing of the request.
const EARLY = Buffer.alloc(200 * 1024, 0x62);
const early = createServer((_req, res) => {
  res.on('error', () => {});
  res.writeHead(200, { 'content-length': EARLY.length });
  res.end(EARLY);
});
let gw: HttpsTestGateway;
let httpsPort = 0;

beforeAll(async () => {
  early.listen(0, '127.0.0.1');
  await once(early, 'listening');
  gw = await startHttpsGateway(`
pools:
  refuse: { targets: ["http://127.0.0.1:${await closedPort()}"] }
  early: { targets: ["http://127.0.0.1:${(early.address() as AddressInfo).port}"] }
routes:
  - { name: refuse, match: { path: /refuse }, pool: refuse }
  - { name: early, match: { path: /early }, pool: early }
`);
  httpsPort = gw.httpsPort;
});

afterAll(async () => {
  await gw.close();
  early.closeAllConnections();
  early.close();
});

/** Resolves with `p`, or rejects naming `what` after 5 s (the bug showed as a wait forever). */
function within<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within 5 s`)), 5000);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** POSTs 300 kB declared over HTTP/2 to `path`, as much of it as waygate takes; resolves with what came back and how the stream ended. */
async function upload(session: ClientHttp2Session, path: string): Promise<{ status: number; bytes: number; rstCode: number | undefined }> {
  const body = Buffer.alloc(300_000, 0x61);
  const st = session.request({ ':method': 'POST', ':path': path, 'content-length': String(body.length) }, { endStream: false });
  st.on('error', () => {});
  let status = 0;
  let bytes = 0;
  st.on('response', (h) => (status = Number(h[':status'])));
  st.on('data', (c: Buffer) => (bytes += c.length));
  // Written as a client does that minds backpressure: a piece, then wait for 'drain'.
  void (async () => {
    for (let off = 0; off < body.length && !st.destroyed; off += 16384) {
      if (!st.write(body.subarray(off, off + 16384))) await new Promise((r) => st.once('drain', r).once('close', r));
    }
    if (!st.destroyed) st.end();
  })();
  await within(once(st, 'close'), `the stream of ${path}`);
  return { status, bytes, rstCode: st.rstCode };
}

async function httpsConnections(): Promise<number> {
  const text = await (await fetch(`${gw.admin}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('waygate_open_connections{listener="https"}'));
  return Number(line?.split(' ').pop() ?? 0);
}

test.each([
  { path: '/refuse', status: 502, bytes: undefined },
  { path: '/early', status: 200, bytes: EARLY.length },
])('an HTTP/2 upload to $path answered before its body ended: the stream and the session close, waygate keeps no connection', async ({ path, status, bytes }) => {
  for (let round = 0; round < 3; round++) {
    const session = connect(`https://127.0.0.1:${httpsPort}`, { rejectUnauthorized: false });
    session.on('error', () => {});
    const got = await upload(session, path);
    expect(got.status).toBe(status);
    if (bytes !== undefined) expect(got.bytes).toBe(bytes);
    // Ended either by the client's own END_STREAM or by waygate's RST_STREAM NO_ERROR, never by an error.
    expect([undefined, constants.NGHTTP2_NO_ERROR]).toContain(got.rstCode);
    session.close();
    await within(once(session, 'close'), 'the session');
  }
  // The server side of each connection closes once the client's does.
  while ((await httpsConnections()) > 0) await new Promise((r) => setTimeout(r, 50));
  expect(await httpsConnections()).toBe(0);
});

test('an HTTP/2 upload that goes on long after its early answer is read for 1 MiB, then its stream is reset', async () => {
  const session = connect(`https://127.0.0.1:${httpsPort}`, { rejectUnauthorized: false });
  session.on('error', () => {});
  const total = 8 * 1024 * 1024;
  const st = session.request({ ':method': 'POST', ':path': '/refuse', 'content-length': String(total) }, { endStream: false });
  st.on('error', () => {});
  let status = 0;
  st.on('response', (h) => (status = Number(h[':status'])));
  st.resume();
  const piece = Buffer.alloc(16384, 0x61);
  let written = 0;
  // Node's client emits nothing when a stream it is still writing to is reset: it only marks it closed.
  const drainedOrClosed = (): Promise<void> =>
    new Promise((resolve) => {
      const poll = setInterval(() => st.closed && done(), 20);
      const done = (): void => {
        clearInterval(poll);
        st.off('drain', done);
        resolve();
      };
      st.once('drain', done);
    });
  await within((async () => {
    while (!st.closed && written < total) {
      written += piece.length;
      if (!st.write(piece)) await drainedOrClosed();
    }
  })(), 'the reset');
  expect(status).toBe(502);
  expect(st.closed).toBe(true);
  expect(st.rstCode).toBe(constants.NGHTTP2_NO_ERROR);
  // What waygate read and dropped (at least 1 MiB), and far from all of it.
  expect(written).toBeGreaterThan(1024 * 1024);
  expect(written).toBeLessThan(total);
  session.destroy();
  while ((await httpsConnections()) > 0) await new Promise((r) => setTimeout(r, 50));
  expect(await httpsConnections()).toBe(0);
});

// HTTP/2 clients that reset their stream (RST_STREAM CANCEL) while waygate forwards it, to an
// HTTP/1.1 pool and to an h2c pool. The compatibility response reports a reset stream as
// finished, so the exchange took the reset for a completed response and never aborted the
// upstream request: the target's in-flight count went up by one per reset, for good, and the
// upstream connection stayed paused. Now in-flight returns to 0 and each exchange is logged once.
import { once } from 'node:events';
import { createServer } from 'node:http';
import { connect, constants, createServer as createH2cServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startHttpsGateway } from '../helpers.ts';
import type { HttpsTestGateway } from '../helpers.ts';

// A response that starts and never ends on its own: only an abort ends the upstream request.
const PART = Buffer.alloc(16 * 1024, 0x61);
const h1 = createServer((req, res) => {
  req.resume();
  res.on('error', () => {});
  res.write(PART);
});
const h2c = createH2cServer((req, res) => {
  req.resume();
  res.on('error', () => {});
  res.write(PART);
});
h2c.on('sessionError', () => {});
let gw: HttpsTestGateway;
let httpsPort = 0;

beforeAll(async () => {
  for (const s of [h1, h2c]) {
    s.listen(0, '127.0.0.1');
    await once(s, 'listening');
  }
  const port = (s: { address(): unknown }): number => (s.address() as AddressInfo).port;
  gw = await startHttpsGateway(`
pools:
  h1: { targets: ["http://127.0.0.1:${port(h1)}"], timeouts: { idle: 60s } }
  h2c: { targets: ["http://127.0.0.1:${port(h2c)}"], h2: true, timeouts: { idle: 60s } }
routes:
  - { name: h1, match: { path: /h1 }, pool: h1 }
  - { name: h2c, match: { path: /h2c }, pool: h2c }
`);
  httpsPort = gw.httpsPort;
});

afterAll(async () => {
  await gw.close();
  h1.closeAllConnections();
  h1.close();
  h2c.close();
});

test.each(['h1', 'h2c'])('streams reset right after they were sent, to the %s pool: in-flight returns to 0, each exchange logged once', async (pool) => {
  const target = gw.gateway.pools.get(pool)!.targets[0];
  const before = gw.accessLogs().length;
  for (let round = 0; round < 5; round++) {
    const session = connect(`https://127.0.0.1:${httpsPort}`, { rejectUnauthorized: false });
    session.on('error', () => {});
    const streams = Array.from({ length: 3 }, () => {
      const st = session.request({ ':path': `/${pool}` });
      st.on('error', () => {});
      return st;
    });
    // Reset once the responses started (their heads reached the client).
    await Promise.all(streams.map((st) => once(st, 'response')));
    for (const st of streams) {
      st.close(constants.NGHTTP2_CANCEL);
      // Node finishes closing a stream once what already arrived is read.
      st.resume();
    }
    await Promise.all(streams.map((st) => once(st, 'close')));
    session.destroy();
  }
  for (let i = 0; i < 500 && target.inFlight > 0; i++) await new Promise((r) => setTimeout(r, 10));
  expect(target.inFlight).toBe(0);
  const lines = await gw.waitForAccessLogs(before + 15);
  const mine = lines.slice(before).filter((l) => l.route === pool);
  expect(mine.length).toBe(15);
  // The head was sent (200), the body never finished: logged with the status sent, as HTTP/1.1
  // aborts are; what matters is that each exchange ended.
  for (const l of mine) expect(l.status).toBe(200);
});

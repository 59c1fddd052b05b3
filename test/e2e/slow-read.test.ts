// Issue 12 defect 10: slow readers (slowhttptest -X: connections that pipeline requests for a
// large response and read it through a tiny window) starved the service. What it cost: node:http
// emits every pipelined request at once, so each slow connection held one upstream request, one
// upstream connection and a socket read plus a write buffer of response per pipelined request —
// 3× the memory and upstream connections of its share, during the ramp all at once. Pipelined
// requests now go upstream one at a time (SPEC §4), so a connection that reads nothing holds
// exactly one upstream request. The full-size attack with probe latencies, event-loop delay and
// RSS is `bench/slow-read.sh` (speed is measured there, not here).
import { once } from 'node:events';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { send, startGateway } from '../helpers.ts';
import type { TestGateway } from '../helpers.ts';

// Larger than loopback's socket buffers can absorb (a few MiB each way), so a reader that reads
// nothing really holds the response back; streamed with backpressure, so the upstream holds none.
const BIG_CHUNKS = 512;
const CHUNK = Buffer.alloc(64 * 1024, 0x61);
const SLOW = 40;
const PIPELINED = 3;

let gw: TestGateway;
let upstreamRequests = 0;
const upstream = createServer((req, res) => {
  res.on('error', () => {});
  if (req.url === '/big') {
    upstreamRequests++;
    res.setHeader('content-length', BIG_CHUNKS * CHUNK.length);
    Readable.from((function* chunks() {
      for (let i = 0; i < BIG_CHUNKS; i++) yield CHUNK;
    })()).pipe(res);
  } else {
    res.end('ok');
  }
});

beforeAll(async () => {
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  gw = await startGateway(`pools: { web: { targets: ["http://127.0.0.1:${(upstream.address() as AddressInfo).port}"] } }\nroutes: [ { name: web, pool: web } ]\n`);
});

afterAll(async () => {
  await gw.close();
  upstream.closeAllConnections();
  upstream.close();
});

const inFlight = (): number => gw.gateway.pools.get('web')!.targets[0].inFlight;

test(`${SLOW} connections pipelining ${PIPELINED} requests for 32 MiB and reading nothing hold one upstream request each; others are served`, async () => {
  const slow: Socket[] = [];
  const request = 'GET /big HTTP/1.1\r\nHost: a\r\n\r\n'.repeat(PIPELINED);
  for (let i = 0; i < SLOW; i++) {
    const s = connect(gw.port, '127.0.0.1');
    s.on('error', () => {});
    // Never read: the socket stays paused, so the kernel's buffers fill and waygate must wait.
    s.pause();
    s.write(request);
    slow.push(s);
  }
  // Every connection's first request reaches the upstream...
  while (upstreamRequests < SLOW) await new Promise((r) => setTimeout(r, 10));
  // ...and, while they read nothing, none of the requests pipelined behind it. Proving an absence
  // takes a while: long enough for a second request to follow at loopback speed.
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 10));
    expect(upstreamRequests).toBe(SLOW);
  }
  expect(inFlight()).toBe(SLOW);
  // The service meanwhile answers everyone else.
  for (let i = 0; i < 10; i++) expect((await send(`${gw.url}/small`)).status).toBe(200);
  for (const s of slow) s.destroy();
  while (inFlight() > 0) await new Promise((r) => setTimeout(r, 10));
  expect(inFlight()).toBe(0);
});

// RequestBody tells the client's failures from the upstream's. An error the upstream request put
// on the streamed body (an HTTP/2 stream refused or reset under load: undici destroys the body
// with it) was taken for the client leaving: the exchange reset the client's response with no
// status instead of answering for the upstream (found by the soak on h2 pools). The client's own
// failures still count as client_aborted, and the limits as 413.
import { once } from 'node:events';
import { createServer, request } from 'node:http';
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, expect, test } from 'vitest';
import type { GatewayError } from '../../src/errors.ts';
import { RequestBody } from '../../src/forward/body.ts';

const LIMITS = { retryBuffer: 16 * 1024, maxBodySize: 1024 * 1024, idleTimeout: 10_000 };
let server: Server | undefined;

afterEach(() => {
  server?.closeAllConnections();
  server?.close();
});

/** A real server whose first request is handed to `take`; the client sends 100 kB declared, 20 kB of it now. */
async function withUpload(take: (req: IncomingMessage) => void): Promise<{ end(): void; cut(): void }> {
  server = createServer((req) => take(req));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const req = request({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', method: 'POST', headers: { 'content-length': '100000' } });
  req.on('error', () => {});
  req.write(Buffer.alloc(20_000, 0x61));
  return { end: () => req.end(Buffer.alloc(80_000, 0x61)), cut: () => req.destroy() };
}

test('an error the upstream request puts on the streamed body is not the client aborting', async () => {
  const failures: GatewayError[] = [];
  let body: RequestBody | undefined;
  const ready = new Promise<void>((resolve) => {
    void withUpload((req) => {
      body = new RequestBody(req, LIMITS, (err) => failures.push(err));
      body.prepare(resolve);
    });
  });
  await ready;
  const guard = body!.payload as NodeJS.ReadableStream & { destroy(err?: Error): void; destroyed: boolean };
  guard.on('error', () => {});
  // What undici does with a request body when its HTTP/2 stream is refused.
  guard.destroy(Object.assign(new Error('HTTP/2: "stream refused"'), { code: 'UND_ERR_INFO' }));
  await new Promise((r) => setImmediate(r));
  expect(failures.map((f) => f.code)).toEqual([]);
  expect(body!.replayable).toBe(false);
  body!.dispose();
});

test('the client cutting its upload is still client_aborted', async () => {
  const failures: GatewayError[] = [];
  let cut: (() => void) | undefined;
  const failed = new Promise<void>((resolve) => {
    void withUpload((req) => {
      const body = new RequestBody(req, LIMITS, (err) => {
        failures.push(err);
        resolve();
      });
      body.prepare(() => cut!());
    }).then((u) => (cut = u.cut));
  });
  await failed;
  expect(failures.map((f) => f.code)).toEqual(['client_aborted']);
});

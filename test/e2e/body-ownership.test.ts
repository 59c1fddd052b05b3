// Issue 12, defects 1, 2 and 5, through a real waygate process: a request body outlives the
// attempt that reads it, and with no owner its stream's error ended the process. One owner
// (forward/body.ts) now attaches every listener when the body is first seen and disposes of it on
// every exit path. And a request is sent at most 1 + retries times, stale-connection replays
// included, every send counted in the access log's `attempts`.
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { closedPort, routesDir, send, startCli, startUpstream } from '../helpers.ts';
import type { CliProcess, Upstream } from '../helpers.ts';

const CLIENT_IDLE_MS = 300;

/** A TCP server that accepts and never answers: an https:// target stuck in its TLS handshake. */
async function silentServer(): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    // Reads (so it sees the client's close) and never answers.
    s.resume();
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port, sockets };
}

/** Sends a request head declaring `length` body bytes and `sent` of them; resolves with the socket. */
function partialUpload(port: number, path: string, length: number, sent: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1', () => {
      sock.write(`POST ${path} HTTP/1.1\r\nHost: a.test\r\nContent-Length: ${length}\r\n\r\n`);
      sock.write(Buffer.alloc(sent, 0x61), () => resolve(sock));
    });
    sock.on('error', reject);
  });
}

interface StatusTarget {
  url: string;
  inFlight: number;
}

async function targets(admin: string): Promise<StatusTarget[]> {
  const r = await send(`http://${admin}/status`);
  const status = JSON.parse(r.body) as { pools: { targets: StatusTarget[] }[] };
  return status.pools.flatMap((p) => p.targets);
}

/** Polls /status until every target's in-flight is back to 0 (bounded). */
async function drained(admin: string): Promise<StatusTarget[]> {
  for (let i = 0; i < 200; i++) {
    const t = await targets(admin);
    if (t.every((x) => x.inFlight === 0)) return t;
    await new Promise((r) => setTimeout(r, 25));
  }
  return targets(admin);
}

describe('a request body has one owner for its whole life', () => {
  let proxy: CliProcess;
  let healthy: Upstream;
  let silent: Awaited<ReturnType<typeof silentServer>>;

  beforeAll(async () => {
    healthy = await startUpstream();
    silent = await silentServer();
    const refused = await closedPort();
    const dir = await routesDir({
      'routes.yaml': `
pools:
  ok: { targets: ["${healthy.url}"] }
  refused: { targets: ["http://127.0.0.1:${refused}"], retries: 0 }
  refused-h2: { targets: ["http://127.0.0.1:${refused}"], h2: true, retries: 0 }
  refused-undici: { targets: ["http://127.0.0.1:${refused}"], client: undici, retries: 0 }
  handshake: { targets: ["https://127.0.0.1:${silent.port}"], timeouts: { connect: 60s }, retries: 0 }
routes:
  - { name: ok, match: { path: /ok }, pool: ok }
  - { name: refused, match: { path: /refused }, pool: refused }
  - { name: refused-h2, match: { path: /refused-h2 }, pool: refused-h2 }
  - { name: refused-undici, match: { path: /refused-undici }, pool: refused-undici }
  - { name: handshake, match: { path: /handshake }, pool: handshake }
`,
    });
    // Beside the routes directory, not in it (every *.yaml there is a routes file).
    const config = join(dir, '..', `${dir.split('/').pop()}.waygate.yaml`);
    await writeFile(config, `timeouts: { clientIdle: ${CLIENT_IDLE_MS}ms }\n`);
    proxy = await startCli(['--config', config, '--routes', dir, '--http', '127.0.0.1:0', '--https', 'off', '--admin', '127.0.0.1:0', '--log-level', 'warn']);
  });

  afterAll(async () => {
    await proxy?.stop();
    await healthy?.close();
    for (const s of silent?.sockets ?? []) s.destroy();
    silent?.server.close();
  });

  const port = (): number => Number(proxy.addresses.http!.split(':').pop());

  // Defect 1: the body guard stayed piped with its idle timer armed after the attempt failed;
  // clientIdle later its 408 was an uncaught error. Same with undici (h2 and client: undici).
  test.each(['/refused', '/refused-h2', '/refused-undici'])('a streamed upload to %s gets 502, and the process outlives the client idle timeout', async (path) => {
    const sock = await partialUpload(port(), path, 300_000, 2048);
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    // The client keeps its connection open and silent: the guard's stall timer would fire now.
    await once(sock, 'close');
    expect(Buffer.concat(chunks).toString('latin1')).toMatch(/^HTTP\/1\.1 502 /);
    await new Promise((r) => setTimeout(r, CLIENT_IDLE_MS * 4));
    expect(proxy.proc.exitCode).toBeNull();
    expect((await send(`${`http://127.0.0.1:${port()}`}/ok`)).status).toBe(200);
    expect((await drained(proxy.addresses.admin!)).every((t) => t.inFlight === 0)).toBe(true);
  });

  // Defect 2: the builtin client attached the body's 'error' listener only after the connect;
  // a client resetting during the upstream's TLS handshake was an uncaught client_aborted.
  test('clients resetting mid-upload while the upstream TLS handshake hangs: the process lives, in-flight returns to 0', async () => {
    const resets: Promise<unknown>[] = [];
    for (let i = 0; i < 30; i++) {
      resets.push(
        partialUpload(port(), '/handshake', 200_000, 1024 * (1 + (i % 5))).then(async (sock) => {
          // Reset at different moments: at once, after a turn, after a short while.
          if (i % 3 === 1) await new Promise((r) => setImmediate(r));
          if (i % 3 === 2) await new Promise((r) => setTimeout(r, 50 + i * 5));
          sock.resetAndDestroy();
        }),
      );
    }
    await Promise.all(resets);
    expect((await drained(proxy.addresses.admin!)).every((t) => t.inFlight === 0)).toBe(true);
    expect(proxy.proc.exitCode).toBeNull();
    expect((await send(`http://127.0.0.1:${port()}/ok`)).status).toBe(200);
    // The stalled handshakes were abandoned along with their requests.
    for (let i = 0; i < 200 && silent.sockets.size > 0; i++) await new Promise((r) => setTimeout(r, 25));
    expect(silent.sockets.size).toBe(0);
    expect(proxy.stderr()).not.toMatch(/Uncaught|uncaught|ERR_UNHANDLED/);
  });
});

describe('issue 12 defect 5: a request is sent at most 1 + retries times, and every send is counted', () => {
  let proxy: CliProcess;
  let stale: Server;
  let staleSockets: Set<Socket>;
  const sends = new Map<string, number>();

  beforeAll(async () => {
    // Every connection answers its first request and closes on the second without a word (an
    // upstream idle timeout racing the request), recording each request id it was sent.
    staleSockets = new Set();
    stale = createServer((sock) => {
      staleSockets.add(sock);
      sock.on('error', () => {});
      sock.on('close', () => staleSockets.delete(sock));
      let n = 0;
      let buf = '';
      sock.on('data', (d) => {
        buf += d.toString('latin1');
        let end: number;
        while ((end = buf.indexOf('\r\n\r\n')) !== -1) {
          const head = buf.slice(0, end);
          buf = buf.slice(end + 4);
          const id = /\r\nx-request-id: ([^\r]+)/i.exec(head)?.[1] ?? '';
          sends.set(id, (sends.get(id) ?? 0) + 1);
          if (n++ === 0) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
          else sock.destroy();
        }
      });
    });
    stale.listen(0, '127.0.0.1');
    await once(stale, 'listening');
    const url = `http://127.0.0.1:${(stale.address() as AddressInfo).port}`;
    const dir = await routesDir({
      'routes.yaml': `
pools:
  none: { targets: ["${url}"], retries: 0 }
  one: { targets: ["${url}"], retries: 1 }
routes:
  - { name: none, match: { path: /none }, pool: none }
  - { name: one, match: { path: /one }, pool: one }
`,
    });
    proxy = await startCli(['--routes', dir, '--http', '127.0.0.1:0', '--https', 'off', '--admin', '127.0.0.1:0']);
  });

  afterAll(async () => {
    await proxy?.stop();
    for (const s of staleSockets ?? []) s.destroy();
    stale?.close();
  });

  /** Two requests on one kept-alive client connection; the second meets the stale upstream connection. */
  async function secondOnKeptConnection(path: string, id: string): Promise<string> {
    const sock = connect(Number(proxy.addresses.http!.split(':').pop()), '127.0.0.1');
    sock.on('error', () => {});
    await once(sock, 'connect');
    let got = '';
    sock.on('data', (c: Buffer) => (got += c.toString('latin1')));
    sock.write(`GET ${path} HTTP/1.1\r\nHost: a.test\r\nX-Request-Id: warm-${id}\r\n\r\n`);
    while (!got.includes('\r\n\r\nok')) await once(sock, 'data');
    got = '';
    sock.write(`GET ${path} HTTP/1.1\r\nHost: a.test\r\nX-Request-Id: ${id}\r\nConnection: close\r\n\r\n`);
    await once(sock, 'close');
    return got;
  }

  test('retries: 0 — one send, no replay, a 502 with attempts 1', async () => {
    const reply = await secondOnKeptConnection('/none', 'r0');
    expect(reply).toMatch(/^HTTP\/1\.1 502 /);
    expect(sends.get('r0')).toBe(1);
    const line = await proxy.waitForLine((l) => l.msg === 'request' && l.reqId === 'r0');
    expect(line.attempts).toBe(1);
  });

  test('retries: 1 — the stale connection is replayed once on a new one, and the access log counts both sends', async () => {
    const reply = await secondOnKeptConnection('/one', 'r1');
    expect(reply).toMatch(/^HTTP\/1\.1 200 /);
    expect(sends.get('r1')).toBe(2);
    const line = await proxy.waitForLine((l) => l.msg === 'request' && l.reqId === 'r1');
    expect(line.attempts).toBe(2);
  });
});

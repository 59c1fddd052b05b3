// TLS to wss:// targets follows the HTTP path's rules (SPEC §3 `tls`): the server name sent and
// checked is `tls.serverName`, else the target's own host — never the client's Host — and an IP
// target sends no SNI (RFC 6066 §3); the pool's client certificate is presented to an upstream
// that asks for one. Upstreams are node:tls servers recording what each handshake carried.
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startGateway } from '../helpers.ts';
import type { TestGateway } from '../helpers.ts';
import { makeCa, makeLeaf } from '../tls-helpers.ts';
import type { Pem } from '../tls-helpers.ts';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** A TLS WebSocket upstream that accepts every handshake and records each connection's SNI and client certificate. */
interface TlsUpstream {
  port: number;
  /** Per secure connection: the SNI it sent (false: none) and the client certificate's CN, if any. */
  seen: { sni: string | false; clientCn: string | undefined }[];
  close(): Promise<void>;
}

async function tlsUpstream(cert: Pem, o: { requireClientCertFrom?: Pem } = {}): Promise<TlsUpstream> {
  const seen: TlsUpstream['seen'] = [];
  const open = new Set<Socket>();
  const server = createServer({
    cert: cert.cert,
    key: cert.key,
    requestCert: o.requireClientCertFrom !== undefined,
    rejectUnauthorized: o.requireClientCertFrom !== undefined,
    ca: o.requireClientCertFrom?.cert,
  }, (socket: TLSSocket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    socket.on('error', () => {});
    const peer = socket.getPeerCertificate();
    const cn = peer?.subject?.CN;
    seen.push({ sni: socket.servername ?? false, clientCn: Array.isArray(cn) ? cn[0] : cn });
    let head = '';
    socket.on('data', (c: Buffer) => {
      head += c.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      const key = /\r\nsec-websocket-key: *([^\r]+)/i.exec(head)![1];
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${createHash('sha1').update(key + GUID).digest('base64')}\r\n\r\n`);
      socket.end();
    });
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () => new Promise<void>((r) => {
      for (const s of open) s.destroy();
      server.close(() => r());
    }),
  };
}

/** Sends a handshake for `path` with Host `host`; resolves with the status line of the answer. */
function statusOf(port: number, path: string, host: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let buf = '';
    s.on('error', () => {});
    s.on('data', (c: Buffer) => (buf += c.toString('latin1')));
    s.once('close', () => resolve(buf.split('\r\n')[0]));
    s.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
  });
}

/** Polls `check` until it holds (counters that have no event of their own); fails after `ms`. */
async function settles(check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition did not settle in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('TLS to wss:// targets', () => {
  let dir: string;
  let ca: Pem;
  let byIp: TlsUpstream;
  let byName: TlsUpstream;
  let mutual: TlsUpstream;
  let gw: TestGateway;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'waygate-ws-tls-'));
    ca = await makeCa();
    const client = await makeLeaf(['waygate-client'], ca, { clientAuth: true });
    await writeFile(join(dir, 'ca.pem'), ca.cert);
    await writeFile(join(dir, 'client.crt'), client.cert);
    await writeFile(join(dir, 'client.key'), client.key);
    const leaf = await makeLeaf(['localhost', 'ws.internal', '127.0.0.1'], ca);
    byIp = await tlsUpstream(leaf);
    byName = await tlsUpstream(leaf);
    mutual = await tlsUpstream(leaf, { requireClientCertFrom: ca });
    gw = await startGateway(`
pools:
  ip: { targets: ["https://127.0.0.1:${byIp.port}"], tls: { ca: ${dir}/ca.pem } }
  name: { targets: ["https://localhost:${byName.port}"], tls: { ca: ${dir}/ca.pem } }
  pinned: { targets: ["https://127.0.0.1:${byName.port}"], tls: { ca: ${dir}/ca.pem, serverName: ws.internal } }
  mtls: { targets: ["https://127.0.0.1:${mutual.port}"], tls: { ca: ${dir}/ca.pem, cert: ${dir}/client.crt, key: ${dir}/client.key } }
  no-cert: { targets: ["https://127.0.0.1:${mutual.port}"], tls: { ca: ${dir}/ca.pem } }
routes:
  - { name: ip, match: { path: /ip }, pool: ip }
  - { name: name, match: { path: /name }, pool: name }
  - { name: pinned, match: { path: /pinned }, pool: pinned }
  - { name: mtls, match: { path: /mtls }, pool: mtls }
  - { name: no-cert, match: { path: /no-cert }, pool: no-cert }
`);
  });
  afterAll(async () => {
    await gw.close();
    await Promise.all([byIp.close(), byName.close(), mutual.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  test('an IP target sends no SNI and is verified against the certificate\'s IP', async () => {
    expect(await statusOf(gw.port, '/ip', 'evil.example')).toMatch(/^HTTP\/1\.1 101 /);
    expect(byIp.seen.at(-1)!.sni).toBe(false);
  });

  test('a named target sends its own host as SNI, never the client\'s Host', async () => {
    expect(await statusOf(gw.port, '/name', 'evil.example')).toMatch(/^HTTP\/1\.1 101 /);
    expect(byName.seen.at(-1)!.sni).toBe('localhost');
  });

  test('tls.serverName is sent and checked instead', async () => {
    expect(await statusOf(gw.port, '/pinned', 'evil.example')).toMatch(/^HTTP\/1\.1 101 /);
    expect(byName.seen.at(-1)!.sni).toBe('ws.internal');
  });

  test('the pool\'s client certificate is presented; without one, an upstream that requires it is a 502', async () => {
    expect(await statusOf(gw.port, '/mtls', 't')).toMatch(/^HTTP\/1\.1 101 /);
    expect(mutual.seen.at(-1)!.clientCn).toBe('waygate-client');
    expect(await statusOf(gw.port, '/no-cert', 't')).toMatch(/^HTTP\/1\.1 502 /);
    await settles(() => ['ip', 'name', 'pinned', 'mtls', 'no-cert'].every((name) => gw.gateway.pools.get(name)!.targets[0].inFlight === 0));
  });
});

// Upstream protocols (SPEC §3 `tls`, `h2`): https:// targets with a private CA, serverName and
// client certificates; HTTP/2 to targets over TLS (ALPN h2) and in clear text (h2c).
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer as createHttpsServer } from 'node:https';
import type { Server as HttpsServer } from 'node:https';
import { createSecureServer, createServer as createH2cServer } from 'node:http2';
import type { Http2SecureServer, Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { send, startGateway } from '../helpers.ts';
import type { TestGateway } from '../helpers.ts';
import { makeCa, makeLeaf } from '../tls-helpers.ts';

type AnyServer = HttpsServer | Http2SecureServer | Http2Server;

function listen(server: AnyServer): Promise<number> {
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r((server.address() as AddressInfo).port)));
}

/** Answers JSON: the HTTP version the upstream saw, the client certificate's CN, the Host. */
function reporter(req: import('node:http').IncomingMessage | import('node:http2').Http2ServerRequest, res: import('node:http').ServerResponse | import('node:http2').Http2ServerResponse): void {
  const sock = req.socket as TLSSocket;
  const peer = typeof sock.getPeerCertificate === 'function' ? sock.getPeerCertificate() : undefined;
  const body = JSON.stringify({ version: req.httpVersion, clientCn: peer?.subject?.CN ?? null, host: req.headers.host ?? req.headers[':authority'] });
  (res as import('node:http').ServerResponse).writeHead(200, { 'content-type': 'application/json' });
  res.end(body);
}

let dir: string;
let servers: AnyServer[] = [];
let gw: TestGateway;
let ports: Record<string, number>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'waygate-upstream-tls-'));
  const ca = await makeCa();
  const otherCa = await makeCa('someone else');
  const leaf = await makeLeaf(['api.internal'], ca);
  const clientCert = await makeLeaf(['waygate-client'], ca, { clientAuth: true });
  await writeFile(join(dir, 'ca.pem'), ca.cert);
  await writeFile(join(dir, 'other-ca.pem'), otherCa.cert);
  await writeFile(join(dir, 'client.crt'), clientCert.cert);
  await writeFile(join(dir, 'client.key'), clientCert.key);

  const tlsUp = createHttpsServer({ cert: leaf.cert, key: leaf.key }, reporter);
  const mtlsUp = createHttpsServer({ cert: leaf.cert, key: leaf.key, ca: ca.cert, requestCert: true, rejectUnauthorized: true }, reporter);
  const h2Up = createSecureServer({ cert: leaf.cert, key: leaf.key }, reporter);
  const h2cUp = createH2cServer(reporter);
  servers = [tlsUp, mtlsUp, h2Up, h2cUp];
  const [tls, mtls, h2, h2c] = await Promise.all(servers.map(listen));
  ports = { tls, mtls, h2, h2c };

  gw = await startGateway(`
pools:
  private-ca: { targets: ["https://127.0.0.1:${tls}"], tls: { ca: ${dir}/ca.pem, serverName: api.internal }, retries: 0 }
  wrong-ca: { targets: ["https://127.0.0.1:${tls}"], tls: { ca: ${dir}/other-ca.pem, serverName: api.internal }, retries: 0 }
  no-verify: { targets: ["https://127.0.0.1:${tls}"], tls: { verify: false }, retries: 0 }
  mtls:
    targets: ["https://127.0.0.1:${mtls}"]
    tls: { ca: ${dir}/ca.pem, serverName: api.internal, cert: ${dir}/client.crt, key: ${dir}/client.key }
    retries: 0
    healthCheck: { path: /health, interval: 100ms }
  mtls-without-cert: { targets: ["https://127.0.0.1:${mtls}"], tls: { ca: ${dir}/ca.pem, serverName: api.internal }, retries: 0 }
  h2: { targets: ["https://127.0.0.1:${h2}"], tls: { ca: ${dir}/ca.pem, serverName: api.internal }, h2: true }
  h2c: { targets: ["http://127.0.0.1:${h2c}"], h2: true }
routes:
  - { name: private-ca, match: { path: /private-ca }, pool: private-ca }
  - { name: wrong-ca, match: { path: /wrong-ca }, pool: wrong-ca }
  - { name: no-verify, match: { path: /no-verify }, pool: no-verify }
  - { name: mtls, match: { path: /mtls }, pool: mtls }
  - { name: mtls-without-cert, match: { path: /mtls-without-cert }, pool: mtls-without-cert }
  - { name: h2, match: { path: /h2 }, pool: h2 }
  - { name: h2c, match: { path: /h2c }, pool: h2c }
`);
});
afterAll(async () => {
  await gw?.close();
  for (const s of servers) {
    if ('closeAllConnections' in s) s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

const json = async (path: string, headers?: Record<string, string>) => {
  const r = await send(`${gw.url}${path}`, { headers });
  return { status: r.status, body: r.status === 200 ? JSON.parse(r.body) : r.body };
};

describe('https:// targets', () => {
  test('a target whose certificate is signed by the pool CA and names tls.serverName is reached', async () => {
    const r = await json('/private-ca', { host: 'shop.example.com' });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ version: '1.1', host: 'shop.example.com' });
  });

  test('a certificate from another CA is refused: 502', async () => {
    expect((await json('/wrong-ca')).status).toBe(502);
  });

  test('verify: false accepts any certificate', async () => {
    expect((await json('/no-verify')).status).toBe(200);
  });

  test('mutual TLS: the pool presents its client certificate', async () => {
    const r = await json('/mtls');
    expect(r.status).toBe(200);
    expect(r.body.clientCn).toBe('waygate-client');
    expect((await json('/mtls-without-cert')).status).toBe(502);
  });

  // Regression: probes used the pool's CA and name but not its client certificate.
  test('health probes of an mTLS target present the client certificate too', async () => {
    const seen = await new Promise<string | null>((resolve) => {
      (servers[1] as HttpsServer).on('request', (req) => {
        if (req.url === '/health') resolve(String((req.socket as TLSSocket).getPeerCertificate().subject?.CN ?? ''));
      });
    });
    expect(seen).toBe('waygate-client');
    expect(gw.gateway.pools.get('mtls')!.targets[0].available).toBe(true);
  });

  test('an unreadable tls file is an error naming the pool and the file', async () => {
    await expect(startGateway(`pools: { p: { targets: ["https://127.0.0.1:1"], tls: { ca: ${dir}/missing.pem } } }\nroutes: [ { name: r, pool: p } ]\n`)).rejects.toThrow(
      `pools.p.tls.ca: cannot read "${dir}/missing.pem": ENOENT`,
    );
  });
});

describe('h2: true', () => {
  test('speaks HTTP/2 to an https:// target (ALPN h2), passing the Host as :authority', async () => {
    const r = await json('/h2', { host: 'grpc.example.com' });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ version: '2.0', host: 'grpc.example.com' });
  });

  test('speaks HTTP/2 with prior knowledge (h2c) to an http:// target', async () => {
    const r = await json('/h2c');
    expect(r.status).toBe(200);
    expect(r.body.version).toBe('2.0');
  });
});

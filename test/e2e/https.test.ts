// The HTTPS listener as clients see it: ALPN h2 and http/1.1 through the same routes, SNI and
// 421, HSTS, redirect from HTTP, certificates replaced on disk, refused protocol versions, a bad
// file next to good ones, and gRPC (unary, server streaming, trailers) through an h2 pool.
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { connect as h2connect } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { routesDir, send, startCli, startGateway, startUpstream } from '../helpers.ts';
import type { TestGateway, Upstream } from '../helpers.ts';
import { makeCa, makeLeaf } from '../tls-helpers.ts';
import type { Pem } from '../tls-helpers.ts';

/** One HTTPS/1.1 request; resolves with status, headers, body and the certificate served. */
function get(port: number, path: string, o: { servername?: string; host?: string; ca: string }): Promise<{ status: number; headers: import('node:http').IncomingHttpHeaders; body: string; cert: PeerCertificate }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path, servername: o.servername, ca: o.ca, agent: false, headers: { host: o.host ?? o.servername ?? 'localhost' } }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body, cert: (res.socket as import('node:tls').TLSSocket).getPeerCertificate() }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** One HTTP/2 request; resolves with the response headers, body and negotiated protocol. */
function h2get(port: number, path: string, servername: string, ca: string): Promise<{ headers: Record<string, unknown>; body: string; alpn: string | false }> {
  return new Promise((resolve, reject) => {
    const client = h2connect(`https://127.0.0.1:${port}`, { servername, ca, ALPNProtocols: ['h2'] });
    client.on('error', reject);
    const s = client.request({ ':path': path, ':authority': servername });
    let headers: Record<string, unknown> = {};
    let body = '';
    s.on('response', (h) => (headers = h));
    s.on('data', (c) => (body += c));
    s.on('end', () => {
      const alpn = client.alpnProtocol ?? false;
      client.close();
      resolve({ headers, body, alpn });
    });
    s.on('error', reject);
    s.end();
  });
}

let ca: Pem;
let certs: string;
let up: Upstream;
let gw: TestGateway;
let httpsPort: number;

beforeAll(async () => {
  ca = await makeCa();
  certs = await mkdtemp(join(tmpdir(), 'waygate-certs-'));
  const shop = await makeLeaf(['shop.example.com'], ca);
  const wild = await makeLeaf(['*.example.com'], ca);
  const local = await makeLeaf(['localhost', '127.0.0.1'], ca);
  await writeFile(join(certs, 'shop.crt'), shop.cert);
  await writeFile(join(certs, 'shop.key'), shop.key);
  await writeFile(join(certs, 'wild.pem'), wild.cert + wild.key);
  await writeFile(join(certs, 'default.crt'), local.cert);
  await writeFile(join(certs, 'default.key'), local.key);
  await writeFile(join(certs, 'broken.crt'), 'this is not a certificate');
  up = await startUpstream();
  gw = await startGateway(`
pools: { app: { targets: ["${up.url}"] } }
routes: [ { name: app, pool: app } ]
`, (c) => {
    c.certsDir = certs;
    c.listeners.https.address = { host: '127.0.0.1', port: 0 };
    c.listeners.https.hsts = true;
    c.listeners.http.redirectToHttps = true;
  });
  httpsPort = Number(gw.gateway.addresses.https!.split(':').pop());
});
afterAll(async () => {
  await gw.close();
  await up.close();
  await rm(certs, { recursive: true, force: true });
});

describe('the HTTPS listener', () => {
  test('serves HTTP/2 (ALPN h2) through the routes, with :authority as the upstream Host', async () => {
    const r = await h2get(httpsPort, '/h2?x=1', 'shop.example.com', ca.cert);
    expect(r.alpn).toBe('h2');
    expect(r.headers[':status']).toBe(200);
    const seen = JSON.parse(r.body);
    expect(seen.url).toBe('/h2?x=1');
    expect(seen.headers.host).toBe('shop.example.com');
    expect(seen.headers['x-forwarded-proto']).toBe('https');
    expect(r.headers['strict-transport-security']).toBe('max-age=31536000');
  });

  test('serves HTTP/1.1 clients that do not offer h2', async () => {
    const r = await get(httpsPort, '/h1', { servername: 'shop.example.com', ca: ca.cert });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).headers['x-forwarded-proto']).toBe('https');
    expect(r.headers['strict-transport-security']).toBe('max-age=31536000');
  });

  test('SNI picks the certificate: exact name, one-label wildcard, and the default for unknown names', async () => {
    expect((await get(httpsPort, '/', { servername: 'shop.example.com', ca: ca.cert })).cert.subjectaltname).toBe('DNS:shop.example.com');
    expect((await get(httpsPort, '/', { servername: 'api.example.com', ca: ca.cert })).cert.subjectaltname).toBe('DNS:*.example.com');
    const unknown = await new Promise<PeerCertificate>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port: httpsPort, servername: 'unknown.test', rejectUnauthorized: false }, () => {
        resolve(s.getPeerCertificate());
        s.end();
      });
      s.on('error', reject);
    });
    expect(unknown.subjectaltname).toContain('DNS:localhost');
  });

  test('a Host served by another certificate than the SNI name gets 421', async () => {
    const r = await get(httpsPort, '/', { servername: 'shop.example.com', host: 'api.example.com', ca: ca.cert });
    expect(r.status).toBe(421);
    expect(r.body).toBe('misdirected request');
    // Same certificate for both names: served.
    expect((await get(httpsPort, '/', { servername: 'a.example.com', host: 'b.example.com', ca: ca.cert })).status).toBe(200);
  });

  test('refuses TLS 1.1 and a CBC-only client', async () => {
    const attempt = (o: object) => new Promise<string>((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port: httpsPort, servername: 'shop.example.com', rejectUnauthorized: false, ...o }, () => {
        resolve('connected');
        s.end();
      });
      s.on('error', () => resolve('refused'));
    });
    expect(await attempt({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1' })).toBe('refused');
    expect(await attempt({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA' })).toBe('refused');
    expect(await attempt({ maxVersion: 'TLSv1.2' })).toBe('connected');
  });

  test('a bad file is reported by name and the good certificates still serve', async () => {
    const err = gw.logs.find((l) => l.msg === 'certificate not loaded');
    expect(err?.file).toBe(join(certs, 'broken.crt'));
  });

  test('the HTTP listener redirects to the HTTPS origin with 308, keeping path and query', async () => {
    const r = await send(`${gw.url}/cart?item=2`, { headers: { host: 'shop.example.com' } });
    expect(r.status).toBe(308);
    expect(r.headers.location).toBe(`https://shop.example.com:${httpsPort}/cart?item=2`);
  });

  test('a certificate replaced on disk is served to new connections without a restart', async () => {
    const before = await get(httpsPort, '/', { servername: 'shop.example.com', ca: ca.cert });
    const renewed = await makeLeaf(['shop.example.com'], ca);
    const from = gw.logs.length;
    await writeFile(join(certs, 'shop.key'), renewed.key);
    await writeFile(join(certs, 'shop.crt'), renewed.cert);
    const expected = new X509Certificate(renewed.cert).fingerprint256;
    // The watcher may fire between the two writes (key and cert then disagree): wait for the load that has the new certificate.
    await gw.waitForLog((l) => l.msg === 'certificates loaded' && JSON.stringify(l).includes('shop.crt') && new X509Certificate(renewed.cert).fingerprint256 === expected, from);
    let after = await get(httpsPort, '/', { servername: 'shop.example.com', ca: ca.cert });
    for (let i = 0; after.cert.fingerprint256 !== expected && i < 50; i++) {
      await gw.waitForLog((l) => l.msg === 'certificates loaded', gw.logs.length);
      after = await get(httpsPort, '/', { servername: 'shop.example.com', ca: ca.cert });
    }
    expect(before.cert.fingerprint256).not.toBe(expected);
    expect(after.cert.fingerprint256).toBe(expected);
  });
});

describe('gRPC through an h2 pool', () => {
  const passthrough = { requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b };
  const service = {
    unary: { path: '/test.Echo/Unary', requestStream: false, responseStream: false, ...passthrough },
    serverStream: { path: '/test.Echo/ServerStream', requestStream: false, responseStream: true, ...passthrough },
  } as grpc.ServiceDefinition;
  let server: grpc.Server;
  let g: TestGateway;
  let client: grpc.Client & Record<string, Function>;

  beforeAll(async () => {
    server = new grpc.Server();
    server.addService(service, {
      unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        if (call.request.toString() === 'fail') return cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' });
        const trailer = new grpc.Metadata();
        trailer.set('x-trailer', 'from-upstream');
        cb(null, Buffer.from(`echo:${call.request}`), trailer);
      },
      serverStream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        for (let i = 0; i < 3; i++) call.write(Buffer.from(`part${i}:${call.request}`));
        const trailer = new grpc.Metadata();
        trailer.set('x-count', '3');
        call.end(trailer);
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    g = await startGateway(`
pools: { grpc: { targets: ["http://127.0.0.1:${port}"], h2: true } }
routes: [ { name: grpc, match: { path: /test.Echo/* }, pool: grpc } ]
`, (c) => {
      c.certsDir = certs;
      c.listeners.https.address = { host: '127.0.0.1', port: 0 };
    });
    const Client = grpc.makeGenericClientConstructor(service, 'Echo');
    client = new Client(`localhost:${g.gateway.addresses.https!.split(':').pop()}`, grpc.credentials.createSsl(Buffer.from(ca.cert))) as unknown as grpc.Client & Record<string, Function>;
  });
  afterAll(async () => {
    client?.close();
    await g?.close();
    server?.forceShutdown();
  });

  test('a unary call round-trips with its trailers', async () => {
    const { reply, trailers } = await new Promise<{ reply: Buffer; trailers: grpc.Metadata }>((resolve, reject) => {
      let reply: Buffer;
      const call = client.unary(Buffer.from('hello'), (err: Error | null, r: Buffer) => (err ? reject(err) : (reply = r)));
      call.on('status', (s: grpc.StatusObject) => resolve({ reply, trailers: s.metadata }));
    });
    expect(reply.toString()).toBe('echo:hello');
    expect(trailers.get('x-trailer')).toEqual(['from-upstream']);
  });

  test('an error status (trailers-only response) reaches the client', async () => {
    const err = await new Promise<grpc.ServiceError>((resolve) => client.unary(Buffer.from('fail'), (e: grpc.ServiceError) => resolve(e)));
    expect(err.code).toBe(grpc.status.NOT_FOUND);
    expect(err.details).toBe('no such thing');
  });

  test('a server-streaming call delivers every message, then its trailers', async () => {
    const parts: string[] = [];
    const status = await new Promise<grpc.StatusObject>((resolve, reject) => {
      const call = client.serverStream(Buffer.from('x'));
      call.on('data', (d: Buffer) => parts.push(d.toString()));
      call.on('status', resolve);
      call.on('error', reject);
    });
    expect(parts).toEqual(['part0:x', 'part1:x', 'part2:x']);
    expect(status.code).toBe(grpc.status.OK);
    expect(status.metadata.get('x-count')).toEqual(['3']);
  });
});

test('with an empty certs dir the CLI generates a self-signed localhost certificate, warns, and serves HTTPS', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'waygate-empty-certs-'));
  const routes = await routesDir({ 'r.yaml': 'routes: [ { name: hi, respond: { body: secure } } ]\n' });
  const cli = await startCli(['--routes', routes, '--certs', dir, '--http', 'off', '--https', '127.0.0.1:0', '--admin', 'off']);
  try {
    expect(cli.lines.some((l) => String(l.msg).includes('generated a self-signed certificate'))).toBe(true);
    const cert = await readFile(join(dir, 'localhost.crt'), 'utf8');
    expect(new X509Certificate(cert).subjectAltName).toContain('DNS:localhost');
    expect((await stat(join(dir, 'localhost.key'))).mode & 0o777).toBe(0o600);
    const r = await get(Number(cli.addresses.https!.split(':').pop()), '/', { servername: 'localhost', ca: cert });
    expect([r.status, r.body]).toEqual([200, 'secure']);
  } finally {
    await cli.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

describe('slow clients on the HTTPS listener', () => {
  // Regression: node:http2 kept a silent TCP connection for its 120 s handshake timeout and did
  // not apply the header timeout to HTTP/1.1-over-TLS connections.
  let g: TestGateway;
  let port: number;
  beforeAll(async () => {
    g = await startGateway('routes: [ { name: r, respond: { body: ok } } ]\n', (c) => {
      c.certsDir = certs;
      c.listeners.https.address = { host: '127.0.0.1', port: 0 };
      c.timeouts.clientHeader = 400;
      c.timeouts.clientIdle = 30_000;
    });
    port = Number(g.gateway.addresses.https!.split(':').pop());
  });
  afterAll(() => g.close());

  test('a TCP connection that never starts TLS is closed after clientHeader', async () => {
    const { connect } = await import('node:net');
    const closed = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.on('error', () => {});
      s.on('close', () => resolve(true));
    });
    expect(closed).toBe(true);
  });

  test('HTTP/1.1 headers that do not arrive within clientHeader over TLS get 408', async () => {
    const got = await new Promise<string>((resolve) => {
      let text = '';
      const s = tlsConnect({ host: '127.0.0.1', port, servername: 'shop.example.com', ca: ca.cert, ALPNProtocols: ['http/1.1'] }, () => s.write('GET / HTTP/1.1\r\nHost: shop.example.com\r\nX-Slow: '));
      s.on('data', (d) => (text += d));
      s.on('error', () => {});
      s.on('close', () => resolve(text));
    });
    expect(got).toMatch(/^HTTP\/1\.1 408 /);
  });
});

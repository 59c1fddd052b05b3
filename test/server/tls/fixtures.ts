// Real certificates for the certificate tests: a private CA (EC P-256) signing leaf certificates,
// written in the layouts waygate reads; plus a real TLS server and client. Generated once per
// test file (key generation is the slow part) into temp dirs under os.tmpdir().
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { connect, createServer } from 'node:tls';
import type { ConnectionOptions, Server, TLSSocket } from 'node:tls';
import { generate } from 'selfsigned';
import type { CertStore, TlsPolicy } from '../../../src/server/tls/index.ts';
import { secureOptions } from '../../../src/server/tls/index.ts';

/** A certificate (PEM, possibly with its CA after it) and its private key (PEM). */
export interface Pair {
  cert: string;
  key: string;
}

const DAY = 86_400_000;

/** A self-signed CA certificate and key. */
export async function makeCa(): Promise<Pair> {
  const r = await generate([{ name: 'commonName', value: 'waygate test CA' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notBeforeDate: new Date(Date.now() - DAY),
    notAfterDate: new Date(Date.now() + 3650 * DAY),
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  return { cert: r.cert, key: r.private };
}

export interface LeafOptions {
  cn?: string;
  notBefore?: Date;
  notAfter?: Date;
  /** false: no subjectAltName at all (CN only). */
  san?: boolean;
}

/** A leaf certificate for `names` (DNS, or IP when it looks like one) signed by `ca`; `cert` is the leaf only. */
export async function makeLeaf(ca: Pair, names: string[], o: LeafOptions = {}): Promise<Pair> {
  const altNames = names.map((n) => (/^[\d.]+$|:/.test(n) ? { type: 7 as const, ip: n } : { type: 2 as const, value: n }));
  const r = await generate([{ name: 'commonName', value: o.cn ?? names[0] ?? 'no-name' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    ca: { key: ca.key, cert: ca.cert },
    notBeforeDate: o.notBefore ?? new Date(Date.now() - DAY),
    notAfterDate: o.notAfter ?? new Date(Date.now() + 90 * DAY),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      ...(o.san === false ? [] : [{ name: 'subjectAltName' as const, altNames }]),
    ],
  });
  return { cert: r.cert, key: r.private };
}

/** The certificates most tests share. */
export interface Fixtures {
  ca: Pair;
  a: Pair; // a.example.com
  wild: Pair; // *.example.com
  b: Pair; // b.test
  def: Pair; // default.internal
  expired: Pair; // expired.example.org, expired a year ago
  future: Pair; // future.example.org, valid from next month
  soon: Pair; // soon.example.org, expires in 5 days
  cnOnly: Pair; // CN cn-only.example.org, no SAN
}

let cached: Promise<Fixtures> | undefined;

/** Generates the shared certificates once per test file. */
export function fixtures(): Promise<Fixtures> {
  cached ??= (async () => {
    const ca = await makeCa();
    const now = Date.now();
    const [a, wild, b, def, expired, future, soon, cnOnly] = await Promise.all([
      makeLeaf(ca, ['a.example.com']),
      makeLeaf(ca, ['*.example.com']),
      makeLeaf(ca, ['b.test']),
      makeLeaf(ca, ['default.internal']),
      makeLeaf(ca, ['expired.example.org'], { notBefore: new Date(now - 400 * DAY), notAfter: new Date(now - 365 * DAY) }),
      makeLeaf(ca, ['future.example.org'], { notBefore: new Date(now + 30 * DAY), notAfter: new Date(now + 400 * DAY) }),
      makeLeaf(ca, ['soon.example.org'], { notAfter: new Date(now + 5 * DAY) }),
      makeLeaf(ca, [], { cn: 'cn-only.example.org', san: false }),
    ]);
    return { ca, a, wild, b, def, expired, future, soon, cnOnly };
  })();
  return cached;
}

/** A fresh empty temp dir; removed by the returned cleanup. */
export async function tempDir(prefix = 'waygate-certs-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Removes temp dirs made by tempDir. */
export async function removeDirs(dirs: string[]): Promise<void> {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
}

/** Writes `files` (relative path → content) under `dir`, creating subdirectories. */
export async function writeFiles(dir: string, files: Record<string, string>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const p = join(dir, rel);
    await mkdir(dirname(p), { recursive: true });
    await writeFile(p, content);
  }
}

/** A listening TLS echo server on 127.0.0.1 using `store` the way the HTTPS listener does. */
export interface TlsServer {
  server: Server;
  port: number;
  close(): Promise<void>;
}

/**
 * Starts a TLS echo server with secureOptions(policy) on the server, SNI from `store`, and the
 * store's default as the no-SNI context (store.attach). `extra` overrides server options; with
 * `extra`, the default certificate is set from the store once instead of attached, because attach
 * re-applies the policy to the server.
 */
export async function startTlsServer(store: CertStore, policy: TlsPolicy, extra?: Record<string, unknown>): Promise<TlsServer> {
  const sockets = new Set<TLSSocket>();
  const own = extra ? { cert: store.defaultCert?.pem.cert, key: store.defaultCert?.pem.key, ...extra } : {};
  const server = createServer({ ...secureOptions(policy), SNICallback: store.sniCallback, ...own }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.pipe(s);
  });
  if (!extra) store.attach(server, policy);
  // Refused handshakes are what several tests expect; they must not crash the server.
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** What a client saw of a completed handshake. */
export interface Handshake {
  cn: string | undefined;
  san: string | undefined;
  protocol: string | null;
  cipher: string;
  authorized: boolean;
  socket: TLSSocket;
}

/** Connects to 127.0.0.1:`port` and resolves with the server's certificate, or rejects with the handshake error. Leaves the socket open when `keep`. */
export function handshake(port: number, opts: ConnectionOptions = {}, keep = false): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...opts }, () => {
      const peer = socket.getPeerCertificate();
      const cn = peer.subject?.CN;
      resolve({
        cn: Array.isArray(cn) ? cn[0] : cn,
        san: peer.subjectaltname,
        protocol: socket.getProtocol(),
        cipher: socket.getCipher().name,
        authorized: socket.authorized,
        socket,
      });
      if (!keep) socket.destroy();
    });
    socket.once('error', reject);
  });
}

/** Sends `text` on an established echo connection and resolves with what comes back. */
export function echo(socket: TLSSocket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (d: Buffer): void => {
      got += d.toString();
      if (got.length >= text.length) {
        socket.off('data', onData);
        resolve(got);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(text);
  });
}

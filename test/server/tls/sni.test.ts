// CertStore against real handshakes: SNI picks the certificate, unknown names and no SNI get
// the default, wildcards cover one label, and install() swaps what new handshakes get while an
// established connection stays up.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertStore, loadCertsDir } from '../../../src/server/tls/index.ts';
import type { CertLoadResult, TlsPolicy } from '../../../src/server/tls/index.ts';
import { echo, fixtures, handshake, makeLeaf, removeDirs, startTlsServer, tempDir, writeFiles } from './fixtures.ts';
import type { Fixtures, TlsServer } from './fixtures.ts';

const policy: TlsPolicy = { minVersion: 'TLSv1.2' };
let f: Fixtures;
const dirs: string[] = [];
const servers: TlsServer[] = [];

async function loadFiles(files: Record<string, string>): Promise<CertLoadResult> {
  const dir = await tempDir();
  dirs.push(dir);
  await writeFiles(dir, files);
  const r = await loadCertsDir(dir, policy);
  expect(r.errors).toEqual([]);
  return r;
}

async function serve(store: CertStore): Promise<TlsServer> {
  const s = await startTlsServer(store, policy);
  servers.push(s);
  return s;
}

beforeAll(async () => {
  f = await fixtures();
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await removeDirs(dirs);
});

describe('CertStore over real TLS handshakes', () => {
  let store: CertStore;
  let port: number;

  beforeAll(async () => {
    store = new CertStore();
    // The chain travels with each certificate, so clients that trust only the CA verify it.
    store.install(
      await loadFiles({
        'a.crt': f.a.cert + f.ca.cert,
        'a.key': f.a.key,
        'b.pem': f.b.cert + f.ca.cert + f.b.key,
        'default.crt': f.def.cert + f.ca.cert,
        'default.key': f.def.key,
        'wild/fullchain.pem': f.wild.cert + f.ca.cert,
        'wild/privkey.pem': f.wild.key,
      }),
    );
    port = (await serve(store)).port;
  });

  it.each([
    ['a.example.com', 'a.example.com', 'DNS:a.example.com'],
    ['A.Example.COM', 'a.example.com', 'DNS:a.example.com'],
    ['b.test', 'b.test', 'DNS:b.test'],
    ['x.example.com', '*.example.com', 'DNS:*.example.com'],
  ])('SNI %s gets the certificate for %s, verified against the CA', async (servername, cn, san) => {
    const h = await handshake(port, { servername, ca: f.ca.cert, rejectUnauthorized: true });
    expect(h).toMatchObject({ cn, san, authorized: true });
  });

  it.each(['unknown.org', 'example.com', 'a.b.example.com', 'test'])('SNI %s (no certificate covers it) gets the default', async (servername) => {
    const h = await handshake(port, { servername });
    expect(h.cn).toBe('default.internal');
  });

  it('a client sending no SNI gets the default', async () => {
    // An IP host makes Node send no server name; servername '' does too.
    const h = await handshake(port, { servername: '' });
    expect(h.cn).toBe('default.internal');
    expect(h.san).toBe('DNS:default.internal');
  });

  it('certFor: exact before wildcard, wildcard one label only, trailing dot ignored, default otherwise', async () => {
    const more = await makeLeaf(f.ca, ['x.example.com']);
    const s = new CertStore();
    s.install(await loadFiles({ 'w.crt': f.wild.cert, 'w.key': f.wild.key, 'x.crt': more.cert, 'x.key': more.key }));
    const names = (n: string | undefined): string[] | undefined => s.certFor(n)?.names;
    expect(names('x.example.com')).toEqual(['x.example.com']);
    expect(names('X.EXAMPLE.COM.')).toEqual(['x.example.com']);
    expect(names('y.example.com')).toEqual(['*.example.com']);
    // No default.crt: the first in name order (w.crt) is the default.
    expect(s.defaultCert?.names).toEqual(['*.example.com']);
    expect(s.certFor('y.z.example.com')).toBe(s.defaultCert);
    expect(s.certFor('example.com')).toBe(s.defaultCert);
    expect(s.certFor(undefined)).toBe(s.defaultCert);
    expect(s.size).toBe(2);
  });
});

describe('CertStore.install', () => {
  it('new handshakes get the new certificates while an established connection stays up', async () => {
    const v2 = await makeLeaf(f.ca, ['a.example.com'], { cn: 'a.example.com v2' });
    const store = new CertStore();
    store.install(await loadFiles({ 'a.crt': f.a.cert, 'a.key': f.a.key }));
    const { port } = await serve(store);

    const first = await handshake(port, { servername: 'a.example.com' }, true);
    expect(first.cn).toBe('a.example.com');
    expect(await echo(first.socket, 'before')).toBe('before');

    store.install(await loadFiles({ 'a.crt': v2.cert, 'a.key': v2.key, 'b.crt': f.b.cert, 'b.key': f.b.key }));
    expect(store.size).toBe(2);
    expect((await handshake(port, { servername: 'a.example.com' })).cn).toBe('a.example.com v2');
    expect((await handshake(port, { servername: 'b.test' })).cn).toBe('b.test');
    // The no-SNI context follows the new default too (attach).
    expect((await handshake(port, { servername: '' })).cn).toBe('a.example.com v2');

    // The connection made before the swap still works, on the certificate it negotiated.
    expect(await echo(first.socket, 'after the swap')).toBe('after the swap');
    expect(first.socket.getPeerCertificate().subject.CN).toBe('a.example.com');
    first.socket.destroy();
  });

  it('an empty store selects nothing and refuses SNI handshakes', async () => {
    const store = new CertStore();
    expect(store.size).toBe(0);
    expect(store.certFor('a.example.com')).toBeUndefined();
    expect(store.defaultCert).toBeUndefined();
    // The server's own context has a certificate, so only the SNI path can refuse.
    const withDefault = new CertStore();
    withDefault.install(await loadFiles({ 'a.crt': f.a.cert, 'a.key': f.a.key }));
    const { server, port } = await serve(withDefault);
    withDefault.install({ certs: [], defaultCert: undefined, errors: [], warnings: [] });
    await expect(handshake(port, { servername: 'a.example.com' })).rejects.toThrow();
    expect((await handshake(port, { servername: '' })).cn).toBe('a.example.com');
    expect(server.listening).toBe(true);
  });
});

// ensureSelfSigned: first run without certificates gets a working localhost certificate; a dir
// with certificates, or with an existing localhost.crt/.key, is never overwritten.
import { X509Certificate } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertStore, ensureSelfSigned, loadCertsDir } from '../../../src/server/tls/index.ts';
import type { TlsPolicy } from '../../../src/server/tls/index.ts';
import { fixtures, handshake, removeDirs, startTlsServer, tempDir, writeFiles } from './fixtures.ts';
import type { Fixtures, TlsServer } from './fixtures.ts';

const policy: TlsPolicy = { minVersion: 'TLSv1.2' };
let f: Fixtures;
const dirs: string[] = [];
const servers: TlsServer[] = [];

async function fresh(): Promise<string> {
  const d = await tempDir();
  dirs.push(d);
  return d;
}

beforeAll(async () => {
  f = await fixtures();
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await removeDirs(dirs);
});

describe('ensureSelfSigned', () => {
  it('creates the dir and writes a 0600 key and a certificate for localhost, 127.0.0.1 and ::1 that clients verify', async () => {
    const dir = join(await fresh(), 'nested', 'certs');
    const written = await ensureSelfSigned(dir);
    expect(written.sort()).toEqual([join(dir, 'localhost.crt'), join(dir, 'localhost.key')]);
    expect((await stat(join(dir, 'localhost.key'))).mode & 0o777).toBe(0o600);
    expect((await readdir(dir)).sort()).toEqual(['localhost.crt', 'localhost.key']); // no temp files left

    const r = await loadCertsDir(dir, policy);
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual([]);
    expect(r.certs.map((c) => c.names)).toEqual([['localhost', '127.0.0.1', '::1']]);
    const x = new X509Certificate(await readFile(join(dir, 'localhost.crt')));
    expect(x.ca).toBe(false);
    expect(x.validToDate.getTime() - Date.now()).toBeGreaterThan(300 * 86_400_000);

    const store = new CertStore();
    store.install(r);
    const s = await startTlsServer(store, policy);
    servers.push(s);
    const ca = await readFile(join(dir, 'localhost.crt'), 'utf8');
    // Full verification, by name and by IP (Node checks an IP host against the IP SANs).
    expect(await handshake(s.port, { servername: 'localhost', ca, rejectUnauthorized: true })).toMatchObject({ authorized: true, cn: 'localhost' });
    expect(await handshake(s.port, { ca, rejectUnauthorized: true })).toMatchObject({ authorized: true });
    expect(x.checkIP('::1')).toBe('::1');
  });

  it('still generates when the dir holds only a secret, a README and a stray key', async () => {
    const dir = await fresh();
    await writeFiles(dir, { '.waygate-secret': 'x', 'README.md': '# certs', 'other.key': f.b.key });
    expect(await ensureSelfSigned(dir)).toHaveLength(2);
  });

  it('writes nothing when certificates are present, even broken ones', async () => {
    const dir = await fresh();
    await writeFiles(dir, { 'live/a.example.com/fullchain.pem': f.a.cert, 'live/a.example.com/privkey.pem': f.a.key });
    expect(await ensureSelfSigned(dir)).toEqual([]);
    const broken = await fresh();
    await writeFiles(broken, { 'mine.crt': 'not yet pasted' });
    expect(await ensureSelfSigned(broken)).toEqual([]);
    expect(await readdir(broken)).toEqual(['mine.crt']);
  });

  it('never overwrites an existing localhost.crt, and a second call writes nothing', async () => {
    const dir = await fresh();
    await writeFiles(dir, { 'localhost.crt': 'my own, half-written' });
    expect(await ensureSelfSigned(dir)).toEqual([]);
    expect(await readFile(join(dir, 'localhost.crt'), 'utf8')).toBe('my own, half-written');
    expect(await readdir(dir)).toEqual(['localhost.crt']);

    const other = await fresh();
    expect(await ensureSelfSigned(other)).toHaveLength(2);
    const before = await readFile(join(other, 'localhost.crt'), 'utf8');
    expect(await ensureSelfSigned(other)).toEqual([]);
    expect(await readFile(join(other, 'localhost.crt'), 'utf8')).toBe(before);
  });

  it('reuses an existing localhost.key, unchanged, for the certificate it writes', async () => {
    const dir = await fresh();
    await writeFiles(dir, { 'localhost.key': f.a.key });
    expect(await ensureSelfSigned(dir)).toEqual([join(dir, 'localhost.crt')]);
    expect(await readFile(join(dir, 'localhost.key'), 'utf8')).toBe(f.a.key);
    const r = await loadCertsDir(dir, policy);
    expect(r.errors).toEqual([]);
    expect(r.certs.map((c) => c.names)).toEqual([['localhost', '127.0.0.1', '::1']]);
  });

  it('refuses, rather than replaces, a localhost.key that is not a key', async () => {
    const dir = await fresh();
    await writeFiles(dir, { 'localhost.key': 'garbage' });
    await expect(ensureSelfSigned(dir)).rejects.toThrow(/localhost\.key exists but is not a usable/);
    expect(await readdir(dir)).toEqual(['localhost.key']);
  });
});

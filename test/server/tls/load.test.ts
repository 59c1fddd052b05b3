// loadCertsDir: every layout of SPEC §2's certs/ directory, the default certificate, and every
// kind of bad file reported by name while the good files still load.
import { X509Certificate } from 'node:crypto';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCertsDir } from '../../../src/server/tls/index.ts';
import type { CertLoadResult, TlsPolicy } from '../../../src/server/tls/index.ts';
import { fixtures, makeLeaf, removeDirs, tempDir, writeFiles } from './fixtures.ts';
import type { Fixtures } from './fixtures.ts';

const policy: TlsPolicy = { minVersion: 'TLSv1.2' };
let f: Fixtures;
const dirs: string[] = [];

beforeAll(async () => {
  f = await fixtures();
});
afterAll(() => removeDirs(dirs));

async function load(files: Record<string, string>, now?: Date): Promise<{ dir: string; r: CertLoadResult }> {
  const dir = await tempDir();
  dirs.push(dir);
  await writeFiles(dir, files);
  return { dir, r: await loadCertsDir(dir, policy, now) };
}

/** file (relative to dir) → names, for compact assertions. */
function byFile(dir: string, r: CertLoadResult): Record<string, string[]> {
  return Object.fromEntries(r.certs.map((c) => [c.file.slice(dir.length + 1), c.names]));
}

function problems(dir: string, list: { file: string; message: string }[]): Record<string, string> {
  return Object.fromEntries(list.map((p) => [p.file.slice(dir.length + 1), p.message]));
}

describe('loadCertsDir: layouts', () => {
  it('loads NAME.crt with NAME.key', async () => {
    const { dir, r } = await load({ 'a.crt': f.a.cert, 'a.key': f.a.key });
    expect(r.errors).toEqual([]);
    expect(byFile(dir, r)).toEqual({ 'a.crt': ['a.example.com'] });
    expect(r.certs[0]!.keyFile).toBe(join(dir, 'a.key'));
    expect(r.certs[0]!.notAfter.getTime()).toBe(new X509Certificate(f.a.cert).validToDate.getTime());
  });

  it("loads mkcert's NAME.pem with NAME-key.pem, and NAME.pem with NAME.key", async () => {
    const { dir, r } = await load({ 'a.example.com+1.pem': f.a.cert, 'a.example.com+1-key.pem': f.a.key, 'b.pem': f.b.cert, 'b.key': f.b.key });
    expect(r.errors).toEqual([]);
    expect(byFile(dir, r)).toEqual({ 'a.example.com+1.pem': ['a.example.com'], 'b.pem': ['b.test'] });
  });

  it('loads one PEM holding the chain and the key; the leaf decides names, the context gets the chain', async () => {
    const { dir, r } = await load({ 'both.pem': f.a.cert + f.ca.cert + f.a.key });
    expect(r.errors).toEqual([]);
    expect(byFile(dir, r)).toEqual({ 'both.pem': ['a.example.com'] });
    expect(r.certs[0]!.keyFile).toBe(join(dir, 'both.pem'));
    // Both certificates go to the context (checked on the wire in sni.test.ts).
    expect(r.certs[0]!.pem.cert.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
  });

  it("loads certbot's live/DOMAIN/fullchain.pem + privkey.pem and ignores cert.pem, chain.pem and README there", async () => {
    const { dir, r } = await load({
      'live/README': 'This directory contains your keys and certificates.',
      'live/a.example.com/README': 'certbot',
      'live/a.example.com/cert.pem': f.a.cert,
      'live/a.example.com/chain.pem': f.ca.cert,
      'live/a.example.com/fullchain.pem': f.a.cert + f.ca.cert,
      'live/a.example.com/privkey.pem': f.a.key,
    });
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual([]);
    expect(byFile(dir, r)).toEqual({ 'live/a.example.com/fullchain.pem': ['a.example.com'] });
    expect(r.certs[0]!.keyFile).toBe(join(dir, 'live/a.example.com/privkey.pem'));
  });

  it('serves only live/ when a whole /etc/letsencrypt is mounted (archive/ holds old versions)', async () => {
    const { dir, r } = await load({
      'archive/b.test/cert1.pem': f.b.cert,
      'archive/b.test/fullchain1.pem': f.b.cert + f.ca.cert,
      'archive/b.test/privkey1.pem': f.b.key,
      'csr/0000_csr-certbot.pem': '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n',
      'live/b.test/fullchain.pem': f.b.cert + f.ca.cert,
      'live/b.test/privkey.pem': f.b.key,
    });
    expect(r.errors).toEqual([]);
    expect(byFile(dir, r)).toEqual({ 'live/b.test/fullchain.pem': ['b.test'] });
  });

  it('ignores dotfiles, READMEs and key-only files without errors or warnings', async () => {
    const { dir, r } = await load({
      '.waygate-secret': 'c2VjcmV0',
      '.hidden.crt': 'not even PEM',
      'README.md': '# certs',
      'orphan.key': f.b.key,
      'orphan-key.pem': f.b.key,
      'lonely.pem': f.b.key,
      'a.crt': f.a.cert,
      'a.key': f.a.key,
    });
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual([]);
    expect(byFile(dir, r)).toEqual({ 'a.crt': ['a.example.com'] });
  });

  it('reads files in name order, follows symlinks, and reports IP SANs in short form', async () => {
    const ip = await makeLeaf(f.ca, ['Host.Example.NET', '10.1.2.3', '0:0:0:0:0:0:0:1']);
    const { dir, r } = await load({ 'z.crt': f.b.cert, 'z.key': f.b.key, 'm/ip.crt': ip.cert, 'm/ip.key': ip.key, 'a.crt': f.a.cert, 'a.key': f.a.key });
    await symlink(join(dir, 'z.crt'), join(dir, 'link.crt'));
    await symlink(join(dir, 'z.key'), join(dir, 'link.key'));
    const again = await loadCertsDir(dir, policy);
    expect(r.errors).toEqual([]);
    expect(again.certs.map((c) => c.file.slice(dir.length + 1))).toEqual(['a.crt', 'link.crt', 'm/ip.crt', 'z.crt']);
    expect(again.certs[2]!.names).toEqual(['host.example.net', '10.1.2.3', '::1']);
  });

  it('falls back to the CN, with a warning, only when there is no SAN', async () => {
    const { dir, r } = await load({ 'cn.crt': f.cnOnly.cert, 'cn.key': f.cnOnly.key });
    expect(byFile(dir, r)).toEqual({ 'cn.crt': ['cn-only.example.org'] });
    expect(problems(dir, r.warnings)['cn.crt']).toMatch(/no subjectAltName/);
  });
});

describe('loadCertsDir: the default certificate', () => {
  it('is default.crt when it loads, even though other files come first', async () => {
    const { r } = await load({ 'a.crt': f.a.cert, 'a.key': f.a.key, 'default.crt': f.def.cert, 'default.key': f.def.key, 'default.pem': f.b.cert + f.b.key });
    expect(r.defaultCert?.names).toEqual(['default.internal']);
  });

  it('is default.pem when there is no default.crt', async () => {
    const { r } = await load({ 'a.crt': f.a.cert, 'a.key': f.a.key, 'default.pem': f.def.cert + f.def.key });
    expect(r.defaultCert?.names).toEqual(['default.internal']);
  });

  it('is the first certificate loaded in name order otherwise, including when default.crt is broken', async () => {
    const { dir, r } = await load({ 'm.crt': f.b.cert, 'm.key': f.b.key, 'k.crt': f.a.cert, 'k.key': f.a.key, 'default.crt': f.def.cert, 'default.key': f.b.key });
    expect(r.defaultCert?.file).toBe(join(dir, 'k.crt'));
    expect(problems(dir, r.errors)).toEqual({ 'default.crt': expect.stringMatching(/does not match/) });
  });

  it('is undefined when nothing loads', async () => {
    const { r } = await load({ 'README.md': 'nothing here' });
    expect(r).toEqual({ certs: [], defaultCert: undefined, errors: [], warnings: [] });
  });
});

describe('loadCertsDir: bad files are reported by name and the good ones still load', () => {
  it('reports a wrong key, expiry, not-yet-valid, a missing key, garbage, DER and an unreadable file', async () => {
    const der = Buffer.from(new X509Certificate(f.b.cert).raw);
    const { dir, r } = await load({
      'a.crt': f.a.cert,
      'a.key': f.a.key,
      'mismatch.crt': f.a.cert,
      'mismatch.key': f.b.key,
      'expired.crt': f.expired.cert,
      'expired.key': f.expired.key,
      'future.pem': f.future.cert + f.future.key,
      'nokey.crt': f.b.cert,
      'garbage.crt': 'this is not a certificate\n',
      'b.crt': f.b.cert,
      'b.key': f.b.key,
    });
    await writeFile(join(dir, 'der.crt'), der);
    await symlink(join(dir, 'gone.crt'), join(dir, 'dangling.crt'));
    const r2 = await loadCertsDir(dir, policy);
    expect(r.certs.length).toBe(2);
    expect(byFile(dir, r2)).toEqual({ 'a.crt': ['a.example.com'], 'b.crt': ['b.test'] });
    const expiredAt = new X509Certificate(f.expired.cert).validToDate.toISOString();
    const validFrom = new X509Certificate(f.future.cert).validFromDate.toISOString();
    expect(problems(dir, r2.errors)).toEqual({
      'dangling.crt': expect.stringMatching(/^cannot read the file: .*ENOENT/),
      'der.crt': expect.stringMatching(/not a PEM certificate: looks like binary DER/),
      'expired.crt': `expired on ${expiredAt}`,
      'future.pem': `not yet valid: valid from ${validFrom}`,
      'garbage.crt': 'not a PEM certificate: no "-----BEGIN CERTIFICATE-----" block',
      'mismatch.crt': `the key in ${join(dir, 'mismatch.key')} does not match the certificate`,
      'nokey.crt': 'no matching key found (tried nokey.key, nokey-key.pem, and a key inside nokey.crt)',
    });
    expect(r2.errors).toHaveLength(7);
    expect(r2.defaultCert?.file).toBe(join(dir, 'a.crt'));
  });

  it('judges validity against `now`', async () => {
    const { dir } = await load({ 'a.crt': f.a.cert, 'a.key': f.a.key });
    const notAfter = new X509Certificate(f.a.cert).validToDate;
    const later = await loadCertsDir(dir, policy, new Date(notAfter.getTime() + 1000));
    expect(problems(dir, later.errors)).toEqual({ 'a.crt': `expired on ${notAfter.toISOString()}` });
    expect(later.certs).toEqual([]);
  });

  it('loads a certificate expiring within 14 days, with a warning saying when', async () => {
    const { dir, r } = await load({ 'soon.crt': f.soon.cert, 'soon.key': f.soon.key, 'a.crt': f.a.cert, 'a.key': f.a.key });
    expect(byFile(dir, r)).toEqual({ 'a.crt': ['a.example.com'], 'soon.crt': ['soon.example.org'] });
    const at = new X509Certificate(f.soon.cert).validToDate.toISOString();
    expect(problems(dir, r.warnings)).toEqual({ 'soon.crt': `expires on ${at} (in 5 days)` });
    expect(r.errors).toEqual([]);
  });

  it('says when the leaf is not first in the chain', async () => {
    const { dir, r } = await load({ 'rev.pem': f.ca.cert + f.a.cert + f.a.key });
    expect(problems(dir, r.errors)['rev.pem']).toMatch(/matches certificate #2 in the file, not the first/);
  });

  it('reports an unreadable or key-less key file, and a CSR, by name', async () => {
    const { dir } = await load({ 'x.crt': f.a.cert, 'y.crt': f.b.cert, 'y.key': 'no key here', 'req.pem': '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n' });
    await mkdir(join(dir, 'x.key'));
    const r = await loadCertsDir(dir, policy);
    expect(problems(dir, r.errors)).toEqual({
      'req.pem': 'not a PEM certificate: it holds CERTIFICATE REQUEST but no CERTIFICATE block',
      'x.crt': expect.stringMatching(new RegExp(`^cannot read the key file ${join(dir, 'x.key')}: .*EISDIR`)),
      'y.crt': `the key file ${join(dir, 'y.key')} holds no PEM private key`,
    });
  });

  it("warns about, but does not fail on, a key-less CA certificate (cert-manager's ca.crt)", async () => {
    const { dir, r } = await load({ 'ca.crt': f.ca.cert, 'tls.crt': f.a.cert + f.ca.cert, 'tls.key': f.a.key });
    expect(r.errors).toEqual([]);
    expect(byFile(dir, r)).toEqual({ 'tls.crt': ['a.example.com'] });
    expect(problems(dir, r.warnings)).toEqual({ 'ca.crt': 'a CA certificate with no key beside it; not served' });
  });

  it('warns when a later file claims a name an earlier one serves', async () => {
    const again = await makeLeaf(f.ca, ['a.example.com', 'c.example.com']);
    const { dir, r } = await load({ 'a.crt': f.a.cert, 'a.key': f.a.key, 'b.crt': again.cert, 'b.key': again.key });
    expect(r.certs).toHaveLength(2);
    expect(r.warnings).toEqual([{ file: join(dir, 'b.crt'), message: `a.example.com is also in ${join(dir, 'a.crt')}, which comes first in name order and is served for it` }]);
  });

  it('reports a missing directory as an error naming it, without throwing', async () => {
    const dir = join(await tempDir(), 'nope');
    dirs.push(dir);
    const r = await loadCertsDir(dir, policy);
    expect(r).toEqual({ certs: [], defaultCert: undefined, errors: [{ file: dir, message: 'the certificates directory does not exist' }], warnings: [] });
  });

  it('never puts the private key in JSON', async () => {
    const { r } = await load({ 'a.crt': f.a.cert, 'a.key': f.a.key });
    expect(r.certs[0]!.pem.key).toContain('PRIVATE KEY');
    expect(JSON.stringify(r)).not.toContain('PRIVATE KEY');
  });
});

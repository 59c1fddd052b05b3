// secureOptions on the wire: what the HTTPS listener refuses and accepts. Every refusal has a
// control: the same client succeeds against a permissive server with the same certificate, so
// the refusal is the policy's doing and not the client's inability.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate } from 'selfsigned';
import { CertStore, TLS_CIPHERS, TLS_CURVES, loadCertsDir, secureOptions } from '../../../src/server/tls/index.ts';
import type { TlsPolicy } from '../../../src/server/tls/index.ts';
import { handshake, removeDirs, startTlsServer, tempDir, writeFiles } from './fixtures.ts';
import type { TlsServer } from './fixtures.ts';

const TLS12: TlsPolicy = { minVersion: 'TLSv1.2' };
const TLS13: TlsPolicy = { minVersion: 'TLSv1.3' };
// OpenSSL 3 will not even offer TLS 1.1 or SHA-1 suites at its default security level.
const TLS11_CLIENT = { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' } as const;
const CBC_CLIENT = { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-SHA' } as const;
const GCM12_CLIENT = { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' } as const;
const TLS13_CLIENT = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' } as const;

const dirs: string[] = [];
const servers: TlsServer[] = [];
let strict: number; // secureOptions(TLS12)
let strict13: number; // secureOptions(TLS13)
let permissive: number; // anything OpenSSL can do, same certificates

beforeAll(async () => {
  // RSA, so that the ECDHE-RSA suites the clients ask for are possible at all.
  const rsa = await generate([{ name: 'commonName', value: 'policy.test' }], {
    keyType: 'rsa',
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'policy.test' }] }],
  });
  const dir = await tempDir();
  dirs.push(dir);
  await writeFiles(dir, { 'policy.crt': rsa.cert, 'policy.key': rsa.private });
  const start = async (policy: TlsPolicy, extra?: Record<string, unknown>): Promise<number> => {
    const r = await loadCertsDir(dir, policy);
    expect(r.errors).toEqual([]);
    const store = new CertStore();
    store.install(r);
    const s = await startTlsServer(store, policy, extra);
    servers.push(s);
    return s.port;
  };
  strict = await start(TLS12);
  strict13 = await start(TLS13);
  // The per-certificate contexts still carry secureOptions(TLS12): what decides is the server's own
  // settings, which the SNI switch does not replace (see src/server/tls/policy.ts).
  permissive = await start(TLS12, { minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0', ecdhCurve: 'auto' });
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await removeDirs(dirs);
});

describe('secureOptions', () => {
  it('returns the policy version with the fixed ciphers and curves', () => {
    expect(secureOptions(TLS13)).toEqual({ minVersion: 'TLSv1.3', ciphers: TLS_CIPHERS, ecdhCurve: 'X25519:prime256v1:secp384r1', honorCipherOrder: true });
    expect(TLS_CURVES).toBe('X25519:prime256v1:secp384r1');
    // Only AEAD suites: no "-SHA" (CBC with SHA-1) and no "-SHA256"/"-SHA384" CBC suites.
    for (const c of TLS_CIPHERS.split(':')) expect(c).toMatch(/^TLS_|GCM|CHACHA20/);
  });

  // With and without SNI: the SNI path swaps the context mid-handshake, and the policy must hold on both.
  describe.each([
    ['with SNI', { servername: 'policy.test' }],
    ['without SNI', { servername: '' }],
  ])('%s', (_label, sni) => {
    it('refuses a TLS 1.1 client (which a permissive server accepts)', async () => {
      expect((await handshake(permissive, { ...TLS11_CLIENT, ...sni })).protocol).toBe('TLSv1.1');
      await expect(handshake(strict, { ...TLS11_CLIENT, ...sni })).rejects.toMatchObject({ code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
    });

    it('refuses a client offering only a CBC suite (which a permissive server accepts)', async () => {
      expect((await handshake(permissive, { ...CBC_CLIENT, ...sni })).cipher).toBe('ECDHE-RSA-AES128-SHA');
      await expect(handshake(strict, { ...CBC_CLIENT, ...sni })).rejects.toThrow(/handshake failure/i);
    });

    it('accepts TLS 1.2 with AES-GCM and TLS 1.3', async () => {
      expect(await handshake(strict, { ...GCM12_CLIENT, ...sni })).toMatchObject({ protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES128-GCM-SHA256', cn: 'policy.test' });
      expect(await handshake(strict, { ...TLS13_CLIENT, ...sni })).toMatchObject({ protocol: 'TLSv1.3', cn: 'policy.test' });
    });

    it('with minVersion TLSv1.3, refuses TLS 1.2 and accepts TLS 1.3', async () => {
      await expect(handshake(strict13, { ...GCM12_CLIENT, ...sni })).rejects.toMatchObject({ code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
      expect((await handshake(strict13, { ...TLS13_CLIENT, ...sni })).protocol).toBe('TLSv1.3');
    });
  });

  it('refuses a client whose only key-exchange group is outside X25519, P-256, P-384', async () => {
    expect((await handshake(permissive, { ...TLS13_CLIENT, ecdhCurve: 'secp521r1', servername: 'policy.test' })).protocol).toBe('TLSv1.3');
    await expect(handshake(strict, { ...TLS13_CLIENT, ecdhCurve: 'secp521r1', servername: 'policy.test' })).rejects.toThrow();
    expect((await handshake(strict, { ...TLS13_CLIENT, ecdhCurve: 'X25519', servername: 'policy.test' })).protocol).toBe('TLSv1.3');
  });

  it('prefers the server cipher order', async () => {
    // The client lists ChaCha20 first; the server's list puts AES-128-GCM first and wins.
    const h = await handshake(strict, { ...GCM12_CLIENT, ciphers: 'ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256', servername: 'policy.test' });
    expect(h.cipher).toBe('ECDHE-RSA-AES128-GCM-SHA256');
  });
});

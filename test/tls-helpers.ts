// Certificates for tests: a private CA and leaf certificates it signs, made with `selfsigned`.
import { generate } from 'selfsigned';

/** A PEM certificate and its key. */
export interface Pem {
  cert: string;
  key: string;
}

/** Makes a private CA. */
export async function makeCa(name = 'waygate test CA'): Promise<Pem> {
  const r = await generate([{ name: 'commonName', value: name }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  return { cert: r.cert, key: r.private };
}

/** Makes a leaf certificate for DNS names and IPs, signed by `ca` (self-signed without one). */
export async function makeLeaf(names: string[], ca?: Pem, opts: { notBefore?: Date; notAfter?: Date; clientAuth?: boolean } = {}): Promise<Pem> {
  const altNames = names.map((n) => (/^[\d.]+$|:/.test(n) ? { type: 7 as const, ip: n } : { type: 2 as const, value: n }));
  const r = await generate([{ name: 'commonName', value: names[0] }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notBeforeDate: opts.notBefore,
    notAfterDate: opts.notAfter,
    ca: ca === undefined ? undefined : { key: ca.key, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true, clientAuth: opts.clientAuth ?? false },
      { name: 'subjectAltName', altNames },
    ],
  });
  return { cert: r.cert, key: r.private };
}

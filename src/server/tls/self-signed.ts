// First-run convenience (SPEC §1): with no certificate in the certs dir, serve HTTPS on a
// self-signed localhost certificate instead of refusing to start.
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { chmod, link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { findCertFiles } from './files.ts';
import { isPrivateKeyBlock, pemBlocks } from './pem.ts';

/** Days the generated certificate is valid: a year, then the user deletes the pair to get a new one. */
export const SELF_SIGNED_DAYS = 365;
const CERT_FILE = 'localhost.crt';
const KEY_FILE = 'localhost.key';

/**
 * Creates `path` holding `data` unless it exists; returns false when it does. Written to a
 * temporary dotfile (ignored by the loader) and hard-linked into place, so a reader never sees a
 * half-written file and two processes starting together never overwrite each other's file.
 */
async function createExclusive(path: string, data: string, mode: number): Promise<boolean> {
  const tmp = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`);
  await writeFile(tmp, data, { mode, flag: 'wx' });
  try {
    // writeFile's mode is filtered by the umask; a private key must be 0600 whatever the umask.
    await chmod(tmp, mode);
    await link(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

interface ReusedKey {
  privateKey: string;
  publicKey: string;
  keyType: 'rsa' | 'ec';
  curve: 'P-256' | 'P-384' | 'P-521';
}

/** OpenSSL curve names as selfsigned (WebCrypto) calls them. */
const CURVES: Record<string, ReusedKey['curve']> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };

/** An existing localhost.key as a key pair selfsigned can sign with; undefined when there is no such file. */
async function existingKey(keyPath: string): Promise<ReusedKey | undefined> {
  let text: string;
  try {
    text = await readFile(keyPath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const block = pemBlocks(text).find(isPrivateKeyBlock);
  const key = block ? createPrivateKey(block.text) : undefined;
  const type = key?.asymmetricKeyType;
  const curve = type === 'ec' ? CURVES[key?.asymmetricKeyDetails?.namedCurve ?? ''] : 'P-256';
  if (!key || (type !== 'rsa' && type !== 'ec') || !curve) {
    throw new Error(`${keyPath} exists but is not a usable RSA or EC private key; move it away to generate a self-signed certificate`);
  }
  return {
    privateKey: key.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey: createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString(),
    keyType: type,
    curve,
  };
}

/** When `dir` holds no certificate files, generates a self-signed certificate for localhost, 127.0.0.1 and ::1 into dir/localhost.crt and dir/localhost.key (creating dir; key mode 0600; never overwriting an existing file) and returns the files written; returns [] when certificates were already present. */
export async function ensureSelfSigned(dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  // Any certificate file counts, even a broken one: the user meant to bring their own, and the
  // loader's error about it is more useful than a certificate they did not ask for.
  if ((await findCertFiles(dir)).length > 0) return [];
  const certPath = join(dir, CERT_FILE);
  const keyPath = join(dir, KEY_FILE);
  // A key without its certificate (e.g. a crash between the two writes) is reused, never replaced.
  const reuse = await existingKey(keyPath);
  const now = new Date();
  // Loaded only here: selfsigned and its X.509 stack cost ~10 MB of memory a proxy with real
  // certificates never needs.
  const { generate } = await import('selfsigned');
  const pems = await generate([{ name: 'commonName', value: 'localhost' }, { name: 'organizationName', value: 'waygate self-signed' }], {
    keyType: reuse?.keyType ?? 'ec',
    curve: reuse?.curve ?? 'P-256',
    algorithm: 'sha256',
    ...(reuse ? { keyPair: { privateKey: reuse.privateKey, publicKey: reuse.publicKey } } : {}),
    notBeforeDate: now,
    notAfterDate: new Date(now.getTime() + SELF_SIGNED_DAYS * 86_400_000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }, { type: 7, ip: '::1' }] },
    ],
  });
  const written: string[] = [];
  if (!reuse) {
    // Another process got here first: its pair is complete or about to be; do not mix halves.
    if (!(await createExclusive(keyPath, pems.private, 0o600))) return [];
    written.push(keyPath);
  }
  if (await createExclusive(certPath, pems.cert, 0o644)) written.push(certPath);
  return written;
}

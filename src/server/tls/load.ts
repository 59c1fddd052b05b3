// Loads the certs directory into ready SecureContexts. A bad file becomes an error naming it and
// never costs the other files their place: one expired certificate must not take the site down.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { SecureContext } from 'node:tls';
import { findCertFiles } from './files.ts';
import type { CertCandidate } from './files.ts';
import { commonName, isCertificateBlock, isPrivateKeyBlock, pemBlocks, sanNames } from './pem.ts';
import type { PemBlock } from './pem.ts';
import { secureOptions } from './policy.ts';
import type { TlsPolicy } from './policy.ts';

/** A certificate that loaded, ready to serve. */
export interface LoadedCert {
  /** The certificate file as found (path joined with the certs dir). */
  file: string;
  /** Where the private key came from: a sibling key file, or `file` itself. */
  keyFile: string;
  /** DNS SANs (lower-case, wildcards kept as "*.example.com") and IP SANs; the CN only if there is no SAN. */
  names: string[];
  notBefore: Date;
  notAfter: Date;
  /** The leaf's issuer as Node prints it ("CN=R11\nO=Let's Encrypt\nC=US"). */
  issuer: string;
  /** SHA-256 fingerprint of the leaf, "AB:CD:…". */
  fingerprint256: string;
  /** Built with secureOptions(policy): the whole chain and the key. */
  context: SecureContext;
  /**
   * The PEM chain and key, for a server's own (no-SNI) context. Non-enumerable, so a status page
   * that JSON-serialises certificates never prints a private key.
   */
  readonly pem: { cert: string; key: string };
}

/** A problem with one file of the certs directory. */
export interface CertProblem {
  file: string;
  message: string;
}

/** What loadCertsDir found: the certificates that loaded (name order), the default, and every problem. */
export interface CertLoadResult {
  certs: LoadedCert[];
  defaultCert: LoadedCert | undefined;
  errors: CertProblem[];
  warnings: CertProblem[];
}

/** A certificate this close to expiry still loads, with a warning (Let's Encrypt renews at 30 days left). */
export const EXPIRY_WARNING_DAYS = 14;
const DAY_MS = 86_400_000;

/** Certificates at the top of the dir with these names are the default, in this order of preference. */
const DEFAULT_NAMES = ['default.crt', 'default.pem'];

type Outcome =
  | { kind: 'loaded'; cert: LoadedCert; warnings: string[] }
  | { kind: 'error'; message: string }
  | { kind: 'skipped'; warning?: string };

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function errCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** Why `buf` is not a PEM certificate, as a message for the user. */
function notACertificate(buf: Buffer, blocks: PemBlock[], file: string): string {
  if (buf.length === 0) return 'not a PEM certificate: the file is empty';
  // DER starts with an ASN.1 SEQUENCE tag; say how to convert rather than just "bad file".
  if (buf[0] === 0x30) return `not a PEM certificate: looks like binary DER; convert it with "openssl x509 -inform der -in ${basename(file)} -out ${basename(file, '.crt')}.pem"`;
  if (blocks.length > 0) return `not a PEM certificate: it holds ${[...new Set(blocks.map((b) => b.label))].join(', ')} but no CERTIFICATE block`;
  return 'not a PEM certificate: no "-----BEGIN CERTIFICATE-----" block';
}

/** Parses a private key block; a string is the user-facing reason it cannot be used. */
function parseKey(block: PemBlock, keyFile: string): KeyObject | string {
  if (block.label === 'ENCRYPTED PRIVATE KEY' || block.text.includes('Proc-Type: 4,ENCRYPTED')) {
    return `the private key in ${keyFile} is encrypted; waygate needs it unencrypted (e.g. "openssl pkey -in enc.key -out ${basename(keyFile)}")`;
  }
  try {
    return createPrivateKey(block.text);
  } catch (err) {
    return `the private key in ${keyFile} cannot be parsed: ${errText(err)}`;
  }
}

interface FoundKey {
  keyFile: string;
  block: PemBlock;
}

/** The first key for `c`: inside the file itself, then its key files; a string explains a read failure; undefined when there is none. */
async function findKey(c: CertCandidate, blocks: PemBlock[]): Promise<FoundKey | string | undefined> {
  const inline = blocks.find(isPrivateKeyBlock);
  if (inline) return { keyFile: c.file, block: inline };
  for (const keyFile of c.keyFiles) {
    let text: string;
    try {
      text = await readFile(keyFile, 'utf8');
    } catch (err) {
      if (errCode(err) === 'ENOENT') continue;
      return `cannot read the key file ${keyFile}: ${errText(err)}`;
    }
    const block = pemBlocks(text).find(isPrivateKeyBlock);
    if (!block) return `the key file ${keyFile} holds no PEM private key`;
    return { keyFile, block };
  }
  return undefined;
}

/** Loads one certificate file with its key. */
async function loadOne(c: CertCandidate, policy: TlsPolicy, now: Date): Promise<Outcome> {
  let buf: Buffer;
  try {
    buf = await readFile(c.file);
  } catch (err) {
    return { kind: 'error', message: `cannot read the file: ${errText(err)}` };
  }
  const blocks = pemBlocks(buf.toString('utf8'));
  const certBlocks = blocks.filter(isCertificateBlock);
  if (certBlocks.length === 0) {
    // mkcert and others write keys as .pem too; a key with no certificate is not a mistake.
    if (c.mayBeKeyOnly && blocks.length > 0 && blocks.every((b) => isPrivateKeyBlock(b) || b.label === 'EC PARAMETERS')) return { kind: 'skipped' };
    return { kind: 'error', message: notACertificate(buf, blocks, c.file) };
  }
  const chain: X509Certificate[] = [];
  for (const [i, b] of certBlocks.entries()) {
    try {
      chain.push(new X509Certificate(b.text));
    } catch (err) {
      return { kind: 'error', message: `certificate #${i + 1} in the file cannot be parsed: ${errText(err)}` };
    }
  }
  const leaf = chain[0]!;

  const found = await findKey(c, blocks);
  if (typeof found === 'string') return { kind: 'error', message: found };
  if (!found) {
    // cert-manager's ca.crt and certbot's chain.pem sit beside the served certificate on purpose.
    if (leaf.ca) return { kind: 'skipped', warning: 'a CA certificate with no key beside it; not served' };
    const tried = c.keyFiles.map((k) => basename(k)).join(', ');
    return { kind: 'error', message: `no matching key found (tried ${tried}, and a key inside ${basename(c.file)})` };
  }
  const key = parseKey(found.block, found.keyFile);
  if (typeof key === 'string') return { kind: 'error', message: key };
  if (!leaf.checkPrivateKey(key)) {
    const other = chain.findIndex((x, i) => i > 0 && x.checkPrivateKey(key));
    if (other > 0) {
      return { kind: 'error', message: `the key in ${found.keyFile} matches certificate #${other + 1} in the file, not the first: put the server's own certificate first, then its issuers` };
    }
    return { kind: 'error', message: `the key in ${found.keyFile} does not match the certificate` };
  }

  const notBefore = leaf.validFromDate;
  const notAfter = leaf.validToDate;
  if (now < notBefore) return { kind: 'error', message: `not yet valid: valid from ${notBefore.toISOString()}` };
  if (now > notAfter) return { kind: 'error', message: `expired on ${notAfter.toISOString()}` };

  const chainPem = certBlocks.map((b) => b.text).join('\n') + '\n';
  const keyPem = found.block.text + '\n';
  let context: SecureContext;
  try {
    context = createSecureContext({ ...secureOptions(policy), cert: chainPem, key: keyPem });
  } catch (err) {
    // e.g. OpenSSL's security level refusing a 1024-bit RSA key or an MD5 signature.
    return { kind: 'error', message: `TLS refused the certificate: ${errText(err)}` };
  }

  const warnings: string[] = [];
  const daysLeft = (notAfter.getTime() - now.getTime()) / DAY_MS;
  if (daysLeft < EXPIRY_WARNING_DAYS) warnings.push(`expires on ${notAfter.toISOString()} (in ${Math.max(0, Math.ceil(daysLeft))} days)`);
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!chain[i]!.checkIssued(chain[i + 1]!)) {
      warnings.push(`certificate #${i + 2} in the file did not issue #${i + 1}: the chain should go leaf first, then each issuer; clients may fail to verify it`);
    }
  }
  let names = sanNames(leaf);
  if (names.length === 0) {
    const cn = commonName(leaf);
    names = cn ? [cn] : [];
    if (cn) warnings.push(`no subjectAltName: serving it for its CN "${cn}", which browsers ignore (add a SAN)`);
    else warnings.push('no subjectAltName and no CN: served only as the default certificate');
  }

  const cert = {
    file: c.file,
    keyFile: found.keyFile,
    names,
    notBefore,
    notAfter,
    issuer: leaf.issuer,
    fingerprint256: leaf.fingerprint256,
    context,
  } as LoadedCert;
  Object.defineProperty(cert, 'pem', { value: { cert: chainPem, key: keyPem }, enumerable: false });
  return { kind: 'loaded', cert, warnings };
}

/** The message for a certs dir that cannot be listed. */
function dirError(err: unknown): string {
  switch (errCode(err)) {
    case 'ENOENT':
      return 'the certificates directory does not exist';
    case 'ENOTDIR':
      return 'not a directory';
    default:
      return `cannot read the certificates directory: ${errText(err)}`;
  }
}

/** Reads every certificate in `dir`; never throws for a bad file (it becomes an error naming the file) and one bad file never drops the others. A missing dir is an error. */
export async function loadCertsDir(dir: string, policy: TlsPolicy, now: Date = new Date()): Promise<CertLoadResult> {
  const result: CertLoadResult = { certs: [], defaultCert: undefined, errors: [], warnings: [] };
  let candidates: CertCandidate[];
  try {
    candidates = await findCertFiles(dir);
  } catch (err) {
    result.errors.push({ file: dir, message: dirError(err) });
    return result;
  }
  const servedBy = new Map<string, string>();
  const defaults = new Map<string, LoadedCert>();
  for (const c of candidates) {
    let outcome: Outcome;
    try {
      outcome = await loadOne(c, policy, now);
    } catch (err) {
      // Nothing above should throw; if something does, it is still this file's problem only.
      outcome = { kind: 'error', message: `cannot load: ${errText(err)}` };
    }
    if (outcome.kind === 'error') {
      result.errors.push({ file: c.file, message: outcome.message });
      continue;
    }
    if (outcome.kind === 'skipped') {
      if (outcome.warning) result.warnings.push({ file: c.file, message: outcome.warning });
      continue;
    }
    const cert = outcome.cert;
    for (const w of outcome.warnings) result.warnings.push({ file: c.file, message: w });
    for (const n of cert.names) {
      const first = servedBy.get(n);
      if (first === undefined) servedBy.set(n, c.file);
      else result.warnings.push({ file: c.file, message: `${n} is also in ${first}, which comes first in name order and is served for it` });
    }
    if (DEFAULT_NAMES.includes(c.rel)) defaults.set(c.rel, cert);
    result.certs.push(cert);
  }
  result.defaultCert = DEFAULT_NAMES.map((n) => defaults.get(n)).find((x) => x !== undefined) ?? result.certs[0];
  return result;
}


// PEM text and X.509 details the certificate loader needs: blocks, SAN names, the subject CN.
import type { X509Certificate } from 'node:crypto';

/** One "-----BEGIN LABEL----- … -----END LABEL-----" block. */
export interface PemBlock {
  label: string;
  /** The whole block, armour included. */
  text: string;
}

// The label is repeated in END (\1) so that a truncated block does not swallow the next one.
const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

/** Every PEM block in `text`, in order; [] when there is none. */
export function pemBlocks(text: string): PemBlock[] {
  return [...text.matchAll(PEM_BLOCK)].map((m) => ({ label: m[1]!, text: m[0] }));
}

/** Whether a block is a private key (PKCS#8, PKCS#1 RSA, SEC1 EC, or encrypted PKCS#8). */
export function isPrivateKeyBlock(b: PemBlock): boolean {
  return b.label.endsWith('PRIVATE KEY');
}

/** Whether a block is an X.509 certificate. */
export function isCertificateBlock(b: PemBlock): boolean {
  return b.label === 'CERTIFICATE';
}

/**
 * Splits Node's `subjectAltName` ("DNS:a.example.com, IP Address:127.0.0.1") at the ", " between
 * entries; Node JSON-quotes a value holding a comma or quote, so commas inside quotes are kept.
 */
function sanEntries(san: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < san.length; i++) {
    const ch = san[i]!;
    if (quoted && ch === '\\') {
      cur += ch + (san[i + 1] ?? '');
      i++;
      continue;
    }
    if (ch === '"') quoted = !quoted;
    if (!quoted && ch === ',' && san[i + 1] === ' ') {
      out.push(cur);
      cur = '';
      i++;
      continue;
    }
    cur += ch;
  }
  if (cur !== '') out.push(cur);
  return out;
}

/** A SAN or subject value as Node prints it, unquoted. */
function unquote(v: string): string {
  if (!v.startsWith('"')) return v;
  try {
    return JSON.parse(v) as string;
  } catch {
    return v;
  }
}

/** An IP address in its usual short form: Node prints IPv6 SANs uncompressed (0:0:0:0:0:0:0:1). */
function canonicalIp(ip: string): string {
  if (!ip.includes(':')) return ip;
  try {
    return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return ip.toLowerCase();
  }
}

/** Lower-cases a DNS name and drops a trailing root dot ("Example.COM." → "example.com"). */
export function normaliseName(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}

/** The DNS (lower-case, wildcards kept) and IP names of the certificate's SAN, in SAN order; [] when it has none. */
export function sanNames(x: X509Certificate): string[] {
  const names: string[] = [];
  for (const e of sanEntries(x.subjectAltName ?? '')) {
    const colon = e.indexOf(':');
    const type = e.slice(0, colon);
    const value = unquote(e.slice(colon + 1));
    if (type === 'DNS') names.push(normaliseName(value));
    else if (type === 'IP Address') names.push(canonicalIp(value));
  }
  return [...new Set(names)];
}

/** The subject's common name, lower-cased; undefined when the subject has none. */
export function commonName(x: X509Certificate): string | undefined {
  for (const line of x.subject.split('\n')) {
    if (line.startsWith('CN=')) return normaliseName(unquote(line.slice(3)));
  }
  return undefined;
}

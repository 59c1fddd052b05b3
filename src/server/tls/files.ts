// Which files in the certs directory are certificates, and where each one's key may be.
// Layouts: NAME.crt|NAME.pem + NAME.key; mkcert's NAME.pem + NAME-key.pem; one NAME.pem holding
// chain and key; certbot's DIR/fullchain.pem + DIR/privkey.pem (certs/live/example.com/).
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** A certificate file and the key files to try for it, in order (after a key inside the file itself). */
export interface CertCandidate {
  /** Path joined with the certs dir, as reported in errors. */
  file: string;
  /** Path relative to the certs dir with "/" separators ("live/example.com/fullchain.pem"). */
  rel: string;
  /** Whether the file may hold only a private key (a .pem that is a key is not an error). */
  mayBeKeyOnly: boolean;
  keyFiles: string[];
}

/** Deep enough for certs/live/example.com/ and a mounted /etc/letsencrypt; also stops symlink loops. */
const MAX_DEPTH = 3;

/** Certbot's own files next to fullchain.pem: subsets of it (cert.pem, chain.pem), not certificates to serve. */
const CERTBOT_FULLCHAIN = 'fullchain.pem';
const CERTBOT_PRIVKEY = 'privkey.pem';

/** Whether the certs-dir scan skips this entry: dotfiles (.waygate-secret, Kubernetes ..data) and READMEs. */
export function isIgnoredName(name: string): boolean {
  return name.startsWith('.') || /^readme(\.|$)/i.test(name);
}

/** Whether a file name is a private key by its name alone (NAME.key, NAME-key.pem, privkey.pem). */
export function isKeyName(name: string): boolean {
  return name.endsWith('.key') || name.endsWith('-key.pem') || name === CERTBOT_PRIVKEY;
}

/** Plain code-unit order: the same on every machine and locale. */
function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

interface Entry {
  name: string;
  kind: 'file' | 'dir' | 'missing';
}

/** Entries of `dir` in name order, symlinks resolved (a dangling one is "missing"), ignored names dropped. */
async function entries(dir: string): Promise<Entry[]> {
  const dirents = await readdir(dir, { withFileTypes: true });
  const out: Entry[] = [];
  for (const d of dirents.sort((a, b) => byName(a.name, b.name))) {
    if (isIgnoredName(d.name)) continue;
    if (d.isFile()) out.push({ name: d.name, kind: 'file' });
    else if (d.isDirectory()) out.push({ name: d.name, kind: 'dir' });
    else if (d.isSymbolicLink()) {
      // Kubernetes secret volumes and certbot's live/ are symlinks; follow them.
      try {
        const s = await stat(join(dir, d.name));
        if (s.isFile()) out.push({ name: d.name, kind: 'file' });
        else if (s.isDirectory()) out.push({ name: d.name, kind: 'dir' });
      } catch {
        out.push({ name: d.name, kind: 'missing' });
      }
    }
  }
  return out;
}

/** The key files tried for certificate `name` in the same directory, in order. */
function keyFilesFor(name: string): string[] {
  const base = name.replace(/\.(crt|pem)$/, '');
  const keys = [`${base}.key`, `${base}-key.pem`];
  // certbot's fullchain.pem without its privkey.pem beside it still deserves the right hint.
  if (name === CERTBOT_FULLCHAIN) keys.push(CERTBOT_PRIVKEY);
  return keys;
}

/**
 * Lists the certificate files under `dir` in name order (subdirectories at their name's place).
 * Throws only when `dir` itself cannot be read; unreadable subdirectories are skipped.
 */
export async function findCertFiles(dir: string): Promise<CertCandidate[]> {
  const out: CertCandidate[] = [];
  await walk(dir, '', 0, out, true);
  return out;
}

async function walk(root: string, rel: string, depth: number, out: CertCandidate[], isRoot: boolean): Promise<void> {
  const here = rel === '' ? root : join(root, rel);
  let list: Entry[];
  try {
    list = await entries(here);
  } catch (err) {
    if (isRoot) throw err;
    return;
  }
  const relOf = (name: string): string => (rel === '' ? name : `${rel}/${name}`);
  const files = new Set(list.filter((e) => e.kind !== 'dir').map((e) => e.name));
  if (files.has(CERTBOT_FULLCHAIN) && files.has(CERTBOT_PRIVKEY)) {
    // A certbot live/<domain>/ directory: fullchain.pem is the certificate; cert.pem and
    // chain.pem beside it are parts of it and would only produce duplicates or "no key" errors.
    out.push({ file: join(here, CERTBOT_FULLCHAIN), rel: relOf(CERTBOT_FULLCHAIN), mayBeKeyOnly: false, keyFiles: [join(here, CERTBOT_PRIVKEY)] });
    return;
  }
  const dirs = new Set(list.filter((e) => e.kind === 'dir').map((e) => e.name));
  // A whole /etc/letsencrypt mounted as the certs dir: only live/ holds what to serve; archive/
  // holds every past version, csr/ and keys/ hold no certificates.
  const certbotRoot = dirs.has('live') && dirs.has('archive');
  for (const e of list) {
    if (e.kind === 'dir') {
      if (certbotRoot && e.name !== 'live') continue;
      if (depth < MAX_DEPTH) await walk(root, relOf(e.name), depth + 1, out, false);
      continue;
    }
    if (!/\.(crt|pem)$/.test(e.name) || isKeyName(e.name)) continue;
    out.push({
      file: join(here, e.name),
      rel: relOf(e.name),
      mayBeKeyOnly: e.name.endsWith('.pem'),
      keyFiles: keyFilesFor(e.name).map((k) => join(here, k)),
    });
  }
}

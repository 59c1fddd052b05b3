// htpasswd lines for basicAuth (SPEC §8): "user:hash", where the hash is bcrypt ($2y$, $2a$,
// $2b$) or Apache's MD5 (apr1). Anything weaker or unknown is refused at load with a message that
// names the user and says how to make a good hash — and never repeats the hash (or a plain-text
// password) itself. Verification is constant-time for both schemes.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import apacheMd5 from 'apache-md5';
import { compare } from 'bcryptjs';

// apache-md5 is CommonJS (module.exports = the function) while its typings declare an ES default
// export, so TypeScript's nodenext view is one level off from what Node actually hands over.
const aprMd5 = apacheMd5 as unknown as (password: string, salt: string) => string;

/** A hash scheme waygate verifies. */
export type HashScheme = 'bcrypt' | 'apr1';

/** One user of an htpasswd file or of inline `users`. */
export interface HtpasswdUser {
  readonly name: string;
  readonly scheme: HashScheme;
  readonly hash: string;
  /** bcrypt cost (log2 rounds); 0 for apr1. */
  readonly cost: number;
}

/** The command that makes a good hash for `user`; `flags` (" -C 10") go after -B. */
export type CommandFor = (user: string, flags?: string) => string;

/** A line that cannot be used: why, and the user it names when it names one. */
export interface LineProblem {
  readonly user?: string;
  readonly problem: string;
}

/** bcrypt's cost bounds: 4 is the format's minimum; above 14 bcryptjs spends over a second per check. */
export const MIN_BCRYPT_COST = 4;
/** The highest bcrypt cost waygate accepts (bcryptjs runs in JavaScript: cost 14 is about one second). */
export const MAX_BCRYPT_COST = 14;

const BCRYPT_RE = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;
const APR1_RE = /^\$apr1\$[./0-9A-Za-z]{1,8}\$[./0-9A-Za-z]{22}$/;
const DES_CRYPT_RE = /^[./0-9A-Za-z]{13}$/;
const SCHEME_RE = /^\$([0-9A-Za-z]{1,8})\$/;
const CRYPT_ALPHABET = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** What every refusal ends with: which schemes work and the command that makes one. */
function howToFix(command: string): string {
  return `waygate accepts bcrypt ($2y$/$2a$/$2b$) and apr1 ($apr1$) hashes only; make a bcrypt one with \`${command}\``;
}

// Names what the hash is without repeating it: it may be a plain-text password.
function whyRefused(hash: string): string {
  if (hash === '') return 'has no password hash';
  if (hash.startsWith('{SHA}')) return 'has an unsalted SHA-1 hash ({SHA}), which is too weak';
  if (hash.startsWith('$2')) return 'has a malformed bcrypt hash';
  if (hash.startsWith('$apr1$')) return 'has a malformed apr1 hash';
  if (hash.startsWith('$1$')) return 'has an MD5-crypt ($1$) hash, which waygate does not verify';
  if (hash.startsWith('$5$') || hash.startsWith('$6$')) return `has a SHA-crypt (${hash.slice(0, 3)}) hash, which waygate does not verify`;
  const scheme = SCHEME_RE.exec(hash);
  if (scheme !== null) return `has a hash of an unknown scheme ("$${scheme[1]}$")`;
  if (DES_CRYPT_RE.test(hash)) return 'has what looks like a DES crypt hash (or a plain-text password), which is too weak';
  return 'has a plain-text password (or a hash waygate does not know), which is refused';
}

/**
 * Parses one "user:hash" line. `fix(user)` is the command the message suggests. Splits at the
 * first ":" like Apache, so a user name never contains one (RFC 7617 §2 forbids it anyway).
 */
export function parseLine(line: string, fix: CommandFor): HtpasswdUser | LineProblem {
  const colon = line.indexOf(':');
  // The line may be a bare password: it is not repeated.
  if (colon < 0) return { problem: `is not "user:hash"; ${howToFix(fix('USER'))}` };
  const name = line.slice(0, colon);
  const hash = line.slice(colon + 1).trim();
  if (name === '') return { problem: `has an empty user name; ${howToFix(fix('USER'))}` };
  const bcrypt = BCRYPT_RE.exec(hash);
  if (bcrypt !== null) {
    const cost = Number(bcrypt[1]);
    if (cost < MIN_BCRYPT_COST || cost > MAX_BCRYPT_COST) {
      return {
        user: name,
        problem: `has bcrypt cost ${cost}; waygate checks bcrypt in JavaScript and accepts costs ${MIN_BCRYPT_COST} to ${MAX_BCRYPT_COST} (about 65 ms at 10, 1 s at 14); make a new hash with \`${fix(name, ' -C 10')}\``,
      };
    }
    return { name, scheme: 'bcrypt', hash, cost };
  }
  if (APR1_RE.test(hash)) return { name, scheme: 'apr1', hash, cost: 0 };
  return { user: name, problem: `${whyRefused(hash)}; ${howToFix(fix(name))}` };
}

/** The users of a file or list, or every problem found, each as "line N, user "x": …". */
export type ParsedUsers = { readonly ok: true; readonly users: Map<string, HtpasswdUser> } | { readonly ok: false; readonly problems: string[] };

/**
 * Parses htpasswd text. Blank lines and "#" comments are skipped (as Apache does); a user defined
 * twice is refused (Apache silently takes the first, which hides an edit that did nothing).
 */
export function parseHtpasswd(text: string, fix: CommandFor): ParsedUsers {
  const users = new Map<string, HtpasswdUser>();
  const firstLine = new Map<string, number>();
  const problems: string[] = [];
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '' || line.startsWith('#')) continue;
    const at = `line ${i + 1}`;
    const r = parseLine(line, fix);
    if ('problem' in r) {
      problems.push(r.user === undefined ? `${at} ${r.problem}` : `${at}, user ${JSON.stringify(r.user)}, ${r.problem}`);
      continue;
    }
    const first = firstLine.get(r.name);
    if (first !== undefined) {
      problems.push(`${at}, user ${JSON.stringify(r.name)}, defines the user again (first on line ${first}); keep one line per user`);
      continue;
    }
    firstLine.set(r.name, i + 1);
    users.set(r.name, r);
  }
  if (problems.length === 0 && users.size === 0) problems.push(`has no users; add lines made with \`${fix('USER')}\``);
  return problems.length === 0 ? { ok: true, users } : { ok: false, problems };
}

/**
 * Checks a password (the bytes the client sent) against a user's hash: apr1 synchronously
 * (about 1 ms), bcrypt with bcryptjs's async compare (it yields to the event loop between slices).
 * Never rejects: a failure to check is a mismatch.
 */
export function verifyPassword(user: HtpasswdUser, password: Buffer): boolean | Promise<boolean> {
  if (user.scheme === 'apr1') {
    // apache-md5 hashes its input as one byte per character: the latin1 view of the bytes is
    // exactly what Apache's C code hashes, whatever the charset (a UTF-8 password included).
    const computed = Buffer.from(aprMd5(password.toString('latin1'), user.hash), 'latin1');
    const stored = Buffer.from(user.hash, 'latin1');
    // The salt comes from the stored hash, so a well-formed one (checked at load) gives the same
    // length; the guard only keeps timingSafeEqual from throwing.
    return computed.length === stored.length && timingSafeEqual(computed, stored);
  }
  // bcryptjs UTF-8-encodes the string, matching the charset="UTF-8" waygate asks clients for.
  return compare(password.toString('utf8'), user.hash).catch(() => false);
}

/**
 * A hash nobody's password matches, of the users' most common scheme and cost: an unknown user
 * costs the same check as a known one, so timing does not tell which names exist.
 */
export function dummyUser(users: Iterable<HtpasswdUser>): HtpasswdUser {
  const counts = new Map<string, { user: HtpasswdUser; n: number }>();
  for (const u of users) {
    const key = `${u.scheme}:${u.cost}`;
    const c = counts.get(key);
    if (c === undefined) counts.set(key, { user: u, n: 1 });
    else c.n++;
  }
  let best: HtpasswdUser | undefined;
  let bestN = 0;
  for (const { user, n } of counts.values()) {
    if (n > bestN) [best, bestN] = [user, n];
  }
  const scheme = best?.scheme ?? 'bcrypt';
  const cost = best?.cost ?? 10;
  // Random salt and digest: the check runs in full and the digest never matches.
  const hash = scheme === 'bcrypt'
    ? `$2b$${String(cost).padStart(2, '0')}$${randomCrypt(53)}`
    : `$apr1$${randomCrypt(8)}$${randomCrypt(22)}`;
  return { name: '', scheme, hash, cost };
}

function randomCrypt(n: number): string {
  let s = '';
  for (const b of randomBytes(n)) s += CRYPT_ALPHABET[b & 63];
  return s;
}

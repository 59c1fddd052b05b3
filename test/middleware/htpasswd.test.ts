// htpasswd lines (SPEC §8 basicAuth), made by the real `htpasswd` (apache2-utils) and by
// bcryptjs: bcrypt $2y$/$2a$/$2b$ and apr1 verify, with the right password only; every weaker or
// unknown scheme is refused with a message naming the line and user, saying how to make a good
// hash, and never repeating the hash or a plain-text password.
import { execFileSync } from 'node:child_process';
import { genSaltSync, hashSync } from 'bcryptjs';
import { describe, expect, test } from 'vitest';
import { dummyUser, MAX_BCRYPT_COST, parseHtpasswd, parseLine, verifyPassword } from '../../src/middleware/htpasswd.ts';
import type { HtpasswdUser } from '../../src/middleware/htpasswd.ts';

/** One line of `htpasswd -nb<flags> user password` (its output ends with a blank line). */
function htpasswd(flags: string[], user: string, password: string): string {
  return execFileSync('htpasswd', ['-nb', ...flags, user, password], { encoding: 'utf8' }).trim();
}

const fix = (user: string, flags = ''): string => `htpasswd -B${flags} users.txt ${user}`;

function user(line: string): HtpasswdUser {
  const r = parseLine(line, fix);
  if ('problem' in r) throw new Error(r.problem);
  return r;
}

const pw = (s: string): Buffer => Buffer.from(s, 'utf8');

describe('accepted hashes verify the right password and only that one', () => {
  test.each([
    ['htpasswd -B ($2y$)', () => htpasswd(['-B', '-C', '4'], 'alice', 'correct horse'), 'bcrypt', '$2y$'],
    ['htpasswd -B at its default cost', () => htpasswd(['-B'], 'alice', 'correct horse'), 'bcrypt', '$2y$'],
    ['bcryptjs $2b$', () => `alice:${hashSync('correct horse', 4)}`, 'bcrypt', '$2b$'],
    ['bcryptjs $2a$', () => `alice:${hashSync('correct horse', genSaltSync(4).replace('$2b$', '$2a$'))}`, 'bcrypt', '$2a$'],
    ['htpasswd -m (apr1)', () => htpasswd(['-m'], 'alice', 'correct horse'), 'apr1', '$apr1$'],
  ])('%s', async (_what, make, scheme, prefix) => {
    const u = user(make());
    expect(u.name).toBe('alice');
    expect(u.scheme).toBe(scheme);
    expect(u.hash.startsWith(prefix)).toBe(true);
    expect(await verifyPassword(u, pw('correct horse'))).toBe(true);
    expect(await verifyPassword(u, pw('correct horse '))).toBe(false);
    expect(await verifyPassword(u, pw(''))).toBe(false);
  });

  test('a UTF-8 password verifies against what htpasswd hashed, for bcrypt and apr1', async () => {
    for (const flags of [['-B', '-C', '4'], ['-m']]) {
      const u = user(htpasswd(flags, 'jürgen', 'pässwörd€'));
      expect(u.name).toBe('jürgen');
      expect(await verifyPassword(u, pw('pässwörd€'))).toBe(true);
      // The same letters in Latin-1 are other bytes: not the password.
      expect(await verifyPassword(u, Buffer.from('pässwörd', 'latin1'))).toBe(false);
    }
  });

  test('a password may contain ":" (only the user name cannot)', async () => {
    const u = user(htpasswd(['-m'], 'bob', 'a:b:c'));
    expect(await verifyPassword(u, pw('a:b:c'))).toBe(true);
  });

  test('the bcrypt cost is read from the hash', () => {
    expect(user(htpasswd(['-B', '-C', '6'], 'a', 'x')).cost).toBe(6);
    expect(user(htpasswd(['-m'], 'a', 'x')).cost).toBe(0);
  });
});

describe('refused hashes', () => {
  const SECRET = 'hunter2-hunter2';
  test.each([
    ['plain text (htpasswd -p)', () => htpasswd(['-p'], 'dave', SECRET), /has a plain-text password \(or a hash waygate does not know\)/],
    ['{SHA} (htpasswd -s)', () => htpasswd(['-s'], 'dave', SECRET), /unsalted SHA-1 hash \(\{SHA\}\)/],
    ['DES crypt (htpasswd -d)', () => htpasswd(['-d'], 'dave', SECRET), /DES crypt/],
    ['SHA-256 crypt (htpasswd -2)', () => htpasswd(['-2'], 'dave', SECRET), /SHA-crypt \(\$5\$\)/],
    ['SHA-512 crypt (htpasswd -5)', () => htpasswd(['-5'], 'dave', SECRET), /SHA-crypt \(\$6\$\)/],
    ['MD5-crypt $1$', () => `dave:$1$abcdefgh$${'x'.repeat(22)}`, /MD5-crypt \(\$1\$\)/],
    ['a truncated bcrypt hash', () => htpasswd(['-B', '-C', '4'], 'dave', SECRET).slice(0, -3), /malformed bcrypt/],
    ['a truncated apr1 hash', () => htpasswd(['-m'], 'dave', SECRET).slice(0, -3), /malformed apr1/],
    ['an unknown $id$', () => `dave:$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG`, /unknown scheme \("\$argon2id\$"\)/],
    ['no hash at all', () => 'dave:', /no password hash/],
  ])('%s: refused naming the line and user, saying how to make a good hash, without the hash', (_what, make, why) => {
    const line = make();
    const hash = line.slice(line.indexOf(':') + 1);
    const text = `# the admins\n\n${htpasswd(['-m'], 'erin', 'ok')}\n${line}\n`;
    const r = parseHtpasswd(text, fix);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems).toHaveLength(1);
    const message = r.problems[0];
    expect(message).toMatch(/^line 4, user "dave", /);
    expect(message).toMatch(why);
    expect(message).toContain('`htpasswd -B users.txt dave`');
    expect(message).toContain('bcrypt ($2y$/$2a$/$2b$) and apr1 ($apr1$)');
    if (hash.length > 0) expect(message).not.toContain(hash);
    expect(message).not.toContain(SECRET);
  });

  test(`a bcrypt cost above ${MAX_BCRYPT_COST} is refused: each check would take seconds in JavaScript`, () => {
    // Only parsed, never checked: the cost field of a real cost-4 hash, raised.
    const line = htpasswd(['-B', '-C', '4'], 'dave', SECRET).replace('$2y$04$', '$2y$17$');
    const r = parseLine(line, fix);
    expect('problem' in r && r.problem).toMatch(/cost 17; .* accepts costs 4 to 14 .*`htpasswd -B -C 10 users.txt dave`/);
  });

  test('a line that is not "user:hash" is refused without repeating it (it may be a password)', () => {
    const r = parseHtpasswd(`${htpasswd(['-m'], 'erin', 'ok')}\n${SECRET}\n:${htpasswd(['-m'], 'x', 'y').split(':')[1]}\n`, fix);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems[0]).toMatch(/^line 2 is not "user:hash"; .*`htpasswd -B users.txt USER`/);
    expect(r.problems[1]).toMatch(/^line 3 has an empty user name/);
    expect(r.problems.join('\n')).not.toContain(SECRET);
  });

  test('a user defined twice is refused, naming both lines', () => {
    const r = parseHtpasswd([htpasswd(['-m'], 'erin', 'a'), htpasswd(['-m'], 'frank', 'b'), htpasswd(['-m'], 'erin', 'c')].join('\n'), fix);
    expect(!r.ok && r.problems).toEqual([expect.stringMatching(/^line 3, user "erin", defines the user again \(first on line 1\)/)]);
  });

  test('a file with no users is refused', () => {
    const r = parseHtpasswd('# nobody yet\n\n', fix);
    expect(!r.ok && r.problems[0]).toMatch(/has no users; add lines made with `htpasswd -B users.txt USER`/);
  });
});

test('comments, blank lines, CRLF line ends and a byte-order mark are fine', async () => {
  const a = htpasswd(['-m'], 'a', 'pa');
  const b = htpasswd(['-B', '-C', '4'], 'b', 'pb');
  const r = parseHtpasswd(`\uFEFF${a}\r\n# comment\r\n\r\n  ${b}  \r\n`, fix);
  expect(r.ok).toBe(true);
  if (!r.ok) return;
  expect([...r.users.keys()]).toEqual(['a', 'b']);
  expect(await verifyPassword(r.users.get('b')!, pw('pb'))).toBe(true);
});

describe('the dummy hash an unknown user is checked against', () => {
  test('has the scheme and cost most users have, and no password matches it', async () => {
    const users = [user(htpasswd(['-B', '-C', '5'], 'a', 'x')), user(htpasswd(['-B', '-C', '5'], 'b', 'x')), user(htpasswd(['-m'], 'c', 'x'))];
    const d = dummyUser(users);
    expect(d.scheme).toBe('bcrypt');
    expect(d.cost).toBe(5);
    expect(parseLine(`dummy:${d.hash}`, fix)).toMatchObject({ scheme: 'bcrypt', cost: 5 });
    expect(await verifyPassword(d, pw('x'))).toBe(false);
    expect(await verifyPassword(d, pw(''))).toBe(false);
  });

  test('apr1 when the users are apr1; a fresh random hash each build', () => {
    const users = [user(htpasswd(['-m'], 'a', 'x'))];
    const d = dummyUser(users);
    expect(d.scheme).toBe('apr1');
    expect(parseLine(`dummy:${d.hash}`, fix)).toMatchObject({ scheme: 'apr1' });
    expect(verifyPassword(d, pw('x'))).toBe(false);
    expect(dummyUser(users).hash).not.toBe(d.hash);
  });
});

// Accept-Encoding negotiation (RFC 9110 §12.5.3) as a table: what a client sends → the coding
// waygate answers in (undefined: none, the response goes out as the upstream made it).
import { describe, expect, it } from 'vitest';
import { CODINGS, negotiate, parseAcceptEncoding } from '../../src/middleware/accept-encoding.ts';
import type { Coding } from '../../src/middleware/accept-encoding.ts';

const DEFAULT: readonly Coding[] = CODINGS;

const table: [header: string | undefined, preference: readonly Coding[], expected: Coding | undefined, why: string][] = [
  [undefined, DEFAULT, undefined, 'no field: the client did not say it can decode anything'],
  ['', DEFAULT, undefined, 'an empty field asks for no coding'],
  ['gzip', DEFAULT, 'gzip', 'the one coding named'],
  ['GZIP', DEFAULT, 'gzip', 'coding names are case-insensitive'],
  ['x-gzip', DEFAULT, 'gzip', 'x-gzip is gzip (RFC 9110 §8.4.1.3)'],
  ['gzip, deflate, br', DEFAULT, 'br', 'a tie at q=1 goes to the server preference'],
  ['gzip, deflate, br, zstd', DEFAULT, 'zstd', 'a modern browser'],
  ['deflate, gzip, br, zstd', ['gzip', 'br', 'zstd'], 'gzip', 'the configured order breaks ties, not the client order'],
  ['br;q=1.0, gzip;q=0.8, *;q=0.1', DEFAULT, 'br', 'the highest weight wins over * for the unnamed zstd'],
  ['gzip;q=1, br;q=0.9', DEFAULT, 'gzip', 'a higher weight beats the server preference'],
  ['gzip;q=0.5, br;q=0.5', DEFAULT, 'br', 'equal weights: server preference'],
  ['zstd;q=0, br;q=0, gzip;q=0', DEFAULT, undefined, 'q=0 excludes'],
  ['*', DEFAULT, 'zstd', '* covers every coding'],
  ['*;q=0', DEFAULT, undefined, '* at 0 excludes everything'],
  ['*, zstd;q=0', DEFAULT, 'br', 'a named q=0 beats *'],
  ['*;q=0.5, gzip', DEFAULT, 'gzip', 'a named coding beats * by weight'],
  ['*;q=0.5, gzip;q=0.4', DEFAULT, 'zstd', '* gives the unnamed a higher weight than the named'],
  ['identity', DEFAULT, undefined, 'identity only'],
  ['identity;q=1, gzip;q=0.5', DEFAULT, undefined, 'identity preferred by weight'],
  ['identity;q=0.5, gzip;q=0.5', DEFAULT, 'gzip', 'a tie between identity and a coding compresses'],
  ['gzip;q=0.5', DEFAULT, 'gzip', 'an unnamed identity loses to any weighted coding'],
  ['gzip;q=0.5, *;q=0.8', ['gzip'], undefined, '* covers identity too, here above gzip'],
  ['identity;q=0, gzip;q=0', DEFAULT, undefined, 'nothing acceptable: the response goes out as it is'],
  ['*;q=0, identity', DEFAULT, undefined, 'identity named, every coding excluded'],
  ['zstd;q=0.001, identity;q=0', DEFAULT, 'zstd', 'the lowest positive weight still counts'],
  ['deflate, compress', DEFAULT, undefined, 'codings waygate does not make'],
  ['br, zstd', ['gzip'], undefined, 'codings not configured'],
  ['gzip;q=1.000', DEFAULT, 'gzip', 'three decimals allowed'],
  ['gzip;q=1.001', DEFAULT, undefined, 'above 1: malformed, ignored'],
  ['gzip;q=2', DEFAULT, undefined, 'above 1: malformed, ignored'],
  ['gzip;q=0.5000', DEFAULT, undefined, 'four decimals: malformed, ignored'],
  ['gzip;q=, br;q=0.1', DEFAULT, 'br', 'an empty weight: that member ignored, not the field'],
  ['gzip;q=abc, br', DEFAULT, 'br', 'a weight that is not a number'],
  ['gzip;q=-1, br;q=0.2', DEFAULT, 'br', 'a negative weight'],
  ['gzip;Q=0.3, br;q=0.2', DEFAULT, 'gzip', 'the q parameter name is case-insensitive'],
  ['gzip ; q=0.3 ,  br;q=0.2', DEFAULT, 'gzip', 'whitespace around ; and ,'],
  [' , gzip,,', DEFAULT, 'gzip', 'empty list members'],
  ['gz ip, br;q=0.5', DEFAULT, 'br', 'a name that is not a token'],
  ['"gzip", br;q=0.5', DEFAULT, 'br', 'a quoted name'],
  ['gzip;q=0.5;q=1, br;q=0.1', DEFAULT, 'br', 'two weights: ambiguous, ignored'],
  ['br;level=5', DEFAULT, 'br', 'a parameter other than q is ignored'],
  ['gzip;q=0, gzip;q=1', DEFAULT, undefined, 'a name given twice keeps its first weight'],
  ['gzip;q=1, x-gzip;q=0', DEFAULT, 'gzip', 'x-gzip after gzip is the same name given twice'],
  [';q=1, br', DEFAULT, 'br', 'a member with no name'],
  ['\u00e9, br', DEFAULT, 'br', 'a non-ASCII name'],
];

describe('accept-encoding negotiation', () => {
  it.each(table)('%j with preference %j → %s (%s)', (header, preference, expected) => {
    expect(negotiate(header, preference)).toBe(expected);
  });

  it('parses weights and * into a map', () => {
    const a = parseAcceptEncoding('GZip;q=0.8, br, *;q=0.1, identity;q=0, zstd;q=0.25');
    expect(Object.fromEntries(a.weights)).toEqual({ gzip: 0.8, br: 1, identity: 0, zstd: 0.25 });
    expect(a.star).toBe(0.1);
    expect(parseAcceptEncoding('gzip').star).toBeUndefined();
  });

  it('survives a huge field of junk and still finds the one good member', () => {
    const junk = Array.from({ length: 20_000 }, (_, i) => (i % 3 === 0 ? `c${i};q=0.${i % 10}` : i % 3 === 1 ? ';;;==' : '\u0000\t')).join(',');
    expect(negotiate(junk + ',br;q=0.9', DEFAULT)).toBe('br');
    expect(negotiate(';'.repeat(100_000), DEFAULT)).toBeUndefined();
  });
});

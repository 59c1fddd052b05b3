// The differential fuzz of the builtin HTTP/1.1 client's response parser against llhttp
// (test/fuzz; `npm run fuzz` runs it longer): hand-written cases from every category that must stay
// agreed, checks that the harness reports a difference when there is one and replays what it
// reports, and a bounded run of generated cases — a fixed seed and a random one, printed.
import { randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ALLOW_LIST } from '../fuzz/allow-list.ts';
import { fromJson, handCase, readCases, toJson } from '../fuzz/case.ts';
import type { EndMode } from '../fuzz/case.ts';
import { judge } from '../fuzz/compare.ts';
import { fuzz, runCase } from '../fuzz/fuzz.ts';
import { generate } from '../fuzz/generate.ts';
import { describeResult, summary, writeCases } from '../fuzz/report.ts';

/** Seconds of generated cases per seed: two seeds stay within the 30 s the issue allows. */
const FUZZ_SECONDS = 12;
/** The seed every run repeats, so a regression it finds is found again. */
const FIXED_SEED = 20261201;

interface Hand {
  text: string;
  method?: string;
  end?: EndMode;
  /** Write the bytes one at a time. */
  bytewise?: boolean;
  /** The judgement: agreement, or the allow-list entry that covers the difference. */
  expect: 'agree' | string;
  /** Both clients' verdict, when they agree. */
  verdict?: 'accepted' | 'rejected' | 'pending';
  /** When accepted: the body, and whether the connection is used again. */
  body?: string;
  reused?: boolean;
}

const OK = 'HTTP/1.1 200 OK\r\n';
const CHUNKED = `${OK}Transfer-Encoding: chunked\r\n\r\n`;

const HAND: [string, Hand][] = [
  ['status line: plain, reused', { text: `${OK}Content-Length: 2\r\n\r\nok`, expect: 'agree', verdict: 'accepted', body: 'ok', reused: true }],
  ['status line: no reason phrase', { text: 'HTTP/1.1 204\r\n\r\n', expect: 'agree', verdict: 'accepted', body: '', reused: true }],
  ['status line: HTTP/1.0 is not kept alive', { text: 'HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok', expect: 'agree', verdict: 'accepted', reused: false }],
  ['status line: a status below 100', { text: 'HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n', expect: 'status-below-100' }],
  ['status line: HTTP/2.0', { text: 'HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n', expect: 'http-version' }],
  ['status line: a NUL in the reason', { text: 'HTTP/1.1 200 O\x00K\r\nContent-Length: 0\r\n\r\n', expect: 'reason-controls' }],
  ['headers: obs-fold', { text: `${OK}X-A: a\r\n b\r\nContent-Length: 0\r\n\r\n`, expect: 'agree', verdict: 'rejected' }],
  ['headers: a space before the colon', { text: `${OK}X-A : a\r\nContent-Length: 0\r\n\r\n`, expect: 'agree', verdict: 'rejected' }],
  ['headers: obs-text and HTAB kept, OWS dropped', { text: `${OK}X-A: \t caf\xe9\tau lait \t\r\nContent-Length: 0\r\n\r\n`, expect: 'agree', verdict: 'accepted' }],
  ['headers: a bare LF', { text: `${OK}X-A: a\nX-B: b\r\nContent-Length: 0\r\n\r\n`, expect: 'agree', verdict: 'rejected' }],
  ['content-length: leading zeros', { text: `${OK}Content-Length: 00000000000000000002\r\n\r\nok`, expect: 'agree', verdict: 'accepted', body: 'ok' }],
  ['content-length: two equal fields', { text: `${OK}Content-Length: 2\r\nContent-Length: 2\r\n\r\nok`, expect: 'agree', verdict: 'rejected' }],
  ['content-length: a list', { text: `${OK}Content-Length: 2, 2\r\n\r\nok`, expect: 'agree', verdict: 'rejected' }],
  ['content-length: cut by the close', { text: `${OK}Content-Length: 10\r\n\r\nabc`, end: 'close', expect: 'agree', verdict: 'rejected' }],
  ['content-length: still waiting for the rest', { text: `${OK}Content-Length: 10\r\n\r\nabc`, expect: 'agree', verdict: 'pending' }],
  ['content-length: beyond 2^53 - 1', { text: `${OK}Content-Length: 18446744073709551615\r\n\r\nabc`, expect: 'length-over-2^53' }],
  ['transfer-encoding: with Content-Length', { text: `${OK}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, expect: 'agree', verdict: 'rejected' }],
  ['transfer-encoding: gzip, chunked', { text: `${OK}Transfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`, expect: 'transfer-coding' }],
  ['transfer-encoding: chunked and a tab (llhttp reads it to the close)', { text: `${OK}Transfer-Encoding: chunked\t\r\n\r\n3\r\nabc\r\n0\r\n\r\n`, end: 'close', expect: 'transfer-coding' }],
  ['chunked: extensions, leading zeros, one byte at a time', { text: `${CHUNKED}05;a=b;c="d e"\r\nhello\r\n00\r\n\r\n`, bytewise: true, expect: 'agree', verdict: 'accepted', body: 'hello', reused: true }],
  ['chunked: whitespace before an extension', { text: `${CHUNKED}5 ;a=b\r\nhello\r\n0\r\n\r\n`, expect: 'agree', verdict: 'rejected' }],
  ['chunked: data longer than its size', { text: `${CHUNKED}3\r\nabcd\r\n0\r\n\r\n`, expect: 'agree', verdict: 'rejected' }],
  ['chunked: a bad byte in an extension, the line never ending', { text: `${CHUNKED}5;a=b c`, expect: 'agree', verdict: 'rejected' }],
  ['trailers: passed on', { text: `${CHUNKED}3\r\nabc\r\n0\r\nX-Sum: 42\r\nX-Sum: 43\r\n\r\n`, bytewise: true, expect: 'agree', verdict: 'accepted', body: 'abc', reused: true }],
  ['trailers: a Content-Length trailer', { text: `${CHUNKED}3\r\nabc\r\n0\r\nContent-Length: 3\r\n\r\n`, expect: 'agree', verdict: 'rejected' }],
  ['connection: close', { text: `${OK}Connection: close\r\nContent-Length: 2\r\n\r\nok`, expect: 'agree', verdict: 'accepted', reused: false }],
  ['connection: HTTP/1.0 keep-alive', { text: 'HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok', expect: 'agree', verdict: 'accepted', reused: true }],
  ['connection: a Keep-Alive hint too short to use', { text: `${OK}Keep-Alive: timeout=1\r\nContent-Length: 2\r\n\r\nok`, expect: 'agree', verdict: 'accepted', reused: false }],
  ['connection: a Keep-Alive timeout after max=', { text: `${OK}Keep-Alive: max=5, timeout=1\r\nContent-Length: 2\r\n\r\nok`, expect: 'keep-alive-hint' }],
  ['interim: 103 then the response', { text: `HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n${OK}Content-Length: 2\r\n\r\nok`, expect: 'agree', verdict: 'accepted', body: 'ok', reused: true }],
  ['interim: a 1xx that closes the connection', { text: `HTTP/1.1 100 Continue\r\nConnection: close\r\n\r\n${OK}Content-Length: 2\r\n\r\nok`, expect: 'agree', verdict: 'rejected' }],
  ['interim: a 101 nobody asked for', { text: 'HTTP/1.1 101 Switching Protocols\r\n\r\n', expect: 'unasked-101' }],
  ['bodiless: HEAD with a Content-Length', { text: `${OK}Content-Length: 10\r\n\r\n`, method: 'HEAD', expect: 'agree', verdict: 'accepted', body: '', reused: true }],
  ['bodiless: HEAD without a length', { text: `${OK}X-A: 1\r\n\r\n`, method: 'HEAD', expect: 'agree', verdict: 'accepted', body: '', reused: false }],
  ['bodiless: 304 with a body-looking payload', { text: 'HTTP/1.1 304 Not Modified\r\nContent-Length: 4\r\n\r\nbody', expect: 'agree', verdict: 'accepted', body: '', reused: false }],
  ['after the end: empty lines (llhttp skips them and reuses)', { text: `${OK}Content-Length: 2\r\n\r\nok\r\n\r\n`, expect: 'bytes-after-response' }],
  ['close-delimited: read to the close', { text: `${OK}\r\nuntil the close`, end: 'close', expect: 'agree', verdict: 'accepted', body: 'until the close', reused: false }],
  ['close-delimited: never closed', { text: `${OK}\r\nstill open`, expect: 'agree', verdict: 'pending' }],
  ['after the end: junk in a later write', { text: `${OK}Content-Length: 2\r\n\r\nokJUNK`, expect: 'agree', verdict: 'accepted', body: 'ok', reused: false }],
  // Over the limit on the wire, under it as Node counts (names, values and reason only).
  ['limits: a head just over maxHeaderSize', { text: `${OK}X-Big: ${'a'.repeat(16_350)}\r\nContent-Length: 0\r\n\r\n`, expect: 'head-size' }],
];

describe('the differential fuzz against llhttp', () => {
  test.each(HAND)('%s', async (_name, h) => {
    const splits = h.bytewise === true ? Array.from({ length: h.text.length - 1 }, (_, i) => i + 1) : h.text.endsWith('JUNK') ? [h.text.length - 4] : [];
    const r = await runCase(handCase(h.text, { method: h.method, end: h.end, splits, gaps: splits.map(() => 0) }));
    const j = r.judgement;
    expect(j.kind === 'agree' ? 'agree' : j.kind === 'allowed' ? j.allowance : `disagreement: ${j.reason}`, describeResult(r)).toBe(h.expect);
    if (h.verdict !== undefined) expect([r.builtin.verdict, r.node.verdict]).toEqual([h.verdict, h.verdict]);
    if (h.body !== undefined) expect(r.builtin.body.toString('latin1')).toBe(h.body);
    if (h.reused !== undefined) expect([r.builtin.reused, r.node.reused]).toEqual([h.reused, h.reused]);
  });

  test('a difference is reported when nothing excuses it, written to a file that replays the same case', async () => {
    // The same bytes as "a 101 nobody asked for", judged without the allow-list: the harness must
    // see waygate refuse what llhttp accepts, confirm it on rerun, and write it out.
    const c = handCase('HTTP/1.1 101 Switching Protocols\r\n\r\n', { splits: [5, 20], gaps: [0, 2] });
    const stats = await fuzz({ seed: 0, cases: [c], allowList: [], concurrency: 1 });
    expect(stats.disagreements.map((r) => r.judgement.reason)).toEqual([expect.stringMatching(/^waygate rejects .* what llhttp accepts$/)]);
    expect(summary(stats)).toContain('disagreements: 1');
    const dir = mkdtempSync(join(tmpdir(), 'waygate-fuzz-test-'));
    try {
      writeCases(join(dir, 'cases.json'), stats.disagreements);
      const [back] = readCases(join(dir, 'cases.json'));
      expect({ bytes: back.bytes.toString('latin1'), splits: back.splits, gaps: back.gaps, method: back.method, end: back.end }).toEqual({ bytes: c.bytes.toString('latin1'), splits: [5, 20], gaps: [0, 2], method: 'GET', end: 'keep' });
      expect((await runCase(back)).judgement).toEqual({ kind: 'allowed', allowance: 'unasked-101' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a body read differently by the two clients is a disagreement even where the allow-list covers the case', async () => {
    // Waygate reads the case, Node a copy whose body differs in one byte: the comparison must say so.
    const c = handCase(`${OK}Transfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`);
    const [mine, theirs] = await Promise.all([
      runCase(handCase(`${OK}Content-Length: 3\r\n\r\nabc`)),
      runCase(handCase(`${OK}Content-Length: 3\r\n\r\nabd`)),
    ]);
    expect(judge(c, mine.builtin, theirs.node, ALLOW_LIST)).toEqual({ kind: 'disagree', reason: 'body differ: waygate "abc", llhttp "abd"' });
  });

  test('the same seed gives the same cases, and a case survives its JSON form', () => {
    for (let i = 0; i < 200; i++) {
      const a = generate(FIXED_SEED, i);
      const b = generate(FIXED_SEED, i);
      expect(b.bytes.equals(a.bytes) && b.splits.join() === a.splits.join() && b.method === a.method && b.end === a.end).toBe(true);
      const back = fromJson(JSON.parse(JSON.stringify(toJson(a))) as Record<string, unknown>);
      expect(back.bytes.equals(a.bytes) && back.splits.join() === a.splits.join() && back.gaps.join() === a.gaps.join()).toBe(true);
    }
    expect(generate(FIXED_SEED, 1).bytes.equals(generate(FIXED_SEED + 1, 1).bytes)).toBe(false);
  });

  test.each([
    ['fixed', FIXED_SEED],
    ['random', randomInt(2 ** 32 - 1)],
  ])(`${FUZZ_SECONDS} s of generated cases, %s seed %i: no disagreement`, async (_kind, seed) => {
    const stats = await fuzz({ seed, seconds: FUZZ_SECONDS });
    console.log(`fuzz (npm run fuzz -- --seed ${seed}):\n${summary(stats)}`);
    expect(stats.iterations).toBeGreaterThan(0);
    expect(stats.verdicts.builtin.accepted).toBeGreaterThan(0);
    expect(stats.verdicts.builtin.rejected).toBeGreaterThan(0);
    expect(stats.disagreements.map(describeResult), `seed ${seed}`).toEqual([]);
  });
});

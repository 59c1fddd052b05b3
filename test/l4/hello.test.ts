// The TLS ClientHello reader (src/l4/hello.ts) on real bytes: hellos captured from Node's own TLS
// client (OpenSSL 3.5 sends an X25519MLKEM768 post-quantum key share, so a hello is > 1.5 KB and
// exceeds one typical segment's worth of small writes), fed whole, one byte per push, at seeded
// random split points, and re-framed into several TLS records; then hand-made hellos and records
// that break each rule, the byte limit, and seeded random mutations of a real hello.
import type { ConnectionOptions } from 'node:tls';
import { beforeAll, describe, expect, test } from 'vitest';
import { HelloReader, MAX_HELLO_BYTES, readHello } from '../../src/l4/hello.ts';
import type { HelloResult } from '../../src/l4/hello.ts';
import { captureHello } from '../l4-helpers.ts';

/**
 * The ClientHello a Node TLS client sends to a raw TCP server (which never answers). Asserts
 * OpenSSL sent it as one record, as it does for hellos under 16 KiB.
 */
async function capture(options: ConnectionOptions): Promise<Buffer> {
  const b = await captureHello(options);
  const recordLength = b.readUInt16BE(3);
  expect(b.length).toBe(5 + recordLength); // one record, nothing after it
  expect(b[0]).toBe(22);
  expect(b.readUInt32BE(5) & 0xffffff).toBe(recordLength - 4); // one handshake message fills the record
  return b;
}

/** mulberry32: a small seeded PRNG, so every "random" case is the same on every run. */
function rng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n: number) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

/** Pushes `buf` in pieces ending at the given offsets (the last piece runs to the end); returns every result. */
function feed(reader: HelloReader, buf: Buffer, cuts: number[]): HelloResult[] {
  const out: HelloResult[] = [];
  let at = 0;
  for (const cut of [...cuts, buf.length]) {
    if (cut <= at) continue;
    out.push(reader.push(buf.subarray(at, cut)));
    at = cut;
  }
  return out;
}

/** Pushes `buf` one byte at a time; returns the results and the number of bytes pushed when the result stopped being 'more'. */
function bytewise(buf: Buffer, limit?: number): { results: HelloResult[]; decidedAt: number; reader: HelloReader } {
  const reader = new HelloReader(limit);
  const results: HelloResult[] = [];
  let decidedAt = -1;
  for (let i = 0; i < buf.length; i++) {
    const r = reader.push(buf.subarray(i, i + 1));
    results.push(r);
    if (decidedAt < 0 && r.kind !== 'more') decidedAt = i + 1;
  }
  return { results, decidedAt, reader };
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
function u24(n: number): Buffer {
  return Buffer.from([(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
}
const b8 = (...bytes: number[]) => Buffer.from(bytes);

/** TLS records (content type, legacy version) carrying `payload` in fragments of the given sizes (the last takes the rest). */
function records(payload: Buffer, sizes: number[] = [], type = 22, version = 0x0301): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (const size of [...sizes, payload.length]) {
    const n = Math.min(size, payload.length - at);
    if (n <= 0) break;
    out.push(b8(type), u16(version), u16(n), payload.subarray(at, at + n));
    at += n;
  }
  return Buffer.concat(out);
}

/** The handshake message in a captured single-record hello. */
const handshakeOf = (hello: Buffer) => hello.subarray(5);

function ext(type: number, data: Buffer): Buffer {
  return Buffer.concat([u16(type), u16(data.length), data]);
}
function sniExt(...names: string[]): Buffer {
  const entries = Buffer.concat(names.map((n) => {
    const h = Buffer.from(n, 'latin1');
    return Buffer.concat([b8(0), u16(h.length), h]);
  }));
  return ext(0, Buffer.concat([u16(entries.length), entries]));
}
function alpnExt(...names: string[]): Buffer {
  const list = Buffer.concat(names.map((n) => {
    const p = Buffer.from(n, 'latin1');
    return Buffer.concat([b8(p.length), p]);
  }));
  return ext(16, Buffer.concat([u16(list.length), list]));
}
interface Parts {
  version?: Buffer;
  sessionId?: Buffer; // length byte included
  suites?: Buffer; // length included
  compression?: Buffer; // length byte included
  extensions?: Buffer[] | Buffer | null; // list of extensions, or a raw block (length included), or null: none at all
}
/** A ClientHello body (after the 4-byte handshake header), well formed unless a part says otherwise. */
function helloBody(p: Parts = {}): Buffer {
  const sid = Buffer.alloc(32, 7);
  const suites = b8(0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f);
  const parts = [
    p.version ?? b8(3, 3),
    Buffer.alloc(32, 0xab),
    p.sessionId ?? Buffer.concat([b8(sid.length), sid]),
    p.suites ?? Buffer.concat([u16(suites.length), suites]),
    p.compression ?? b8(1, 0),
  ];
  const e = p.extensions === undefined ? [sniExt('db.example.com'), alpnExt('h2')] : p.extensions;
  if (Array.isArray(e)) {
    const block = Buffer.concat(e);
    parts.push(u16(block.length), block);
  } else if (e !== null) parts.push(e);
  return Buffer.concat(parts);
}
function handshake(body: Buffer, type = 1, length = body.length): Buffer {
  return Buffer.concat([b8(type), u24(length), body]);
}
/** A whole synthetic hello in one record. */
const synth = (p: Parts = {}) => records(handshake(helloBody(p)));

function expectHello(r: HelloResult, sni: string | undefined, alpn: string[]): void {
  expect(r).toEqual({ kind: 'hello', sni, alpn });
}
function expectBad(r: HelloResult, reason: RegExp): void {
  expect(r.kind).toBe('bad');
  if (r.kind === 'bad') expect(r.reason).toMatch(reason);
}

let pq: Buffer; // servername db.example.com, ALPN h2 + postgresql
let noSni: Buffer; // an IP host: Node sends no server_name
let dotted: Buffer; // servername DB.Example.COM.

beforeAll(async () => {
  // Node 24 (OpenSSL 3.5) offers X25519MLKEM768 with a key share by default; no ecdhCurve needed.
  pq = await capture({ servername: 'db.example.com', ALPNProtocols: ['h2', 'postgresql'] });
  noSni = await capture({});
  dotted = await capture({ servername: 'DB.Example.COM.' });
});

describe('real hellos from Node\'s TLS client', () => {
  test('the captured hello carries a post-quantum key share and is over 1500 bytes', () => {
    expect(pq.length).toBeGreaterThan(1500);
    // key_share (51) offers group 0x11ec (X25519MLKEM768) with its 1216-byte share.
    expect(pq.includes(Buffer.concat([u16(0x11ec), u16(1216)]))).toBe(true);
  });

  test('the whole hello at once', () => {
    expectHello(readHello(pq), 'db.example.com', ['h2', 'postgresql']);
    const reader = new HelloReader();
    expectHello(reader.push(pq), 'db.example.com', ['h2', 'postgresql']);
    expect(reader.bytes).toBe(pq); // one chunk: handed back as is, no copy
  });

  test('one byte per push: \'more\' until the last byte', () => {
    const { results, decidedAt, reader } = bytewise(pq);
    expect(decidedAt).toBe(pq.length);
    expect(results.slice(0, -1).every((r) => r.kind === 'more')).toBe(true);
    expectHello(results.at(-1)!, 'db.example.com', ['h2', 'postgresql']);
    expect(reader.bytes.equals(pq)).toBe(true);
  });

  test('every proper prefix is \'more\'', () => {
    for (let n = 0; n < pq.length; n++) expect(readHello(pq.subarray(0, n)).kind).toBe('more');
  });

  test('seeded random split points', () => {
    const rand = rng(0x5eed);
    for (let round = 0; round < 100; round++) {
      const cuts = Array.from({ length: 1 + rand(12) }, () => rand(pq.length)).sort((a, b) => a - b);
      const reader = new HelloReader();
      const results = feed(reader, pq, cuts);
      expect(results.slice(0, -1).every((r) => r.kind === 'more')).toBe(true);
      expectHello(results.at(-1)!, 'db.example.com', ['h2', 'postgresql']);
      expect(reader.bytes.equals(pq)).toBe(true);
    }
  });

  test('the handshake message re-framed into three records, one byte at a time', () => {
    const hs = handshakeOf(pq);
    const framed = records(hs, [600, 600]);
    expect(framed.length).toBe(pq.length + 10);
    const { results, decidedAt, reader } = bytewise(framed);
    expect(decidedAt).toBe(framed.length);
    expectHello(results.at(-1)!, 'db.example.com', ['h2', 'postgresql']);
    expect(reader.bytes.equals(framed)).toBe(true);
    expectHello(readHello(framed), 'db.example.com', ['h2', 'postgresql']);
  });

  test('records split inside the handshake header and inside extensions, any version 0x0300..0x03ff', () => {
    const hs = handshakeOf(pq);
    for (const [sizes, version] of [[[1, 1, 1, 1], 0x0301], [[2, 5, 1000], 0x0303], [[3, 400, 1, 1, 16], 0x0300], [[100], 0x03ff]] as const) {
      const framed = records(hs, [...sizes], 22, version);
      expectHello(readHello(framed), 'db.example.com', ['h2', 'postgresql']);
      expectHello(bytewise(framed).results.at(-1)!, 'db.example.com', ['h2', 'postgresql']);
    }
  });

  test('no SNI for an IP host, no ALPN', () => {
    expectHello(readHello(noSni), undefined, []);
    expectHello(bytewise(noSni).results.at(-1)!, undefined, []);
  });

  test('a trailing dot and upper case: sent as is, read lower-cased without the dot', () => {
    expect(dotted.includes(Buffer.from('DB.Example.COM.', 'latin1'))).toBe(true);
    expectHello(readHello(dotted), 'db.example.com', []);
  });

  test('a hello followed by more bytes in the same chunk: still \'hello\', every byte kept unaltered', () => {
    const extra = Buffer.from('early bytes after the hello '.repeat(20), 'latin1');
    const stream = Buffer.concat([pq, extra]);
    expectHello(readHello(stream), 'db.example.com', ['h2', 'postgresql']);
    const reader = new HelloReader();
    expect(reader.push(stream.subarray(0, 700)).kind).toBe('more');
    const r = reader.push(stream.subarray(700, pq.length + 100));
    expectHello(r, 'db.example.com', ['h2', 'postgresql']);
    expect(reader.push(stream.subarray(pq.length + 100))).toBe(r); // the same result after the hello
    expect(reader.bytes.equals(stream)).toBe(true);
    expect(reader.bytes).toBe(reader.bytes); // concatenated once
  });

  test('a hello that ends exactly at the limit is read; one byte over is refused as soon as its length is known', () => {
    expectHello(readHello(pq, pq.length), 'db.example.com', ['h2', 'postgresql']);
    const over = bytewise(pq, pq.length - 1);
    expect(over.decidedAt).toBe(9); // record header + handshake header
    expectBad(over.results.at(-1)!, /over the \d+-byte limit/);
    // Three records: 10 more header bytes count too.
    const framed = records(handshakeOf(pq), [600, 600]);
    expect(readHello(framed, framed.length).kind).toBe('hello');
    expect(readHello(framed, framed.length - 1).kind).toBe('bad');
  });
});

describe('refused as early as the bytes allow', () => {
  test('non-TLS input at the first byte', () => {
    for (const text of ['GET / HTTP/1.1\r\n', 'SSH-2.0-OpenSSH_9.6\r\n', 'PRI * HTTP/2.0\r\n', '\x80\x2e\x01\x03\x01']) {
      const reader = new HelloReader();
      const r = reader.push(Buffer.from(text.slice(0, 1), 'latin1'));
      expectBad(r, /^not a TLS handshake/);
      expect(reader.push(Buffer.from(text.slice(1), 'latin1'))).toBe(r);
      expect(reader.bytes.toString('latin1')).toBe(text);
    }
  });

  test('an alert record (content type 21) first', () => {
    const alert = records(b8(2, 40), [], 21, 0x0303);
    expectBad(bytewise(alert).results[0]!, /^not a TLS handshake \(first byte 0x15\)/);
  });

  test('a record of another content type before the hello is complete', () => {
    const hs = handshakeOf(pq);
    const stream = Buffer.concat([records(hs.subarray(0, 500)), records(b8(1), [], 20), records(hs.subarray(500))]);
    const { decidedAt, results } = bytewise(stream);
    expect(decidedAt).toBe(505 + 1);
    expectBad(results.at(-1)!, /content type 20 before the ClientHello is complete/);
  });

  test('a handshake message of type 2 (server_hello)', () => {
    const { decidedAt, results } = bytewise(records(handshake(helloBody(), 2)));
    expect(decidedAt).toBe(6);
    expectBad(results.at(-1)!, /type 2, not a ClientHello/);
  });

  test('record layer: major version not 3, empty record, record over 2^14', () => {
    const v2 = bytewise(records(handshake(helloBody()), [], 22, 0x0201));
    expect(v2.decidedAt).toBe(2);
    expectBad(v2.results.at(-1)!, /major 2/);
    expectBad(readHello(b8(22, 3, 1, 0, 0)), /empty handshake record/);
    const big = b8(22, 3, 1, 0x40, 0x01);
    expectBad(readHello(big), /record of 16385 bytes/);
    expect(readHello(b8(22, 3, 1, 0x40, 0x00)).kind).toBe('more'); // 2^14 exactly is allowed
    const huge = bytewise(b8(22, 3, 1, 0x41, 0x00));
    expect(huge.decidedAt).toBe(4); // 0x41xx is over 2^14 whatever the last byte
    // A second record is judged too.
    expectBad(readHello(Buffer.concat([records(handshakeOf(pq).subarray(0, 10)), b8(22, 3, 3, 0, 0)])), /empty/);
  });

  test('a declared handshake length over the limit, before the bytes arrive', () => {
    const head = Buffer.concat([b8(22, 3, 1, 0x40, 0x00), b8(1), u24(16384)]);
    const { decidedAt, results } = bytewise(head);
    expect(decidedAt).toBe(9);
    expectBad(results.at(-1)!, /^ClientHello of 16388 bytes is over the 16384-byte limit$/);
    expectBad(readHello(pq, 1000), new RegExp(`^ClientHello of ${pq.length - 5} bytes is over the 1000-byte limit$`));
    // Fits as a handshake length, but not with the record header it needs: 16380 + 5 > 16384.
    expectBad(readHello(Buffer.concat([b8(22, 3, 1, 0x40, 0x00), b8(1), u24(16376)])), /would end at byte 16385/);
  });

  test('17 KiB of valid-looking records that never complete a hello', () => {
    // A 16000-byte handshake in 100-byte records needs 160 record headers: it cannot end by 16384.
    const hs = handshake(Buffer.concat([helloBody(), Buffer.alloc(16000 - 4 - helloBody().length)]));
    expect(hs.length).toBe(16000);
    const stream = records(hs, Array(200).fill(100)).subarray(0, 17 * 1024);
    const reader = new HelloReader();
    const cuts = Array.from({ length: 17 }, (_, i) => (i + 1) * 1024);
    const results = feed(reader, stream, cuts);
    expect(results.slice(0, 4).every((r) => r.kind === 'more')).toBe(true);
    expectBad(results.at(-1)!, /over the 16384-byte limit/);
    // Decided long before 16 KiB arrive: the 76th record header ends at byte 7880 and leaves 8500
    // handshake bytes, 8400 of them beyond this record, so at least one more header: the hello
    // cannot end before byte 7880 + 8500 + 5 = 16385.
    const { decidedAt } = bytewise(stream);
    expect(decidedAt).toBe(75 * 105 + 5);
    expect(results.findIndex((r) => r.kind !== 'more')).toBe(Math.floor((decidedAt - 1) / 1024));
    expect(reader.bytes.equals(stream)).toBe(true);
  });

  test('over the limit before even the handshake length is known', () => {
    // One handshake byte per record: the 4-byte handshake header takes 24 bytes.
    const stream = records(handshakeOf(pq), Array(10).fill(1));
    const { decidedAt, results } = bytewise(stream, 20);
    expect(decidedAt).toBe(21);
    expectBad(results.at(-1)!, /^no complete ClientHello within 20 bytes$/);
  });
});

describe('ClientHello body', () => {
  test('the synthetic hello is read; so are latin1 ALPN names and a second host_name is ignored', () => {
    expectHello(readHello(synth()), 'db.example.com', ['h2']);
    expectHello(readHello(synth({ extensions: [alpnExt('h2', 'http/1.1', 'caf\xe9'), sniExt('A.B.', 'other.example')] })), 'a.b', [
      'h2',
      'http/1.1',
      'café',
    ]);
  });

  test('an old hello without extensions; an empty extension block; unknown extensions ignored', () => {
    expectHello(readHello(synth({ extensions: null })), undefined, []);
    expectHello(readHello(synth({ extensions: [] })), undefined, []);
    expectHello(readHello(synth({ extensions: [ext(0xff01, b8(0)), ext(51, Buffer.alloc(1300)), sniExt('x.test'), ext(0x0a0a, Buffer.alloc(0))] })), 'x.test', []);
  });

  test('lengths that overflow their parents', () => {
    // Session id length 33, in a real hello.
    const sid = Buffer.from(pq);
    const sidAt = 5 + 4 + 2 + 32;
    expect(sid[sidAt]).toBe(32);
    sid[sidAt] = 33;
    expectBad(readHello(sid), /^session id of 33 bytes \(at most 32\)$/);
    // Session id running past a short hello.
    expectBad(readHello(records(handshake(Buffer.concat([b8(3, 3), Buffer.alloc(32), b8(20), Buffer.alloc(5)])))), /session id of 20 bytes runs past/);
    expectBad(readHello(records(handshake(Buffer.alloc(20, 3)))), /too short/);
    expectBad(readHello(synth({ version: b8(2, 0) })), /version 2\.0/);
    // Odd, empty, or overlong cipher suites.
    expectBad(readHello(synth({ suites: Buffer.concat([u16(3), b8(0x13, 0x01, 0x13)]) })), /^cipher suites of 3 bytes \(an even number/);
    expectBad(readHello(synth({ suites: u16(0) })), /cipher suites of 0 bytes/);
    expectBad(readHello(records(handshake(Buffer.concat([b8(3, 3), Buffer.alloc(32), b8(0), u16(40), Buffer.alloc(10)])))), /cipher suites of 40 bytes run past/);
    // Compression methods.
    expectBad(readHello(synth({ compression: b8(0) })), /no compression methods/);
    expectBad(readHello(records(handshake(Buffer.concat([b8(3, 3), Buffer.alloc(32), b8(0), u16(2), b8(0, 0x2f), b8(5, 0)])))), /compression methods of 5 bytes run past/);
    // The extension block and the extensions in it.
    expectBad(readHello(synth({ extensions: b8(0) })), /stray byte/);
    expectBad(readHello(synth({ extensions: Buffer.concat([u16(100), sniExt('a.test')]) })), /extensions of 100 bytes run past/);
    expectBad(readHello(synth({ extensions: Buffer.concat([u16(2), sniExt('a.test')]) })), /bytes after the extensions/);
    const pastEnd = Buffer.concat([u16(23), u16(100), b8(1, 2, 3)]);
    expectBad(readHello(synth({ extensions: Buffer.concat([u16(pastEnd.length), pastEnd]) })), /^extension 23 of 100 bytes runs past the end of the extensions$/);
    expectBad(readHello(synth({ extensions: Buffer.concat([u16(3), b8(0, 23, 0)]) })), /extension header runs past/);
    // A handshake length shorter than the body it frames: the body is cut, not read on.
    const body = helloBody();
    expectBad(readHello(records(handshake(body, 1, body.length - 3))), /runs past|run past|after/);
  });

  test('server_name and ALPN contents', () => {
    expectBad(readHello(synth({ extensions: [ext(0, u16(0))] })), /empty server_name list/);
    expectBad(readHello(synth({ extensions: [ext(0, Buffer.concat([u16(10), b8(0), u16(2), Buffer.from('ab')]))] })), /list of 10 bytes/);
    expectBad(readHello(synth({ extensions: [ext(0, Buffer.concat([u16(5), b8(0), u16(9), Buffer.from('ab')]))] })), /name of 9 bytes runs past/);
    expectBad(readHello(synth({ extensions: [sniExt('a\x00b.test')] })), /byte 0x00 is not printable/);
    expectBad(readHello(synth({ extensions: [sniExt('caf\xe9.test')] })), /byte 0xe9 is not printable/);
    expectBad(readHello(synth({ extensions: [sniExt('.')] })), /empty/);
    expectBad(readHello(synth({ extensions: [sniExt('')] })), /empty server name/);
    expectHello(readHello(synth({ extensions: [ext(0, Buffer.concat([u16(4), b8(7), u16(1), b8(0x41)])), alpnExt('h2')] })), undefined, ['h2']); // not a host_name
    expectBad(readHello(synth({ extensions: [ext(16, u16(0))] })), /empty ALPN protocol list/);
    expectBad(readHello(synth({ extensions: [alpnExt('h2', '')] })), /empty ALPN protocol name/);
    expectBad(readHello(synth({ extensions: [ext(16, Buffer.concat([u16(3), b8(5), Buffer.from('h2')]))] })), /name of 5 bytes runs past/);
    expectBad(readHello(synth({ extensions: [ext(16, b8(0))] })), /too short/);
  });

  test('a duplicated extension', () => {
    expectBad(readHello(synth({ extensions: [sniExt('a.test'), alpnExt('h2'), sniExt('b.test')] })), /^extension 0 appears twice$/);
    expectBad(readHello(synth({ extensions: [ext(43, b8(2, 3, 4)), ext(43, b8(2, 3, 4))] })), /^extension 43 appears twice$/);
  });
});

describe('robustness', () => {
  test('200 seeded single-byte mutations of a real hello: never throws, one-shot and bytewise agree', () => {
    const rand = rng(20250117);
    const kinds = { more: 0, hello: 0, bad: 0 };
    for (let i = 0; i < 200; i++) {
      const m = Buffer.from(pq);
      const at = rand(m.length);
      m[at] = m[at]! ^ (1 + rand(255));
      const r = readHello(m);
      expect(['more', 'hello', 'bad']).toContain(r.kind);
      kinds[r.kind]++;
      const reader = new HelloReader();
      const results = feed(reader, m, Array.from({ length: 6 }, () => rand(m.length)).sort((a, b) => a - b));
      expect(results.at(-1)).toEqual(r);
      expect(reader.bytes.equals(m)).toBe(true);
    }
    // Most flips land in the random, the key shares or the cipher list: still a hello.
    expect(kinds.hello).toBeGreaterThan(100);
    expect(kinds.bad).toBeGreaterThan(0);
  });

  test('after a result, pushes return it unchanged; empty pushes change nothing', () => {
    const reader = new HelloReader();
    expect(reader.bytes.length).toBe(0);
    expect(reader.push(Buffer.alloc(0)).kind).toBe('more');
    const r = reader.push(b8(0x47));
    expect(reader.push(pq)).toBe(r);
    expect(reader.push(Buffer.alloc(0))).toBe(r);
    expect(reader.bytes.equals(Buffer.concat([b8(0x47), pq]))).toBe(true);
    expect(MAX_HELLO_BYTES).toBe(16384);
  });
});

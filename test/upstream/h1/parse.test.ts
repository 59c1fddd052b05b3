// The upstream response parser: strict where a lenient reading could let a response be read two
// ways, and correct across any split of the bytes.
import { describe, expect, test } from 'vitest';
import { ChunkedDecoder, parseHead } from '../../../src/upstream/h1/parse.ts';

const codeOf = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
};

describe('parseHead', () => {
  test('a plain response: status, reason, raw headers in order, Content-Length framing, keep-alive', () => {
    const h = parseHead('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2', 'GET');
    expect(h).toMatchObject({ status: 200, reason: 'OK', framing: 'length', length: 5, keepAlive: true, keepAliveHint: -1 });
    expect(h.raw).toEqual(['Content-Type', 'text/plain', 'Content-Length', '5', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2']);
  });

  test('values lose surrounding whitespace, keep inner whitespace and HTAB', () => {
    expect(parseHead('HTTP/1.1 200 OK\r\nX-A: \t a \tb \t\r\nContent-Length: 0', 'GET').raw).toEqual(['X-A', 'a \tb', 'Content-Length', '0']);
  });

  test('a status line without a reason phrase is accepted', () => {
    expect(parseHead('HTTP/1.1 204\r\nX-A: 1', 'GET')).toMatchObject({ status: 204, reason: '', framing: 'none' });
  });

  test('framing: chunked when it is the one coding, the close without any, none for HEAD, 1xx, 204 and 304', () => {
    expect(parseHead('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked', 'GET').framing).toBe('chunked');
    expect(parseHead('HTTP/1.1 200 OK\r\nTransfer-Encoding:  Chunked ', 'GET').framing).toBe('chunked');
    expect(parseHead('HTTP/1.1 200 OK', 'GET')).toMatchObject({ framing: 'close', keepAlive: false });
    expect(parseHead('HTTP/1.1 200 OK\r\nContent-Length: 10', 'HEAD').framing).toBe('none');
    expect(parseHead('HTTP/1.1 103 Early Hints\r\nLink: </a.css>', 'GET').framing).toBe('none');
    expect(parseHead('HTTP/1.1 304 Not Modified\r\nContent-Length: 10', 'GET').framing).toBe('none');
  });

  // Issue 12, defect 4: "gzip, chunked" reached the client de-chunked as gzip bytes with nothing
  // declaring them. Any transfer coding but one chunked is a bad response (502), as in nginx.
  test.each([
    ['gzip, chunked'],
    ['gzip'],
    ['chunked, gzip'],
    ['identity, chunked'],
    ['chunked, chunked'],
    ['chunked\r\nTransfer-Encoding: chunked'],
    ['x-custom'],
  ])('Transfer-Encoding: %s is refused', (te) => {
    expect(() => parseHead(`HTTP/1.1 200 OK\r\nTransfer-Encoding: ${te}`, 'GET')).toThrow(expect.objectContaining({ code: 'HPE_INVALID_TRANSFER_ENCODING' }));
  });

  // Found by the differential fuzz (test/fuzz, seed 1): llhttp does not take these for chunked and
  // reads the body to the close, while waygate decoded chunks: one response read two ways.
  test.each([
    ['chunked\t'],
    ['chunked,'],
    ['chunked ,'],
    ['\tchunked\t'],
    ['chunked\r\nTransfer-Encoding:'],
    [''],
  ])('Transfer-Encoding: %j is refused (llhttp reads it to the close, or refuses it)', (te) => {
    expect(codeOf(() => parseHead(`HTTP/1.1 200 OK\r\nTransfer-Encoding: ${te}`, 'GET'))).toBe('HPE_INVALID_TRANSFER_ENCODING');
  });

  test('Transfer-Encoding: chunked with spaces around it is chunked, as llhttp reads it', () => {
    expect(parseHead('HTTP/1.1 200 OK\r\nTransfer-Encoding:  chunked  ', 'GET').framing).toBe('chunked');
    expect(parseHead('HTTP/1.1 200 OK\r\nTransfer-Encoding:\tCHUNKED', 'GET').framing).toBe('chunked');
  });

  // Fuzz, seed 1: lengths of 16 digits and more were refused, leading zeros included.
  test('Content-Length: leading zeros and every length up to 2^53 - 1 are read; beyond, refused', () => {
    expect(parseHead(`HTTP/1.1 200 OK\r\nContent-Length: ${'0'.repeat(40)}5`, 'GET')).toMatchObject({ framing: 'length', length: 5 });
    expect(parseHead('HTTP/1.1 200 OK\r\nContent-Length: 9007199254740991', 'GET').length).toBe(Number.MAX_SAFE_INTEGER);
    expect(codeOf(() => parseHead('HTTP/1.1 200 OK\r\nContent-Length: 9007199254740992', 'GET'))).toBe('HPE_INVALID_CONTENT_LENGTH');
  });

  // Fuzz, seed 1: llhttp reads Proxy-Connection as Connection, so Node closed where waygate reused.
  test('Proxy-Connection is read like Connection', () => {
    expect(parseHead('HTTP/1.1 200 OK\r\nProxy-Connection: te, close\r\nContent-Length: 0', 'GET').keepAlive).toBe(false);
    expect(parseHead('HTTP/1.0 200 OK\r\nProxy-Connection: keep-alive\r\nContent-Length: 0', 'GET').keepAlive).toBe(true);
  });

  // Fuzz, seed 1: the last of two Keep-Alive hints won (Node reads the first), and timeout=0 read as
  // "no hint" (a connection kept that the upstream closes at once).
  test('the Keep-Alive hint: the first timeout counts, timeout=0 is a hint, none is -1', () => {
    expect(parseHead('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nKeep-Alive: timeout=2\r\nContent-Length: 0', 'GET').keepAliveHint).toBe(1000);
    expect(parseHead('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=0\r\nContent-Length: 0', 'GET').keepAliveHint).toBe(0);
    expect(parseHead('HTTP/1.1 200 OK\r\nKeep-Alive: max=5\r\nContent-Length: 0', 'GET').keepAliveHint).toBe(-1);
  });

  // Fuzz, seed 1: llhttp (and undici) does not reuse after a HEAD response that has no length.
  test('a response to HEAD without Content-Length or chunked does not keep the connection; with one it does', () => {
    expect(parseHead('HTTP/1.1 200 OK\r\nX-A: 1', 'HEAD')).toMatchObject({ framing: 'none', keepAlive: false });
    expect(parseHead('HTTP/1.1 200 OK\r\nContent-Length: 10', 'HEAD')).toMatchObject({ framing: 'none', keepAlive: true });
    expect(parseHead('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked', 'HEAD')).toMatchObject({ framing: 'none', keepAlive: true });
    expect(parseHead('HTTP/1.1 100 Continue', 'HEAD').keepAlive).toBe(true);
  });

  test('connection: close, HTTP/1.0 without keep-alive, and the Keep-Alive timeout hint', () => {
    expect(parseHead('HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0', 'GET').keepAlive).toBe(false);
    expect(parseHead('HTTP/1.0 200 OK\r\nContent-Length: 0', 'GET').keepAlive).toBe(false);
    expect(parseHead('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0', 'GET').keepAlive).toBe(true);
    expect(parseHead('HTTP/1.1 200 OK\r\nKeep-Alive: max=100, timeout=5\r\nContent-Length: 0', 'GET').keepAliveHint).toBe(5000);
  });

  test.each([
    ['two Content-Length fields, even equal', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5', 'HPE_UNEXPECTED_CONTENT_LENGTH'],
    ['a Content-Length list', 'HTTP/1.1 200 OK\r\nContent-Length: 2, 5', 'HPE_INVALID_CONTENT_LENGTH'],
    ['a signed Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: +5', 'HPE_INVALID_CONTENT_LENGTH'],
    ['Content-Length with Transfer-Encoding', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5', 'HPE_UNEXPECTED_CONTENT_LENGTH'],
    ['obs-fold', 'HTTP/1.1 200 OK\r\nX-A: a\r\n b', 'HPE_INVALID_HEADER_TOKEN'],
    ['a space before the colon', 'HTTP/1.1 200 OK\r\nX-A : a', 'HPE_INVALID_HEADER_TOKEN'],
    ['a line without a colon', 'HTTP/1.1 200 OK\r\nX-A', 'HPE_INVALID_HEADER_TOKEN'],
    ['a bare LF inside the head', 'HTTP/1.1 200 OK\r\nX-A: a\nX-B: b', 'HPE_INVALID_HEADER_TOKEN'],
    ['a NUL in a value', 'HTTP/1.1 200 OK\r\nX-A: a\u0000b', 'HPE_INVALID_HEADER_TOKEN'],
    ['HTTP/2.0 in the status line', 'HTTP/2.0 200 OK', 'HPE_INVALID_CONSTANT'],
    ['a two-digit status', 'HTTP/1.1 20 OK', 'HPE_INVALID_STATUS'],
    ['a status below 100', 'HTTP/1.1 099 Odd', 'HPE_INVALID_STATUS'],
    ['no space after the status', 'HTTP/1.1 200OK', 'HPE_INVALID_STATUS'],
  ])('%s is refused', (_name, head, code) => {
    expect(codeOf(() => parseHead(head, 'GET'))).toBe(code);
  });
});

/** Feeds `bytes` to a decoder in pieces of `step` bytes; returns the data, trailers and end position. */
function decode(bytes: string, step: number): { data: string; trailers: Record<string, string>; end: number; done: boolean } {
  const d = new ChunkedDecoder(16 * 1024);
  const buf = Buffer.from(bytes, 'latin1');
  let data = '';
  let end = -1;
  for (let i = 0; i < buf.length && !d.done; i += step) {
    const piece = buf.subarray(i, Math.min(i + step, buf.length));
    const at = d.feed(piece, 0, (c) => {
      data += c.toString('latin1');
      return true;
    });
    if (d.done) end = i + at;
  }
  return { data, trailers: d.trailers, end, done: d.done };
}

describe('ChunkedDecoder', () => {
  const body = '5\r\nhello\r\n6;name=value\r\n world\r\n0\r\nX-Checksum: abc\r\nX-More: 1\r\n\r\nNEXT';

  test.each([1, 2, 3, 7, 1000])('decodes the same whatever the split (%i bytes at a time)', (step) => {
    const r = decode(body, step);
    expect(r).toEqual({ data: 'hello world', trailers: { 'x-checksum': 'abc', 'x-more': '1' }, end: body.indexOf('NEXT'), done: true });
  });

  test('a body without trailers ends at its empty line', () => {
    const r = decode('3\r\nabc\r\n0\r\n\r\n', 1);
    expect(r).toEqual({ data: 'abc', trailers: {}, end: 13, done: true });
  });

  test('stops when the consumer asks to, and goes on from there', () => {
    const d = new ChunkedDecoder(1024);
    const buf = Buffer.from('2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n');
    const seen: string[] = [];
    const at = d.feed(buf, 0, (c) => {
      seen.push(c.toString());
      return false;
    });
    expect(seen).toEqual(['ab']);
    d.feed(buf, at, (c) => {
      seen.push(c.toString());
      return true;
    });
    expect(seen).toEqual(['ab', 'cd']);
    expect(d.done).toBe(true);
  });

  // Fuzz, seed 1: a size of more than 13 digits was refused, leading zeros included.
  test('a size with leading zeros, in either case', () => {
    expect(decode(`${'0'.repeat(20)}5\r\nhello\r\n00A\r\n0123456789\r\n${'0'.repeat(20)}\r\n\r\n`, 1)).toMatchObject({ data: 'hello0123456789', done: true });
  });

  // Fuzz, seed 1: llhttp's strict grammar for chunk extensions (RFC 9112 §7.1.1 without BWS):
  // token names (llhttp takes an empty one before ';' or '='), token or quoted-string values.
  test.each(['5;a', '5;a=b', '5;a="b c"', '5;a="esc\\"q"', '5;a=b;c=d', '5;a;b', '5;a=', '5;a=;b', '5;=b', '5;;a', '5;a=""', '5;a="\xe9"', "5;a='b'"])('the chunk line %j is read', (line) => {
    expect(decode(`${line}\r\nhello\r\n0\r\n\r\n`, 1)).toMatchObject({ data: 'hello', done: true });
  });

  // Each is refused at the offending byte, before its line ends (llhttp does the same), so an
  // upstream that stops there is not read as if the line might still turn out valid.
  test.each([
    '5 ;a', '5\t;a', '5; a=b', '5;a =b', '5;a= b', '5;a=b ', '5;a=b\t', '5;a=b c', '5;a=b,c', '5;a@b', '5;a/b', '5;a=b=c',
    '5;"q"', '5;a"', '5;a="x"y', '5;a="x" ', '5;a="x\x01"', '5;a="\x7f"', '5;a="\\\x01"', '5;\x80', '5;a=\x80', '5;a=\t', '5\r\r',
  ])('the chunk line %j is refused before its end', (line) => {
    expect(codeOf(() => decode(line, 1))).toBe('HPE_INVALID_CHUNK_SIZE');
    expect(codeOf(() => decode(`${line}\r\nhello\r\n0\r\n\r\n`, 1000))).toBe('HPE_INVALID_CHUNK_SIZE');
  });

  test.each(['5;', '5;a;', '5;a=b;', '5;a="unterminated'])('the chunk line %j is refused at its CR', (line) => {
    expect(decode(line, 1).done).toBe(false);
    expect(codeOf(() => decode(`${line}\r\nhello\r\n0\r\n\r\n`, 1))).toBe('HPE_INVALID_CHUNK_SIZE');
  });

  test('a size beyond 2^53 - 1 is refused, not rounded', () => {
    expect(decode('1fffffffffffff\r\nabc', 3).done).toBe(false);
    expect(codeOf(() => decode('20000000000000\r\n', 1))).toBe('HPE_INVALID_CHUNK_SIZE');
  });

  // Fuzz, seed 1: llhttp refuses framing in trailers; waygate passed it on as a trailer.
  test('a Content-Length trailer is refused', () => {
    expect(codeOf(() => decode('3\r\nabc\r\n0\r\nContent-Length: 5\r\n\r\n', 1))).toBe('HPE_UNEXPECTED_CONTENT_LENGTH');
  });

  test.each([['X-B: \x01'], ['X('], ['X-A : a'], [' X'], ['X-A: a\rb']])('a trailer line %j is refused before it ends', (partial) => {
    expect(codeOf(() => decode(`3\r\nabc\r\n0\r\nX-A: 1\r\n${partial}`, 1))).toBe('HPE_INVALID_HEADER_TOKEN');
  });

  test.each([
    ['a non-hex size', 'zz\r\nhello\r\n0\r\n\r\n', 'HPE_INVALID_CHUNK_SIZE'],
    ['a size with a sign', '-5\r\nhello\r\n0\r\n\r\n', 'HPE_INVALID_CHUNK_SIZE'],
    ['an oversized size field', '10000000000000000\r\nx\r\n', 'HPE_INVALID_CHUNK_SIZE'],
    ['data longer than its size', '3\r\nhello\r\n0\r\n\r\n', 'HPE_INVALID_CHUNK_SIZE'],
    ['a bare LF after the size', '5\nhello\r\n0\r\n\r\n', 'HPE_INVALID_CHUNK_SIZE'],
    ['a trailer with obs-fold', '0\r\nX-A: 1\r\n b\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
  ])('%s is refused', (_name, bytes, code) => {
    expect(codeOf(() => decode(bytes, 1))).toBe(code);
    expect(codeOf(() => decode(bytes, 1000))).toBe(code);
  });
});

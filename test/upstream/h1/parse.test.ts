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
    expect(h).toMatchObject({ status: 200, reason: 'OK', framing: 'length', length: 5, keepAlive: true, keepAliveHint: 0 });
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

// The compress middleware built directly and driven with request objects: which responses it
// leaves alone (every skip rule), how it edits a head it compresses (content-encoding,
// content-length, ETag, Vary), its load errors, and its Transform against real data decoded
// with node:zlib — streamed, flushed while the body is still coming, bounded under backpressure.
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { brotliDecompressSync, constants, createBrotliDecompress, createGunzip, createZstdDecompress, gunzipSync, zstdDecompressSync } from 'node:zlib';
import type { Transform } from 'node:stream';
import { testDeps, testRequest } from './request.ts';
import { describe, expect, it, vi } from 'vitest';
import { formatConfigError, parseRoutesText } from '../../src/config/load.ts';
import { compress, createCompressor, DEFAULT_LEVELS, DEFAULT_MIN_BYTES, FLUSH_DELAY_MS } from '../../src/middleware/compress.ts';
import type { Coding } from '../../src/middleware/accept-encoding.ts';
import type { Middleware, ResponseHead } from '../../src/middleware/types.ts';

const deps = testDeps('squeeze');

function build(options: Record<string, unknown> = {}): Middleware {
  return compress.build(compress.options.parse(options), deps);
}

const BROWSER = 'gzip, deflate, br, zstd';

/** A request as the chain hands it over, recording the hooks registered on it. */
function request(headers: Record<string, string> = { 'accept-encoding': BROWSER }, method = 'GET', websocket = false): ReturnType<typeof testRequest> {
  return testRequest({ method, host: 'www.example.com', uri: '/page', route: 'web', websocket, headers });
}

/** Runs a request through `mw` and its hooks over a response head, as the forwarder does. */
function respond(mw: Middleware, req: ReturnType<typeof request>, status: number, headers: string[], own = false): { head: ResponseHead; transforms: Transform[] } {
  expect(mw.request(req)).toBeUndefined();
  const head: ResponseHead = { status, headers: [...headers], own };
  const transforms: Transform[] = [];
  for (const h of req.hooks) {
    const t = h.head?.(head);
    if (t !== undefined) transforms.push(t);
  }
  return { head, transforms };
}

function field(headers: readonly string[], name: string): string | undefined {
  const v: string[] = [];
  for (let i = 0; i < headers.length; i += 2) if (headers[i].toLowerCase() === name) v.push(headers[i + 1]);
  return v.length === 0 ? undefined : v.join(', ');
}

const HTML = ['content-type', 'text/html; charset=utf-8', 'content-length', '5000'];

/** Deterministic text that compresses like real pages do (words, numbers, markup), not like a repeated byte. */
function text(bytes: number, seed = 1): Buffer {
  const words = ['proxy', 'route', 'upstream', '<div class="x">', 'waygate', 'compress', '{"id":', '},', 'lorem', 'ipsum', '\n', 'zstd', 'brotli'];
  let s = seed;
  const parts: string[] = [];
  let n = 0;
  while (n < bytes) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const w = s % 7 === 0 ? String(s % 100_000) : words[s % words.length];
    parts.push(w, ' ');
    n += w.length + 1;
  }
  return Buffer.from(parts.join('')).subarray(0, bytes);
}

const DECODE_SYNC: Record<Coding, (b: Buffer) => Buffer> = { gzip: gunzipSync, br: brotliDecompressSync, zstd: zstdDecompressSync };
const DECODER: Record<Coding, () => Transform> = { gzip: createGunzip, br: createBrotliDecompress, zstd: createZstdDecompress };

async function collect(t: Transform, input: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  t.on('data', (c: Buffer) => out.push(c));
  for (const c of input) if (!t.write(c)) await once(t, 'drain');
  t.end();
  await once(t, 'end');
  return Buffer.concat(out);
}

describe('compress options', () => {
  it('defaults to zstd, br, gzip, 1 KiB, speed-leaning levels and the text types', () => {
    const d = build().describe();
    expect(d.encodings).toEqual(['zstd', 'br', 'gzip']);
    expect(d.minBytes).toBe(DEFAULT_MIN_BYTES);
    expect(DEFAULT_MIN_BYTES).toBe(1024);
    expect(d.levels).toEqual({ zstd: 3, br: 4, gzip: 5 });
    expect(d.types).toContain('text/*');
    expect(d.excludeTypes).toContain('image/png');
  });

  it('takes levels one coding at a time, the others keeping their defaults', () => {
    expect(build({ levels: { br: 11 } }).describe().levels).toEqual({ ...DEFAULT_LEVELS, br: 11 });
  });
});

/** The formatted load errors of a routes file defining one compress middleware with these options. */
function loadErrors(options: string): string[] {
  const r = parseRoutesText(`middlewares:\n  squeeze:\n    compress: ${options}\n`, 'routes/web.yaml', {});
  if (r.ok) throw new Error('expected errors, got a valid config');
  return r.errors.map(formatConfigError);
}

describe('compress load errors', () => {
  it('names the file, line and column of a bad encoding', () => {
    const [e, ...rest] = loadErrors('{ encodings: [zstd, lz4] }');
    expect(rest).toEqual([]);
    expect(e).toMatch(/^routes\/web\.yaml:3:\d+ middlewares\.squeeze\.compress\.encodings\[1\]: /);
    expect(e).toContain('expected one of zstd, br, gzip, got "lz4"');
  });

  it('refuses an empty or repeated encoding list', () => {
    expect(loadErrors('{ encodings: [] }')[0]).toContain('at least one encoding');
    expect(loadErrors('{ encodings: [gzip, br, gzip] }')[0]).toMatch(/encodings\[2\].*gzip is listed twice/);
  });

  it('refuses levels out of range, naming the range', () => {
    expect(loadErrors('{ levels: { gzip: 0 } }')[0]).toContain('the gzip level is a whole number from 1 to 9');
    expect(loadErrors('{ levels: { br: 12 } }')[0]).toContain('from 0 to 11');
    expect(loadErrors('{ levels: { zstd: 2.5 } }')[0]).toContain('from 1 to 19');
    expect(loadErrors('{ levels: { deflate: 3 } }')[0]).toContain('unknown key');
  });

  it('refuses a bad size, a bad media type pattern, an empty types list and unknown keys', () => {
    expect(loadErrors('{ minBytes: 1k }')[0]).toContain('expected a size such as 512b');
    expect(loadErrors('{ minBytes: 1024 }')[0]).toContain('expected a size');
    for (const bad of ['html', 'text/', '*/html', 'text/ html', 'text/*+', '*']) {
      expect(loadErrors(`{ types: ["${bad}"] }`)[0], bad).toContain('invalid media type pattern');
    }
    expect(loadErrors('{ excludeTypes: ["image/**"] }')[0]).toContain('invalid media type pattern');
    expect(loadErrors('{ types: [] }')[0]).toContain('at least one media type');
    expect(loadErrors('{ minSize: 1kb }')[0]).toContain('unknown key "minSize"');
  });

  it('accepts every pattern form', () => {
    const r = parseRoutesText('middlewares:\n  s:\n    compress: { types: ["*/*", "*/*+json", "text/*", "application/*+xml", "Application/JSON"], excludeTypes: [] }\n', 'routes/web.yaml', {});
    expect(r.ok).toBe(true);
  });
});

describe('compress skips (the response goes out untouched)', () => {
  const skips: [why: string, status: number, headers: string[]][] = [
    ['101 Switching Protocols', 101, ['connection', 'upgrade', 'upgrade', 'h2c']],
    ['103 Early Hints', 103, ['link', '</a.css>; rel=preload']],
    ['204 No Content', 204, ['content-type', 'text/html']],
    ['304 Not Modified', 304, ['content-type', 'text/html', 'etag', '"abc"']],
    ['206 Partial Content', 206, ['content-type', 'text/html', 'content-range', 'bytes 0-4999/10000', 'content-length', '5000']],
    ['a content-range on a 200', 200, [...HTML, 'content-range', 'bytes */5000']],
    ['already gzip-encoded', 200, [...HTML, 'content-encoding', 'gzip']],
    ['already encoded, in upper case', 200, [...HTML, 'Content-Encoding', 'BR']],
    ['encoded twice', 200, [...HTML, 'content-encoding', 'identity, gzip']],
    ['cache-control: no-transform', 200, [...HTML, 'cache-control', 'no-transform']],
    ['no-transform among other directives, any case', 200, [...HTML, 'Cache-Control', 'public, max-age=60, No-Transform']],
    ['no-transform in a second cache-control field', 200, [...HTML, 'cache-control', 'public', 'cache-control', 'no-transform']],
    ['text/event-stream', 200, ['content-type', 'text/event-stream; charset=utf-8']],
    ['application/grpc', 200, ['content-type', 'application/grpc+proto']],
    ['an image already compressed', 200, ['content-type', 'image/png', 'content-length', '50000']],
    ['video', 200, ['content-type', 'video/mp4', 'content-length', '50000']],
    ['a zip archive', 200, ['content-type', 'application/zip', 'content-length', '50000']],
    ['an unlisted binary type', 200, ['content-type', 'application/octet-stream', 'content-length', '50000']],
    ['no content-type', 200, ['content-length', '50000']],
    ['a content-type that is not a media type', 200, ['content-type', 'html', 'content-length', '50000']],
    ['under minBytes', 200, ['content-type', 'text/html', 'content-length', '1023']],
    ['an empty body', 200, ['content-type', 'text/html', 'content-length', '0']],
  ];

  it.each(skips)('%s', (_why, status, headers) => {
    const { head, transforms } = respond(build(), request(), status, headers);
    expect(transforms).toEqual([]);
    expect(head.headers).toEqual(headers);
    expect(head.status).toBe(status);
  });

  it('HEAD: registers no hook at all', () => {
    const req = request({ 'accept-encoding': 'gzip' }, 'HEAD');
    expect(build().request(req)).toBeUndefined();
    expect(req.hooks).toEqual([]);
  });

  it('a WebSocket handshake: registers no hook at all', () => {
    const req = request({ 'accept-encoding': 'gzip' }, 'GET', true);
    expect(build().request(req)).toBeUndefined();
    expect(req.hooks).toEqual([]);
  });

  it('minBytes is the threshold, inclusive: 1 KiB compresses, 1 KiB less one byte does not', () => {
    expect(respond(build(), request(), 200, ['content-type', 'text/plain', 'content-length', '1024']).transforms).toHaveLength(1);
    expect(respond(build({ minBytes: '64kb' }), request(), 200, ['content-type', 'text/plain', 'content-length', '65535']).transforms).toEqual([]);
    expect(respond(build({ minBytes: '0b' }), request(), 200, ['content-type', 'text/plain', 'content-length', '1']).transforms).toHaveLength(1);
  });
});

describe('compress: eligible but not compressed because of accept-encoding', () => {
  it.each([
    ['no accept-encoding', {}],
    ['identity only', { 'accept-encoding': 'identity' }],
    ['codings waygate does not make', { 'accept-encoding': 'deflate, compress' }],
    ['everything at q=0', { 'accept-encoding': '*;q=0' }],
  ])('%s: only vary: accept-encoding is added', (_why, headers) => {
    const { head, transforms } = respond(build(), request(headers), 200, HTML);
    expect(transforms).toEqual([]);
    expect(head.headers).toEqual([...HTML, 'vary', 'accept-encoding']);
  });

  it('a coding the client accepts but the middleware is not configured for', () => {
    const { head, transforms } = respond(build({ encodings: ['zstd'] }), request({ 'accept-encoding': 'gzip, br' }), 200, HTML);
    expect(transforms).toEqual([]);
    expect(field(head.headers, 'vary')).toBe('accept-encoding');
    expect(field(head.headers, 'content-encoding')).toBeUndefined();
  });
});

describe('compress: the head of a compressed response', () => {
  it('sets content-encoding, removes content-length and accept-ranges, adds vary', () => {
    const { head, transforms } = respond(build(), request(), 200, [...HTML, 'accept-ranges', 'bytes', 'x-other', 'kept']);
    expect(transforms).toHaveLength(1);
    expect(head.status).toBe(200);
    expect(field(head.headers, 'content-encoding')).toBe('zstd');
    expect(field(head.headers, 'content-length')).toBeUndefined();
    expect(field(head.headers, 'accept-ranges')).toBeUndefined();
    expect(field(head.headers, 'vary')).toBe('accept-encoding');
    expect(field(head.headers, 'content-type')).toBe('text/html; charset=utf-8');
    expect(field(head.headers, 'x-other')).toBe('kept');
    transforms[0].destroy();
  });

  it('chooses the coding by the client weights, then the configured order', () => {
    const coding = (ae: string, options: Record<string, unknown> = {}): string | undefined => {
      const { head, transforms } = respond(build(options), request({ 'accept-encoding': ae }), 200, HTML);
      for (const t of transforms) t.destroy();
      return field(head.headers, 'content-encoding');
    };
    expect(coding('gzip, br')).toBe('br');
    expect(coding('gzip, br;q=0.5')).toBe('gzip');
    expect(coding('gzip, br, zstd', { encodings: ['gzip', 'br'] })).toBe('gzip');
    expect(coding('x-gzip')).toBe('gzip');
  });

  it('replaces content-encoding: identity', () => {
    const { head, transforms } = respond(build(), request({ 'accept-encoding': 'gzip' }), 200, [...HTML, 'Content-Encoding', 'identity']);
    expect(transforms).toHaveLength(1);
    expect(field(head.headers, 'content-encoding')).toBe('gzip');
    transforms[0].destroy();
  });

  it.each([
    ['a strong ETag is made weak', '"v1-abc"', 'W/"v1-abc"'],
    ['a weak ETag stays as it is', 'W/"v1-abc"', 'W/"v1-abc"'],
    ['an unquoted (invalid) ETag is quoted and made weak', 'v1abc', 'W/"v1abc"'],
  ])('%s', (_why, etag, expected) => {
    const { head, transforms } = respond(build(), request(), 200, [...HTML, 'ETag', etag]);
    expect(field(head.headers, 'etag')).toBe(expected);
    transforms[0].destroy();
  });

  it('an ETag of an uncompressed response stays strong', () => {
    const { head } = respond(build(), request({}), 200, [...HTML, 'etag', '"v1"']);
    expect(field(head.headers, 'etag')).toBe('"v1"');
  });

  it.each([
    ['no vary', [], ['vary', 'accept-encoding']],
    ['vary: origin', ['vary', 'origin'], ['vary', 'origin, accept-encoding']],
    ['Vary in another case', ['Vary', 'Origin, Cookie'], ['Vary', 'Origin, Cookie, accept-encoding']],
    ['already varying on Accept-Encoding', ['vary', 'Origin, Accept-Encoding'], ['vary', 'Origin, Accept-Encoding']],
    ['accept-encoding in a second vary field', ['vary', 'origin', 'vary', 'accept-encoding'], ['vary', 'origin', 'vary', 'accept-encoding']],
    ['two vary fields without it: added to the first', ['vary', 'origin', 'vary', 'cookie'], ['vary', 'origin, accept-encoding', 'vary', 'cookie']],
    ['vary: * covers it already', ['vary', '*'], ['vary', '*']],
    ['an empty vary', ['vary', ''], ['vary', 'accept-encoding']],
  ])('vary merging: %s', (_why, vary, expected) => {
    const { head, transforms } = respond(build(), request(), 200, ['content-type', 'application/json', ...vary]);
    const out: string[] = [];
    for (let i = 0; i < head.headers.length; i += 2) if (head.headers[i].toLowerCase() === 'vary') out.push(head.headers[i], head.headers[i + 1]);
    expect(out).toEqual(expected);
    transforms[0].destroy();
  });

  it('compresses a body of unknown length (no content-length)', () => {
    const { head, transforms } = respond(build({ minBytes: '1mb' }), request(), 200, ['content-type', 'text/plain']);
    expect(transforms).toHaveLength(1);
    expect(field(head.headers, 'content-encoding')).toBe('zstd');
    transforms[0].destroy();
  });

  it("compresses waygate's own answers and error statuses alike", () => {
    const own = respond(build({ minBytes: '0b' }), request(), 502, ['content-type', 'text/plain; charset=utf-8', 'content-length', '11'], true);
    expect(own.transforms).toHaveLength(1);
    const notFound = respond(build(), request(), 404, HTML);
    expect(notFound.transforms).toHaveLength(1);
    for (const t of [...own.transforms, ...notFound.transforms]) t.destroy();
  });

  it.each([
    ['Text/HTML; charset=UTF-8', true],
    ['application/problem+json', true],
    ['application/vnd.api+json; ext=x', true],
    ['application/atom+xml', true],
    ['image/svg+xml', true],
    ['application/javascript', true],
    ['text/css', true],
    ['application/wasm', true],
    ['font/woff2', false],
    ['audio/ogg', false],
    ['application/pdf', false],
  ])('default types: %s → %s', (type, compressed) => {
    const { transforms } = respond(build(), request(), 200, ['content-type', type, 'content-length', '5000']);
    expect(transforms.length).toBe(compressed ? 1 : 0);
    for (const t of transforms) t.destroy();
  });

  it('types and excludeTypes override the defaults', () => {
    const everything = build({ types: ['*/*'] });
    const all = (type: string, mw = everything): number => {
      const { transforms } = respond(mw, request(), 200, ['content-type', type]);
      for (const t of transforms) t.destroy();
      return transforms.length;
    };
    expect(all('application/octet-stream')).toBe(1);
    expect(all('image/bmp')).toBe(1);
    // The default excludeTypes still hold with types widened.
    expect(all('image/jpeg')).toBe(0);
    expect(all('text/event-stream')).toBe(0);
    const jsonOnly = build({ types: ['application/*+json', 'application/json'] });
    expect(all('application/ld+json', jsonOnly)).toBe(1);
    expect(all('text/html', jsonOnly)).toBe(0);
    const noExcludes = build({ types: ['image/*'], excludeTypes: [] });
    expect(all('image/png', noExcludes)).toBe(1);
    const excluded = build({ excludeTypes: ['text/csv'] });
    expect(all('text/csv', excluded)).toBe(0);
    expect(all('text/html', excluded)).toBe(1);
  });
});

describe('compress explain', () => {
  it('says which coding a request gets, and never rejects', () => {
    const mw = build();
    expect(mw.explain(request({ 'accept-encoding': 'gzip' }))).toMatchObject({ result: 'passes', why: expect.stringContaining('gzip') });
    expect(mw.explain(request({}))).toMatchObject({ result: 'passes', why: expect.stringContaining('uncompressed') });
    expect(mw.explain(request({ 'accept-encoding': 'gzip' }, 'HEAD'))).toMatchObject({ result: 'passes' });
  });
});

describe('compress streams (node:zlib decodes what they make)', () => {
  const CODINGS: Coding[] = ['gzip', 'br', 'zstd'];

  it.each(CODINGS)('%s: 4 MiB in uneven chunks decodes to the same bytes, and is smaller', async (coding) => {
    const body = text(4 << 20);
    const chunks: Buffer[] = [];
    for (let at = 0, i = 0; at < body.length; i++) {
      const n = [1, 7, 1000, 16_384, 65_536, 300_001][i % 6];
      chunks.push(body.subarray(at, at + n));
      at += n;
    }
    const out = await collect(createCompressor(coding, DEFAULT_LEVELS[coding]), chunks);
    expect(DECODE_SYNC[coding](out).equals(body)).toBe(true);
    expect(out.length).toBeLessThan(body.length / 2);
  });

  it.each(CODINGS)('%s: the hook’s own Transform decodes too', async (coding) => {
    const body = text(100_000, 7);
    const { transforms } = respond(build({ encodings: [coding] }), request({ 'accept-encoding': coding }), 200, ['content-type', 'text/plain', 'content-length', String(body.length)]);
    const out = await collect(transforms[0], [body]);
    expect(DECODE_SYNC[coding](out).equals(body)).toBe(true);
  });

  it('honours levels: a higher level makes a smaller body', async () => {
    const body = text(1 << 20, 3);
    for (const [coding, lo, hi] of [['gzip', 1, 9], ['br', 0, 11], ['zstd', 1, 19]] as const) {
      const small = await collect(createCompressor(coding, hi), [body]);
      const large = await collect(createCompressor(coding, lo), [body]);
      expect(small.length, coding).toBeLessThan(large.length);
      expect(DECODE_SYNC[coding](small).equals(body)).toBe(true);
    }
  });

  it('an empty body still makes a valid compressed stream', async () => {
    for (const coding of CODINGS) expect(DECODE_SYNC[coding](await collect(createCompressor(coding, DEFAULT_LEVELS[coding]), [])).length).toBe(0);
  });

  it.each(CODINGS)('%s: a chunk of a body still streaming reaches the decoder without the end', async (coding) => {
    const c = createCompressor(coding, DEFAULT_LEVELS[coding]);
    const d = DECODER[coding]();
    c.pipe(d);
    let decoded = '';
    let wake: (() => void) | undefined;
    d.on('data', (b: Buffer) => {
      decoded += b.toString();
      wake?.();
    });
    const got = async (want: string): Promise<void> => {
      while (!decoded.includes(want)) await new Promise<void>((r) => (wake = r));
    };
    c.write('{"event":1}\n');
    await got('{"event":1}\n');
    c.write('{"event":2}\n');
    await got('{"event":2}\n');
    expect(c.writableEnded).toBe(false);
    c.end('{"event":3}\n');
    await once(d, 'end');
    expect(decoded).toBe('{"event":1}\n{"event":2}\n{"event":3}\n');
  });

  it('flushes FLUSH_DELAY_MS after the first unflushed input, and its timer dies with the stream', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const c = createCompressor('gzip', 5);
      c.on('data', () => {});
      const flush = vi.spyOn(c as Transform & { flush(kind?: number): void }, 'flush');
      expect(vi.getTimerCount()).toBe(0);
      c.write('a');
      c.write('b');
      expect(vi.getTimerCount()).toBe(1);
      vi.advanceTimersByTime(FLUSH_DELAY_MS - 1);
      expect(flush).not.toHaveBeenCalled();
      vi.advanceTimersByTime(1);
      expect(flush).toHaveBeenCalledTimes(1);
      expect(flush).toHaveBeenCalledWith(constants.Z_SYNC_FLUSH);
      // No input since: nothing more to flush.
      vi.advanceTimersByTime(FLUSH_DELAY_MS * 5);
      expect(flush).toHaveBeenCalledTimes(1);
      // Written once the flush before it is done: the write's callback says it was taken in.
      await new Promise((r) => c.write('c', r));
      expect(vi.getTimerCount()).toBe(1);
      c.destroy();
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it.each(CODINGS)('%s: under backpressure it holds a bounded amount, never the body', async (coding) => {
    // 32 MiB written with write()/drain into a compressor read by a consumer that takes its time:
    // what the stream holds stays within its high-water marks, whatever the body's size.
    const c = createCompressor(coding, DEFAULT_LEVELS[coding]);
    const d = DECODER[coding]();
    let held = 0;
    let decoded = 0;
    let calls = 0;
    const slow = new Writable({
      highWaterMark: 16 * 1024,
      write(chunk: Buffer, _enc, cb) {
        decoded += chunk.length;
        // Every 8th chunk waits a macrotask: the compressor's output backs up behind it.
        if (++calls % 8 === 0) setImmediate(cb);
        else cb();
      },
    });
    const done = pipeline(c, d, slow);
    const block = text(1 << 20, 11);
    let stalls = 0;
    for (let i = 0; i < 32; i++) {
      for (let at = 0; at < block.length; at += 64 * 1024) {
        if (!c.write(block.subarray(at, at + 64 * 1024))) {
          stalls++;
          await once(c, 'drain');
        }
        held = Math.max(held, c.writableLength + c.readableLength);
      }
    }
    c.end();
    await done;
    expect(decoded).toBe(32 * block.length);
    expect(stalls).toBeGreaterThan(0);
    // One 64 KiB write over the 16 KiB mark, plus output waiting to be read.
    expect(held).toBeLessThan(1 << 20);
  });

  it('destroyed mid-body (the client left): no error, no timer, no more output', async () => {
    for (const coding of CODINGS) {
      const c = createCompressor(coding, DEFAULT_LEVELS[coding]);
      const errors: Error[] = [];
      c.on('error', (e) => errors.push(e));
      c.write(text(200_000));
      c.destroy();
      await once(c, 'close');
      expect(errors).toEqual([]);
      expect(c.write('late', () => {})).toBe(false);
    }
  });
});

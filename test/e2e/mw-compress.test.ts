// The compress middleware end to end (SPEC §8): a real gateway and a real upstream, responses
// decoded with node:zlib and with curl --compressed, every skip rule seen from the client, a
// streamed body that keeps flowing through the compressor, a client that stops reading (the
// upstream's writes stall), and HTTP/2 clients.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventEmitter, once } from 'node:events';
import { request } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { brotliDecompressSync, createBrotliDecompress, createGunzip, createZstdDecompress, gunzipSync, gzipSync, zstdDecompressSync } from 'node:zlib';
import type { Transform } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, startHttpsGateway, startUpstream } from '../helpers.ts';
import type { HttpsTestGateway, TestGateway, Upstream } from '../helpers.ts';

const run = promisify(execFile);

/** Runs curl on `url` with `args`; resolves with the body it wrote and the response head it saw. */
async function curl(args: string[], url: string): Promise<{ body: Buffer; head: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'waygate-curl-'));
  try {
    await run('curl', ['-sS', ...args, '-o', join(dir, 'body'), '-D', join(dir, 'head'), url]);
    return { body: await readFile(join(dir, 'body')), head: await readFile(join(dir, 'head'), 'latin1') };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Deterministic text that compresses like real pages do. */
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

const PAGE = text(200_000);
const PRE_GZIPPED = gzipSync(text(50_000, 2));
const OWN_BODY = 'waygate answers this itself. '.repeat(100);
const DECODE: Record<string, (b: Buffer) => Buffer> = { gzip: gunzipSync, br: brotliDecompressSync, zstd: zstdDecompressSync };
const DECODER: Record<string, () => Transform> = { gzip: createGunzip, br: createBrotliDecompress, zstd: createZstdDecompress };

/** The upstream side of a streamed response, handed to the test that writes it. */
const streams = new EventEmitter();

/** /big: a body of `BIG` bytes written as fast as the socket takes it, its progress observable. */
const BIG = 128 * 2 ** 20;
const BIG_CHUNK = 64 * 1024;
// Random bytes as base64: text, but barely compressible, so the compressed stream is nearly as
// large as the body and fills every buffer on the way when the client stops reading.
const NOISE = Buffer.from(randomBytes(3 * 2 ** 20).toString('base64'));
const big = Object.assign(new EventEmitter(), { written: 0, blocked: false, finished: false });

function serveBig(res: ServerResponse): void {
  big.written = 0;
  big.finished = false;
  res.once('close', () => big.emit('close'));
  res.writeHead(200, { 'content-type': 'text/plain' });
  const pump = (): void => {
    while (big.written < BIG) {
      const at = big.written % NOISE.length;
      const chunk = NOISE.subarray(at, Math.min(at + BIG_CHUNK, NOISE.length));
      big.written += chunk.length;
      if (!res.write(chunk)) {
        big.blocked = true;
        big.emit('blocked');
        res.once('drain', () => {
          big.blocked = false;
          big.emit('drain');
          pump();
        });
        return;
      }
    }
    big.finished = true;
    res.end();
  };
  pump();
}

function upstreamHandler(req: IncomingMessage, res: ServerResponse): void {
  const path = req.url!.split('?')[0];
  const html = { 'content-type': 'text/html; charset=utf-8' };
  switch (path) {
    case '/page':
      res.writeHead(200, { ...html, 'content-length': PAGE.length, etag: '"page-v1"', 'accept-ranges': 'bytes', vary: 'Origin' });
      return void res.end(PAGE);
    case '/small':
      res.writeHead(200, { ...html, 'content-length': 5 });
      return void res.end('tiny!');
    case '/png':
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': 50_000 });
      return void res.end(Buffer.alloc(50_000, 7));
    case '/encoded':
      res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip', 'content-length': PRE_GZIPPED.length });
      return void res.end(PRE_GZIPPED);
    case '/no-transform':
      res.writeHead(200, { ...html, 'cache-control': 'public, no-transform', 'content-length': PAGE.length });
      return void res.end(PAGE);
    case '/range': {
      if (req.headers.range === 'bytes=0-99') {
        res.writeHead(206, { ...html, 'content-range': `bytes 0-99/${PAGE.length}`, 'content-length': 100 });
        return void res.end(PAGE.subarray(0, 100));
      }
      res.writeHead(200, { ...html, 'content-length': PAGE.length });
      return void res.end(PAGE);
    }
    case '/no-content':
      res.writeHead(204, html);
      return void res.end();
    case '/not-modified':
      res.writeHead(304, { etag: '"page-v1"' });
      return void res.end();
    case '/stream':
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.flushHeaders();
      return void streams.emit('stream', res);
    case '/sse':
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.flushHeaders();
      return void streams.emit('sse', res);
    case '/big':
      return serveBig(res);
    case '/broken':
      // Half a body, then the connection dies: the client must not see a clean end.
      res.writeHead(200, { ...html, 'content-length': PAGE.length });
      res.write(PAGE.subarray(0, PAGE.length / 2), () => res.destroy());
      return;
    default:
      res.writeHead(404, { 'content-type': 'text/plain', 'content-length': 9 });
      res.end('not found');
  }
}

function routes(up: Upstream): string {
  return `
pools: { up: { targets: ["${up.url}"] } }
middlewares:
  squeeze: { compress: {} }
  gz: { compress: { encodings: [gzip], minBytes: 2kb } }
routes:
  - { name: own, match: { path: /own }, middlewares: [squeeze], respond: { status: 200, body: ${JSON.stringify(OWN_BODY)}, headers: { content-type: text/plain } } }
  - { name: gz, match: { path: "/gz/*" }, stripPrefix: /gz, middlewares: [gz], pool: up }
  - { name: plain, match: { path: "/plain/*" }, stripPrefix: /plain, pool: up }
  - { name: web, match: { path: "/*" }, middlewares: [squeeze], pool: up }
`;
}

interface Got {
  status: number;
  headers: IncomingHttpHeaders;
  raw: Buffer;
}

function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Got> {
  return new Promise((resolve, reject) => {
    request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, raw: Buffer.concat(chunks) }));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

function decoded(r: Got): Buffer {
  const ce = r.headers['content-encoding'];
  return ce === undefined ? r.raw : DECODE[ce](r.raw);
}

let up: Upstream;
let gw: TestGateway;

beforeAll(async () => {
  up = await startUpstream(upstreamHandler);
  gw = await startGateway(routes(up));
});
afterAll(async () => {
  await gw?.close();
  await up?.close();
});

describe('compress: what the client gets', () => {
  it.each(['zstd', 'br', 'gzip'])('%s: decodes with node:zlib to the upstream body, with the head edited', async (coding) => {
    const r = await get(`${gw.url}/page`, { 'accept-encoding': coding });
    expect(r.status).toBe(200);
    expect(r.headers['content-encoding']).toBe(coding);
    expect(r.headers['content-length']).toBeUndefined();
    expect(r.headers['transfer-encoding']).toBe('chunked');
    expect(r.headers['accept-ranges']).toBeUndefined();
    expect(r.headers.etag).toBe('W/"page-v1"');
    expect(r.headers.vary).toBe('Origin, accept-encoding');
    expect(r.raw.length).toBeLessThan(PAGE.length / 2);
    expect(decoded(r).equals(PAGE)).toBe(true);
  });

  it('a browser accept-encoding gets zstd; q-values and the configured order are honoured', async () => {
    expect((await get(`${gw.url}/page`, { 'accept-encoding': 'gzip, deflate, br, zstd' })).headers['content-encoding']).toBe('zstd');
    expect((await get(`${gw.url}/page`, { 'accept-encoding': 'gzip;q=1, br;q=0.5' })).headers['content-encoding']).toBe('gzip');
    expect((await get(`${gw.url}/gz/page`, { 'accept-encoding': 'zstd, br, gzip;q=0.1' })).headers['content-encoding']).toBe('gzip');
  });

  it('no accept-encoding: the body as the upstream sent it, with vary: accept-encoding', async () => {
    const r = await get(`${gw.url}/page`);
    expect(r.headers['content-encoding']).toBeUndefined();
    expect(r.headers['content-length']).toBe(String(PAGE.length));
    expect(r.headers.etag).toBe('"page-v1"');
    expect(r.headers.vary).toBe('Origin, accept-encoding');
    expect(r.raw.equals(PAGE)).toBe(true);
  });

  it("waygate's own answers are compressed too", async () => {
    const r = await get(`${gw.url}/own`, { 'accept-encoding': 'br' });
    expect(r.headers['content-encoding']).toBe('br');
    expect(decoded(r).toString()).toBe(OWN_BODY);
  });

  it('a route without the middleware is untouched', async () => {
    const r = await get(`${gw.url}/plain/page`, { 'accept-encoding': 'gzip' });
    expect(r.headers['content-encoding']).toBeUndefined();
    expect(r.headers.vary).toBe('Origin');
    expect(r.raw.equals(PAGE)).toBe(true);
  });
});

describe('compress skips, seen from the client', () => {
  const AE = { 'accept-encoding': 'gzip, br, zstd' };

  it('HEAD: the upstream head as it is', async () => {
    const r = await get(`${gw.url}/page`, AE, 'HEAD');
    expect(r.headers['content-encoding']).toBeUndefined();
    expect(r.headers['content-length']).toBe(String(PAGE.length));
    expect(r.headers.etag).toBe('"page-v1"');
  });

  it('under minBytes, an image, an already encoded body, no-transform: byte for byte', async () => {
    const small = await get(`${gw.url}/small`, AE);
    expect([small.headers['content-encoding'], small.raw.toString()]).toEqual([undefined, 'tiny!']);
    const png = await get(`${gw.url}/png`, AE);
    expect(png.headers['content-encoding']).toBeUndefined();
    expect(png.headers.vary).toBeUndefined();
    expect(png.raw.equals(Buffer.alloc(50_000, 7))).toBe(true);
    const enc = await get(`${gw.url}/encoded`, AE);
    expect(enc.headers['content-encoding']).toBe('gzip');
    expect(enc.raw.equals(PRE_GZIPPED)).toBe(true);
    const nt = await get(`${gw.url}/no-transform`, AE);
    expect(nt.headers['content-encoding']).toBeUndefined();
    expect(nt.headers['content-length']).toBe(String(PAGE.length));
    expect(nt.raw.equals(PAGE)).toBe(true);
  });

  it('a range: the 206 as it is; the same URL without a range is compressed', async () => {
    const part = await get(`${gw.url}/range`, { ...AE, range: 'bytes=0-99' });
    expect(part.status).toBe(206);
    expect(part.headers['content-encoding']).toBeUndefined();
    expect(part.raw.equals(PAGE.subarray(0, 100))).toBe(true);
    const whole = await get(`${gw.url}/range`, AE);
    expect(whole.headers['content-encoding']).toBe('zstd');
  });

  it('204 and 304: no body, no coding', async () => {
    const nc = await get(`${gw.url}/no-content`, AE);
    expect([nc.status, nc.headers['content-encoding'], nc.raw.length]).toEqual([204, undefined, 0]);
    const nm = await get(`${gw.url}/not-modified`, AE);
    expect([nm.status, nm.headers['content-encoding'], nm.headers.etag]).toEqual([304, undefined, '"page-v1"']);
  });

  it('server-sent events go out uncompressed, event by event', async () => {
    const upstreamSide = once(streams, 'sse') as Promise<[ServerResponse]>;
    const req = request(`${gw.url}/sse`, { headers: AE, agent: false });
    req.end();
    const [w] = await upstreamSide;
    // waygate sends the response head with the first body bytes.
    w.write('data: 1\n\n');
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    expect(res.headers['content-type']).toBe('text/event-stream');
    expect(res.headers['content-encoding']).toBeUndefined();
    let got = '';
    for (const n of [1, 2, 3]) {
      if (n > 1) w.write(`data: ${n}\n\n`);
      while (!got.includes(`data: ${n}\n\n`)) got += ((await once(res, 'data')) as [Buffer])[0].toString();
    }
    w.end();
    await once(res, 'end');
    expect(got).toBe('data: 1\n\ndata: 2\n\ndata: 3\n\n');
  });
});

describe('compress with curl', () => {
  it('curl -V lists the codings this test relies on', async () => {
    const { stdout } = await run('curl', ['-V']);
    expect(stdout).toMatch(/Features:.*libz/);
  });

  it('curl --compressed (gzip) decodes the body', async () => {
    const { body, head } = await curl(['--compressed', '-H', 'accept-encoding: gzip'], `${gw.url}/page`);
    expect(head).toMatch(/\r\ncontent-encoding: gzip\r\n/i);
    expect(body.equals(PAGE)).toBe(true);
  });

  it.each(['br', 'zstd'])('curl --compressed with accept-encoding: %s decodes it when this curl supports it', async (coding) => {
    const { stdout: version } = await run('curl', ['-V']);
    const feature = coding === 'br' ? 'brotli' : 'zstd';
    const args = ['-H', `accept-encoding: ${coding}`];
    const supported = new RegExp(`Features:.*\\b${feature}\\b`).test(version);
    // A curl that cannot decode it: take the raw bytes and decode them with node:zlib.
    const { body, head } = await curl(supported ? ['--compressed', ...args] : args, `${gw.url}/page`);
    expect(head).toMatch(new RegExp(`\\r\\ncontent-encoding: ${coding}\\r\\n`, 'i'));
    expect((supported ? body : DECODE[coding](body)).equals(PAGE)).toBe(true);
  });

  it('plain curl (no accept-encoding) gets the identity body', async () => {
    const { body, head } = await curl([], `${gw.url}/page`);
    expect(head).not.toMatch(/content-encoding/i);
    expect(body.equals(PAGE)).toBe(true);
  });
});

describe('compress streams', () => {
  it.each(['gzip', 'br', 'zstd'])('%s: a streamed chunked response reaches the client chunk by chunk, before it ends', async (coding) => {
    const upstreamSide = once(streams, 'stream') as Promise<[ServerResponse]>;
    const req = request(`${gw.url}/stream`, { headers: { 'accept-encoding': coding }, agent: false });
    req.end();
    const [w] = await upstreamSide;
    // waygate sends the response head with the first body bytes.
    const first = JSON.stringify({ n: 0, at: 'line' }) + '\n';
    w.write(first);
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    expect(res.headers['content-encoding']).toBe(coding);
    const decoder = DECODER[coding]();
    res.pipe(decoder);
    let got = '';
    let wake: (() => void) | undefined;
    decoder.on('data', (c: Buffer) => {
      got += c.toString();
      wake?.();
    });
    for (let n = 1; n <= 5; n++) {
      const line = JSON.stringify({ n, at: 'line' }) + '\n';
      w.write(line);
      // The upstream has not ended: the line arrives only because the compressor flushes it.
      while (!got.includes(line)) await new Promise<void>((r) => (wake = r));
    }
    w.end('{"done":true}\n');
    await once(decoder, 'end');
    expect(got.startsWith(first)).toBe(true);
    expect(got.split('\n').filter(Boolean)).toHaveLength(7);
  });

  it('a client that stops reading stalls the upstream, and gets the whole body once it reads again', async () => {
    const req = request(`${gw.url}/big`, { headers: { 'accept-encoding': 'zstd' }, agent: false });
    req.end();
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    expect(res.headers['content-encoding']).toBe('zstd');
    // Read nothing: the compressed stream backs up into waygate, which pauses the upstream.
    res.pause();
    // The upstream is stalled when its write() said false and no drain followed for a while.
    for (;;) {
      if (!big.blocked) await once(big, 'blocked');
      const drained = await Promise.race([once(big, 'drain').then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 1000))]);
      if (!drained) break;
    }
    const stalledAt = big.written;
    expect(big.finished).toBe(false);
    // What went out before the stall is what the buffers on the way hold, not the body.
    expect(stalledAt).toBeLessThan(BIG / 3);
    const decoder = createZstdDecompress();
    let count = 0;
    decoder.on('data', (c: Buffer) => (count += c.length));
    res.pipe(decoder);
    res.resume();
    await once(decoder, 'end');
    expect(count).toBe(BIG);
    expect(big.finished).toBe(true);
  }, 60_000);
});

describe('compress when a side goes away', () => {
  it('the client leaves mid-body: the upstream request is aborted and the gateway goes on serving', async () => {
    const upstreamClosed = once(big, 'close');
    const req = request(`${gw.url}/big`, { headers: { 'accept-encoding': 'br' }, agent: false });
    req.on('error', () => {});
    req.end();
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    expect(res.headers['content-encoding']).toBe('br');
    await once(res, 'data');
    res.destroy();
    await upstreamClosed;
    expect(big.finished).toBe(false);
    const after = await get(`${gw.url}/page`, { 'accept-encoding': 'br' });
    expect(decoded(after).equals(PAGE)).toBe(true);
  });

  it('the upstream dies mid-body: the compressed response is cut, never ended cleanly', async () => {
    // Whether the head got out first depends on how far the compressor got: either way no clean end.
    const how = await new Promise<string>((resolve) => {
      const req = request(`${gw.url}/broken`, { headers: { 'accept-encoding': 'gzip' }, agent: false }, (res) => {
        expect(res.headers['content-encoding']).toBe('gzip');
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve('end'));
        res.on('error', () => {
          // What arrived is the start of a gzip stream that never finished.
          expect(() => gunzipSync(Buffer.concat(chunks))).toThrow();
          resolve('cut');
        });
      });
      req.on('error', () => resolve('cut'));
      req.end();
    });
    expect(how).toBe('cut');
  });
});

describe('compress over HTTP/2', () => {
  let hgw: HttpsTestGateway;
  beforeAll(async () => {
    hgw = await startHttpsGateway(routes(up));
  });
  afterAll(async () => {
    await hgw?.close();
  });

  function h2(path: string, headers: Record<string, string>, onHeaders?: (h: Record<string, unknown>) => void): Promise<{ headers: Record<string, unknown>; raw: Buffer }> {
    return new Promise((resolve, reject) => {
      const client = h2connect(`https://127.0.0.1:${hgw.httpsPort}`, { rejectUnauthorized: false });
      client.on('error', reject);
      const s = client.request({ ':path': path, ...headers });
      let head: Record<string, unknown> = {};
      const chunks: Buffer[] = [];
      s.on('response', (h) => {
        head = h;
        onHeaders?.(h);
      });
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => {
        client.close();
        resolve({ headers: head, raw: Buffer.concat(chunks) });
      });
      s.on('error', reject);
      s.end();
    });
  }

  it.each(['zstd', 'br', 'gzip'])('%s: an HTTP/2 client gets the compressed body, without content-length', async (coding) => {
    const r = await h2('/page', { 'accept-encoding': coding });
    expect(r.headers[':status']).toBe(200);
    expect(r.headers['content-encoding']).toBe(coding);
    expect(r.headers['content-length']).toBeUndefined();
    expect(r.headers.vary).toBe('Origin, accept-encoding');
    expect(r.headers.etag).toBe('W/"page-v1"');
    expect(DECODE[coding](r.raw).equals(PAGE)).toBe(true);
  });

  it('HTTP/2 without accept-encoding: identity, vary set', async () => {
    const r = await h2('/page', {});
    expect(r.headers['content-encoding']).toBeUndefined();
    expect(r.headers.vary).toBe('Origin, accept-encoding');
    expect(r.raw.equals(PAGE)).toBe(true);
  });

  it('HTTP/2: a large body streams through and decodes whole', async () => {
    const client = h2connect(`https://127.0.0.1:${hgw.httpsPort}`, { rejectUnauthorized: false });
    client.on('error', () => {});
    const s = client.request({ ':path': '/big', 'accept-encoding': 'zstd' });
    const [head] = (await once(s, 'response')) as [Record<string, unknown>];
    expect(head['content-encoding']).toBe('zstd');
    const decoder = createZstdDecompress();
    let count = 0;
    decoder.on('data', (c: Buffer) => (count += c.length));
    s.pipe(decoder);
    await once(decoder, 'end');
    client.close();
    expect(count).toBe(BIG);
  }, 60_000);
});

// compress (SPEC §8) in front of an upstream that serves pattern bodies (kit/pattern.ts) of any
// size and media type, sized or chunked, and the responses compress must leave alone: already
// encoded (a gzip of the pattern, content-encoding: gzip), a 206 range, text/event-stream, a
// cache-control: no-transform. `body?size=N&type=T[&chunked=1][&pre=gzip][&range=1][&nt=1][&rand=1]`;
// `rand=1`: seeded bytes (kit/hello.ts seededBytes of seed RAND_SEED) that no coding shrinks, so a
// compressed answer is as large as the body and a slow reader's backpressure must reach the upstream.
// Two routes: every coding with minBytes 1 KiB, and gzip and br only with minBytes 16 KiB.
import { createServer } from 'node:http';
import { gzipSync } from 'node:zlib';
import { seededBytes } from '../kit/hello.ts';
import { MW, SQUEEZE_MIDDLEWARE } from '../kit/mw.ts';
import { MAX_PATTERN_BYTES, patternBody } from '../kit/pattern.ts';
import type { UpstreamFault } from '../types.ts';

const PIECE = 16 * 1024;
/** The bodies' gzip, made once per body asked (few sizes). */
const gzipped = new Map<string, Buffer>();
/** The seed of `rand=1` bodies. */
export const RAND_SEED = 0x50a1c0de;
let random: Buffer | undefined;

/** The first `size` bytes of the incompressible body (one shared buffer: do not modify). */
export function randomBody(size: number): Buffer {
  random ??= seededBytes(RAND_SEED, MAX_PATTERN_BYTES);
  return random.subarray(0, size);
}

/** A body variant's path. */
export function bodyPath(o: { size: number; type: string; chunked?: boolean; pre?: boolean; range?: boolean; noTransform?: boolean; random?: boolean }): string {
  const q = new URLSearchParams({ size: String(o.size), type: o.type });
  if (o.chunked === true) q.set('chunked', '1');
  if (o.pre === true) q.set('pre', 'gzip');
  if (o.range === true) q.set('range', '1');
  if (o.noTransform === true) q.set('nt', '1');
  if (o.random === true) q.set('rand', '1');
  return `body?${q}`;
}

const mwCompress: UpstreamFault = {
  name: 'mw-compress',
  async start(ctx) {
    const server = createServer((req, res) => {
      req.on('error', () => {});
      res.on('error', () => {});
      req.resume();
      const url = new URL(req.url ?? '/', 'http://upstream');
      const size = Math.min(MAX_PATTERN_BYTES, Number(url.searchParams.get('size') ?? 0) || 0);
      const type = url.searchParams.get('type') ?? 'text/plain';
      const chunked = url.searchParams.get('chunked') === '1';
      const pre = url.searchParams.get('pre') === 'gzip';
      const range = url.searchParams.get('range') === '1';
      const rand = url.searchParams.get('rand') === '1';
      let body = rand ? randomBody(size) : patternBody(size);
      const headers: Record<string, string | number> = { 'content-type': type, etag: `"soak-${size}"` };
      if (pre) {
        let z = gzipped.get(`${rand}:${size}`);
        if (z === undefined) gzipped.set(`${rand}:${size}`, (z = gzipSync(body)));
        body = z;
        headers['content-encoding'] = 'gzip';
      }
      if (url.searchParams.get('nt') === '1') headers['cache-control'] = 'no-transform';
      if (range) headers['content-range'] = `bytes 0-${Math.max(0, size - 1)}/${size * 2}`;
      if (!chunked) headers['content-length'] = body.length;
      ctx.hit(`mw-compress/${pre ? 'pre-gzipped' : range ? 'range' : chunked ? 'chunked' : 'sized'}`);
      res.writeHead(range ? 206 : 200, headers);
      if (req.method === 'HEAD') return void res.end();
      let off = 0;
      const next = (): void => {
        if (res.destroyed) return;
        if (off >= body.length) return void res.end();
        const piece = body.subarray(off, Math.min(body.length, off + PIECE));
        off += piece.length;
        if (res.write(piece)) setImmediate(next);
        else res.once('drain', next);
      };
      next();
    });
    server.keepAliveTimeout = 10_000;
    const port = await ctx.listen(server);
    const targets = [`http://127.0.0.1:${port}`];
    const variants = [bodyPath({ size: 100_000, type: 'text/plain' }), bodyPath({ size: 300_000, type: 'application/json', chunked: true }), bodyPath({ size: 500, type: 'text/html' })];
    return [
      {
        name: MW.compress, targets, variants, expect: 'any', kind: 'http',
        middlewares: [SQUEEZE_MIDDLEWARE],
      },
      {
        name: MW.compressGzip, targets, variants, expect: 'any', kind: 'http',
        middlewares: [{ name: 'soak-squeeze-gzip', kind: 'compress', options: { encodings: ['gzip', 'br'], minBytes: '16kb', levels: { gzip: 1, br: 1 } } }],
      },
    ];
  },
};
export default mwCompress;

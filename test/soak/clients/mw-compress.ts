// Clients of the compress routes (SPEC §8): GET or HEAD of pattern bodies (kit/pattern.ts), or of
// incompressible ones, of every size around minBytes, sized or chunked, of compressible and other
// media types, plus the responses compress must leave alone (already gzip-encoded, a 206 range,
// no-transform, an event stream), with an accept-encoding from a table of q-value cases. The
// coding of the answer must be one the client weighs highest among the route's `encodings` (none
// when it prefers identity or accepts none of them); the body must decode (gzip, br, zstd) to
// exactly the bytes served — a decoding failure is a failure — and an eligible response says
// `vary: accept-encoding`. Some clients go away mid-body (the compressor must be torn down with
// the exchange).
import { brotliDecompressSync, gunzipSync, zstdDecompressSync } from 'node:zlib';
import { bodyPath, randomBody } from '../faults/mw-compress.ts';
import { PROTOS } from '../kit/http-client.ts';
import { MW, middlewareOf, mwPools } from '../kit/mw.ts';
import { describeGot, field, mwSend } from '../kit/mw-http.ts';
import type { MwGot } from '../kit/mw-http.ts';
import { patternBody } from '../kit/pattern.ts';
import type { ClientBehaviour, Outcome } from '../types.ts';

const SIZES = [0, 100, 1023, 1024, 5000, 16_383, 16_384, 100_000, 1_048_576];
/** Media types, and whether compress's default `types` take them. */
const TYPES: [string, boolean][] = [['text/plain', true], ['application/json', true], ['text/html; charset=utf-8', true], ['image/svg+xml', true], ['image/png', false], ['application/octet-stream', false], ['text/event-stream', false]];
const ACCEPT = [undefined, 'gzip', 'br', 'zstd', 'gzip, br, zstd', 'gzip;q=0.5, br;q=0.9', 'zstd;q=0, gzip', '*', '*;q=0.1, gzip;q=0.05', 'identity', 'gzip;q=0', 'deflate', 'identity;q=1, gzip;q=0.5', 'br;q=1.0, zstd;q=0.999', 'GZIP', 'gzip;q=0.8, zstd;q=0.8, br;q=0.2'];

/**
 * The codings a response may go out in (`identity` for none), per RFC 9110 §12.5.3: each of the
 * route's codings weighs its own q, else `*`'s, else 0; the heaviest above 0 win (any of a tie),
 * unless identity weighs more (its own q, else `*`'s). No field: identity.
 */
export function acceptable(value: string | undefined, encodings: readonly string[]): Set<string> {
  if (value === undefined) return new Set(['identity']);
  const weights = new Map<string, number>();
  for (const member of value.split(',')) {
    const [name, ...params] = member.split(';').map((x) => x.trim().toLowerCase());
    if (name === '' || weights.has(name)) continue;
    const q = params.find((x) => x.startsWith('q='));
    weights.set(name, q === undefined ? 1 : Number(q.slice(2)));
  }
  const star = weights.get('*');
  const w = (c: string): number => weights.get(c) ?? star ?? 0;
  const best = Math.max(0, ...encodings.map(w));
  if (best === 0) return new Set(['identity']);
  const identity = weights.get('identity') ?? star;
  if (identity !== undefined && identity > best) return new Set(['identity']);
  return new Set(encodings.filter((c) => w(c) === best));
}

function decode(coding: string, body: Buffer): Buffer {
  switch (coding) {
    case 'gzip':
      return gunzipSync(body);
    case 'br':
      return brotliDecompressSync(body);
    case 'zstd':
      return zstdDecompressSync(body);
    default:
      throw new Error(`unknown content-encoding ${JSON.stringify(coding)}`);
  }
}

/** `1kb`, `16kb`, `512b` → bytes. */
function bytesOf(size: string): number {
  const m = /^(\d+)(b|kb|mb)$/.exec(size);
  return m === null ? Number(size) : Number(m[1]) * { b: 1, kb: 1024, mb: 1024 * 1024 }[m[2] as 'b' | 'kb' | 'mb'];
}

const mwCompress: ClientBehaviour = {
  name: 'mw-compress',
  weight: 6,
  plan(rng, pools) {
    const candidates = mwPools(pools, MW.compress, MW.compressGzip);
    if (candidates.length === 0) return undefined;
    const pool = rng.pick(candidates);
    const o = middlewareOf(pool, 'compress').options as { encodings: string[]; minBytes: string };
    const proto = rng.pick(PROTOS);
    const size = rng.pick(SIZES);
    const [type, compressible] = rng.pick(TYPES);
    const special = rng.weighted(['none', 'pre', 'range', 'noTransform'] as const, (x) => (x === 'none' ? 16 : 1));
    const chunked = rng.chance(0.4);
    // Incompressible bytes: the compressed answer is as large as the body.
    const random = rng.chance(0.25);
    const method = rng.chance(0.1) ? 'HEAD' : 'GET';
    const accept = rng.pick(ACCEPT);
    const cut = method === 'GET' && rng.chance(0.15) ? { after: rng.int(0, 4096), how: rng.pick(['rst', 'close'] as const) } : undefined;
    const path = `/${pool.name}/${bodyPath({ size, type, chunked, pre: special === 'pre', range: special === 'range', noTransform: special === 'noTransform', random })}`;
    return {
      label: `mw-compress pool=${pool.name} ${proto} ${method} ${path} accept-encoding=${JSON.stringify(accept ?? null)}${cut === undefined ? '' : ` cut after ${cut.after}B by ${cut.how}`}`,
      pool: pool.name,
      async run(ctx): Promise<Outcome> {
        let got: MwGot;
        try {
          got = await mwSend(ctx, proto, { method, path, headers: accept === undefined ? {} : { 'accept-encoding': accept }, cut });
        } catch (err) {
          return { ok: false, note: 'no answer', detail: ctx.signal.aborted ? 'cut at the task deadline' : (err as Error).message };
        }
        const fail = (why: string): Outcome => ({ ok: false, note: 'wrong answer', detail: `${why}; got ${describeGot(got)}` });
        const status = special === 'range' ? 206 : 200;
        if (got.status !== status) return fail(`expected ${status}`);
        if (got.cut) return { ok: true, note: `cut after ${got.body.length} bytes` };
        const encoding = field(got, 'content-encoding');
        const eligible = method === 'GET' && special === 'none' && compressible && (chunked || (size > 0 && size >= bytesOf(o.minBytes)));
        const allowed = eligible ? acceptable(accept, o.encodings) : new Set([special === 'pre' ? 'gzip' : 'identity']);
        const coding = encoding === '' ? 'identity' : encoding;
        if (!allowed.has(coding)) return fail(`expected content-encoding ${[...allowed].join(' or ')} (${eligible ? `eligible; the route offers ${o.encodings.join(', ')}` : 'not eligible'})`);
        if (eligible && !/(^|,)\s*accept-encoding\s*(,|$)/i.test(field(got, 'vary'))) return fail('an eligible response without vary: accept-encoding');
        if (method === 'HEAD') return got.body.length === 0 ? { ok: true, note: 'HEAD' } : fail('a HEAD answer with a body');
        let body: Buffer;
        try {
          body = coding === 'identity' ? got.body : decode(coding, got.body);
        } catch (err) {
          return fail(`the ${coding} body does not decode: ${(err as Error).message}`);
        }
        if (!body.equals(random ? randomBody(size) : patternBody(size))) return fail(`the body decodes to ${body.length} bytes that are not the ${size} bytes served`);
        return { ok: true, note: coding };
      },
    };
  },
};
export default mwCompress;

// Small helpers for planning tasks: which pools suit a behaviour, the path of a variant, and
// the pieces of a raw request (heads, bodies sized or chunked).
import type { Rng } from '../prng.ts';
import type { PoolSpec } from '../types.ts';
import { patternBody } from './pattern.ts';

/** The HTTP pools (WebSocket upstreams excluded), optionally only those with one of `expect`. */
export function httpPools(pools: readonly PoolSpec[], ...expect: PoolSpec['expect'][]): PoolSpec[] {
  return pools.filter((p) => p.kind === 'http' && (expect.length === 0 || expect.includes(p.expect)));
}

/** The request path of `variant` in `pool`. */
export function pathOf(pool: PoolSpec, variant: string): string {
  return `/${pool.name}/${variant}`;
}

/** A random variant's path in `pool`. */
export function anyPath(rng: Rng, pool: PoolSpec): string {
  return pathOf(pool, rng.pick(pool.variants));
}

/** The `size=` of a data variant, or undefined. */
export function sizeOf(path: string): number | undefined {
  const m = /[?&]size=(\d+)/.exec(path);
  return m === null ? undefined : Number(m[1]);
}

/** One chunk of a chunked body (RFC 9112 §7.1). */
export function chunk(data: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from('\r\n')]);
}

/** The last chunk of a chunked body. */
export const LAST_CHUNK = '0\r\n\r\n';

/**
 * The first `sent` bytes of a body of `total` pattern bytes as they go on the wire: raw when
 * declared with Content-Length, else as chunks of `piece` bytes.
 */
export function bodyBytes(total: number, sent: number, declared: boolean, piece = 4096): Buffer[] {
  const body = patternBody(Math.min(total, sent));
  const out: Buffer[] = [];
  for (let off = 0; off < body.length; off += piece) {
    const part = body.subarray(off, Math.min(body.length, off + piece));
    out.push(declared ? part : chunk(part));
  }
  return out;
}

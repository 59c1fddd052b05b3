// Response bodies the soak can check byte for byte without keeping them: byte i of every body is
// i mod 251 (a prime, so a chunk lost, repeated or shifted by any power of two shows).

const PERIOD = 251;
/** The largest body the upstreams serve. */
export const MAX_PATTERN_BYTES = 4 * 1024 * 1024;

let cache: Buffer | undefined;

/** The first `size` bytes of the pattern (a view of one shared buffer: do not modify). */
export function patternBody(size: number): Buffer {
  if (size > MAX_PATTERN_BYTES) throw new Error(`patternBody: ${size} is over ${MAX_PATTERN_BYTES}`);
  if (cache === undefined) {
    cache = Buffer.allocUnsafe(MAX_PATTERN_BYTES);
    for (let i = 0; i < MAX_PATTERN_BYTES; i++) cache[i] = i % PERIOD;
  }
  return cache.subarray(0, size);
}

/** Checks a body against the pattern as it streams in. */
export class PatternCheck {
  /** Bytes seen so far. */
  bytes = 0;
  /** Offset of the first wrong byte, or -1. */
  firstBad = -1;

  /** Checks the next chunk. */
  feed(chunk: Buffer): void {
    if (this.firstBad === -1) {
      for (let i = 0; i < chunk.length; i++) {
        if (chunk[i] !== (this.bytes + i) % PERIOD) {
          this.firstBad = this.bytes + i;
          break;
        }
      }
    }
    this.bytes += chunk.length;
  }
}

// The compress middleware (SPEC §8): negotiates accept-encoding among the configured codings and
// streams eligible responses through a node:zlib compressor. It never buffers a body: the
// forwarder writes the upstream's chunks into the returned Transform with backpressure, and the
// compressor's own buffers are bounded (a 1 MiB window, 16 KiB chunks), so a 1 GiB response
// costs what a 1 KiB one does.
import type { Transform, TransformCallback } from 'node:stream';
import { BrotliCompress, Gzip, ZstdCompress, constants } from 'node:zlib';
import { z } from 'zod';
import { strict } from '../config/fields.ts';
import { size } from '../config/units.ts';
import { CODINGS, negotiate } from './accept-encoding.ts';
import type { Coding } from './accept-encoding.ts';
import type { MiddlewareKind, ResponseHead } from './types.ts';

/**
 * Levels favouring speed, as a proxy compresses on the fly for every request (measured on 8 MB
 * of distinct JS/JSON/Markdown on a 2-core machine): gzip 5 runs 1.4× faster than zlib's
 * default 6 for a body 1% larger (Caddy's default too); brotli 4 is the last of its fast
 * qualities (5 and up switch to the slower context-modelling path) and about as fast as gzip 6
 * with bodies 15% smaller; zstd 3 is zstd's own default, 4× faster than gzip 5 and smaller.
 */
export const DEFAULT_LEVELS: Readonly<Record<Coding, number>> = { zstd: 3, br: 4, gzip: 5 };

/** The levels each coding accepts: zlib's 1-9, brotli's qualities 0-11, zstd's regular 1-19. */
const LEVEL_RANGES: Readonly<Record<Coding, readonly [number, number]>> = { gzip: [1, 9], br: [0, 11], zstd: [1, 19] };

/** Responses smaller than this (by content-length) are sent as they are. */
export const DEFAULT_MIN_BYTES = 1024;

/**
 * The media types compressed by default: text, and the structured and font formats that are
 * stored uncompressed. SVG and icons are images in name only (XML text, bitmaps).
 */
export const DEFAULT_TYPES: readonly string[] = [
  'text/*',
  'application/json', 'application/*+json', 'application/x-ndjson',
  'application/xml', 'application/*+xml',
  'application/javascript', 'application/x-javascript', 'application/ecmascript',
  'application/yaml', 'application/x-yaml', 'application/toml',
  'application/wasm',
  'font/ttf', 'font/otf', 'application/vnd.ms-fontobject', 'application/x-font-ttf',
  'image/svg+xml', 'image/x-icon', 'image/vnd.microsoft.icon',
];

/**
 * Media types never compressed even when `types` matches them (`types: ["*\/*"]`): formats that
 * are compressed already, where a second pass costs CPU and gains nothing.
 */
export const DEFAULT_EXCLUDED_TYPES: readonly string[] = [
  'image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif', 'image/heic', 'image/heif', 'image/jxl',
  'video/*', 'audio/*', 'font/woff', 'font/woff2',
  'application/zip', 'application/gzip', 'application/x-gzip', 'application/zstd', 'application/x-bzip2',
  'application/x-xz', 'application/x-7z-compressed', 'application/vnd.rar', 'application/x-rar-compressed',
  'application/pdf',
];

/**
 * Compressor windows of 1 MiB (brotli's default is 4 MiB, zstd 3's 2 MiB): the window is most of
 * a stream's memory, paid per response in flight, and a larger one gained under 1% on our corpus.
 */
const WINDOW_LOG = 20;

/**
 * Compressed output reaches the client at most this long after the input that produced it: a
 * compressor otherwise holds small chunks of a streamed response (logs, NDJSON, long polls) until
 * its buffers fill. Traefik flushes at the same 100 ms.
 */
export const FLUSH_DELAY_MS = 100;

const TOKEN = "[!#$%&'+\\-.^_`|~0-9a-z]+";
const PATTERN_RE = new RegExp(`^(?:\\*/\\*(?:\\+${TOKEN})?|${TOKEN}/(?:\\*(?:\\+${TOKEN})?|${TOKEN}))$`);

/** A media-type pattern as written in `types` and `excludeTypes`, lower-cased. */
function mediaPattern() {
  return z
    .string({ error: 'expected a media type such as text/html, text/* or application/*+json' })
    .transform((s) => s.trim().toLowerCase())
    .refine((s) => PATTERN_RE.test(s), {
      error: (iss) => `invalid media type pattern ${JSON.stringify(iss.input)}: use type/subtype, type/*, type/*+suffix or */*`,
    });
}

function levelField(coding: Coding) {
  const [lo, hi] = LEVEL_RANGES[coding];
  const error = `the ${coding} level is a whole number from ${lo} to ${hi}`;
  // A refine, not min/max: the loader words range issues generically, this names the coding.
  return z.number({ error }).refine((n) => Number.isInteger(n) && n >= lo && n <= hi, { error }).optional();
}

const options = strict({
  encodings: z
    .array(z.enum(CODINGS))
    .refine((list) => list.length > 0, { error: 'list at least one encoding: zstd, br or gzip' })
    .superRefine((list, ctx) => {
      list.forEach((c, i) => {
        if (list.indexOf(c) !== i) ctx.addIssue({ code: 'custom', path: [i], message: `encoding ${c} is listed twice` });
      });
    })
    .default([...CODINGS]),
  minBytes: size().default(DEFAULT_MIN_BYTES),
  levels: strict({ zstd: levelField('zstd'), br: levelField('br'), gzip: levelField('gzip') }).default({}),
  types: z.array(mediaPattern()).refine((list) => list.length > 0, { error: 'list at least one media type (or omit types for the default list)' }).default([...DEFAULT_TYPES]),
  excludeTypes: z.array(mediaPattern()).default([...DEFAULT_EXCLUDED_TYPES]),
});

/** The compress options after validation. */
export type CompressOptions = z.output<typeof options>;

/** A compiled media-type pattern: undefined parts match anything. */
interface TypeMatcher {
  readonly type: string | undefined;
  readonly subtype: string | undefined;
  readonly suffix: string | undefined;
}

function compilePattern(p: string): TypeMatcher {
  const [type, sub] = p.split('/');
  const plus = sub.startsWith('*+') ? sub.slice(1) : undefined;
  return { type: type === '*' ? undefined : type, subtype: sub.startsWith('*') ? undefined : sub, suffix: plus };
}

function matches(list: readonly TypeMatcher[], type: string, subtype: string): boolean {
  return list.some((m) => (m.type === undefined || m.type === type) && (m.subtype === undefined || m.subtype === subtype) && (m.suffix === undefined || subtype.endsWith(m.suffix)));
}

// Flat header list helpers: names compared in lower case, as the upstream may send any case.

function values(h: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < h.length; i += 2) if (h[i].toLowerCase() === name) out.push(h[i + 1]);
  return out;
}

function remove(h: string[], name: string): void {
  for (let i = h.length - 2; i >= 0; i -= 2) if (h[i].toLowerCase() === name) h.splice(i, 2);
}

/** The members of a comma-separated field, trimmed and lower-cased (parameters kept). */
function members(h: readonly string[], name: string): string[] {
  return values(h, name).flatMap((v) => v.split(',')).map((m) => m.trim().toLowerCase()).filter((m) => m !== '');
}

/**
 * Adds accept-encoding to the response's Vary, to the first Vary field when there is one (a
 * second field would be legal but reads as a duplicate); nothing when Vary already names it or
 * is `*`, which covers every request field (RFC 9110 §12.5.5).
 */
export function addVary(h: string[]): void {
  let at = -1;
  for (let i = 0; i < h.length; i += 2) {
    if (h[i].toLowerCase() !== 'vary') continue;
    if (at < 0) at = i;
    for (const m of h[i + 1].split(',')) {
      const lower = m.trim().toLowerCase();
      if (lower === '*' || lower === 'accept-encoding') return;
    }
  }
  if (at < 0) h.push('vary', 'accept-encoding');
  else h[at + 1] = h[at + 1].trim() === '' ? 'accept-encoding' : `${h[at + 1]}, accept-encoding`;
}

/**
 * Makes a strong ETag weak: the compressed bytes are not the upstream's, so the two variants must
 * not share a strong validator (RFC 9110 §8.8.3). Weak rather than suffixed ("abc-gzip", Caddy's
 * way): nothing to undo on the way back — a client's `If-None-Match: W/"abc"` still matches the
 * upstream's "abc", as If-None-Match compares weakly (§13.1.2), where a suffix must be stripped
 * from every conditional request before the upstream sees it. nginx weakens too. The cost: If-Match
 * and If-Range compare strongly, so they never match a compressed variant's tag (a full response).
 */
export function weakenEtag(h: string[]): void {
  for (let i = 0; i < h.length; i += 2) {
    if (h[i].toLowerCase() !== 'etag') continue;
    const v = h[i + 1].trim();
    if (v.startsWith('W/')) continue;
    h[i + 1] = v.startsWith('"') ? `W/${v}` : `W/"${v.replaceAll('"', '')}"`;
  }
}

/** The response's media type ("text/html"), lower-case, or undefined without a usable content-type. */
function mediaType(h: readonly string[]): [type: string, subtype: string] | undefined {
  const v = values(h, 'content-type')[0];
  if (v === undefined) return undefined;
  const semi = v.indexOf(';');
  const t = (semi < 0 ? v : v.slice(0, semi)).trim().toLowerCase();
  const slash = t.indexOf('/');
  if (slash <= 0 || slash === t.length - 1) return undefined;
  return [t.slice(0, slash), t.slice(slash + 1)];
}

/** The content-length, or undefined when absent or not a plain number. */
function contentLength(h: readonly string[]): number | undefined {
  const v = values(h, 'content-length')[0]?.trim();
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
}

/** Why a response is sent as it is, before accept-encoding is looked at; undefined: it is eligible. */
type Skip = 'status' | 'range' | 'encoded' | 'no-transform' | 'type' | 'small';

type Flushable = Transform & { flush(kind: number, callback?: () => void): void };
// Mixins take any constructor arguments (TypeScript's rule for mixin classes).
type FlushableClass = new (...args: any[]) => Flushable;

/**
 * A node:zlib compressor class that flushes what it holds at most FLUSH_DELAY_MS after input
 * arrives, so a streamed response keeps flowing. The timer is armed by data, never by the flush
 * it causes, and dies with the stream. A subclass, not a wrapping Transform: one stream per
 * response, and the forwarder's write()/drain reach zlib's own buffers directly.
 */
function flushing<B extends FlushableClass>(Base: B, kind: number) {
  return class extends Base {
    #timer: NodeJS.Timeout | undefined;
    #armed = false;

    override _transform(chunk: Buffer, encoding: BufferEncoding, callback: TransformCallback): void {
      // Flush markers and the final empty write are zero-length: only data arms the timer.
      if (chunk.length > 0 && !this.#armed) this.#arm();
      super._transform(chunk, encoding, callback);
    }

    #arm(): void {
      this.#armed = true;
      if (this.#timer === undefined) {
        this.#timer = setTimeout(() => {
          this.#armed = false;
          if (!this.destroyed && !this.writableEnded) this.flush(kind);
        }, FLUSH_DELAY_MS);
        this.#timer.unref();
      } else {
        this.#timer.refresh();
      }
    }

    override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
      clearTimeout(this.#timer);
      super._destroy(err, callback);
    }
  };
}

// Z_SYNC_FLUSH rather than the default Z_FULL_FLUSH: the dictionary survives the flush.
const GzipStream = flushing(Gzip, constants.Z_SYNC_FLUSH);
const BrotliStream = flushing(BrotliCompress, constants.BROTLI_OPERATION_FLUSH);
const ZstdStream = flushing(ZstdCompress, constants.ZSTD_e_flush);

/** Brotli's size hint is a 32-bit parameter: a larger body is hinted as this. */
const MAX_SIZE_HINT = 2 ** 30;

/** Creates the compressor for `coding`; `length` (if known) lets brotli size its buffers down. */
export function createCompressor(coding: Coding, level: number, length?: number): Transform {
  switch (coding) {
    case 'gzip':
      return new GzipStream({ level });
    case 'br': {
      const params: Record<number, number> = { [constants.BROTLI_PARAM_QUALITY]: level, [constants.BROTLI_PARAM_LGWIN]: WINDOW_LOG };
      if (length !== undefined) params[constants.BROTLI_PARAM_SIZE_HINT] = Math.min(length, MAX_SIZE_HINT);
      return new BrotliStream({ params });
    }
    case 'zstd':
      return new ZstdStream({ params: { [constants.ZSTD_c_compressionLevel]: level, [constants.ZSTD_c_windowLog]: WINDOW_LOG } });
  }
}

/** The compress middleware kind. */
export const compress: MiddlewareKind<typeof options> = {
  kind: 'compress',
  options,
  build(o, deps) {
    const levels: Record<Coding, number> = { ...DEFAULT_LEVELS, ...o.levels } as Record<Coding, number>;
    const include = o.types.map(compilePattern);
    const exclude = o.excludeTypes.map(compilePattern);

    const skip = (h: ResponseHead): Skip | undefined => {
      const s = h.status;
      // No body (1xx, 204, 304), or a part of one (RFC 9110 §14: a range of the identity bytes).
      if (s < 200 || s === 204 || s === 304) return 'status';
      if (s === 206 || values(h.headers, 'content-range').length > 0) return 'range';
      // RFC 9111 §5.2.2.6: an intermediary must not change the content of a no-transform response.
      if (members(h.headers, 'cache-control').some((m) => m === 'no-transform' || m.startsWith('no-transform='))) return 'no-transform';
      if (members(h.headers, 'content-encoding').some((m) => m !== 'identity')) return 'encoded';
      const t = mediaType(h.headers);
      if (t === undefined) return 'type';
      const [type, subtype] = t;
      // Server-sent events must reach the client event by event; gRPC has its own framing and
      // compression. Neither is compressed whatever `types` says.
      if ((type === 'text' && subtype === 'event-stream') || (type === 'application' && (subtype === 'grpc' || subtype.startsWith('grpc+')))) return 'type';
      if (!matches(include, type, subtype) || matches(exclude, type, subtype)) return 'type';
      // Without a content-length (a chunked or streamed body) the size is unknown: compressed.
      // Such bodies are mostly generated and long; deciding after minBytes would delay the head.
      const length = contentLength(h.headers);
      if (length !== undefined && (length === 0 || length < o.minBytes)) return 'small';
      return undefined;
    };

    return {
      name: deps.name,
      kind: 'compress',
      request(r) {
        // HEAD has no body to compress; a WebSocket handshake's 101 has none either.
        if (r.websocket || r.method === 'HEAD') return undefined;
        const coding = negotiate(r.header('accept-encoding'), o.encodings);
        r.onResponse({
          head(h) {
            if (skip(h) !== undefined) return undefined;
            // Eligible: whether it is compressed now depends on accept-encoding, which caches must know.
            addVary(h.headers);
            if (coding === undefined) return undefined;
            const length = contentLength(h.headers);
            remove(h.headers, 'content-encoding');
            remove(h.headers, 'content-length');
            // Byte ranges of the identity body mean nothing for the compressed one.
            remove(h.headers, 'accept-ranges');
            weakenEtag(h.headers);
            h.headers.push('content-encoding', coding);
            return createCompressor(coding, levels[coding], length);
          },
        });
        return undefined;
      },
      explain(r) {
        if (r.websocket) return { result: 'passes', why: 'WebSocket handshakes are never compressed' };
        if (r.method === 'HEAD') return { result: 'passes', why: 'HEAD responses have no body to compress' };
        const coding = negotiate(r.header('accept-encoding'), o.encodings);
        const why = coding === undefined
          ? `the client accepts none of ${o.encodings.join(', ')}: responses go out uncompressed`
          : `eligible responses (${o.minBytes} bytes or more, compressible types) are compressed with ${coding}`;
        return { result: 'passes', why };
      },
      describe() {
        return { encodings: o.encodings, minBytes: o.minBytes, levels, types: o.types, excludeTypes: o.excludeTypes };
      },
    };
  },
};

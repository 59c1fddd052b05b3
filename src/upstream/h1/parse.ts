// Parsing of HTTP/1.1 responses from upstreams (RFC 9112), for the HTTP/1.1 client (pool.ts).
// Strict where leniency would let a response be read two ways (response smuggling): a second
// Content-Length, Content-Length with Transfer-Encoding, obs-fold, a space before the colon, bare
// CR or LF and control bytes are all refused, as llhttp does in undici. Errors carry llhttp's
// HPE_* codes, which the forwarder maps to 502 (upstream_bad_response). The differential fuzz
// (test/fuzz, `npm run fuzz`) holds it to llhttp: never more lenient, never framing differently;
// where it is stricter, test/fuzz/allow-list.ts says so and why.

/** How the body of a response is delimited (RFC 9112 §6.3). */
export type Framing = 'none' | 'length' | 'chunked' | 'close';

/** A parsed response head. */
export interface ResponseHead {
  status: number;
  reason: string;
  /** Flat [name, value, …] as received (value without surrounding whitespace). */
  raw: string[];
  framing: Framing;
  /** The Content-Length, when framing is 'length'. */
  length: number;
  /** The connection may carry another request after this response. */
  keepAlive: boolean;
  /** The upstream's `Keep-Alive: timeout=` in ms, or -1 when it sent none. */
  keepAliveHint: number;
}

/** An error in the upstream's response bytes, with an llhttp-style code. */
export function badResponse(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

// RFC 9110 §5.6.2 token.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values: no control bytes except HTAB (RFC 9110 §5.5); a CR or LF here was a bare one.
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
const STATUS = /^[0-9]{3}$/;
// RFC 9110 §8.6: 1*DIGIT, leading zeros included (llhttp reads "0005" as 5).
const LENGTH = /^[0-9]+$/;
// The one Transfer-Encoding waygate reads (RFC 9112 §6.1, §7), as llhttp recognises it: a
// single `chunked`, trailing spaces allowed. llhttp does not take "chunked<HTAB>" or "chunked,"
// for chunked and reads such a body to the close, so those are refused rather than read another way.
const CHUNKED_ONLY = /^[ \t]*chunked *$/i;

/** True when a Transfer-Encoding field value is the one coding waygate reads: a single `chunked` (see CHUNKED_ONLY). */
export function isChunkedOnly(value: string): boolean {
  return CHUNKED_ONLY.test(value);
}
// Keep-Alive: timeout= (RFC 9112 Appendix C.2.2): Node's agent reads it only at the start of the
// field, undici anywhere; waygate takes the first one anywhere, in any case: closing early is the
// safe side of an upstream's idle timeout.
const HINT = /(?:^|[,;\s])timeout\s*=\s*(\d+)/i;

/**
 * Parses one `name: value` line into `out`. Returns the lower-cased name when it is as long as
 * one the parser acts on (content-length 14, transfer-encoding 17, connection and keep-alive 10,
 * proxy-connection 16), else "": other names are not lower-cased per response.
 */
function fieldLine(line: string, out: string[]): string {
  const colon = line.indexOf(':');
  // A line starting with SP/HTAB is obs-fold; no colon, or a space before it, is malformed.
  if (colon <= 0) throw badResponse('HPE_INVALID_HEADER_TOKEN', `invalid header line "${line.slice(0, 40)}"`);
  const name = line.slice(0, colon);
  if (!TOKEN.test(name)) throw badResponse('HPE_INVALID_HEADER_TOKEN', `invalid header name "${name.slice(0, 40)}"`);
  let start = colon + 1;
  let end = line.length;
  while (start < end && (line.charCodeAt(start) === 32 || line.charCodeAt(start) === 9)) start++;
  while (end > start && (line.charCodeAt(end - 1) === 32 || line.charCodeAt(end - 1) === 9)) end--;
  const value = line.slice(start, end);
  if (BAD_VALUE.test(value)) throw badResponse('HPE_INVALID_HEADER_TOKEN', `invalid value in header "${name}"`);
  out.push(name, value);
  const n = name.length;
  return n === 14 || n === 17 || n === 10 || n === 16 ? name.toLowerCase() : '';
}

/** Splits a comma-separated list into lower-cased, trimmed, non-empty items. */
function listItems(value: string): string[] {
  const items: string[] = [];
  for (const part of value.split(',')) {
    const item = part.trim().toLowerCase();
    if (item !== '') items.push(item);
  }
  return items;
}

/**
 * Parses a response head: `text` is everything before the blank line, as latin1. `method` is
 * the request's (a response to HEAD has no body).
 */
export function parseHead(text: string, method: string): ResponseHead {
  const lines = text.split('\r\n');
  const first = lines[0];
  // HTTP/1.x SP 3DIGIT [SP reason]
  const minor = first.charCodeAt(7);
  if (!first.startsWith('HTTP/1.') || (minor !== 48 && minor !== 49) || first.charCodeAt(8) !== 32) {
    throw badResponse('HPE_INVALID_CONSTANT', `invalid status line "${first.slice(0, 40)}"`);
  }
  const status = Number(first.slice(9, 12));
  if (!STATUS.test(first.slice(9, 12)) || status < 100 || (first.length > 12 && first.charCodeAt(12) !== 32)) {
    throw badResponse('HPE_INVALID_STATUS', `invalid status line "${first.slice(0, 40)}"`);
  }
  const reason = first.length > 13 ? first.slice(13) : '';
  if (BAD_VALUE.test(reason)) throw badResponse('HPE_INVALID_STATUS', 'invalid reason phrase');
  const raw: string[] = [];
  let length = -1;
  let chunked = false;
  let keepAlive = minor === 49;
  let keepAliveHint = -1;
  for (let i = 1; i < lines.length; i++) {
    const lower = fieldLine(lines[i], raw);
    if (lower === '') continue;
    const value = raw[raw.length - 1];
    if (lower === 'content-length') {
      // A second Content-Length, even an equal one, or a list: ambiguous, refused.
      if (length !== -1) throw badResponse('HPE_UNEXPECTED_CONTENT_LENGTH', 'duplicate Content-Length');
      // Beyond 2^53 - 1 a length is no longer exact in a JS number: refused, not rounded.
      if (!LENGTH.test(value) || Number(value) > Number.MAX_SAFE_INTEGER) throw badResponse('HPE_INVALID_CONTENT_LENGTH', `invalid Content-Length "${value.slice(0, 40)}"`);
      length = Number(value);
    } else if (lower === 'transfer-encoding') {
      // RFC 9112 §6.1: chunked is the only transfer coding waygate decodes. Any other ("gzip,
      // chunked", "gzip") would reach the client de-chunked but still encoded, with nothing
      // declaring it (the field is hop-by-hop): refused, as nginx does. A second field, even
      // "chunked" again, is refused too (a sender MUST NOT apply chunked more than once).
      if (chunked || !CHUNKED_ONLY.test(lines[i].slice(lines[i].indexOf(':') + 1))) {
        throw badResponse('HPE_INVALID_TRANSFER_ENCODING', `unsupported transfer coding "${listItems(value).join(', ').slice(0, 40)}"`);
      }
      chunked = true;
    } else if (lower === 'connection' || lower === 'proxy-connection') {
      // llhttp (so Node and undici) reads the non-standard Proxy-Connection as Connection; its
      // `close` is honoured the same way here, so no client reuses what the other would not.
      for (const token of listItems(value)) {
        if (token === 'close') keepAlive = false;
        else if (token === 'keep-alive' && minor === 48) keepAlive = true;
      }
    } else if (lower === 'keep-alive' && keepAliveHint === -1) {
      const m = HINT.exec(value);
      if (m !== null) keepAliveHint = Number(m[1]) * 1000;
    }
  }
  if (chunked && length !== -1) {
    throw badResponse('HPE_UNEXPECTED_CONTENT_LENGTH', "Content-Length can't be present with Transfer-Encoding");
  }
  let framing: Framing;
  if (method === 'HEAD' || status < 200 || status === 204 || status === 304) framing = 'none';
  else if (chunked) framing = 'chunked';
  else if (length !== -1) framing = 'length';
  else framing = 'close';
  // A response to HEAD with neither Content-Length nor chunked would have been read to the close:
  // llhttp (so Node and undici) does not reuse such a connection, for servers that write a body
  // there anyway; neither does waygate.
  if (framing === 'close' || (method === 'HEAD' && status >= 200 && !chunked && length === -1)) keepAlive = false;
  return { status, reason, raw, framing, length: length === -1 ? 0 : length, keepAlive, keepAliveHint };
}

/**
 * Checks the bytes of a head that has not ended yet, from `from` (the head starts at `start`):
 * a CR not followed by LF or an LF without its CR can never be part of a valid head (RFC 9112
 * §2.2), and llhttp refuses them as they arrive. Without this, a head broken that way whose blank
 * line never comes would wait for the response timeout.
 */
export function checkLineEnds(buf: Buffer, start: number, from: number): void {
  for (let i = buf.indexOf(13, from); i !== -1 && i + 1 < buf.length; i = buf.indexOf(13, i + 1)) {
    if (buf[i + 1] !== 10) throw badResponse('HPE_LF_EXPECTED', 'CR without LF in the response head');
  }
  for (let i = buf.indexOf(10, from); i !== -1; i = buf.indexOf(10, i + 1)) {
    if (i === start || buf[i - 1] !== 13) throw badResponse('HPE_CR_EXPECTED', 'LF without CR in the response head');
  }
}

// The chunked decoder's states. A chunk line (RFC 9112 §7.1, §7.1.1) is read byte by byte with
// llhttp's strict grammar, so a byte llhttp refuses is refused here as it arrives, not when (or if)
// the line ends: the size in hex (leading zeros allowed), then extensions `;name[=value]` with
// token names and token or quoted-string values, no whitespace anywhere, then CRLF.
const SIZE = 0;
/** Just after a `;`: a name, another `;` or `=` (llhttp takes empty names there), not the line end. */
const EXT_START = 1;
const EXT_NAME = 2;
/** Just after `=`. */
const EXT_VALUE_START = 3;
const EXT_VALUE = 4;
const QUOTED = 5;
/** After a backslash in a quoted value. */
const QUOTED_PAIR = 6;
/** After the closing quote: only `;` or the line end. */
const QUOTED_END = 7;
/** The CR of a chunk line was read: LF must follow. */
const LINE_LF = 8;
const DATA = 9;
/** The data of a chunk was read: CR LF must follow. */
const DATA_CR = 10;
const DATA_LF = 11;
const TRAILERS = 12;
const DONE = 13;
/** The longest chunk line (size and extensions), as llhttp's 16 KiB limit on extensions is for Node. */
const MAX_LINE = 4096;

/** tchar (RFC 9110 §5.6.2), by byte. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TCHAR[c.charCodeAt(0)] = 1;

/** The value of a hex digit, or -1. */
function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 0x20;
  return l >= 97 && l <= 102 ? l - 87 : -1;
}

/** qdtext (RFC 9110 §5.6.4): HTAB, SP, VCHAR but `"` and `\`, obs-text. */
const qdtext = (c: number): boolean => c === 9 || c === 32 || c === 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e) || c >= 0x80;
/** What a quoted-pair may escape: HTAB, SP, VCHAR, obs-text. */
const quotable = (c: number): boolean => c === 9 || (c >= 0x20 && c <= 0x7e) || c >= 0x80;
/** Bytes that can appear nowhere in a field line (CR only right before LF). */
const NEVER_IN_FIELD = /[\x00-\x08\x0a-\x0c\x0e-\x1f\x7f]|\r[^\n]/;

const badChunk = (message: string): Error => badResponse('HPE_INVALID_CHUNK_SIZE', message);

/** Decodes a chunked body (RFC 9112 §7.1) across any split of the bytes. */
export class ChunkedDecoder {
  #state = SIZE;
  #size = 0;
  #digits = 0;
  #lineLength = 0;
  /** The trailer line read so far. */
  #line = '';
  #trailerBytes = 0;
  readonly #trailerRaw: string[] = [];
  #remaining = 0;
  readonly #maxTrailers: number;
  /** Trailer fields, once the body is done. */
  trailers: Record<string, string> = {};

  constructor(maxTrailers: number) {
    this.#maxTrailers = maxTrailers;
  }

  get done(): boolean {
    return this.#state === DONE;
  }

  /**
   * Decodes `buf` from `pos`, passing body data to `onData`; stops early when `onData` returns
   * false (paused or aborted). Returns the position reached: the end of the chunked body when
   * `done`, else where decoding stopped.
   */
  feed(buf: Buffer, pos: number, onData: (data: Buffer) => boolean): number {
    while (pos < buf.length) {
      const state = this.#state;
      if (state === DATA) {
        const n = Math.min(this.#remaining, buf.length - pos);
        this.#remaining -= n;
        pos += n;
        if (this.#remaining === 0) this.#state = DATA_CR;
        if (!onData(buf.subarray(pos - n, pos))) return pos;
      } else if (state === TRAILERS) {
        pos = this.#trailers(buf, pos);
        if (this.#state === DONE) return pos;
      } else if (state === DONE) {
        return pos;
      } else {
        this.#lineByte(buf[pos++]);
      }
    }
    return pos;
  }

  /** One byte of a chunk line or of the CRLF after chunk data. */
  #lineByte(c: number): void {
    if (++this.#lineLength > MAX_LINE) throw badChunk('chunk size line too long');
    switch (this.#state) {
      case SIZE: {
        const d = hexDigit(c);
        if (d !== -1) {
          this.#size = this.#size * 16 + d;
          this.#digits++;
          // Past 2^53 - 1 a size is no longer exact in a JS number: refused, not rounded.
          if (this.#size > Number.MAX_SAFE_INTEGER) throw badChunk('chunk size too large');
        } else if (this.#digits > 0 && c === 59) this.#state = EXT_START;
        else if (this.#digits > 0 && c === 13) this.#state = LINE_LF;
        else throw badChunk(`invalid character ${c} in chunk size`);
        return;
      }
      case EXT_START:
      case EXT_NAME:
        if (TCHAR[c] === 1) this.#state = EXT_NAME;
        else if (c === 59) this.#state = EXT_START;
        else if (c === 61) this.#state = EXT_VALUE_START;
        else if (c === 13 && this.#state === EXT_NAME) this.#state = LINE_LF;
        else throw badChunk(`invalid character ${c} in chunk extension name`);
        return;
      case EXT_VALUE_START:
      case EXT_VALUE:
        if (TCHAR[c] === 1) this.#state = EXT_VALUE;
        else if (c === 34 && this.#state === EXT_VALUE_START) this.#state = QUOTED;
        else if (c === 59) this.#state = EXT_START;
        else if (c === 13) this.#state = LINE_LF;
        else throw badChunk(`invalid character ${c} in chunk extension value`);
        return;
      case QUOTED:
        if (c === 34) this.#state = QUOTED_END;
        else if (c === 92) this.#state = QUOTED_PAIR;
        else if (!qdtext(c)) throw badChunk(`invalid character ${c} in a quoted chunk extension`);
        return;
      case QUOTED_PAIR:
        if (!quotable(c)) throw badChunk(`invalid quoted-pair ${c} in a chunk extension`);
        this.#state = QUOTED;
        return;
      case QUOTED_END:
        if (c === 59) this.#state = EXT_START;
        else if (c === 13) this.#state = LINE_LF;
        else throw badChunk(`invalid character ${c} after a quoted chunk extension`);
        return;
      case LINE_LF:
        if (c !== 10) throw badChunk('expected LF after the chunk size line');
        this.#lineLength = 0;
        if (this.#size === 0) this.#state = TRAILERS;
        else {
          this.#remaining = this.#size;
          this.#state = DATA;
        }
        return;
      case DATA_CR:
        if (c !== 13) throw badChunk('chunk data longer than its size');
        this.#state = DATA_LF;
        return;
      default:
        if (c !== 10) throw badChunk('expected LF after chunk data');
        this.#state = SIZE;
        this.#size = 0;
        this.#digits = 0;
        this.#lineLength = 0;
    }
  }

  /**
   * Reads the trailer section from `pos` (RFC 9112 §7.1.2): fields like header fields, each line
   * checked as soon as it is whole (and a partial one for bytes no field line may hold), up to
   * an empty line. Returns the position reached.
   */
  #trailers(buf: Buffer, pos: number): number {
    while (pos < buf.length) {
      const nl = buf.indexOf(10, pos);
      const end = nl === -1 ? buf.length : nl + 1;
      this.#trailerBytes += end - pos;
      if (this.#trailerBytes > this.#maxTrailers) throw badResponse('HPE_HEADER_OVERFLOW', 'trailers too large');
      this.#line += buf.toString('latin1', pos, end);
      pos = end;
      const line = this.#line;
      if (nl === -1) {
        // Refused as soon as llhttp would: a byte that is never valid, or a bad name byte.
        const colon = line.indexOf(':');
        const name = colon === -1 ? line : line.slice(0, colon);
        if (NEVER_IN_FIELD.test(line) || (name !== '' && name !== '\r' && !TOKEN.test(name))) {
          throw badResponse('HPE_INVALID_HEADER_TOKEN', 'invalid trailer field');
        }
        return pos;
      }
      this.#line = '';
      if (line.length < 2 || line.charCodeAt(line.length - 2) !== 13) throw badResponse('HPE_INVALID_HEADER_TOKEN', 'bare LF in trailers');
      if (line.length === 2) {
        this.#finishTrailers();
        this.#state = DONE;
        return pos;
      }
      // Framing belongs in the head (RFC 9110 §6.5.1); llhttp refuses a Content-Length here.
      if (fieldLine(line.slice(0, -2), this.#trailerRaw) === 'content-length') {
        throw badResponse('HPE_UNEXPECTED_CONTENT_LENGTH', "Content-Length can't be present with Transfer-Encoding");
      }
    }
    return pos;
  }

  #finishTrailers(): void {
    const raw = this.#trailerRaw;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i].toLowerCase();
      const prev = this.trailers[name];
      this.trailers[name] = prev === undefined ? raw[i + 1] : `${prev}, ${raw[i + 1]}`;
    }
  }
}

// Parsing of HTTP/1.1 responses from upstreams (RFC 9112), for the HTTP/1.1 client in h1-pool.ts.
// Strict where leniency would let a response be read two ways (response smuggling): a second
// Content-Length, Content-Length with Transfer-Encoding, obs-fold, a space before the colon, bare
// CR or LF and control bytes are all refused, as llhttp does in undici. Errors carry llhttp's
// HPE_* codes, which the forwarder maps to 502 (upstream_bad_response).

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
  /** The upstream's `Keep-Alive: timeout=` in ms, or 0 when it sent none. */
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
const DIGITS = /^[0-9]{1,15}$/;

/**
 * Parses one `name: value` line into `out`. Returns the lower-cased name when it is as long as
 * one the parser acts on (content-length 14, transfer-encoding 17, connection and keep-alive 10),
 * else "": other names are not lower-cased per response.
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
  return name.length === 14 || name.length === 17 || name.length === 10 ? name.toLowerCase() : '';
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
  if (!DIGITS.test(first.slice(9, 12)) || status < 100 || (first.length > 12 && first.charCodeAt(12) !== 32)) {
    throw badResponse('HPE_INVALID_STATUS', `invalid status line "${first.slice(0, 40)}"`);
  }
  const reason = first.length > 13 ? first.slice(13) : '';
  if (BAD_VALUE.test(reason)) throw badResponse('HPE_INVALID_STATUS', 'invalid reason phrase');
  const raw: string[] = [];
  let length = -1;
  let te: string[] | undefined;
  let keepAlive = minor === 49;
  let keepAliveHint = 0;
  for (let i = 1; i < lines.length; i++) {
    const lower = fieldLine(lines[i], raw);
    if (lower === '') continue;
    const value = raw[raw.length - 1];
    if (lower === 'content-length') {
      // A second Content-Length, even an equal one, or a list: ambiguous, refused.
      if (length !== -1) throw badResponse('HPE_UNEXPECTED_CONTENT_LENGTH', 'duplicate Content-Length');
      if (!DIGITS.test(value)) throw badResponse('HPE_INVALID_CONTENT_LENGTH', `invalid Content-Length "${value.slice(0, 40)}"`);
      length = Number(value);
    } else if (lower === 'transfer-encoding') {
      (te ??= []).push(...listItems(value));
    } else if (lower === 'connection') {
      for (const token of listItems(value)) {
        if (token === 'close') keepAlive = false;
        else if (token === 'keep-alive' && minor === 48) keepAlive = true;
      }
    } else if (lower === 'keep-alive') {
      const m = /(?:^|[,;\s])timeout\s*=\s*(\d+)/i.exec(value);
      if (m !== null) keepAliveHint = Number(m[1]) * 1000;
    }
  }
  if (te !== undefined && length !== -1) {
    throw badResponse('HPE_UNEXPECTED_CONTENT_LENGTH', "Content-Length can't be present with Transfer-Encoding");
  }
  // RFC 9112 §6.1: chunked is the only transfer coding waygate decodes. Any other ("gzip, chunked",
  // "gzip") would reach the client de-chunked but still encoded, with nothing declaring it (the
  // field is hop-by-hop): refused, as nginx does. "chunked, chunked" is refused too (RFC 9112 §6.1:
  // a sender MUST NOT apply chunked more than once).
  if (te !== undefined && (te.length !== 1 || te[0] !== 'chunked')) {
    throw badResponse('HPE_INVALID_TRANSFER_ENCODING', `unsupported transfer coding "${te.join(', ').slice(0, 40)}"`);
  }
  let framing: Framing;
  if (method === 'HEAD' || status < 200 || status === 204 || status === 304) framing = 'none';
  else if (te !== undefined) framing = 'chunked';
  else if (length !== -1) framing = 'length';
  else framing = 'close';
  if (framing === 'close') keepAlive = false;
  return { status, reason, raw, framing, length: length === -1 ? 0 : length, keepAlive, keepAliveHint };
}

const SIZE = 0;
const DATA = 1;
const DATA_END = 2;
const TRAILERS = 3;
const DONE = 4;
const HEX = /^[0-9a-fA-F]{1,13}(?:[ \t]*;[^\x00-\x08\x0a-\x1f\x7f]*)?$/;
const MAX_LINE = 4096;

/** Decodes a chunked body (RFC 9112 §7.1) across any split of the bytes. */
export class ChunkedDecoder {
  #state = SIZE;
  /** The size line or the trailer section read so far. */
  #line = '';
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
        if (this.#remaining === 0) this.#state = DATA_END;
        if (!onData(buf.subarray(pos - n, pos))) return pos;
      } else if (state === SIZE || state === DATA_END) {
        const nl = buf.indexOf(10, pos);
        const end = nl === -1 ? buf.length : nl + 1;
        this.#line += buf.toString('latin1', pos, end);
        pos = end;
        if (this.#line.length > MAX_LINE) throw badResponse('HPE_INVALID_CHUNK_SIZE', 'chunk size line too long');
        if (nl === -1) continue;
        const line = this.#line;
        this.#line = '';
        if (line.length < 2 || line.charCodeAt(line.length - 2) !== 13) throw badResponse('HPE_INVALID_CHUNK_SIZE', 'bare LF in chunked body');
        if (state === DATA_END) {
          if (line.length !== 2) throw badResponse('HPE_INVALID_CHUNK_SIZE', 'chunk data longer than its size');
          this.#state = SIZE;
          continue;
        }
        const text = line.slice(0, -2);
        if (!HEX.test(text)) throw badResponse('HPE_INVALID_CHUNK_SIZE', `invalid chunk size "${text.slice(0, 20)}"`);
        const semi = text.search(/[ \t;]/);
        const size = Number.parseInt(semi === -1 ? text : text.slice(0, semi), 16);
        if (size === 0) this.#state = TRAILERS;
        else {
          this.#remaining = size;
          this.#state = DATA;
        }
      } else if (state === TRAILERS) {
        // Everything up to an empty line: "\r\n" alone, or "…\r\n\r\n".
        const nl = buf.indexOf(10, pos);
        const end = nl === -1 ? buf.length : nl + 1;
        this.#line += buf.toString('latin1', pos, end);
        pos = end;
        if (this.#line.length > this.#maxTrailers) throw badResponse('HPE_HEADER_OVERFLOW', 'trailers too large');
        if (nl === -1) continue;
        const text = this.#line;
        if (text.endsWith('\n') && !text.endsWith('\r\n')) throw badResponse('HPE_INVALID_HEADER_TOKEN', 'bare LF in trailers');
        if (text === '\r\n' || text.endsWith('\r\n\r\n')) {
          this.#parseTrailers(text.slice(0, -2));
          this.#state = DONE;
          return pos;
        }
      } else {
        return pos;
      }
    }
    return pos;
  }

  #parseTrailers(text: string): void {
    if (text === '') return;
    const raw: string[] = [];
    for (const line of text.slice(0, -2).split('\r\n')) fieldLine(line, raw);
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i].toLowerCase();
      const prev = this.trailers[name];
      this.trailers[name] = prev === undefined ? raw[i + 1] : `${prev}, ${raw[i + 1]}`;
    }
  }
}

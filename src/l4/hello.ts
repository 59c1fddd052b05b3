// The TLS ClientHello reader of the L4 router (SPEC: a listener reads the ClientHello only if one
// of its routes matches `sni` or `alpn`). It reassembles the first handshake message from the TLS
// record layer (RFC 8446 §5.1), however the bytes arrive: one byte per segment, a hello larger than
// one TCP segment (post-quantum key shares make it ~1.8 KB), or a handshake message fragmented
// over several records. It never alters the bytes: everything pushed is kept, in order, to be
// forwarded to the backend. It decides 'bad' as early as the bytes allow, so a client speaking
// HTTP or SSH is refused at its first byte. Pure: no I/O, no timers.
//
// Copies: the pushed chunks are kept by reference. The handshake message is read from subarrays
// of them; only when it spans several chunks or records are those concatenated, once, on
// completion. `bytes` concatenates the chunks once (and keeps the result).

/** Most bytes a connection may send before its ClientHello is complete (records and headers included). */
export const MAX_HELLO_BYTES = 16 * 1024;

export type HelloResult =
  | { kind: 'more' }
  | { kind: 'hello'; sni: string | undefined; alpn: string[] }
  | { kind: 'bad'; reason: string };

const CONTENT_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const RECORD_HEADER = 5;
const HANDSHAKE_HEADER = 4;
/** RFC 8446 §5.1: a TLSPlaintext fragment is at most 2^14 bytes. */
const MAX_RECORD = 16384;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const NAME_TYPE_HOST = 0;

const MORE: HelloResult = Object.freeze({ kind: 'more' as const });
const EMPTY = Buffer.alloc(0);

function bad(reason: string): HelloResult {
  return { kind: 'bad', reason };
}

/** Reads one connection's ClientHello from the chunks it sends, in the order they arrived. */
export class HelloReader {
  readonly #limit: number;
  #chunks: Buffer[] = [];
  #total = 0;
  #result: HelloResult = MORE;
  /** Bytes of the stream consumed by the record parser (equals #total until the hello is complete). */
  #pos = 0;
  /** Bytes of the current record header read so far (0..4); 0 when inside a record or between records. */
  #headerHave = 0;
  #recordLength = 0;
  /** Bytes of the current record's fragment not yet read; 0 means a record header comes next. */
  #recordLeft = 0;
  /** Records read (headers complete), to word the first one's errors differently. */
  #records = 0;
  /** Handshake-layer bytes gathered so far, as subarrays of the pushed chunks. */
  #parts: Buffer[] = [];
  #hsHave = 0;
  /** Length of the handshake message, its 4-byte header included; known once #hsHave >= 4. */
  #hsTotal = 0;

  constructor(limit: number = MAX_HELLO_BYTES) {
    this.#limit = limit;
  }

  /** Feeds the next chunk exactly as it arrived; after a 'hello' or 'bad' result, further pushes return the same result. */
  push(chunk: Buffer): HelloResult {
    if (chunk.length === 0) return this.#result;
    this.#chunks.push(chunk);
    this.#total += chunk.length;
    if (this.#result.kind !== 'more') return this.#result;
    const r = this.#scan(chunk);
    if (r.kind !== 'more') this.#parts = [];
    this.#result = r;
    return r;
  }

  /** Every byte pushed so far, in order and unaltered (to be forwarded to the backend for passthrough). */
  get bytes(): Buffer {
    const chunks = this.#chunks;
    if (chunks.length === 0) return EMPTY;
    if (chunks.length > 1) this.#chunks = [Buffer.concat(chunks, this.#total)];
    return this.#chunks[0]!;
  }

  #scan(chunk: Buffer): HelloResult {
    const len = chunk.length;
    let off = 0;
    while (off < len) {
      if (this.#recordLeft === 0) {
        // A record header, byte by byte: each byte is judged as soon as it arrives.
        const b = chunk[off++]!;
        this.#pos++;
        if (this.#pos > this.#limit) return this.#overLimit();
        const r = this.#headerByte(b);
        if (r !== undefined) return r;
        continue;
      }
      const start = off;
      // The 4-byte handshake header, byte by byte (it may itself be split over records).
      while (this.#hsHave < HANDSHAKE_HEADER && this.#recordLeft > 0 && off < len) {
        const b = chunk[off++]!;
        this.#pos++;
        this.#recordLeft--;
        const i = this.#hsHave++;
        if (i === 0) {
          if (b !== HANDSHAKE_CLIENT_HELLO) return bad(`handshake message of type ${b}, not a ClientHello (1)`);
        } else {
          this.#hsTotal = (this.#hsTotal << 8) | b;
          if (i === HANDSHAKE_HEADER - 1) {
            this.#hsTotal += HANDSHAKE_HEADER;
            if (this.#hsTotal > this.#limit) {
              return bad(`ClientHello of ${this.#hsTotal} bytes is over the ${this.#limit}-byte limit`);
            }
            const r = this.#cannotFit();
            if (r !== undefined) return r;
          }
        }
      }
      if (this.#hsHave >= HANDSHAKE_HEADER) {
        const n = Math.min(this.#hsTotal - this.#hsHave, this.#recordLeft, len - off);
        off += n;
        this.#pos += n;
        this.#recordLeft -= n;
        this.#hsHave += n;
      }
      if (off > start) this.#parts.push(chunk.subarray(start, off));
      if (this.#pos > this.#limit) return this.#overLimit();
      if (this.#hsHave >= HANDSHAKE_HEADER && this.#hsHave === this.#hsTotal) {
        const parts = this.#parts;
        const message = parts.length === 1 ? parts[0]! : Buffer.concat(parts, this.#hsTotal);
        return parseClientHello(message);
      }
    }
    return MORE;
  }

  /** Judges one record-header byte; a result ends the reading. */
  #headerByte(b: number): HelloResult | undefined {
    const i = this.#headerHave;
    this.#headerHave = i === RECORD_HEADER - 1 ? 0 : i + 1;
    switch (i) {
      case 0:
        if (b === CONTENT_HANDSHAKE) return undefined;
        if (this.#records === 0) return bad(`not a TLS handshake (first byte 0x${hex2(b)})`);
        return bad(`a record of content type ${b} before the ClientHello is complete`);
      case 1:
        // Legacy record version: major 3 (0x0300..0x03ff; real clients send 0x0301..0x0303).
        if (b === 3) return undefined;
        return bad(`record version major ${b}, not 3 (${this.#records === 0 ? 'not TLS' : 'not a TLS record'})`);
      case 2:
        return undefined;
      case 3:
        this.#recordLength = b << 8;
        // A length of 0x41xx or more is over 2^14 whatever the second byte is.
        if (this.#recordLength > MAX_RECORD) return bad(`a record of ${this.#recordLength} bytes or more (at most ${MAX_RECORD})`);
        return undefined;
      default: {
        const length = this.#recordLength | b;
        if (length === 0) return bad('an empty handshake record');
        if (length > MAX_RECORD) return bad(`a record of ${length} bytes (at most ${MAX_RECORD})`);
        this.#recordLeft = length;
        this.#records++;
        return this.#hsHave >= HANDSHAKE_HEADER ? this.#cannotFit() : undefined;
      }
    }
  }

  /** Once the handshake length is known: 'bad' if the hello cannot end within the limit even in full-size records. */
  #cannotFit(): HelloResult | undefined {
    const need = this.#hsTotal - this.#hsHave;
    const beyond = need > this.#recordLeft ? need - this.#recordLeft : 0;
    const end = this.#pos + need + RECORD_HEADER * Math.ceil(beyond / MAX_RECORD);
    if (end <= this.#limit) return undefined;
    return bad(`ClientHello of ${this.#hsTotal} bytes would end at byte ${end} at the earliest, over the ${this.#limit}-byte limit`);
  }

  #overLimit(): HelloResult {
    return bad(`no complete ClientHello within ${this.#limit} bytes`);
  }
}

/** One-shot convenience: the result for a complete buffer. */
export function readHello(buf: Buffer, limit?: number): HelloResult {
  return new HelloReader(limit).push(buf);
}

function hex2(b: number): string {
  return b.toString(16).padStart(2, '0');
}

/**
 * Parses a complete handshake message (its 4-byte header included, type already checked) as a
 * ClientHello (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2): every length must fit inside its parent.
 */
function parseClientHello(m: Buffer): HelloResult {
  const end = m.length;
  let p = HANDSHAKE_HEADER;
  if (end - p < 2 + 32 + 1) return bad(`ClientHello of ${end} bytes is too short for its version, random and session id`);
  if (m[p] !== 3) return bad(`ClientHello version ${m[p]}.${m[p + 1]} is not SSL 3 / TLS`);
  p += 2 + 32;
  const sessionId = m[p++]!;
  if (sessionId > 32) return bad(`session id of ${sessionId} bytes (at most 32)`);
  if (p + sessionId > end) return bad(`session id of ${sessionId} bytes runs past the end of the ClientHello`);
  p += sessionId;
  if (p + 2 > end) return bad('ClientHello ends before its cipher suites');
  const suites = m.readUInt16BE(p);
  p += 2;
  if (suites < 2 || suites % 2 !== 0) return bad(`cipher suites of ${suites} bytes (an even number, at least 2)`);
  if (p + suites > end) return bad(`cipher suites of ${suites} bytes run past the end of the ClientHello`);
  p += suites;
  if (p + 1 > end) return bad('ClientHello ends before its compression methods');
  const compressions = m[p++]!;
  if (compressions < 1) return bad('no compression methods (at least 1)');
  if (p + compressions > end) return bad(`compression methods of ${compressions} bytes run past the end of the ClientHello`);
  p += compressions;
  // An old (SSL 3 style) hello may end here: no extensions at all.
  if (p === end) return { kind: 'hello', sni: undefined, alpn: [] };
  if (p + 2 > end) return bad('1 stray byte after the compression methods');
  const extensions = m.readUInt16BE(p);
  p += 2;
  // RFC 8446 says <8..2^16-1> for TLS 1.3, but a TLS 1.2 hello may carry less (only
  // renegotiation_info is 5 bytes): only the fit is checked.
  if (p + extensions > end) return bad(`extensions of ${extensions} bytes run past the end of the ClientHello`);
  if (p + extensions < end) return bad(`${end - p - extensions} bytes after the extensions`);
  let sni: string | undefined;
  let alpn: string[] = [];
  const seen: number[] = [];
  while (p < end) {
    if (p + 4 > end) return bad('an extension header runs past the end of the extensions');
    const type = m.readUInt16BE(p);
    const length = m.readUInt16BE(p + 2);
    p += 4;
    if (p + length > end) return bad(`extension ${type} of ${length} bytes runs past the end of the extensions`);
    if (seen.includes(type)) return bad(`extension ${type} appears twice`);
    seen.push(type);
    if (type === EXT_SERVER_NAME) {
      const r = serverName(m, p, p + length);
      if (typeof r !== 'string' && r !== undefined) return r;
      sni = r;
    } else if (type === EXT_ALPN) {
      const r = protocols(m, p, p + length);
      if (!Array.isArray(r)) return r;
      alpn = r;
    }
    p += length;
  }
  return { kind: 'hello', sni, alpn };
}

/** server_name (RFC 6066 §3): the first host_name of the list, lower-cased, one trailing dot dropped. */
function serverName(m: Buffer, p: number, end: number): string | undefined | HelloResult {
  if (p + 2 > end) return bad('server_name extension too short for its list length');
  const list = m.readUInt16BE(p);
  p += 2;
  if (list === 0) return bad('empty server_name list');
  if (p + list !== end) return bad(`server_name list of ${list} bytes in an extension of ${end - p + 2}`);
  let host: string | undefined;
  while (p < end) {
    if (p + 3 > end) return bad('a server_name entry runs past the end of its list');
    const type = m[p]!;
    const length = m.readUInt16BE(p + 1);
    p += 3;
    if (length === 0) return bad('an empty server name');
    if (p + length > end) return bad(`a server name of ${length} bytes runs past the end of its list`);
    if (type === NAME_TYPE_HOST && host === undefined) {
      for (let i = p; i < p + length; i++) {
        const c = m[i]!;
        if (c < 0x20 || c > 0x7e) return bad(`server name byte 0x${hex2(c)} is not printable ASCII`);
      }
      host = m.toString('latin1', p, p + length).toLowerCase();
      if (host.endsWith('.')) host = host.slice(0, -1);
      if (host === '') return bad('server name "." is empty');
    }
    p += length;
  }
  return host;
}

/** application_layer_protocol_negotiation (RFC 7301 §3.1): the protocol names, in order. */
function protocols(m: Buffer, p: number, end: number): string[] | HelloResult {
  if (p + 2 > end) return bad('ALPN extension too short for its list length');
  const list = m.readUInt16BE(p);
  p += 2;
  if (list === 0) return bad('empty ALPN protocol list');
  if (p + list !== end) return bad(`ALPN list of ${list} bytes in an extension of ${end - p + 2}`);
  const names: string[] = [];
  while (p < end) {
    const length = m[p++]!;
    if (length === 0) return bad('an empty ALPN protocol name');
    if (p + length > end) return bad(`an ALPN protocol name of ${length} bytes runs past the end of its list`);
    names.push(m.toString('latin1', p, p + length));
    p += length;
  }
  return names;
}

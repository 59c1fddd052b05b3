// The case generator: for a seed and an index, one HTTP/1.1 response stream of one category,
// built from valid parts (vocabulary.ts) with some made odd, sometimes mutated byte by byte
// (mutate.ts), cut into writes (schedule.ts). Same seed and index, same case.
import { maxHeaderSize } from 'node:http';
import type { EndMode, FuzzCase } from './case.ts';
import { mutateOnce } from './mutate.ts';
import { Rng, caseSeed } from './rng.ts';
import { schedule } from './schedule.ts';
import * as V from './vocabulary.ts';

/** The categories, each a part of the response the case is about. */
export const CATEGORIES = [
  'status-line', 'headers', 'content-length', 'transfer-encoding', 'chunked-body', 'trailers', 'connection',
  'interim', 'bodiless', 'close-delimited', 'after-end', 'limits', 'random',
] as const;

/** One of CATEGORIES. */
export type Category = (typeof CATEGORIES)[number];

interface Head {
  start: string;
  fields: string[];
}

interface Model {
  method: string;
  interim: Head[];
  head: Head;
  /** Everything after the final head's blank line that belongs to the response (framed body). */
  body: string;
  /** Bytes after the end of the response. */
  trailing: string;
  notes: string[];
  end?: EndMode;
}

const REASON: Record<string, string> = { 200: 'OK', 201: 'Created', 204: 'No Content', 205: 'Reset Content', 206: 'Partial Content', 301: 'Moved Permanently', 304: 'Not Modified', 404: 'Not Found', 500: 'Internal Server Error', 100: 'Continue', 101: 'Switching Protocols', 102: 'Processing', 103: 'Early Hints' };
const COMMON_CODES = [[60, '200'], [5, '201'], [5, '206'], [5, '301'], [10, '404'], [10, '500'], [2, '299'], [2, '418'], [1, '599']] as const;
const METHODS = [[80, 'GET'], [6, 'HEAD'], [8, 'POST'], [3, 'DELETE'], [3, 'OPTIONS']] as const;

const headText = (h: Head): string => `${h.start}\r\n${h.fields.map((f) => `${f}\r\n`).join('')}\r\n`;
const modelText = (m: Model): string => m.interim.map(headText).join('') + headText(m.head) + m.body + m.trailing;

/** A field name in one of its spellings (names are case-insensitive, RFC 9110 §5.1). */
function spell(rng: Rng, name: string): string {
  return rng.weighted([
    [70, name],
    [12, name.toLowerCase()],
    [8, name.toUpperCase()],
    [10, [...name].map((c) => (rng.chance(0.5) ? c.toUpperCase() : c.toLowerCase())).join('')],
  ]);
}

/** `name: value` with optional whitespace as a server may write it. */
function field(rng: Rng, name: string, value: string): string {
  const ows = rng.chance(0.85) ? ' ' : rng.weighted(V.OWS);
  const tail = rng.chance(0.9) ? '' : rng.weighted(V.OWS);
  return `${spell(rng, name)}:${ows}${value}${tail}`;
}

function bodyText(rng: Rng): string {
  const n = rng.weighted([[10, 0], [40, rng.int(1, 16)], [35, rng.int(17, 300)], [10, rng.int(301, 5000)], [5, rng.int(5001, 70_000)]]);
  if (rng.chance(0.7)) {
    let s = '';
    const words = ['hello', 'world', ' ', '\r\n', '0', 'chunked', 'HTTP/1.1 200 OK', '\n', 'x'];
    while (s.length < n) s += rng.pick(words);
    return s.slice(0, n);
  }
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = rng.int(0, 255);
  return b.toString('latin1');
}

/** Cuts `data` into chunk payloads (none when it is empty). */
function pieces(rng: Rng, data: string): string[] {
  const out: string[] = [];
  let at = 0;
  while (at < data.length) {
    const n = rng.chance(0.2) ? data.length - at : rng.int(1, Math.min(data.length - at, rng.pick([1, 8, 64, 512, 20_000])));
    out.push(data.slice(at, at + n));
    at += n;
  }
  return out;
}

function hex(rng: Rng, n: number): string {
  const h = n.toString(16);
  return rng.weighted([[60, h], [28, h.toUpperCase()], [12, '0'.repeat(rng.int(1, 3)) + h]]);
}

interface ChunkOptions {
  /** Probability that a chunk is made odd. */
  odd?: number;
  trailers?: string[];
  notes: string[];
}

/** One chunk: size, extensions, CRLF, data, CRLF (RFC 9112 §7.1), maybe made odd. */
function chunk(rng: Rng, data: string, o: ChunkOptions): string {
  let size = hex(rng, data.length);
  let ext = rng.chance(0.15) ? rng.pick(V.GOOD_EXTENSIONS) : '';
  let eol = '\r\n';
  let after = '\r\n';
  if (rng.chance(o.odd ?? 0)) {
    const kind = rng.int(0, 6);
    if (kind === 0) ext = rng.pick(V.ODD_EXTENSIONS);
    else if (kind === 1) size = rng.pick(V.BAD_SIZES);
    else if (kind === 2) data = data.length > 1 && rng.chance(0.5) ? data.slice(0, -1) : `${data}x`;
    else if (kind === 3) after = rng.pick(['', '\n', '\r', '\r\r\n', 'XX\r\n', ' \r\n']);
    else if (kind === 4) eol = rng.pick(['\n', '\r', '\r\r\n', ' \r\n', '\r \n']);
    else if (kind === 5) size = '0'.repeat(rng.int(1, 20)) + size;
    else ext = rng.pick(V.GOOD_EXTENSIONS) + rng.pick(V.GOOD_EXTENSIONS);
    o.notes.push(`chunk ${JSON.stringify(size + ext + eol).slice(0, 40)}${after === '\r\n' ? '' : ` then ${JSON.stringify(after)}`}`);
  }
  return size + ext + eol + data + after;
}

/** A chunked body of `data`, with its last chunk and trailer section. */
function chunked(rng: Rng, data: string, o: ChunkOptions): string {
  let out = '';
  for (const p of pieces(rng, data)) out += chunk(rng, p, o);
  const last = rng.weighted([[85, '0'], [5, '000'], [5, `0${rng.pick(V.GOOD_EXTENSIONS)}`], [3, '0'.repeat(20)], [2, `0${rng.pick(V.ODD_EXTENSIONS)}`]]);
  return `${out}${last}\r\n${(o.trailers ?? []).map((t) => `${t}\r\n`).join('')}\r\n`;
}

type Framing = 'length' | 'chunked' | 'close';

/** Frames `data` into the model: a Content-Length, chunked, or the close. */
function frame(rng: Rng, m: Model, data: string, framing: Framing): void {
  if (framing === 'length') {
    m.head.fields.push(field(rng, 'Content-Length', String(data.length)));
    m.body = data;
  } else if (framing === 'chunked') {
    m.head.fields.push(field(rng, 'Transfer-Encoding', 'chunked'));
    m.body = chunked(rng, data, { notes: m.notes });
  } else {
    m.body = data;
    m.end = rng.chance(0.8) ? 'close' : 'keep';
  }
}

function anyFraming(rng: Rng): Framing {
  return rng.weighted([[60, 'length'], [30, 'chunked'], [10, 'close']]);
}

/** A valid response of a common status with ordinary fields, framed as `framing`. */
function base(rng: Rng, framing: Framing = anyFraming(rng)): Model {
  const code = rng.weighted(COMMON_CODES);
  const version = rng.chance(0.88) ? 'HTTP/1.1' : 'HTTP/1.0';
  const fields: string[] = [];
  for (let i = rng.int(0, 4); i > 0; i--) fields.push(rng.pick(V.ORDINARY));
  if (version === 'HTTP/1.0' && rng.chance(0.6)) fields.push(field(rng, 'Connection', 'keep-alive'));
  const m: Model = { method: rng.weighted(METHODS), interim: [], head: { start: `${version} ${code} ${REASON[code] ?? 'OK'}`, fields }, body: '', trailing: '', notes: [] };
  frame(rng, m, bodyText(rng), framing);
  return m;
}

/** Inserts `line` among the fields at a random place. */
function insert(rng: Rng, h: Head, line: string): void {
  h.fields.splice(rng.int(0, h.fields.length), 0, line);
}

function statusLine(rng: Rng): Model {
  const m = base(rng);
  const version = rng.weighted(V.VERSIONS);
  const code = rng.weighted(V.CODES);
  const sep = rng.weighted(V.REASON_SEPARATORS);
  const reason = rng.chance(0.03) ? 'R'.repeat(rng.int(100, 9000)) : rng.weighted(V.REASONS);
  m.head.start = sep === '' ? `${version} ${code}` : `${version} ${code}${sep}${reason}`;
  m.notes.push(`status line ${JSON.stringify(m.head.start.slice(0, 40))}`);
  return m;
}

/** Odd header fields: each returns one line (or two, joined by a bare LF or an obs-fold). */
const ODD_FIELDS: ((rng: Rng) => string)[] = [
  (rng) => `X-Ows:${rng.weighted(V.OWS)}v${rng.chance(0.5) ? ' ' : ''}al${rng.weighted(V.OWS)}`,
  (rng) => rng.pick(['X-Empty:', 'X-Empty: ', 'X-Empty:\t', 'X-Empty:  \t ']),
  (rng) => `X-Latin: caf\xe9 ${String.fromCharCode(rng.int(0x80, 0xff))}`,
  (rng) => `X-Ctl: a${rng.pick(V.CONTROLS)}b`,
  (rng) => rng.pick(['X-Cr: a\rb', 'X-Cr: ab\r', 'X-Cr: \rab']),
  () => 'X-Lf: a\nX-After: b',
  (rng) => `X-Fold: a\r\n${rng.pick([' ', '\t', '  '])}b`,
  () => ' X-Lead: a',
  (rng) => `X${rng.pick([...V.TCHARS])}Y: ok`,
  (rng) => `X${rng.pick(V.NON_TCHARS)}Y: bad`,
  () => ': no-name',
  (rng) => rng.pick(['X-Sp : a', 'X-Tab\t: a', 'X-Sp  : a']),
  () => 'X-NoColon a',
  () => 'X-Colon: a:b: c',
  (rng) => `Set-Cookie: b=${rng.int(0, 9)}`,
  () => 'Content-Type: text/html',
  (rng) => `X-Long: ${'v'.repeat(rng.int(100, 4000))}`,
  () => 'X-Quote: "a, b"',
];

function headers(rng: Rng): Model {
  const m = base(rng);
  if (rng.chance(0.05)) {
    // Many small fields: Node keeps only 2000 pairs unless told otherwise (drive-node.ts).
    const n = rng.int(100, 2500);
    for (let i = 0; i < n; i++) m.head.fields.push(`h${i}:${i % 10}`);
    m.notes.push(`${n} small fields`);
  }
  for (let i = rng.int(1, 5); i > 0; i--) {
    const line = rng.pick(ODD_FIELDS)(rng);
    insert(rng, m.head, line);
    m.notes.push(`field ${JSON.stringify(line.slice(0, 30))}`);
  }
  return m;
}

function contentLength(rng: Rng): Model {
  const m = base(rng, 'length');
  const n = m.body.length;
  const at = m.head.fields.findIndex((f) => /^content-length:/i.test(f));
  const name = spell(rng, 'Content-Length');
  const variant = rng.weighted([
    [10, 'valid'], [8, 'zeros'], [6, 'ows'], [3, 'plus'], [3, 'minus'], [6, 'list'], [3, 'inner-space'], [2, 'hex'], [2, 'float'],
    [3, 'empty'], [2, 'alpha'], [8, 'huge'], [8, 'dup-equal'], [5, 'dup-diff'], [3, 'dup-empty'], [8, 'short-body'], [8, 'long-body'],
    [4, 'zero-with-body'],
  ] as const);
  let value = String(n);
  const extra: string[] = [];
  if (variant === 'zeros') value = '0'.repeat(rng.pick([1, 2, 10, 14, 15, 16, 20, 40])) + n;
  else if (variant === 'ows') value = rng.pick([` ${n} `, `\t${n}`, `${n}\t`, `${n}  `]);
  else if (variant === 'plus') value = `+${n}`;
  else if (variant === 'minus') value = `-${n}`;
  else if (variant === 'list') value = rng.pick([`${n}, ${n}`, `${n},${n}`, `${n}, ${n + 1}`, `,${n}`, `${n},`]);
  else if (variant === 'inner-space') value = rng.pick([`${n} ${n}`, `1 ${n}`]);
  else if (variant === 'hex') value = `0x${n.toString(16)}`;
  else if (variant === 'float') value = rng.pick([`${n}.0`, '1e2', `${n}.`]);
  else if (variant === 'empty') value = '';
  else if (variant === 'alpha') value = `${n}a`;
  else if (variant === 'huge') {
    value = rng.pick(['18446744073709551615', '18446744073709551616', '99999999999999999999', '9007199254740991', '9007199254740992', '1000000000000000', '999999999999999', '340282366920938463463374607431768211456', '4294967296']);
  } else if (variant === 'dup-equal') extra.push(`${spell(rng, 'Content-Length')}: ${n}`);
  else if (variant === 'dup-diff') extra.push(`${spell(rng, 'Content-Length')}: ${n + rng.int(1, 5)}`);
  else if (variant === 'dup-empty') extra.push(`${spell(rng, 'Content-Length')}:`);
  else if (variant === 'short-body') value = String(n + rng.int(1, 50));
  else if (variant === 'long-body') {
    value = String(Math.max(0, n - rng.int(1, 5)));
  } else if (variant === 'zero-with-body') value = '0';
  m.head.fields[at] = `${name}:${value === '' ? '' : ' '}${value}`;
  for (const e of extra) insert(rng, m.head, e);
  m.notes.push(`Content-Length ${variant} ${JSON.stringify(value.slice(0, 24))}${extra.length > 0 ? ` + ${JSON.stringify(extra[0])}` : ''} for ${n} bytes`);
  return m;
}

function transferEncoding(rng: Rng): Model {
  const m = base(rng, 'chunked');
  const at = m.head.fields.findIndex((f) => /^transfer-encoding:/i.test(f));
  const name = spell(rng, 'Transfer-Encoding');
  const dup = rng.chance(0.15) ? rng.pick([['chunked', 'chunked'], ['gzip', 'chunked'], ['chunked', 'gzip'], ['chunked', ''], ['', 'chunked']]) : undefined;
  if (dup !== undefined) {
    m.head.fields.splice(at, 1, `${name}: ${dup[0]}`, `${spell(rng, 'Transfer-Encoding')}: ${dup[1]}`);
    m.notes.push(`Transfer-Encoding lines ${JSON.stringify(dup)}`);
  } else {
    const value = rng.weighted(V.TE_VALUES);
    m.head.fields[at] = `${name}:${value === '' ? '' : ' '}${value}`;
    m.notes.push(`Transfer-Encoding ${JSON.stringify(value)}`);
  }
  if (rng.chance(0.2)) {
    // The body as raw bytes instead (what a non-chunked coding would read to the close).
    m.body = bodyText(rng);
    m.end = rng.chance(0.7) ? 'close' : 'keep';
    m.notes.push('raw body');
  }
  if (rng.chance(0.15)) {
    insert(rng, m.head, `${spell(rng, 'Content-Length')}: ${rng.chance(0.5) ? m.body.length : 0}`);
    m.notes.push('with Content-Length');
  }
  return m;
}

function chunkedBody(rng: Rng): Model {
  const m = base(rng, 'length');
  m.head.fields = m.head.fields.filter((f) => !/^content-length:/i.test(f));
  m.head.fields.push(field(rng, 'Transfer-Encoding', 'chunked'));
  const data = bodyText(rng);
  const variant = rng.weighted([[70, 'odd-chunks'], [12, 'huge'], [8, 'unfinished'], [10, 'no-final-crlf']] as const);
  if (variant === 'huge') {
    const size = rng.pick(V.HUGE_SIZES);
    m.body = `${size}\r\n${data.slice(0, 64)}`;
    m.notes.push(`chunk size ${size}`);
  } else {
    m.body = chunked(rng, data, { odd: 0.35, notes: m.notes });
    if (variant === 'unfinished') {
      m.body = m.body.slice(0, rng.int(0, m.body.length - 1));
      m.notes.push('cut before its end');
    } else if (variant === 'no-final-crlf') {
      m.body = m.body.slice(0, -2);
      m.notes.push('no final CRLF');
    }
  }
  return m;
}

function trailers(rng: Rng): Model {
  const m = base(rng, 'length');
  m.head.fields = m.head.fields.filter((f) => !/^content-length:/i.test(f));
  m.head.fields.push(field(rng, 'Transfer-Encoding', 'chunked'));
  if (rng.chance(0.3)) m.head.fields.push('Trailer: X-Checksum');
  const list: string[] = [];
  for (let i = rng.int(1, 3); i > 0; i--) list.push(rng.chance(0.6) ? rng.pick(V.GOOD_TRAILERS) : rng.pick(V.ODD_TRAILERS));
  m.body = chunked(rng, bodyText(rng), { trailers: list, notes: m.notes });
  m.notes.push(`trailers ${JSON.stringify(list).slice(0, 80)}`);
  return m;
}

function connection(rng: Rng): Model {
  const m = base(rng, rng.weighted([[70, 'length'], [22, 'chunked'], [8, 'close']]));
  m.head.fields = m.head.fields.filter((f) => !/^connection:/i.test(f));
  if (rng.chance(0.4)) m.head.start = m.head.start.replace('HTTP/1.1', 'HTTP/1.0');
  for (let i = rng.weighted([[20, 0], [60, 1], [20, 2]]); i > 0; i--) {
    const v = rng.weighted(V.CONNECTION_VALUES);
    insert(rng, m.head, field(rng, rng.chance(0.1) ? 'Proxy-Connection' : 'Connection', v));
    m.notes.push(`Connection ${JSON.stringify(v)}`);
  }
  for (let i = rng.weighted([[40, 0], [50, 1], [10, 2]]); i > 0; i--) {
    const v = rng.weighted(V.KEEP_ALIVE_VALUES);
    insert(rng, m.head, field(rng, 'Keep-Alive', v));
    m.notes.push(`Keep-Alive ${JSON.stringify(v)}`);
  }
  m.notes.push(m.head.start.slice(0, 8));
  return m;
}

function interim(rng: Rng): Model {
  const m = base(rng);
  for (let i = rng.weighted([[60, 1], [30, 2], [10, 3]]); i > 0; i--) {
    const code = rng.weighted([[20, 100], [10, 102], [35, 103], [5, 150], [5, 199], [10, 101]]);
    const fields: string[] = [];
    if (code === 103) fields.push('Link: </a.css>; rel=preload; as=style');
    if (code === 101) fields.push(...rng.pick([[], ['Upgrade: websocket', 'Connection: Upgrade'], ['Connection: upgrade']]));
    if (rng.chance(0.3)) fields.push(`X-Interim: ${i}`);
    if (rng.chance(0.1)) fields.push(rng.pick(['Content-Length: 5', 'Transfer-Encoding: chunked', 'Connection: close', 'Content-Length: 0']));
    const version = rng.chance(0.9) ? 'HTTP/1.1' : 'HTTP/1.0';
    m.interim.push({ start: `${version} ${code} ${REASON[code] ?? 'Info'}`, fields });
    m.notes.push(`${code}${fields.length > 0 ? ` ${JSON.stringify(fields).slice(0, 40)}` : ''}`);
  }
  return m;
}

function bodiless(rng: Rng): Model {
  const variant = rng.pick(['head', 'head', '204', '304', '205', '304-chunked', '204-chunked']);
  const m = base(rng, 'length');
  const data = bodyText(rng) || 'body';
  m.head.fields = m.head.fields.filter((f) => !/^content-length:/i.test(f));
  const send = rng.chance(0.5);
  if (variant === 'head') {
    m.method = 'HEAD';
    if (rng.chance(0.6)) {
      m.head.fields.push(field(rng, 'Content-Length', String(data.length)));
      m.body = send ? data : '';
    } else {
      m.head.fields.push(field(rng, 'Transfer-Encoding', 'chunked'));
      m.body = send ? chunked(rng, data, { notes: m.notes }) : '';
    }
  } else {
    m.method = rng.chance(0.9) ? 'GET' : 'POST';
    const code = variant.slice(0, 3);
    m.head.start = `${m.head.start.slice(0, 8)} ${code} ${REASON[code]}`;
    if (variant.endsWith('chunked')) {
      m.head.fields.push('Transfer-Encoding: chunked');
      m.body = send ? chunked(rng, data, { notes: m.notes }) : '';
    } else if (rng.chance(0.7)) {
      const len = rng.chance(0.2) ? 0 : data.length;
      m.head.fields.push(`Content-Length: ${len}`);
      m.body = send ? data.slice(0, len || data.length) : '';
    } else {
      m.body = send ? data : '';
    }
  }
  m.notes.push(`${variant}${send ? ' with a body-looking payload' : ''}`);
  return m;
}

function closeDelimited(rng: Rng): Model {
  const m = base(rng, 'close');
  if (rng.chance(0.3)) insert(rng, m.head, field(rng, 'Connection', rng.pick(['keep-alive', 'close', 'Keep-Alive'])));
  m.notes.push(`until the close (${m.end})`);
  return m;
}

function afterEnd(rng: Rng): Model {
  const m = base(rng, rng.chance(0.7) ? 'length' : 'chunked');
  if (rng.chance(0.8)) m.trailing = rng.weighted(V.TRAILING);
  else {
    const b = Buffer.alloc(rng.int(1, 50));
    for (let i = 0; i < b.length; i++) b[i] = rng.int(0, 255);
    m.trailing = b.toString('latin1');
  }
  m.notes.push(`then ${JSON.stringify(m.trailing.slice(0, 30))}`);
  return m;
}

/** Lines and sections just under, at and over the limits (maxHeaderSize, the chunk-line limit). */
function limits(rng: Rng): Model {
  const m = base(rng, rng.chance(0.6) ? 'length' : 'chunked');
  const near = (limit: number): number => limit + rng.weighted([[70, rng.int(-24, 24)], [15, rng.int(-2000, -25)], [15, rng.int(25, 2000)]]);
  const variant = rng.pick(['long-value', 'long-reason', 'many-fields', 'long-chunk-ext', 'long-trailers', 'zeros-length']);
  // The head's size as waygate counts it: the bytes before its blank line.
  const headSize = (): number => headText(m.head).length - 4;
  if (variant === 'long-value') {
    m.head.fields.push('X-Long: ');
    const want = near(maxHeaderSize);
    m.head.fields[m.head.fields.length - 1] += 'v'.repeat(Math.max(0, want - headSize()));
  } else if (variant === 'long-reason') {
    m.head.start += ' ';
    m.head.start += 'r'.repeat(Math.max(0, near(maxHeaderSize) - headSize()));
  } else if (variant === 'many-fields') {
    const want = near(maxHeaderSize);
    for (let i = 0; headSize() < want - 40; i++) m.head.fields.push(`X-F${i}: ${'f'.repeat(rng.int(1, 30))}`);
    m.head.fields.push(`X-Pad: ${'p'.repeat(Math.max(0, want - headSize() - 9))}`);
  } else if (variant === 'long-chunk-ext') {
    m.head.fields = m.head.fields.filter((f) => !/^(content-length|transfer-encoding):/i.test(f));
    m.head.fields.push('Transfer-Encoding: chunked');
    const line = near(rng.chance(0.5) ? 4096 : maxHeaderSize);
    m.body = `5;a=${'e'.repeat(Math.max(0, line - 6))}\r\nhello\r\n0\r\n\r\n`;
  } else if (variant === 'long-trailers') {
    m.head.fields = m.head.fields.filter((f) => !/^(content-length|transfer-encoding):/i.test(f));
    m.head.fields.push('Transfer-Encoding: chunked');
    const want = near(maxHeaderSize);
    m.body = `3\r\nabc\r\n0\r\nX-Big: ${'t'.repeat(Math.max(0, want - 9))}\r\n\r\n`;
  } else {
    m.head.fields = m.head.fields.filter((f) => !/^(content-length|transfer-encoding):/i.test(f));
    m.head.fields.push(`Content-Length: ${'0'.repeat(rng.pick([100, 5000]))}${m.body.length}`);
  }
  m.notes.push(variant);
  return m;
}

const BUILDERS: Record<Exclude<Category, 'random'>, (rng: Rng) => Model> = {
  'status-line': statusLine,
  headers,
  'content-length': contentLength,
  'transfer-encoding': transferEncoding,
  'chunked-body': chunkedBody,
  trailers,
  connection,
  interim,
  bodiless,
  'close-delimited': closeDelimited,
  'after-end': afterEnd,
  limits,
};

/** Case `index` of run `seed`; `category` forces one (else it is drawn too). */
export function generate(seed: number, index: number, category?: Category): FuzzCase {
  const rng = new Rng(caseSeed(seed, index));
  const cat = category ?? rng.weighted(CATEGORIES.map((c) => [c === 'random' ? 16 : c === 'limits' ? 3 : 8, c] as const));
  let text: string;
  let m: Model;
  if (cat === 'random') {
    const names = Object.keys(BUILDERS) as (keyof typeof BUILDERS)[];
    const from = rng.pick(names.filter((n) => n !== 'limits'));
    m = BUILDERS[from](rng);
    text = modelText(m);
    const notes = [`from ${from}`];
    for (let i = rng.int(1, 4); i > 0; i--) {
      const r = mutateOnce(rng, text);
      text = r.text;
      notes.push(r.note);
    }
    m.notes.push(...notes);
  } else {
    m = BUILDERS[cat](rng);
    text = modelText(m);
  }
  const bytes = Buffer.from(text, 'latin1');
  const { splits, gaps } = schedule(rng, bytes);
  const end = m.end ?? (rng.chance(0.5) ? 'keep' : 'close');
  const pauses = rng.chance(0.3) ? [...new Set(Array.from({ length: rng.int(1, 3) }, () => rng.int(-1, 5)))].sort((a, b) => a - b) : undefined;
  return { category: cat, label: m.notes.join('; '), method: m.method, bytes, splits, gaps, end, pauses, seed, index };
}

// The allow-list: where waygate's builtin client is deliberately stricter than llhttp. Each entry
// is a predicate over the case (its bytes, read by analyze.ts), never over the outcome, with its
// reason and the RFC section. An entry of kind `reject` excuses waygate refusing a response that
// llhttp accepts or is still reading; one of kind `reuse` excuses waygate closing a connection
// llhttp would use again. Nothing excuses waygate accepting what llhttp refuses, or reading
// different body bytes.
import { maxHeaderSize } from 'node:http';
import { analyze, fieldValues } from './analyze.ts';
import type { CaseView } from './analyze.ts';
import type { FuzzCase } from './case.ts';

/** One deliberate difference. */
export interface Allowance {
  readonly name: string;
  /** Why waygate does it, in one line. */
  readonly reason: string;
  readonly rfc: string;
  readonly kind: 'reject' | 'reuse';
  /** Whether `c` is a case this entry covers. */
  applies(c: FuzzCase): boolean;
}

/** waygate's longest chunk line, CRLF included (parse.ts). */
const MAX_CHUNK_LINE = 4096;

const views = new WeakMap<FuzzCase, CaseView>();
/** The case read once, shared by every predicate. */
function view(c: FuzzCase): CaseView {
  let v = views.get(c);
  if (v === undefined) views.set(c, (v = analyze(c)));
  return v;
}

const hugeDecimal = (s: string): boolean => /^\s*\d+\s*$/.test(s) && BigInt(s.trim()) > BigInt(Number.MAX_SAFE_INTEGER);
const hugeHex = (line: string): boolean => {
  const m = /^[0-9a-fA-F]+/.exec(line);
  return m !== null && BigInt(`0x${m[0]}`) > BigInt(Number.MAX_SAFE_INTEGER);
};

/** The list. */
export const ALLOW_LIST: readonly Allowance[] = [
  {
    name: 'unasked-101',
    reason: 'waygate never sends Upgrade on a forwarded request (WebSockets have their own path), so a 101 is a protocol error; llhttp hands it over as a response',
    rfc: 'RFC 9110 §15.2.2, §7.8',
    kind: 'reject',
    applies: (c) => view(c).heads.some((h) => h.status === 101),
  },
  {
    name: 'transfer-coding',
    reason: 'only one Transfer-Encoding field of exactly "chunked" is read: another coding would reach the client de-chunked but still encoded (defect 4 of issue 12), and llhttp reads "chunked<HTAB>" or "chunked," to the close, i.e. another way',
    rfc: 'RFC 9112 §6.1, §7',
    kind: 'reject',
    applies: (c) => view(c).heads.some((h) => {
      const te = fieldValues(h, 'transfer-encoding');
      return te.length > 1 || (te.length === 1 && !/^[ \t]*chunked *$/i.test(te[0]));
    }),
  },
  {
    name: 'head-size',
    reason: `a head or trailer section over ${maxHeaderSize} bytes on the wire is refused; Node counts only the bytes of names, values and reason (node_http_parser.cc TrackHeader), so it lets a larger one through`,
    rfc: 'RFC 9112 §2.3 (a recipient may limit the length of what it reads)',
    kind: 'reject',
    applies: (c) => view(c).heads.some((h) => h.size > maxHeaderSize) || view(c).trailerSize > maxHeaderSize,
  },
  {
    name: 'chunk-line-size',
    reason: `a chunk line (size and extensions) over ${MAX_CHUNK_LINE} bytes is refused; Node allows 16 KiB of extensions`,
    rfc: 'RFC 9112 §7.1.1 (a recipient ought to limit the length of chunk extensions)',
    kind: 'reject',
    applies: (c) => view(c).chunkLines.some((l) => l.length + 2 > MAX_CHUNK_LINE),
  },
  {
    name: 'length-over-2^53',
    reason: 'a Content-Length or chunk size above 2^53 - 1 is not exact in a JS number: refused rather than rounded (llhttp counts to 2^64 - 1)',
    rfc: 'RFC 9110 §8.6 (anticipate large numerals and prevent overflow)',
    kind: 'reject',
    applies: (c) => view(c).heads.some((h) => fieldValues(h, 'content-length').some(hugeDecimal)) || view(c).chunkLines.some(hugeHex),
  },
  {
    name: 'status-below-100',
    reason: 'a status code below 100 is not an HTTP status; llhttp accepts any three digits',
    rfc: 'RFC 9110 §15 (values outside 100..599 are invalid)',
    kind: 'reject',
    applies: (c) => view(c).heads.some((h) => /^\d{3}$/.test(h.code) && h.status < 100),
  },
  {
    name: 'http-version',
    reason: 'an HTTP/1.1 client reads HTTP/1.0 and HTTP/1.1 responses; llhttp also takes HTTP/0.9 and HTTP/2.0 status lines',
    rfc: 'RFC 9112 §2.3, §4',
    kind: 'reject',
    applies: (c) => view(c).heads.some((h) => /^HTTP\/\d\.\d$/.test(h.version) && h.version !== 'HTTP/1.0' && h.version !== 'HTTP/1.1'),
  },
  {
    name: 'reason-controls',
    reason: 'a reason phrase with control bytes (NUL, ESC, DEL…) is refused; llhttp accepts any byte but CR and LF there',
    rfc: 'RFC 9112 §4 (reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ))',
    kind: 'reject',
    applies: (c) => view(c).heads.some((h) => /[\x00-\x08\x0a-\x1f\x7f]/.test(h.reason)),
  },
  {
    name: 'empty-line-before-status',
    reason: 'a response (interim or final) must begin with its status line; llhttp skips empty lines first, a leniency RFC 9112 asks only of servers reading requests',
    rfc: 'RFC 9112 §2.2',
    kind: 'reject',
    applies: (c) => view(c).heads.some((h) => h.start === '' || h.start.startsWith('\n') || h.start.startsWith('\r')),
  },
  {
    name: 'bytes-after-response',
    reason: 'a connection that sent bytes nobody asked for is never reused; Node drops what follows a response in the same read (a partial next message, empty lines) and reuses the socket',
    rfc: 'RFC 9112 §9.3 (responses arrive only in answer to requests, in order)',
    kind: 'reuse',
    applies: (c) => view(c).trailing > 0,
  },
  {
    name: 'close-on-http/1.0',
    reason: 'a `close` connection option ends the connection whatever else the field lists; llhttp lets an HTTP/1.0 `keep-alive` win over it',
    rfc: 'RFC 9112 §9.3 (close: the connection will not persist)',
    kind: 'reuse',
    applies: (c) => {
      const heads = view(c).heads;
      const final = heads[heads.length - 1];
      if (final === undefined || final.version !== 'HTTP/1.0') return false;
      const tokens = [...fieldValues(final, 'connection'), ...fieldValues(final, 'proxy-connection')].flatMap((v) => v.split(',').map((t) => t.trim().toLowerCase()));
      return tokens.includes('close') && tokens.includes('keep-alive');
    },
  },
  {
    name: 'keep-alive-hint',
    reason: 'waygate reads Keep-Alive: timeout= wherever it is in the field and in any case (as undici does); Node only at the start, in lower case: waygate then closes a connection the upstream is about to close',
    rfc: 'RFC 9112 Appendix C.2.2 (Keep-Alive from RFC 2068 §19.7.1.1)',
    kind: 'reuse',
    applies: (c) => {
      const heads = view(c).heads;
      const final = heads[heads.length - 1];
      if (final === undefined) return false;
      const values = fieldValues(final, 'keep-alive').map((v) => v.trim());
      let ours: string | undefined;
      for (const v of values) ours ??= /(?:^|[,;\s])timeout\s*=\s*(\d+)/i.exec(v)?.[1];
      const node = /^timeout=(\d+)/.exec(values.join(', '))?.[1];
      return ours !== node;
    },
  },
];

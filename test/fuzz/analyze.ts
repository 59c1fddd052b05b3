// An independent, lenient reading of a case's bytes, for the allow-list's predicates: where the
// heads are and what they hold, how the body is framed, its chunk lines and trailer section, and
// the bytes after the end. It shares no code with waygate's parser (a predicate that borrowed it
// would excuse whatever the parser does) and never throws: what it cannot read, it leaves out.
import type { FuzzCase } from './case.ts';

/** One response head as sent. */
export interface HeadView {
  /** The status line, without its CRLF. */
  start: string;
  version: string;
  status: number;
  /** The status code as sent (three characters normally). */
  code: string;
  reason: string;
  /** Field lines as sent, without their CRLF. */
  lines: string[];
  /** Bytes before the blank line (what waygate's head limit counts). */
  size: number;
}

/** What the analyzer read. */
export interface CaseView {
  heads: HeadView[];
  /** The body's chunk lines (size and extensions, without CRLF), when chunked. */
  chunkLines: string[];
  /** The trailer section's size in bytes (with every CRLF), when chunked and complete. */
  trailerSize: number;
  /** Bytes after the end of the response, when its end could be found. */
  trailing: number;
}

const latin1 = (b: Buffer, from: number, to?: number): string => b.toString('latin1', from, to);

/** The values (after the colon, untrimmed) of the fields of a head named `name`. */
export function fieldValues(h: HeadView, name: string): string[] {
  const out: string[] = [];
  for (const line of h.lines) {
    const colon = line.indexOf(':');
    if (colon > 0 && line.slice(0, colon).toLowerCase() === name) out.push(line.slice(colon + 1));
  }
  return out;
}

function readHead(b: Buffer, from: number): { head: HeadView; next: number } | undefined {
  const end = b.indexOf('\r\n\r\n', from, 'latin1');
  const text = latin1(b, from, end === -1 ? b.length : end);
  const [start, ...lines] = text.split('\r\n');
  const m = /^(\S*) (\S*)(?: (.*))?$/s.exec(start);
  const code = m?.[2] ?? '';
  const head: HeadView = { start, version: m?.[1] ?? '', code, status: /^\d{3}$/.test(code) ? Number(code) : NaN, reason: m?.[3] ?? '', lines, size: text.length };
  return { head, next: end === -1 ? -1 : end + 4 };
}

/** Reads a chunked body from `at`: its lines, trailer size and end (-1 when it does not end). */
function readChunked(b: Buffer, at: number, view: CaseView): number {
  for (let guard = 0; guard < 100_000; guard++) {
    const nl = b.indexOf('\r\n', at, 'latin1');
    if (nl === -1) {
      view.chunkLines.push(latin1(b, at));
      return -1;
    }
    const line = latin1(b, at, nl);
    view.chunkLines.push(line);
    const size = /^[0-9a-fA-F]+/.exec(line);
    if (size === null) return -1;
    const n = Number.parseInt(size[0], 16);
    at = nl + 2;
    if (n === 0) {
      const end = b.indexOf('\r\n\r\n', at - 2, 'latin1');
      if (end === -1) return -1;
      view.trailerSize = end + 4 - at;
      return end + 4;
    }
    if (!Number.isSafeInteger(n) || at + n + 2 > b.length) return -1;
    at += n + 2;
  }
  return -1;
}

/** Reads `c`. */
export function analyze(c: FuzzCase): CaseView {
  const b = c.bytes;
  const view: CaseView = { heads: [], chunkLines: [], trailerSize: 0, trailing: 0 };
  let at = 0;
  let final: HeadView | undefined;
  while (final === undefined) {
    const r = readHead(b, at);
    if (r === undefined) return view;
    view.heads.push(r.head);
    if (r.next === -1) return view;
    at = r.next;
    if (!(r.head.status >= 100 && r.head.status < 200) || r.head.status === 101) final = r.head;
  }
  const te = fieldValues(final, 'transfer-encoding');
  const cl = fieldValues(final, 'content-length');
  let end: number;
  if (c.method === 'HEAD' || final.status === 204 || final.status === 304 || final.status === 101) end = at;
  else if (te.length > 0) end = readChunked(b, at, view);
  else if (cl.length === 1 && /^\s*\d+\s*$/.test(cl[0])) end = at + Number(cl[0].trim());
  else end = -1;
  view.trailing = end === -1 || end > b.length ? 0 : b.length - end;
  return view;
}

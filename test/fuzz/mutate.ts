// Byte-level mutators, applied after the generator has built a response: they find what the
// structured generator would not think of (a CRLF turned into LF inside a chunk line, a byte of a
// field name flipped, a line repeated). Biased towards the head and the chunk lines, where the
// framing is decided.
import type { Rng } from './rng.ts';

const INTERESTING = ['\x00', '\t', '\n', '\r', ' ', ':', ';', ',', '"', '=', '\x7f', '\x80', '\xff', 'a', '0', 'F', '\x0b'];
const INSERTS = ['\r\n', '\n', '\r', ' ', '\t', ':', ';', '0', 'chunked', ', ', '\r\n\r\n', 'Content-Length: 1\r\n', 'Transfer-Encoding: chunked\r\n', '\x00'];

/** Where the mutation goes: mostly in the head or on a line boundary, sometimes anywhere. */
function position(rng: Rng, text: string): number {
  const headEnd = text.indexOf('\r\n\r\n');
  if (rng.chance(0.6) && headEnd > 0) return rng.int(0, headEnd + 3);
  if (rng.chance(0.5)) {
    // Near a line boundary anywhere (chunk-size lines, trailers).
    const lines: number[] = [];
    for (let i = text.indexOf('\n'); i !== -1 && lines.length < 200; i = text.indexOf('\n', i + 1)) lines.push(i);
    if (lines.length > 0) return Math.max(0, Math.min(text.length - 1, rng.pick(lines) + rng.int(-3, 2)));
  }
  return rng.int(0, Math.max(0, text.length - 1));
}

/** Applies one random byte-level mutation to `text` (latin1); returns the new text and what was done. */
export function mutateOnce(rng: Rng, text: string): { text: string; note: string } {
  if (text.length === 0) return { text: 'HTTP/1.1 200 OK\r\n\r\n', note: 'empty→minimal' };
  const at = position(rng, text);
  switch (rng.int(0, 6)) {
    case 0: {
      const b = rng.chance(0.7) ? rng.pick(INTERESTING) : String.fromCharCode(rng.int(0, 255));
      return { text: text.slice(0, at) + b + text.slice(at + 1), note: `byte ${at}=${JSON.stringify(b)}` };
    }
    case 1: {
      const s = rng.pick(INSERTS);
      return { text: text.slice(0, at) + s + text.slice(at), note: `insert ${JSON.stringify(s)} at ${at}` };
    }
    case 2: {
      const n = rng.int(1, 3);
      return { text: text.slice(0, at) + text.slice(at + n), note: `delete ${n} at ${at}` };
    }
    case 3: {
      // Repeat the line around `at`.
      const start = text.lastIndexOf('\n', at) + 1;
      const nl = text.indexOf('\n', at);
      const end = nl === -1 ? text.length : nl + 1;
      return { text: text.slice(0, end) + text.slice(start, end) + text.slice(end), note: `repeat line at ${start}` };
    }
    case 4: {
      // One CRLF becomes a bare LF or a bare CR.
      const crlf = text.indexOf('\r\n', at);
      if (crlf === -1) return mutateOnce(rng, text);
      const b = rng.pick(['\n', '\r', '\r\r\n', '\n\r']);
      return { text: text.slice(0, crlf) + b + text.slice(crlf + 2), note: `CRLF at ${crlf}→${JSON.stringify(b)}` };
    }
    case 5: {
      // Flip the case of a letter (field names and codings are case-insensitive, values not).
      const c = text[at];
      const flipped = c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase();
      return { text: text.slice(0, at) + flipped + text.slice(at + 1), note: `case ${at}` };
    }
    default: {
      const n = rng.int(1, Math.max(1, text.length - at));
      return { text: text.slice(0, at) + text.slice(at + n), note: `cut ${n} at ${at}` };
    }
  }
}

// One fuzz case: the bytes an upstream sends for one request, how it cuts them into writes, and
// what it does with the connection afterwards; and its JSON form, written for every disagreement
// so that `npm run fuzz -- --case FILE` replays it exactly.
import { readFileSync } from 'node:fs';

/** What the upstream does with the connection once every byte is written. */
export type EndMode = 'keep' | 'close';

/** One response stream and the way it is delivered. */
export interface FuzzCase {
  /** The generator's category (see generate.ts). */
  readonly category: string;
  /** What the generator and mutators chose, for a human reading a report. */
  readonly label: string;
  /** The request method both clients send (HEAD changes the framing). */
  readonly method: string;
  /** Everything the upstream writes: interim responses, the response, and any bytes after it. */
  readonly bytes: Buffer;
  /** Where one write ends and the next begins: ascending offsets in (0, bytes.length). */
  readonly splits: readonly number[];
  /** Between writes: 0 for a turn of the event loop, else a delay in ms (one per split). */
  readonly gaps: readonly number[];
  readonly end: EndMode;
  /**
   * Body chunks (by order of arrival, from 0; -1 for the response head) on which waygate's handler
   * pauses, resuming a turn of the event loop later: the bytes held back meanwhile take their own
   * path through the parser.
   */
  readonly pauses?: readonly number[];
  /** Where it came from: `seed` and `index` regenerate it. */
  readonly seed?: number;
  readonly index?: number;
}

/** The writes of a case, in order. */
export function segments(c: FuzzCase): Buffer[] {
  const out: Buffer[] = [];
  let from = 0;
  for (const at of c.splits) {
    out.push(c.bytes.subarray(from, at));
    from = at;
  }
  out.push(c.bytes.subarray(from));
  return out.filter((s) => s.length > 0);
}

/** The JSON form: bytes as base64 (exact) and as latin1 text (to read). */
export function toJson(c: FuzzCase): Record<string, unknown> {
  return {
    category: c.category,
    label: c.label,
    method: c.method,
    end: c.end,
    splits: c.splits,
    gaps: c.gaps,
    pauses: c.pauses,
    seed: c.seed,
    index: c.index,
    text: c.bytes.toString('latin1'),
    base64: c.bytes.toString('base64'),
  };
}

/** Reads a case back from its JSON form (`text` is used when `base64` is absent, for hand edits). */
export function fromJson(j: Record<string, unknown>): FuzzCase {
  const bytes = typeof j.base64 === 'string' ? Buffer.from(j.base64, 'base64') : Buffer.from(String(j.text), 'latin1');
  const splits = Array.isArray(j.splits) ? j.splits.map(Number).filter((n) => n > 0 && n < bytes.length) : [];
  const gaps = Array.isArray(j.gaps) ? j.gaps.map(Number) : [];
  return {
    category: String(j.category ?? 'file'),
    label: String(j.label ?? ''),
    method: String(j.method ?? 'GET'),
    end: j.end === 'close' ? 'close' : 'keep',
    splits,
    gaps: splits.map((_, i) => gaps[i] ?? 0),
    pauses: Array.isArray(j.pauses) ? j.pauses.map(Number) : undefined,
    seed: typeof j.seed === 'number' ? j.seed : undefined,
    index: typeof j.index === 'number' ? j.index : undefined,
    bytes,
  };
}

/** Reads a case file: one case, or a report's `{ disagreements: [{ case }] }`, or an array of cases. */
export function readCases(file: string): FuzzCase[] {
  const j = JSON.parse(readFileSync(file, 'utf8')) as unknown;
  const list = Array.isArray(j) ? j : (j as { disagreements?: unknown[] }).disagreements ?? [j];
  return list.map((item) => {
    const o = item as Record<string, unknown>;
    return fromJson((o.case ?? o) as Record<string, unknown>);
  });
}

/** A case written by hand: the whole response in one write unless `splits` says otherwise. */
export function handCase(text: string, o: { method?: string; end?: EndMode; splits?: number[]; gaps?: number[]; pauses?: number[]; category?: string; label?: string } = {}): FuzzCase {
  const splits = o.splits ?? [];
  return {
    category: o.category ?? 'hand',
    label: o.label ?? 'hand-written',
    method: o.method ?? 'GET',
    end: o.end ?? 'keep',
    splits,
    gaps: splits.map((_, i) => o.gaps?.[i] ?? 0),
    pauses: o.pauses,
    bytes: Buffer.from(text, 'latin1'),
  };
}

// How the upstream cuts a case's bytes into writes: all at once, a few random cuts, many, one
// byte at a time, or cuts right at the line boundaries where a parser changes state (the end of a
// status line, a field, the head, a chunk-size line). Between writes, a turn of the event loop or
// a delay of a few ms.
import type { Rng } from './rng.ts';

/** The cuts of `bytes` and the pause after each. */
export function schedule(rng: Rng, bytes: Buffer): { splits: number[]; gaps: number[] } {
  const n = bytes.length;
  const cuts = new Set<number>();
  const mode = rng.weighted([[25, 'whole'], [30, 'few'], [15, 'many'], [n <= 400 ? 10 : 0, 'bytes'], [20, 'lines']] as const);
  if (mode === 'few') for (let i = rng.int(1, 4); i > 0; i--) cuts.add(rng.int(1, n - 1));
  else if (mode === 'many') for (let i = rng.int(5, 40); i > 0; i--) cuts.add(rng.int(1, n - 1));
  else if (mode === 'bytes') for (let i = 1; i < n; i++) cuts.add(i);
  else if (mode === 'lines') {
    const marks: number[] = [];
    for (let i = 0; i < n && marks.length < 400; i++) if (bytes[i] === 10 || bytes[i] === 13) marks.push(i);
    for (let i = rng.int(1, 6); i > 0 && marks.length > 0; i--) cuts.add(rng.pick(marks) + rng.int(0, 1));
  }
  const splits = [...cuts].filter((c) => c > 0 && c < n).sort((a, b) => a - b);
  // Byte-at-a-time writes take a turn each; delays are kept for cases with few writes.
  const delays = splits.length <= 12;
  const gaps = splits.map(() => (delays && rng.chance(0.3) ? rng.int(1, 3) : 0));
  return { splits, gaps };
}

// Duration and size literals used throughout the config files (SPEC §3): "250ms", "5s", "1m",
// "1h" and "512b", "64kb", "10mb", "1gb". Go-style compounds ("1m30s") are accepted because
// users copy them from Traefik and Caddy configs.
import { z } from 'zod';

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

// One "<number><unit>" term; "ms" is listed before "m" so the alternation never splits it.
const DURATION_TERM = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
const SIZE_RE = /^(\d+(?:\.\d+)?)(b|kb|mb|gb)$/i;

/** Returns the duration in whole milliseconds, or `undefined` when `s` is not a duration literal. */
export function parseDuration(s: string): number | undefined {
  if (s.length === 0) return undefined;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    DURATION_TERM.lastIndex = pos;
    const m = DURATION_TERM.exec(s);
    if (!m) return undefined;
    total += Number(m[1]) * DURATION_UNITS[m[2]];
    pos = DURATION_TERM.lastIndex;
  }
  return Number.isFinite(total) ? Math.round(total) : undefined;
}

/** Returns the size in whole bytes (powers of 1024), or `undefined` when `s` is not a size literal. */
export function parseSize(s: string): number | undefined {
  const m = SIZE_RE.exec(s);
  if (!m) return undefined;
  const bytes = Number(m[1]) * SIZE_UNITS[m[2].toLowerCase()];
  return Number.isFinite(bytes) ? Math.round(bytes) : undefined;
}

/** Returns a zod schema taking a duration literal and producing milliseconds. */
export function duration() {
  return z.string({ error: (iss) => `expected a duration such as 250ms, 5s, 1m or 1h, got ${describeValue(iss.input)}` }).transform((s, ctx) => {
    const ms = parseDuration(s);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a duration such as 250ms, 5s, 1m or 1h, got ${JSON.stringify(s)}` });
      return z.NEVER;
    }
    return ms;
  });
}

/** Returns a zod schema taking a size literal and producing bytes. */
export function size() {
  return z.string({ error: (iss) => `expected a size such as 512b, 64kb, 10mb or 1gb, got ${describeValue(iss.input)}` }).transform((s, ctx) => {
    const bytes = parseSize(s);
    if (bytes === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a size such as 512b, 64kb, 10mb or 1gb, got ${JSON.stringify(s)}` });
      return z.NEVER;
    }
    return bytes;
  });
}

/** Returns a short rendering of a wrong-typed input for error messages ("5", "a list", "nothing"). */
export function describeValue(input: unknown): string {
  // YAML `key:` with no value is null: to the user both are "nothing".
  if (input === undefined || input === null) return 'nothing';
  if (Array.isArray(input)) return 'a list';
  if (typeof input === 'object') return 'a map';
  return JSON.stringify(input);
}

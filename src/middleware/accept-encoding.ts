// Accept-Encoding negotiation (RFC 9110 §12.5.3) for the compress middleware: which of the
// configured codings a response goes out in, or none. Pure: no I/O, nothing kept per request.

/** The content codings waygate can produce, in its default order of preference. */
export const CODINGS = ['zstd', 'br', 'gzip'] as const;

/** One content coding waygate can produce. */
export type Coding = (typeof CODINGS)[number];

/** What a client's accept-encoding says: a weight per named coding, and the `*` weight if given. */
export interface Accepted {
  /** Lower-case coding name → weight in [0, 1]; `x-gzip` is recorded as `gzip`. */
  readonly weights: ReadonlyMap<string, number>;
  /** The weight of `*` (every coding not named, identity included); undefined when absent. */
  readonly star: number | undefined;
}

// RFC 9110 §5.6.2 token, and §12.4.2 qvalue: at most three decimals, never above 1.
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
const QVALUE_RE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/;

// RFC 9110 §8.4.1.3: a recipient SHOULD consider "x-gzip" to be equivalent to "gzip".
const ALIASES: Record<string, string> = { 'x-gzip': 'gzip' };

/**
 * Parses an accept-encoding value. Malformed members (a name that is not a token, a weight that
 * is not a qvalue, two weights) are ignored, not the whole field: one client's odd member costs
 * only that member. Parameters other than `q` are not defined for this field and are ignored.
 * A name given twice keeps its first weight.
 */
export function parseAcceptEncoding(value: string): Accepted {
  const weights = new Map<string, number>();
  let star: number | undefined;
  for (const member of value.split(',')) {
    const parts = member.split(';');
    const raw = parts[0].trim().toLowerCase();
    // Empty list members are allowed (RFC 9110 §5.6.1) and mean nothing.
    if (raw === '' || !TOKEN_RE.test(raw)) continue;
    const weight = weightOf(parts);
    if (weight === undefined) continue;
    const name = ALIASES[raw] ?? raw;
    if (name === '*') star ??= weight;
    else if (!weights.has(name)) weights.set(name, weight);
  }
  return { weights, star };
}

/** The member's weight: 1 without a `q`, undefined when malformed. */
function weightOf(parts: readonly string[]): number | undefined {
  let weight: number | undefined;
  for (let i = 1; i < parts.length; i++) {
    const eq = parts[i].indexOf('=');
    const key = (eq < 0 ? parts[i] : parts[i].slice(0, eq)).trim().toLowerCase();
    if (key !== 'q') continue;
    const q = eq < 0 ? '' : parts[i].slice(eq + 1).trim();
    // The parameter name is case-insensitive (RFC 9110 §12.4.2); a second weight is ambiguous.
    if (weight !== undefined || !QVALUE_RE.test(q)) return undefined;
    weight = Number(q);
  }
  return weight ?? 1;
}

/**
 * The coding to send a response in, or undefined for none (identity). No accept-encoding, or an
 * empty one, means identity: RFC 9110 would allow any coding without the field, but a client that
 * can decode says so (curl without --compressed sends nothing and would print binary). The highest
 * weight above 0 wins; ties go to the earlier of `preference`. Identity competes only with its
 * own weight (`identity;q=…`, else `*`'s): unnamed, it is acceptable but preferred by no one, so
 * it loses to any coding with a weight. When nothing is acceptable, not even identity, identity
 * is still sent: the response stays as the upstream made it, rather than becoming a 415.
 */
export function negotiate(value: string | undefined, preference: readonly Coding[]): Coding | undefined {
  if (value === undefined) return undefined;
  const accepted = parseAcceptEncoding(value);
  let best: Coding | undefined;
  let bestWeight = 0;
  for (const coding of preference) {
    const w = accepted.weights.get(coding) ?? accepted.star ?? 0;
    if (w > bestWeight) {
      best = coding;
      bestWeight = w;
    }
  }
  if (best === undefined) return undefined;
  const identity = accepted.weights.get('identity') ?? accepted.star;
  return identity !== undefined && identity > bestWeight ? undefined : best;
}

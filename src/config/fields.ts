// Field schemas shared by the routes file and waygate.yaml: strict maps, names, HTTP tokens,
// header maps and scalar text. Messages are written for the person editing the YAML.
import { z } from 'zod';
import { describeValue } from './units.ts';

// zod reports unknown keys as one issue per map without the keys it expected; the loader needs
// them for "did you mean", so the message carries them after this marker.
const KNOWN_KEYS_MARKER = 'expected one of: ';

/** Returns a zod object schema that rejects unknown keys and names the keys it accepts. */
export function strict<S extends z.ZodRawShape>(shape: S) {
  const known = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (iss) => (iss.code === 'unrecognized_keys' ? `unknown key; ${KNOWN_KEYS_MARKER}${known}` : undefined),
  });
}

/** Returns the keys a strict map accepts, recovered from its unknown-key message; empty when absent. */
export function knownKeysFromMessage(message: string): string[] {
  const at = message.indexOf(KNOWN_KEYS_MARKER);
  if (at < 0) return [];
  return message.slice(at + KNOWN_KEYS_MARKER.length).split(', ').filter((k) => k.length > 0);
}

/** Pool and route names: also used as metric labels, so kept to a safe alphabet. */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]*$/;

/** Returns a schema for a pool or route name. */
export function name() {
  return z.string().regex(NAME_RE, {
    error: (iss) =>
      `invalid name ${describeValue(iss.input)}: use letters, digits and "_.:-", starting with a letter or digit`,
  });
}

// RFC 9110 §5.6.2 token: header names, method names and (RFC 6265 §4.1.1) cookie names.
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Returns true when `s` is an RFC 9110 token. */
export function isToken(s: string): boolean {
  return TOKEN_RE.test(s);
}

/** Returns a schema for a header name, lower-cased (HTTP/2 requires lower case on the wire anyway). */
export function headerName() {
  return z
    .string()
    .refine(isToken, { error: (iss) => `invalid header name ${describeValue(iss.input)}` })
    .transform((s) => s.toLowerCase());
}

/** Returns a schema for a cookie name (an RFC 6265 token). */
export function cookieName() {
  return z.string().refine(isToken, { error: (iss) => `invalid cookie name ${describeValue(iss.input)}` });
}

/** Returns a schema for an HTTP method token, upper-cased. */
export function method() {
  return z
    .string()
    .refine(isToken, { error: (iss) => `invalid method ${describeValue(iss.input)}` })
    .transform((s) => s.toUpperCase());
}

/**
 * Returns a schema for a text value that also takes YAML numbers and booleans as their text:
 * `query: { v: 2 }` means "2", which is what the user wrote.
 */
export function text() {
  return z
    .union([z.string(), z.number(), z.boolean()], { error: (iss) => `expected a text value, got ${describeValue(iss.input)}` })
    .transform((v) => String(v));
}

const FIELD_VALUE_CTL = /[\x00-\x08\x0a-\x1f\x7f]/;
const BEYOND_LATIN1 = /[^\x00-\xff]/;

/** Returns a schema for a map of header name → text value, names lower-cased. */
export function headerMap() {
  return z.record(z.string(), text()).superRefine((map, ctx) => {
    const seen = new Map<string, string>();
    for (const key of Object.keys(map)) {
      if (!isToken(key)) {
        ctx.addIssue({ code: 'custom', path: [key], message: `invalid header name "${key}"`, params: { at: 'key' } });
        continue;
      }
      // A CR or LF would end the field and start another on the wire (header injection); no
      // control byte but HTAB belongs in a field value (RFC 9110 §5.5).
      if (FIELD_VALUE_CTL.test(map[key])) {
        ctx.addIssue({ code: 'custom', path: [key], message: `invalid value for header "${key}": control characters such as CR, LF and NUL are not allowed` });
      } else if (BEYOND_LATIN1.test(map[key])) {
        // Field values are bytes; Node and waygate send text as latin1, one byte per character.
        ctx.addIssue({ code: 'custom', path: [key], message: `invalid value for header "${key}": only Latin-1 characters can be sent in a header (percent-encode others)` });
      }
      const lower = key.toLowerCase();
      const first = seen.get(lower);
      if (first !== undefined) {
        ctx.addIssue({ code: 'custom', path: [key], message: `header "${key}" is also given as "${first}"`, params: { at: 'key' } });
      }
      seen.set(lower, key);
    }
  }).transform((map) => Object.fromEntries(Object.entries(map).map(([k, v]) => [k.toLowerCase(), v])));
}

/** Returns a schema for an integer within [min, max]. */
export function int(min: number, max = Number.MAX_SAFE_INTEGER) {
  return z.number().int().min(min).max(max);
}

/** Returns a schema for an HTTP status code (100-599). */
export function status() {
  return int(100, 599);
}

/** Returns a schema for a non-empty string. */
export function nonEmpty() {
  return z.string().min(1);
}

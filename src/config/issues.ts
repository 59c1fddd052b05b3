// Turns zod issues into located ConfigErrors with messages for the person editing the YAML,
// and runs a schema over a YamlSource (with the `${ENV}` number/boolean coercion).
import type { z } from 'zod';
import type { ConfigError } from './config-error.ts';
import { formatKeyPath } from './config-error.ts';
import { knownKeysFromMessage } from './fields.ts';
import { suggest } from './suggest.ts';
import { describeValue } from './units.ts';
import { locate, valueAt } from './yaml-source.ts';
import type { KeyPath, YamlSource } from './yaml-source.ts';

type Issue = z.core.$ZodIssue;

/** Returns the schema's output for the file's data, or the located errors (substitution errors included). */
export function validate<S extends z.ZodType>(schema: S, src: YamlSource, data: unknown): { ok: true; value: z.output<S> } | { ok: false; errors: ConfigError[] } {
  const coerced = new Set<string>();
  for (;;) {
    const r = schema.safeParse(data);
    if (r.success && src.errors.length === 0) return { ok: true, value: r.data };
    const issues = r.success ? [] : r.error.issues;
    // `weight: "${W}"` is a string after substitution; where the schema rejects it, retry with
    // the number or boolean it spells. Only substituted values, and each at most once.
    let retry = false;
    for (const path of issues.flatMap((i) => leafPaths(i, []))) {
      const key = formatKeyPath(path);
      if (!src.substituted.has(key) || coerced.has(key)) continue;
      coerced.add(key);
      retry = coerceAt(data, path) || retry;
    }
    if (retry) continue;
    // Errors already reported for a value (its substitution failed) are not repeated.
    const reported = new Set(src.errors.map((e) => e.path));
    const errors = issues.flatMap((i) => toErrors(i, src, data)).filter((e) => !reported.has(e.path));
    return { ok: false, errors: [...src.errors, ...errors] };
  }
}

// Union issues hide the real complaint (`targets[1].weight`) inside their branches.
function leafPaths(issue: Issue, prefix: KeyPath): KeyPath[] {
  const path = [...prefix, ...issue.path];
  if (issue.code !== 'invalid_union') return [path];
  return [path, ...issue.errors.flat().flatMap((i) => leafPaths(i, path))];
}

function coerceAt(data: unknown, path: KeyPath): boolean {
  const parent = valueAt(data, path.slice(0, -1));
  const v = valueAt(data, path);
  if (typeof v !== 'string' || parent === null || typeof parent !== 'object') return false;
  let next: number | boolean | undefined;
  if (/^-?\d+(\.\d+)?$/.test(v.trim())) next = Number(v);
  else if (v === 'true' || v === 'false') next = v === 'true';
  if (next === undefined) return false;
  (parent as Record<PropertyKey, unknown>)[path[path.length - 1]] = next;
  return true;
}

/** Returns the located errors for one zod issue (an unknown-keys issue gives one per key). */
export function toErrors(issue: Issue, src: YamlSource, data: unknown, prefix: KeyPath = []): ConfigError[] {
  const path = [...prefix, ...issue.path];
  const at = (p: KeyPath, message: string, where: 'value' | 'key' = 'value'): ConfigError => {
    const { line, col } = locate(src, p, where);
    return { file: src.file, line, col, path: formatKeyPath(p), message };
  };
  switch (issue.code) {
    case 'unrecognized_keys': {
      const known = knownKeysFromMessage(issue.message);
      return issue.keys.map((k) => at([...path, k], `unknown key "${k}"${didYouMean(k, known)}`, 'key'));
    }
    case 'invalid_union': {
      // Keep the branches that got past the type check: they hold the real complaint.
      const relevant = issue.errors.filter((branch) => !branch.every((i) => i.path.length === 0 && i.code === 'invalid_type'));
      if (relevant.length === 1) return relevant[0].flatMap((i) => toErrors(i, src, data, path));
      const expected = issue.errors.flatMap((b) => b.filter((i) => i.code === 'invalid_type').map((i) => typeName(i.expected)));
      const custom = issue.message.startsWith('Invalid input') ? undefined : issue.message;
      return [at(path, custom ?? `expected ${[...new Set(expected)].join(' or ')}, got ${describeValue(valueAt(data, path))}`)];
    }
    case 'invalid_key':
      return [at(path, issue.issues[0]?.message ?? 'invalid key', 'key')];
    case 'invalid_type': {
      const loc = locate(src, path);
      if (!loc.found && valueAt(data, path) === undefined) {
        return [at(path, `missing required key "${String(path[path.length - 1])}"`)];
      }
      if (!issue.message.startsWith('Invalid input')) return [at(path, issue.message)];
      return [at(path, `expected ${typeName(issue.expected)}, got ${describeValue(valueAt(data, path))}`)];
    }
    case 'invalid_value': {
      const got = valueAt(data, path);
      const options = issue.values.map((v) => String(v));
      const hint = typeof got === 'string' ? didYouMean(got, options) : '';
      return [at(path, `expected one of ${options.join(', ')}, got ${describeValue(got)}${hint}`)];
    }
    case 'too_small':
    case 'too_big':
      return [at(path, boundMessage(issue))];
    case 'custom':
      return [at(path, issue.message, issue.params?.at === 'key' ? 'key' : 'value')];
    default:
      return [at(path, issue.message)];
  }
}

function boundMessage(issue: z.core.$ZodIssueTooSmall | z.core.$ZodIssueTooBig): string {
  const n = Number(issue.code === 'too_small' ? issue.minimum : issue.maximum);
  if (issue.origin === 'array') {
    if (issue.code === 'too_small') return n <= 1 ? 'must not be empty' : `needs at least ${n} items`;
    return `must have at most ${n} items`;
  }
  if (issue.origin === 'string') return issue.code === 'too_small' ? 'must not be empty' : `must be at most ${n} characters`;
  if (issue.code === 'too_small') return issue.inclusive ? `must be at least ${n}` : `must be greater than ${n}`;
  return issue.inclusive ? `must be at most ${n}` : `must be less than ${n}`;
}

function typeName(expected: string): string {
  const names: Record<string, string> = {
    number: 'a number',
    int: 'an integer',
    string: 'a string',
    boolean: 'true or false',
    object: 'a map',
    record: 'a map',
    array: 'a list',
  };
  return names[expected] ?? expected;
}

/** Returns ` (did you mean "x"?)` for the closest candidate, or "" when none is close. */
export function didYouMean(word: string, candidates: Iterable<string>): string {
  const s = suggest(word, candidates);
  return s === undefined ? '' : ` (did you mean "${s}"?)`;
}

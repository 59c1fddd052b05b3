// A parsed YAML config file that still knows where every value came from: syntax errors with
// positions, `${ENV}` substitution in string values, and key paths mapped back to line:col.
import { LineCounter, isAlias, isMap, isPair, isScalar, isSeq, parseDocument } from 'yaml';
import type { Document, Pair } from 'yaml';
import type { ConfigError } from './config-error.ts';
import { formatKeyPath } from './config-error.ts';

/** Key path segments as zod reports them. */
export type KeyPath = readonly PropertyKey[];

/** A YAML file after parsing and substitution. */
export interface YamlSource {
  file: string;
  doc: Document;
  lines: LineCounter;
  /** Plain data for validation; `undefined` for an empty file or when the YAML is broken. */
  data: unknown;
  errors: ConfigError[];
  warnings: string[];
  /** Key paths (formatted) of values that came from a `${...}` substitution. */
  substituted: Set<string>;
}

/** Returns the parsed file: data plus syntax and substitution errors, all located. */
export function parseYamlSource(text: string, file: string, env: NodeJS.ProcessEnv): YamlSource {
  const lines = new LineCounter();
  // prettyErrors off: we print our own one-line `file:line:col message`.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const src: YamlSource = { file, doc, lines, data: undefined, errors: [], warnings: [], substituted: new Set() };
  for (const err of doc.errors) {
    const { line, col } = lines.linePos(err.pos[0]);
    src.errors.push({ file, line, col, path: '', message: `YAML syntax error: ${err.message}` });
  }
  for (const w of doc.warnings) {
    const { line, col } = lines.linePos(w.pos[0]);
    src.warnings.push(`${file}:${line}:${col} ${w.message}`);
  }
  if (src.errors.length > 0) return src;
  substituteNode(src, doc.contents, [], env);
  src.data = doc.toJS();
  return src;
}

/** Returns the 1-based line and column of the node at `path` (its key when `at` is "key"); `found` is false when the path stops early, and the position is then that of the deepest node that exists. */
export function locate(src: YamlSource, path: KeyPath, at: 'value' | 'key' = 'value'): { line: number; col: number; found: boolean } {
  let node: unknown = src.doc.contents;
  let pair: Pair | undefined;
  let offset = rangeStart(node) ?? 0;
  for (const seg of path) {
    if (isAlias(node)) node = node.resolve(src.doc);
    pair = undefined;
    let next: unknown;
    if (isMap(node)) {
      pair = node.items.find((p) => isPair(p) && keyText(p.key) === String(seg));
      next = pair?.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      next = node.items[seg];
    }
    if (next === undefined && pair === undefined) return { ...src.lines.linePos(offset), found: false };
    // A key with no value (`targets:`) has a null value node: point at the key instead.
    offset = rangeStart(next) ?? rangeStart(pair?.key) ?? offset;
    node = next;
  }
  if (at === 'key' && pair !== undefined) offset = rangeStart(pair.key) ?? offset;
  return { ...src.lines.linePos(offset), found: true };
}

function rangeStart(node: unknown): number | undefined {
  return node !== null && typeof node === 'object' && 'range' in node && Array.isArray(node.range) ? node.range[0] : undefined;
}

function keyText(key: unknown): string {
  return isScalar(key) ? String(key.value) : String(key);
}

// Walks values only (never keys): names are structure, values are where deployments differ.
function substituteNode(src: YamlSource, node: unknown, path: PropertyKey[], env: NodeJS.ProcessEnv): void {
  if (isMap(node)) {
    for (const p of node.items) substituteNode(src, p.value, [...path, keyText(p.key)], env);
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => substituteNode(src, item, [...path, i], env));
  } else if (isScalar(node) && typeof node.value === 'string' && node.value.includes('$')) {
    const r = substitute(node.value, env);
    if ('error' in r) {
      const { line, col } = src.lines.linePos(rangeStart(node) ?? 0);
      src.errors.push({ file: src.file, line, col, path: formatKeyPath(path), message: r.error });
      return;
    }
    if (r.replaced) src.substituted.add(formatKeyPath(path));
    node.value = r.text;
  }
}

const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Returns the text with `${NAME}` and `${NAME:-default}` replaced and `$${` kept as a literal `${`, or the first error. */
export function substitute(text: string, env: NodeJS.ProcessEnv): { text: string; replaced: boolean } | { error: string } {
  let out = '';
  let replaced = false;
  let i = 0;
  while (i < text.length) {
    if (text.startsWith('$${', i)) {
      out += '${';
      i += 3;
      continue;
    }
    if (!text.startsWith('${', i)) {
      out += text[i++];
      continue;
    }
    const close = text.indexOf('}', i + 2);
    if (close < 0) return { error: `unterminated "\${" (write "$\${" for a literal "\${")` };
    const inner = text.slice(i + 2, close);
    const sep = inner.indexOf(':-');
    const name = sep < 0 ? inner : inner.slice(0, sep);
    if (!VAR_NAME.test(name)) return { error: `invalid variable reference "\${${inner}}": expected \${NAME} or \${NAME:-default}` };
    const value = env[name];
    // Like the shell's ":-", an empty variable also takes the default.
    if (sep >= 0 && (value === undefined || value === '')) out += inner.slice(sep + 2);
    else if (value === undefined) return { error: `environment variable "${name}" is not set` };
    else out += value;
    replaced = true;
    i = close + 1;
  }
  return { text: out, replaced };
}

/** Returns the value at `path` in plain data, or `undefined`. */
export function valueAt(data: unknown, path: KeyPath): unknown {
  let v = data;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[seg];
  }
  return v;
}

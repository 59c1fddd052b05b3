// The JSON Schemas for editors (issue 13): generated from the zod schemas, shipped in schema/,
// printed by `waygate schema routes|config`. A real JSON Schema validator (ajv, draft 2020-12)
// must agree with waygate's own loader on every shipped example (valid) and on a corpus of
// broken files (invalid). Rules that span files or need the environment (a route naming a pool
// that does not exist, the routes files' tests) are beyond a JSON Schema: only --check knows them.
import { readdirSync, readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { describe, expect, test } from 'vitest';
import { jsonSchema, jsonSchemaText, schemaFileName } from '../src/config/json-schema.ts';
import type { SchemaKind } from '../src/config/json-schema.ts';
import { parseRoutesText, parseStaticText } from '../src/config/load.ts';
import { substitute } from '../src/config/yaml-source.ts';
import { runCli } from './helpers.ts';

const ROOT = new URL('../', import.meta.url);
const read = (f: string): string => readFileSync(new URL(f, ROOT), 'utf8');

const ajv = new Ajv2020({ allErrors: true, strict: false });
const validators = { routes: ajv.compile(jsonSchema('routes')), config: ajv.compile(jsonSchema('config')) };

/** What ajv says of a file, after the same ${VAR:-default} substitution waygate does (no variables set). */
function schemaVerdict(kind: SchemaKind, text: string): { valid: boolean; errors: string } {
  const sub = substitute(text, {});
  if ('error' in sub) throw new Error(sub.error);
  const validate = validators[kind];
  const valid = validate(parse(sub.text) ?? {});
  return { valid, errors: ajv.errorsText(validate.errors) };
}

/** What waygate's loader says of the same file. */
function loaderVerdict(kind: SchemaKind, text: string, file: string): { valid: boolean; errors: string } {
  const r = kind === 'routes' ? parseRoutesText(text, file, {}) : parseStaticText(text, file, {});
  return { valid: r.ok, errors: r.ok ? '' : r.errors.map((e) => `${e.path}: ${e.message}`).join('; ') };
}

const EXAMPLES: [SchemaKind, string][] = [
  ['routes', 'routes/example.yaml'],
  ['routes', 'examples/demo/routes/demo.yaml'],
  ['routes', 'examples/grpc/routes/grpc.yaml'],
  ['routes', 'examples/compose/routes/whoami.yaml'],
  ['routes', 'examples/routes/l4.yaml'],
  ['config', 'examples/waygate.yaml'],
];

const CORPUS = 'test/fixtures/schema-invalid/';
const INVALID: [SchemaKind, string][] = readdirSync(new URL(CORPUS, ROOT))
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => [f.endsWith('.config.yaml') ? 'config' : 'routes', CORPUS + f]);

describe('JSON Schemas', () => {
  test.each(['routes', 'config'] as SchemaKind[])('schema/%s is what the zod schemas generate (npm run schema), and `waygate schema` prints it', async (kind) => {
    const shipped = read(`schema/${schemaFileName(kind)}`);
    expect(shipped).toBe(jsonSchemaText(kind));
    const printed = await runCli(['schema', kind]);
    expect(printed.code).toBe(0);
    expect(printed.stdout).toBe(shipped);
  });

  test.each(EXAMPLES)('the %s example %s is valid to both, and names its schema for editors', (kind, file) => {
    const text = read(file);
    expect(text.split('\n')[0]).toMatch(new RegExp(`^# yaml-language-server: \\$schema=(\\.\\./)+schema/${schemaFileName(kind).replace('.', '\\.')}$`));
    expect(loaderVerdict(kind, text, file)).toEqual({ valid: true, errors: '' });
    expect(schemaVerdict(kind, text)).toEqual({ valid: true, errors: 'No errors' });
  });

  test('the corpus has both kinds of file', () => {
    expect(INVALID.filter(([k]) => k === 'routes').length).toBeGreaterThan(3);
    expect(INVALID.filter(([k]) => k === 'config').length).toBeGreaterThan(2);
  });

  test.each(INVALID)('the broken %s file %s is invalid to both', (kind, file) => {
    const text = read(file);
    const loader = loaderVerdict(kind, text, file);
    const schema = schemaVerdict(kind, text);
    expect({ loader: loader.valid, schema: schema.valid }).toEqual({ loader: false, schema: false });
  });

  test('`waygate schema` without a kind prints its usage and exits 2', async () => {
    const r = await runCli(['schema']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('usage: waygate schema routes|config');
  });
});

// JSON Schemas for editors (issue 13): generated from the zod schemas that validate the files
// (zod 4's own export), never written by hand, so they cannot drift. They describe what a file
// may contain as written (zod's input side: "30s" or 30000 for a duration). What JSON Schema
// cannot say — a route naming a pool that does not exist, a secret left unset, the routes
// files' tests — only `waygate --check` knows. `schema/*.schema.json` are these, written by
// `npm run schema`; a test keeps them equal.
import { z } from 'zod';
import { routesFileSchema } from './schema.ts';
import { staticConfigSchema } from './static-schema.ts';

/** The files waygate reads: a routes file, and waygate.yaml. */
export type SchemaKind = 'routes' | 'config';

const SOURCES = {
  routes: { zod: routesFileSchema, file: 'routes.schema.json', title: 'waygate routes file' },
  config: { zod: staticConfigSchema, file: 'waygate.schema.json', title: 'waygate.yaml' },
} as const;

/** The file name a kind's schema ships as, under schema/. */
export function schemaFileName(kind: SchemaKind): string {
  return SOURCES[kind].file;
}

/** The JSON Schema (draft 2020-12) of a kind of file. */
export function jsonSchema(kind: SchemaKind): Record<string, unknown> {
  const s = SOURCES[kind];
  const generated = z.toJSONSchema(s.zod, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  const { $schema, ...rest } = generated;
  return { $schema, title: s.title, ...rest };
}

/** The schema as shipped: pretty-printed JSON with a final newline. */
export function jsonSchemaText(kind: SchemaKind): string {
  return JSON.stringify(jsonSchema(kind), null, 2) + '\n';
}

// npm run schema: writes schema/routes.schema.json and schema/waygate.schema.json from the zod
// schemas (src/config/json-schema.ts). test/schema.test.ts fails when they are out of date.
import { writeFileSync } from 'node:fs';
import { jsonSchemaText, schemaFileName } from '../src/config/json-schema.ts';
import type { SchemaKind } from '../src/config/json-schema.ts';

for (const kind of ['routes', 'config'] as SchemaKind[]) {
  const file = new URL(`../schema/${schemaFileName(kind)}`, import.meta.url);
  writeFileSync(file, jsonSchemaText(kind));
  process.stdout.write(`wrote schema/${schemaFileName(kind)}\n`);
}

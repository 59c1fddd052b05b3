// The documentation's examples must stay valid: the README's routes example (with its tests:)
// and every routes directory shipped in the repository pass the same checks as --check.
import { readFileSync } from 'node:fs';
import { expect, test } from 'vitest';
import { loadRoutesDir, parseRoutesText, parseStaticText } from '../src/config/load.ts';
import { runRouteTests } from '../src/route/tests.ts';

const root = new URL('..', import.meta.url).pathname;

test("the README's routes-file example is valid and its tests pass", () => {
  const readme = readFileSync(`${root}README.md`, 'utf8');
  const from = readme.indexOf('## Routes files');
  const start = readme.indexOf('```yaml', from) + '```yaml'.length;
  const yaml = readme.slice(start, readme.indexOf('```', start));
  const r = parseRoutesText(yaml, 'README.md');
  expect(r.ok ? [] : r.errors).toEqual([]);
  if (r.ok) {
    expect(r.value.tests.length).toBeGreaterThan(0);
    expect(runRouteTests(r.value)).toEqual([]);
  }
});

test.each(['routes', 'examples/demo/routes', 'examples/grpc/routes', 'examples/compose/routes'])('%s is valid and its tests pass', async (dir) => {
  const r = await loadRoutesDir(`${root}${dir}`, {});
  expect(r.ok ? [] : r.errors).toEqual([]);
  if (r.ok) expect(runRouteTests(r.value)).toEqual([]);
});

test("the README's waygate.yaml example is valid and spells out the defaults", () => {
  const readme = readFileSync(`${root}README.md`, 'utf8');
  const from = readme.indexOf('## waygate.yaml');
  const start = readme.indexOf('```yaml', from) + '```yaml'.length;
  const r = parseStaticText(readme.slice(start, readme.indexOf('```', start)), 'README.md');
  expect(r.ok ? [] : r.errors).toEqual([]);
  if (r.ok) {
    expect(r.value.limits).toEqual({ maxBodySize: 10 * 1024 ** 2, maxHeaderSize: 16 * 1024, retryBuffer: 64 * 1024, maxConnections: 10000 });
    expect(r.value.timeouts).toEqual({ clientHeader: 10_000, clientIdle: 60_000, shutdown: 30_000 });
  }
});

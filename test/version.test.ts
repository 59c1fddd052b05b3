// One version: package.json, `waygate --version`, the CHANGELOG's latest release and the README
// agree (issue 13).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { expect, test } from 'vitest';

const ROOT = new URL('../', import.meta.url);
const read = (f: string): string => readFileSync(new URL(f, ROOT), 'utf8');

test('package.json, --version, CHANGELOG.md and README.md name the same version', () => {
  const version = (JSON.parse(read('package.json')) as { version: string }).version;
  expect(version).toMatch(/^\d+\.\d+\.\d+$/);
  const printed = execFileSync(process.execPath, [new URL('src/main.ts', ROOT).pathname, '--version'], { encoding: 'utf8' }).trim();
  expect(printed).toBe(version);
  const released = /^## (\d+\.\d+\.\d+) - \d{4}-\d{2}-\d{2}$/m.exec(read('CHANGELOG.md'))?.[1];
  expect(released).toBe(version);
  const named = [...read('README.md').matchAll(/\bversion (\d+\.\d+\.\d+)\b/gi)].map((m) => m[1]);
  expect(named.length).toBeGreaterThan(0);
  expect(new Set(named)).toEqual(new Set([version]));
  expect((JSON.parse(read('package-lock.json')) as { version: string }).version).toBe(version);
});

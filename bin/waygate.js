#!/usr/bin/env node
// waygate's command. From a checkout, Node (>= 22.18) runs the TypeScript sources directly; an
// installed package or a container image runs the compiled dist/ — always when the sources are
// absent, and under node_modules, where Node does not strip types.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(`waygate needs Node.js 22.18 or newer (this is ${process.version})\n`);
  process.exit(1);
}
const here = fileURLToPath(import.meta.url);
const sources = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const useDist = here.includes('/node_modules/') || !existsSync(sources);
await import(useDist ? '../dist/main.js' : '../src/main.ts');

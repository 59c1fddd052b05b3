#!/usr/bin/env node
// waygate's command. From a checkout, Node (>= 22.18) runs the TypeScript sources directly; an
// installed package runs the compiled dist/ (Node does not strip types under node_modules).
import { fileURLToPath } from 'node:url';

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(`waygate needs Node.js 22.18 or newer (this is ${process.version})\n`);
  process.exit(1);
}
const here = fileURLToPath(import.meta.url);
await import(here.includes('/node_modules/') ? '../dist/main.js' : '../src/main.ts');

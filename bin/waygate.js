#!/usr/bin/env node
// waygate's command. From a checkout, Node (>= 22.18) runs the TypeScript sources directly; an
// installed package or a container image runs the compiled dist/ — always when the sources are
// absent, under node_modules (where Node does not strip types), and when WAYGATE_DIST=1 (a
// checkout after `npm run build`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(`waygate needs Node.js 22.18 or newer (this is ${process.version})\n`);
  process.exit(1);
}
const here = fileURLToPath(import.meta.url);

// V8 grows its young generation to 64 MB under load, which is most of a busy proxy's memory;
// 4 MB semi-spaces hold RSS near 120 MB at no measurable cost in throughput
// (docs/performance.md, docs/decisions/0003). V8 reads the size only at start, so the process replaces itself (same pid,
// same stdio) with the flag in NODE_OPTIONS, where cluster workers inherit it too. A size given
// on the command line or in NODE_OPTIONS is kept.
// glibc's malloc also reads MALLOC_ARENA_MAX only at start: by default each thread that
// allocates (libuv's pool: TLS, DNS, zlib) may get its own arena, and the free space of each is
// kept. Two arenas held the chaos soak's peak RSS at 215 MB instead of 275 MB (same seed,
// docs/decisions/0003). A value already in the environment is kept.
const SEMI = '--max-semi-space-size';
const given = process.execArgv.some((a) => a.startsWith(SEMI)) || (process.env.NODE_OPTIONS ?? '').includes(SEMI);
if ((!given || process.env.MALLOC_ARENA_MAX === undefined) && typeof process.execve === 'function') {
  const env = { ...process.env, MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2' };
  if (!given) env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} ${SEMI}=4`.trim();
  try {
    process.execve(process.execPath, [process.execPath, ...process.execArgv, here, ...process.argv.slice(2)], env);
  } catch {
    // Not replaceable here (a sandbox refusing execve): run on with V8's default sizes.
  }
}

const sources = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const useDist = process.env.WAYGATE_DIST === '1' || here.includes('/node_modules/') || !existsSync(sources);
await import(useDist ? '../dist/main.js' : '../src/main.ts');

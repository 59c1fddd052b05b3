// `npm run demo`: starts the three demo services and waygate (as a child process, exactly as a
// user runs it) with examples/demo/routes, then prints what to curl. Ctrl-C stops everything.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startDemoServices } from './services.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const services = await startDemoServices({ catalog: 3001, catalogV2: 3002, whoami: 3003 }).catch((err: Error) => {
  console.error(`demo: cannot start the demo services on ports 3001-3003: ${err.message}`);
  process.exit(1);
});

const child = spawn(process.execPath, ['bin/waygate.js', '--routes', 'examples/demo/routes', '--https', 'off', ...process.argv.slice(2)], {
  cwd: root,
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, DEMO_CATALOG: services.urls.catalog, DEMO_CATALOG_V2: services.urls.catalogV2, DEMO_WHOAMI: services.urls.whoami },
});

createInterface({ input: child.stdout! }).on('line', (line) => {
  console.log(line);
  let msg: { msg?: string; http?: string | null; admin?: string | null } = {};
  try {
    msg = JSON.parse(line);
  } catch {
    return;
  }
  if (msg.msg !== 'listening' || !msg.http) return;
  const port = msg.http.split(':').pop();
  const base = `http://localhost:${port}`;
  const tries: [string, string][] = [
    [`curl -i ${base}/ping`, 'answered by waygate itself'],
    [`curl ${base}/api/catalog/items`, '90/10 split between catalog v1 and v2'],
    [`curl -H 'x-beta: 1' ${base}/api/catalog/items`, 'header route: always v2'],
    [`curl ${base}/api/items/2`, '/api/items/:id rewritten to /items/2'],
    [`curl ${base}/whoami`, 'what the upstream saw: x-forwarded-*, x-request-id'],
    [`curl -i ${base}/docs/intro`, '308 redirect'],
    [`curl -i ${base}/nothing-here`, '404 no route'],
    [`curl http://${msg.admin}/healthz`, 'admin API'],
  ];
  const width = Math.max(...tries.map(([cmd]) => cmd.length)) + 2;
  console.log(`\nwaygate demo is up (proxy ${msg.http}, admin ${msg.admin}). Try:\n`);
  for (const [cmd, what] of tries) console.log(`  ${cmd.padEnd(width)}# ${what}`);
  console.log('\nAccess log lines (JSON) appear below. Ctrl-C stops the demo.\n');
});

let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  child.kill('SIGTERM');
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
child.on('exit', async (code) => {
  await services.close();
  process.exit(stopping ? 0 : (code ?? 1));
});

// CPU time the proxy spends per request (utime+stime from /proc), for a fixed number of
// requests: far less sensitive to a busy machine than req/s. Usage:
//   node bench/cpu-per-request.mjs [requests] [rounds]
// Starts the benchmark upstream, waygate (access log on, to /dev/null) and the minimal undici
// forwarder, and measures them interleaved; prints µs of proxy CPU per request and the ratio.
import { execSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';

execSync('npm run build', { stdio: 'ignore' }); // waygate runs from dist/, as installed

const N = Number(process.argv[2] ?? 20000);
const ROUNDS = Number(process.argv[3] ?? 3);
const node = process.execPath;
const dir = mkdtempSync(join(tmpdir(), 'waygate-cpu-'));
writeFileSync(join(dir, 'r.yaml'), 'pools:\n  app: { targets: ["http://127.0.0.1:19101"] }\nroutes:\n  - { name: app, match: { path: /* }, pool: app }\n');
const procs = [
  spawn(node, ['bench/upstream.mjs', '19101'], { stdio: 'ignore' }),
  spawn(node, ['bench/mini-undici.mjs', '19102', 'http://127.0.0.1:19101'], { stdio: 'ignore' }),
  spawn(node, ['bin/waygate.js', '--routes', dir, '--http', '127.0.0.1:19100', '--https', 'off', '--admin', 'off'], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, WAYGATE_DIST: '1' } }),
];
const cleanup = () => { for (const p of procs) p.kill('SIGKILL'); };
process.on('exit', cleanup);
const cpu = (pid) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) * 10_000; }; // µs (CLK_TCK 100)
async function waitUp(port) { for (let i = 0; i < 100; i++) { try { const p = new Pool(`http://127.0.0.1:${port}`); await p.request({ path: '/', method: 'GET' }).then((r) => r.body.dump()); await p.close(); return; } catch { await new Promise((r) => setTimeout(r, 100)); } } throw new Error(`port ${port} not up`); }
async function load(port, n) {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 32, pipelining: 1 });
  let next = 0;
  await Promise.all(Array.from({ length: 32 }, async () => { while (next++ < n) { const r = await pool.request({ path: '/', method: 'GET' }); await r.body.dump(); } }));
  await pool.close();
}
await Promise.all([19101, 19102, 19100].map(waitUp));
const targets = { 'mini-undici': [19102, procs[1].pid], waygate: [19100, procs[2].pid] };
const results = { 'mini-undici': [], waygate: [] };
for (const [name, [port]] of Object.entries(targets)) await load(port, 2000); // warm-up
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, [port, pid]] of Object.entries(targets)) {
    const before = cpu(pid);
    await load(port, N);
    results[name].push((cpu(pid) - before) / N);
  }
}
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
for (const [name, v] of Object.entries(results)) console.log(`${name.padEnd(12)} ${median(v).toFixed(1)} µs CPU per request (runs: ${v.map((x) => x.toFixed(1)).join(', ')})`);
console.log(`waygate / mini-undici CPU per request: ${(median(results.waygate) / median(results['mini-undici'])).toFixed(2)}`);
cleanup();
process.exit(0);

// Where the proxy's time goes: `npm run bench:profile [-- seconds]` (default 8 s per proxy).
//
// CPU-profiles (node --cpu-prof) the minimal undici forwarder and waygate (the benchmark's
// realistic routes, from dist/ through bin/waygate.js) under the same wrk load, one after the
// other, and prints the share of the main thread's busy time per area (socket writes, undici,
// node:http, streams, GC, waygate's own modules …) side by side, with µs per request from the
// process's CPU time. Samples from start-up and from the warm-up are left out. The table also goes
// to bench/results/profile.md; the .cpuprofile files stay in the printed directory (open them in
// Chrome DevTools or speedscope). Needs wrk and taskset (2 CPUs), as npm run bench does.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { shopRoutes } from './configs.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(ROOT);
const SECS = Number(process.argv[2] ?? 8);
const NODE = process.execPath;
const UP = [19401, 19402, 19403];
const dir = mkdtempSync(join(tmpdir(), 'waygate-profile-'));
const children: ChildProcess[] = [];
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

function start(args: string[], cpu: string, env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const c = spawn('taskset', ['-c', cpu, NODE, ...args], { stdio: 'ignore', env });
  children.push(c);
  return c;
}

function waitPort(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const until = Date.now() + 15_000;
    const once = (): void => {
      const s = createConnection({ port, host: '127.0.0.1' });
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > until) reject(new Error(`nothing listening on ${port}`));
        else setTimeout(once, 100);
      });
    };
    once();
  });
}

function wrk(port: number, secs: number): number {
  const lua = join(dir, 'req.lua');
  writeFileSync(lua, 'wrk.headers["Host"] = "shop.example.com"\nwrk.headers["x-client"] = "web"\nwrk.path = "/api/b100"\n');
  const r = spawnSync('taskset', ['-c', '1', 'wrk', '-t1', '-c64', `-d${secs}s`, '-s', lua, `http://127.0.0.1:${port}/`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`wrk failed: ${r.stderr}`);
  return Number(/(\d+) requests in/.exec(r.stdout)?.[1] ?? 0);
}

const ticks = (pid: number): number => {
  let sum = 0;
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    const f = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8').split(') ')[1].split(' ');
    sum += Number(f[11]) + Number(f[12]);
  }
  return sum;
};

/** Profiles one proxy: warm-up, then SECS of load; returns its profile file and µs of CPU per request. */
async function profile(name: string, port: number, args: string[], env?: NodeJS.ProcessEnv): Promise<{ file: string; us: number; rps: number; since: number }> {
  const out = join(dir, name);
  mkdirSync(out);
  const child = start(['--cpu-prof', `--cpu-prof-dir=${out}`, '--cpu-prof-interval', '250', ...args], '0', env);
  await waitPort(port);
  wrk(port, 2);
  const since = Date.now();
  const t0 = ticks(child.pid!);
  const n = wrk(port, SECS);
  const us = ((ticks(child.pid!) - t0) * 10_000) / n; // CLK_TCK = 100
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
  const file = readdirSync(out).find((f) => f.endsWith('.cpuprofile'));
  if (file === undefined) throw new Error(`${name} wrote no profile`);
  return { file: join(out, file), us, rps: n / SECS, since };
}

interface CpuProfile { nodes: { id: number; callFrame: { functionName: string; url: string }; children?: number[] }[]; samples: number[]; timeDeltas: number[]; startTime: number }

/** Shares of busy (non-idle) main-thread time per area, for samples taken after `sinceMs` (epoch). */
function areas(file: string, sinceMs: number): Map<string, number> {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const out = new Map<string, number>();
  let busy = 0;
  // startTime is in µs of a monotonic clock: align it on the first sample's wall time at exit.
  let t = p.startTime;
  const end = t + p.timeDeltas.reduce((a, b) => a + b, 0);
  const offset = Date.now() * 1000 - end; // close enough: the profile was written just now
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i];
    if (t + offset < sinceMs * 1000) continue;
    const f = byId.get(p.samples[i])!.callFrame;
    const u = f.url;
    if (f.functionName === '(idle)') continue;
    let k: string;
    if (/^(writev|writeLatin1String|writeString|writeUtf8String|writeBuffer)$/.test(f.functionName)) k = 'socket and log writes (system calls)';
    else if (f.functionName === '(garbage collector)') k = 'garbage collector';
    else if (f.functionName === '(program)') k = 'V8/native, unattributed';
    else if (u.includes('node_modules/undici') || u.startsWith('wasm')) k = 'undici (incl. llhttp wasm)';
    else if (u.includes('prom-client')) k = 'prom-client';
    else if (u.includes('pino') || u.includes('sonic-boom')) k = 'pino, sonic-boom';
    else if (u.includes('find-my-way')) k = 'find-my-way';
    else if (/\/(dist|src)\//.test(u)) k = 'waygate: ' + u.replace(/.*\/(dist|src)\//, '').replace(/\.(js|ts)$/, '');
    else if (u.includes('/bench/')) k = 'the forwarder script';
    else if (/_http_|http_common|http_incoming/.test(u)) k = 'node:http';
    else if (/streams|stream_base/.test(u)) k = 'node streams';
    else if (/events/.test(u)) k = 'node events';
    else if (/node:net/.test(u)) k = 'node:net';
    else if (/task_queues|timers/.test(u)) k = 'ticks and timers';
    else k = 'other';
    out.set(k, (out.get(k) ?? 0) + p.timeDeltas[i]);
    busy += p.timeDeltas[i];
  }
  for (const [k, v] of out) out.set(k, v / busy);
  return out;
}

if (spawnSync('npm', ['run', 'build'], { stdio: 'inherit' }).status !== 0) throw new Error('npm run build failed');
mkdirSync(join(dir, 'routes'));
writeFileSync(join(dir, 'routes', 'routes.yaml'), shopRoutes(UP));
writeFileSync(join(dir, 'waygate.yaml'), 'log: { level: info, access: true }\n');
for (const port of UP) start(['bench/upstream.mjs', String(port)], '1');
await Promise.all(UP.map(waitPort));
console.log(`profiling ${SECS} s each after a 2 s warm-up; files in ${dir}`);
const mini = await profile('undici', 19410, ['bench/mini-undici.mjs', '19410', `http://127.0.0.1:${UP[0]}`]);
const wg = await profile('waygate', 19420, ['bin/waygate.js', '--config', join(dir, 'waygate.yaml'), '--routes', join(dir, 'routes'),
  '--http', '127.0.0.1:19420', '--https', 'off', '--admin', 'off'], { ...process.env, WAYGATE_DIST: '1' });
const a = areas(mini.file, mini.since);
const b = areas(wg.file, wg.since);
const keys = [...new Set([...a.keys(), ...b.keys()])].sort((x, y) => (b.get(y) ?? 0) + (a.get(y) ?? 0) - (b.get(x) ?? 0) - (a.get(x) ?? 0));
const pct = (v: number | undefined): string => (v === undefined ? '' : `${(100 * v).toFixed(1)}%`);
const usOf = (v: number | undefined, us: number): string => (v === undefined ? '' : (v * us).toFixed(1));
const lines = [
  `Profile ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${SECS} s of wrk -c64 each, proxy on CPU 0, Node upstream and wrk on CPU 1 (\`npm run bench:profile\`).`,
  '',
  `CPU per request (all threads, from /proc): minimal undici forwarder ${mini.us.toFixed(1)} µs at ${Math.round(mini.rps)} req/s; waygate ${wg.us.toFixed(1)} µs at ${Math.round(wg.rps)} req/s (${(wg.us / mini.us).toFixed(2)}×). Shares are of the main thread's busy time; µs/req spreads the process's CPU per request over them.`,
  '',
  '| area | forwarder | µs/req | waygate | µs/req |',
  '| --- | ---: | ---: | ---: | ---: |',
  ...keys.map((k) => `| ${k} | ${pct(a.get(k))} | ${usOf(a.get(k), mini.us)} | ${pct(b.get(k))} | ${usOf(b.get(k), wg.us)} |`),
];
console.log('\n' + lines.join('\n'));
writeFileSync(join(ROOT, 'bench', 'results', 'profile.md'), lines.join('\n') + '\n');
console.log('\nwritten: bench/results/profile.md');
process.exit(0);

// Standalone reproductions of defects the soak found (run from the repository root with Node 24:
// node test/soak/repro/<file>.mjs). Not part of the soak or of npm test.
// Shared by the reproductions: a waygate CLI child with one pool, its admin API, its RSS.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
export async function startWaygate(poolYaml, extra = '') {
  const dir = mkdtempSync(join(tmpdir(), 'repro-'));
  mkdirSync(join(dir, 'routes')); mkdirSync(join(dir, 'certs'));
  writeFileSync(join(dir, 'routes/r.yaml'), `pools:\n  p: ${poolYaml}\nroutes: [ { name: r, pool: p } ]\n`);
  writeFileSync(join(dir, 'waygate.yaml'), `listeners: { http: { address: "127.0.0.1:0" }, https: { address: "127.0.0.1:0" } }\nadmin: { address: "127.0.0.1:0" }\nroutesDir: ${dir}/routes\ncertsDir: ${dir}/certs\nlog: { access: false }\n${extra}`);
  const proc = spawn(process.execPath, ['bin/waygate.js', '--config', join(dir, 'waygate.yaml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  // A reproduction that fails or is interrupted must not leave its proxy running.
  process.once('exit', () => proc.kill('SIGKILL'));
  let stderr = ''; proc.stderr.on('data', (c) => (stderr += c));
  const addr = await new Promise((r) => createInterface({ input: proc.stdout }).on('line', (l) => l.includes('"listening"') && r(JSON.parse(l))));
  return {
    proc, addr, stderr: () => stderr,
    inFlight: async () => (await (await fetch(`http://${addr.admin}/status`)).json()).pools[0].targets.map((t) => t.inFlight),
    rssMb: () => Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'))[1]) / 1024),
    healthz: () => fetch(`http://${addr.admin}/healthz`, { signal: AbortSignal.timeout(3000) }).then((r) => r.status, (e) => e.name),
  };
}

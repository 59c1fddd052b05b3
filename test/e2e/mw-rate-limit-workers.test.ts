// `store: local` with --workers 2 (SPEC §8: one bucket set per instance, never ×workers): a
// real waygate process whose waygate.yaml sets workers: 2. The buckets and in-flight counts
// live in the primary; every worker asks it over node:cluster IPC. Counted from the responses.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { routesDir, send, startCli, startUpstream } from '../helpers.ts';
import type { CliProcess, Upstream } from '../helpers.ts';

const AVERAGE = 5;
const PERIOD_MS = 1000;
const BURST = 20;

let up: Upstream;
const held: ServerResponse[] = [];
const arrived: (() => void)[] = [];
let dir: string;
let confDir: string;
let cli: CliProcess;
let http: string;

beforeAll(async () => {
  up = await startUpstream((req, res) => {
    if (!req.url!.startsWith('/hold')) return void res.end('ok');
    held.push(res);
    for (const w of arrived.splice(0)) w();
  });
  dir = await routesDir({
    'routes.yaml': `
pools:
  app: { targets: ["${up.url}"] }
middlewares:
  limit: { rateLimit: { average: ${AVERAGE}, period: ${PERIOD_MS}ms, burst: ${BURST} } }
  fair: { inFlightLimit: { amount: 2 } }
routes:
  - { name: limited, match: { path: /limited/* }, middlewares: [limit], pool: app }
  - { name: held, match: { path: /hold/* }, middlewares: [fair], pool: app }
`,
  });
  confDir = await mkdtemp(join(tmpdir(), 'waygate-conf-'));
  const conf = join(confDir, 'waygate.yaml');
  await writeFile(conf, `workers: 2\nroutesDir: ${dir}\ncertsDir: ${join(confDir, 'certs')}\n`);
  cli = await startCli(['--config', conf, '--http', '127.0.0.1:0', '--https', 'off', '--admin', '127.0.0.1:0']);
  http = `http://${cli.addresses.http}`;
});
afterAll(async () => {
  for (const res of held) res.end();
  if (cli !== undefined && cli.proc.exitCode === null && cli.proc.signalCode === null) await cli.stop('SIGKILL');
  await up?.close();
  await rm(dir, { recursive: true, force: true });
  await rm(confDir, { recursive: true, force: true });
});

/** GET over a keep-alive agent; resolves with the status. */
function get(agent: Agent, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${http}${path}`, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end();
  });
}

test('many requests over several connections, served by both workers: the admitted count never exceeds burst + average × elapsed / period', async () => {
  const CONNECTIONS = 8;
  const PER_CONNECTION = 40;
  const start = performance.now();
  const statuses = await Promise.all(Array.from({ length: CONNECTIONS }, async (_, c) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const out: number[] = [];
    for (let i = 0; i < PER_CONNECTION; i++) out.push(await get(agent, `/limited/${c}/${i}`));
    agent.destroy();
    return out;
  }));
  const elapsed = performance.now() - start;
  const all = statuses.flat();
  const admitted = all.filter((s) => s === 200).length;
  expect(all.filter((s) => s !== 200 && s !== 429)).toEqual([]);
  // +1: a token that was nearly there when the clock was read.
  expect(admitted).toBeLessThanOrEqual(BURST + Math.floor((AVERAGE * elapsed) / PERIOD_MS) + 1);
  expect(admitted).toBeGreaterThanOrEqual(BURST);
  // Both workers answered: the limit above held across them (per-worker buckets would allow twice as much).
  // Access lines reach stdout in batches: wait for all of them.
  await cli.waitForLine(() => cli.lines.filter((l) => l.msg === 'request' && l.route === 'limited').length >= all.length);
  const byWorker = new Set(cli.lines.filter((l) => l.msg === 'request' && l.route === 'limited').map((l) => l.pid));
  expect(byWorker.size).toBe(2);
});

test('in flight across workers: at most `amount` for the instance; the primary forgets the counts of workers that die', async () => {
  const until = async (n: number) => {
    while (held.length < n) await new Promise<void>((r) => arrived.push(r));
  };
  const hold = (i: number) => send(`${http}/hold/${i}`).then((r) => r.status, () => 0);
  // Fresh connections each: spread over both workers.
  const first = [hold(1), hold(2)];
  await until(2);
  const refused = await Promise.all([3, 4, 5, 6].map(hold));
  expect(refused).toEqual([429, 429, 429, 429]);
  // Access lines reach stdout in batches: wait for the four refusals' lines.
  const heldLines = () => cli.lines.filter((l) => l.msg === 'request' && l.route === 'held');
  await cli.waitForLine(() => heldLines().length >= 4);
  const served = new Set(heldLines().map((l) => l.pid));
  expect(served.size).toBe(2);

  // Both workers die with the two requests in flight, one after the other (the shared
  // listener lives on while one worker holds it), each replaced before the next dies.
  const status = JSON.parse((await send(`http://${cli.addresses.admin}/status`)).body) as { workers: { pid: number }[] };
  for (const w of status.workers) {
    const before = cli.lines.filter((l) => l.msg === 'worker listening').length;
    process.kill(w.pid, 'SIGKILL');
    await cli.waitForLine(() => cli.lines.filter((l) => l.msg === 'worker listening').length > before);
  }
  expect(await Promise.all(first)).toEqual([0, 0]);
  for (const res of held.splice(0)) res.destroy();
  // Had the primary kept the dead workers' counts, these would be refused.
  const again = [hold(7), hold(8)];
  // Either both reach the upstream, or (a bug) an answer comes first: a refusal.
  await Promise.race([until(2), Promise.all(again)]);
  expect(held).toHaveLength(2);
  expect(await hold(9)).toBe(429);
  for (const res of held.splice(0)) res.end('done');
  expect(await Promise.all(again)).toEqual([200, 200]);
});

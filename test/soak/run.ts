// `npm run soak [-- --seconds N] [--seed S] [--concurrency C] [--only a,b] [--pools x,y]
// [--task I] [--keep-going] [--keep] [--json FILE]`: the chaos soak (soak.ts). Prints progress, the
// report and a one-line summary with the seed; exit code 0 on pass, 1 on any failure, 2 on bad
// arguments. The middleware routes' Redis is the Debian package redis-server: installed first when
// it is missing, as test/global-setup.ts does for npm test.
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ensureRedisServer } from './kit/mw-redis.ts';
import { randomSeed } from './prng.ts';
import { reportLines } from './report.ts';
import { MAX_CONCURRENCY, planOnly, runSoak } from './soak.ts';

const USAGE = `usage: npm run soak -- [--seconds N] [--seed S] [--concurrency C] [--only BEHAVIOURS] [--pools POOLS]
                       [--task I] [--from I] [--plan N] [--isolate] [--keep-going] [--keep] [--json FILE]
  --seconds N      how long the chaos runs (default 60)
  --seed S         the PRNG seed (default: random, printed)
  --concurrency C  tasks at once, at most ${MAX_CONCURRENCY} (default 48)
  --only a,b       only these client behaviours (file names in test/soak/clients/)
  --pools x,y      only these pools (see the report's pool list)
  --task I[,J…]    run only these tasks of the seed's sequence, then the checks (a reproduction)
  --plan N         print the seed's first N tasks and exit (nothing runs)
  --from I         start the seed's sequence at task I (with --concurrency 1: one task at a time)
  --isolate        one task at a time; after each, in-flight and connections must return (names a leak's task)
  --keep-going     after a crash, restart waygate and go on, to collect distinct crashes
  --keep           keep the temp dir (waygate.yaml, routes, certs)
  --json FILE      also write the whole report as JSON`;

function fail(message: string): never {
  process.stderr.write(`soak: ${message}\n${USAGE}\n`);
  process.exit(2);
}

let values: Record<string, string | boolean | undefined>;
try {
  values = parseArgs({
    options: {
      seconds: { type: 'string' }, seed: { type: 'string' }, concurrency: { type: 'string' }, only: { type: 'string' }, pools: { type: 'string' },
      task: { type: 'string' }, from: { type: 'string' }, plan: { type: 'string' }, 'keep-going': { type: 'boolean' }, isolate: { type: 'boolean' }, keep: { type: 'boolean' }, json: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  }).values;
} catch (err) {
  fail((err as Error).message);
}
if (values.help === true) {
  process.stdout.write(USAGE + '\n');
  process.exit(0);
}
const num = (name: string, min: number): number | undefined => {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) fail(`--${name} must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
  return n;
};
const list = (name: string): string[] | undefined => (typeof values[name] === 'string' ? (values[name] as string).split(',').map((s) => s.trim()).filter(Boolean) : undefined);

const seed = num('seed', 0) ?? randomSeed();
if (seed > 0xffffffff) fail('--seed must fit in 32 bits');
const seconds = num('seconds', 1) ?? 60;
const concurrency = num('concurrency', 1);
if (concurrency !== undefined && concurrency > MAX_CONCURRENCY) fail(`--concurrency is at most ${MAX_CONCURRENCY}`);
ensureRedisServer();
const planN = num('plan', 1);
if (planN !== undefined) {
  const labels = await planOnly({ seconds, seed, only: list('only'), pools: list('pools') }, planN).catch((err: Error) => fail(err.message));
  for (const l of labels) process.stdout.write(l + '\n');
  process.exit(0);
}
process.stdout.write(`waygate soak: seed ${seed}, ${seconds} s\n`);
const report = await runSoak({
  seconds, seed, concurrency, only: list('only'), pools: list('pools'), tasks: list('task')?.map((t) => (/^\d+$/.test(t) ? Number(t) : fail(`--task takes task numbers, got ${JSON.stringify(t)}`))), from: num('from', 0),
  keepGoing: values['keep-going'] === true, isolate: values.isolate === true, keep: values.keep === true,
  log: (line) => process.stdout.write(`  ${line}\n`),
}).catch((err: Error) => fail(err.message));
for (const line of reportLines(report)) process.stdout.write(line + '\n');
if (typeof values.json === 'string') await writeFile(values.json, JSON.stringify(report, null, 2));
process.exitCode = report.ok ? 0 : 1;

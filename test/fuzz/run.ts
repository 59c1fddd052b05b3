// `npm run fuzz [-- --seconds N] [--seed S] [--case FILE] [--iterations N] [--concurrency N]`:
// the differential fuzz of waygate's HTTP/1.1 response parser against llhttp (Node's client).
// Prints the seed, the figures and every disagreement; writes the disagreements to a JSON file
// that `--case FILE` replays; exits 1 on any disagreement.
import { randomInt } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readCases } from './case.ts';
import { fuzz } from './fuzz.ts';
import { describeResult, summary, writeCases } from './report.ts';

/** The length of a run without --seconds (s). */
const DEFAULT_SECONDS = 300;
/** How often progress is printed (ms). */
const PROGRESS_MS = 15_000;

const { values } = parseArgs({
  options: {
    seconds: { type: 'string' },
    seed: { type: 'string' },
    case: { type: 'string' },
    iterations: { type: 'string' },
    concurrency: { type: 'string' },
    verbose: { type: 'boolean', default: false },
  },
});

const seed = values.seed === undefined ? randomInt(2 ** 32 - 1) : Number(values.seed) >>> 0;
const cases = values.case === undefined ? undefined : readCases(values.case);
const seconds = cases !== undefined ? undefined : Number(values.seconds ?? DEFAULT_SECONDS);
const iterations = values.iterations === undefined ? undefined : Number(values.iterations);
console.log(cases !== undefined ? `waygate fuzz: ${cases.length} case(s) from ${values.case}` : `waygate fuzz: seed ${seed}, ${seconds} s${iterations === undefined ? '' : ` or ${iterations} cases`} (replay: npm run fuzz -- --seed ${seed})`);

let done = 0;
let found = 0;
const progress = setInterval(() => console.log(`  … ${done} cases, ${found} disagreements`), PROGRESS_MS);
const stats = await fuzz({
  seed,
  seconds,
  iterations,
  cases,
  concurrency: values.concurrency === undefined ? undefined : Number(values.concurrency),
  onResult: (r, confirmed) => {
    done++;
    if (r.judgement.kind === 'disagree' && confirmed) found++;
    if (values.verbose || cases !== undefined) console.log(describeResult(r));
  },
});
clearInterval(progress);
console.log(summary(stats));
if (stats.unconfirmed.length > 0) {
  console.log('unconfirmed (timing-dependent; not counted):');
  for (const r of stats.unconfirmed) console.log(describeResult(r));
}
if (stats.disagreements.length > 0) {
  const file = join(tmpdir(), `waygate-fuzz-${cases === undefined ? seed : 'replay'}-${Date.now()}.json`);
  writeCases(file, stats.disagreements);
  for (const r of stats.disagreements) console.log(describeResult(r));
  console.log(`disagreements written to ${file} (replay: npm run fuzz -- --case ${file})`);
  process.exitCode = 1;
}

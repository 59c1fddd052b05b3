// The chaos soak (test/soak/, issue 12) for 20 seconds as part of `npm test`: waygate as a child
// process against real faulty upstreams and misbehaving clients; the runner's verdict must be a
// pass. The seed is random unless SOAK_SEED is set, and printed: `npm run soak -- --seconds 20
// --seed S` replays the same sequence of choices.
import { expect, test } from 'vitest';
import { randomSeed } from './soak/prng.ts';
import { reportLines, summaryLine } from './soak/report.ts';
import { runSoak } from './soak/soak.ts';

const SECONDS = 20;

test(`a ${SECONDS}-second chaos soak: waygate never exits or hangs, in-flight, connections, descriptors and memory return to baseline, the healthy pools still answer`, async () => {
  const seed = process.env.SOAK_SEED === undefined ? randomSeed() : Number(process.env.SOAK_SEED);
  console.log(`soak seed ${seed} (replay: npm run soak -- --seconds ${SECONDS} --seed ${seed})`);
  const report = await runSoak({ seconds: SECONDS, seed });
  console.log(summaryLine(report));
  // The whole report in the failure message: what failed, the crashes with their stderr and suspects.
  expect(report.ok, reportLines(report).join('\n')).toBe(true);
  expect(report.tasks).toBeGreaterThan(0);
}, 180_000);

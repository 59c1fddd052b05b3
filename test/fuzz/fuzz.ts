// The fuzz loop shared by `npm run fuzz` (run.ts) and the bounded run in npm test
// (test/upstream/fuzz.test.ts): generate case after case, read each with both clients at once,
// judge, and keep the figures. A disagreement is read twice more with a longer settle time:
// one that does not come back is reported as timing-dependent, not as a parser difference.
import { ALLOW_LIST } from './allow-list.ts';
import type { Allowance } from './allow-list.ts';
import type { FuzzCase } from './case.ts';
import { judge } from './compare.ts';
import type { Judgement } from './compare.ts';
import { driveBuiltin } from './drive-builtin.ts';
import { driveNode } from './drive-node.ts';
import { CATEGORIES, generate } from './generate.ts';
import type { Observation } from './observation.ts';

/** How many cases run at once (each is two upstreams and two clients on this event loop). */
export const DEFAULT_CONCURRENCY = 6;
/** The settle time of the confirming reruns (ms). */
const CONFIRM_SETTLE_MS = 60;

/** One case read by both clients, and the judgement. */
export interface Result {
  case: FuzzCase;
  builtin: Observation;
  node: Observation;
  judgement: Judgement;
}

/** The figures of a run. */
export interface Stats {
  seed: number;
  iterations: number;
  seconds: number;
  perCategory: Record<string, number>;
  verdicts: { builtin: Record<string, number>; node: Record<string, number> };
  /** Differences excused by the allow-list, by entry. */
  allowed: Record<string, number>;
  /** Agreements counted apart, by note (compare.ts). */
  notes: Record<string, number>;
  disagreements: Result[];
  /** Disagreements that the confirming reruns did not reproduce. */
  unconfirmed: Result[];
}

/** How one case is read and judged. */
export interface CaseOptions {
  settleMs?: number;
  /** The allow-list to judge with (tests pass another to check that differences are reported). */
  allowList?: readonly Allowance[];
}

/** Reads `c` with both clients side by side, and judges. */
export async function runCase(c: FuzzCase, o: CaseOptions = {}): Promise<Result> {
  const [builtin, node] = await Promise.all([driveBuiltin(c, o.settleMs), driveNode(c, o.settleMs)]);
  return { case: c, builtin, node, judgement: judge(c, builtin, node, o.allowList ?? ALLOW_LIST) };
}

/** Runs `c` and, when the two disagree, twice more: confirmed only if every run disagrees. */
export async function checkCase(c: FuzzCase, o: CaseOptions = {}): Promise<{ result: Result; confirmed: boolean }> {
  const result = await runCase(c, o);
  if (result.judgement.kind !== 'disagree') return { result, confirmed: false };
  for (let i = 0; i < 2; i++) {
    const again = await runCase(c, { ...o, settleMs: CONFIRM_SETTLE_MS });
    if (again.judgement.kind !== 'disagree') return { result, confirmed: false };
  }
  return { result, confirmed: true };
}

/** What to run: generated cases for a time or a count, or given cases. */
export interface FuzzOptions {
  seed: number;
  /** Stop generating after this long (s). */
  seconds?: number;
  /** Stop generating after this many cases. */
  iterations?: number;
  /** Run these instead of generated cases. */
  cases?: readonly FuzzCase[];
  concurrency?: number;
  allowList?: readonly Allowance[];
  /** Called after each case. */
  onResult?: (r: Result, confirmed: boolean) => void;
}

/** Runs the fuzz and returns its figures. */
export async function fuzz(o: FuzzOptions): Promise<Stats> {
  const started = Date.now();
  const deadline = o.seconds === undefined ? Infinity : started + o.seconds * 1000;
  const limit = o.cases?.length ?? o.iterations ?? Infinity;
  const stats: Stats = {
    seed: o.seed,
    iterations: 0,
    seconds: 0,
    perCategory: Object.fromEntries(CATEGORIES.map((c) => [c, 0])),
    verdicts: { builtin: { accepted: 0, rejected: 0, pending: 0 }, node: { accepted: 0, rejected: 0, pending: 0 } },
    allowed: {},
    notes: {},
    disagreements: [],
    unconfirmed: [],
  };
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < limit && Date.now() < deadline) {
      const index = next++;
      const c = o.cases?.[index] ?? generate(o.seed, index);
      const { result, confirmed } = await checkCase(c, { allowList: o.allowList });
      stats.iterations++;
      stats.perCategory[c.category] = (stats.perCategory[c.category] ?? 0) + 1;
      stats.verdicts.builtin[result.builtin.verdict]++;
      stats.verdicts.node[result.node.verdict]++;
      const j = result.judgement;
      if (j.kind === 'allowed') stats.allowed[j.allowance!] = (stats.allowed[j.allowance!] ?? 0) + 1;
      if (j.note !== undefined) stats.notes[j.note] = (stats.notes[j.note] ?? 0) + 1;
      if (j.kind === 'disagree') (confirmed ? stats.disagreements : stats.unconfirmed).push(result);
      o.onResult?.(result, confirmed);
    }
  };
  await Promise.all(Array.from({ length: o.concurrency ?? DEFAULT_CONCURRENCY }, worker));
  stats.seconds = (Date.now() - started) / 1000;
  stats.disagreements.sort((a, b) => (a.case.index ?? 0) - (b.case.index ?? 0));
  return stats;
}

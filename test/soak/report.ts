// The soak's report: details first (checks, crashes with their suspects, failures, counts per
// behaviour, per pool and per fault), then one summary line with the seed and the command that
// replays it.
import type { Crash, SoakReport, TaskRecord } from './soak.ts';

const SUSPECTS_SHOWN = 12;
const FAILURES_PER_GROUP = 3;
const STDERR_LINES = 40;

function sorted(counts: Record<string, number>): string {
  return Object.entries(counts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([k, v]) => `${k} ${v}`).join(', ');
}

function total(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

/** The command that reruns this soak (or one task of it). */
export function replayCommand(r: SoakReport, task?: number): string {
  const extra = [
    r.options.only === undefined ? '' : ` --only ${r.options.only.join(',')}`,
    r.options.pools === undefined ? '' : ` --pools ${r.options.pools.join(',')}`,
    r.options.isolate === true ? ' --isolate' : r.options.concurrency === undefined ? '' : ` --concurrency ${r.options.concurrency}`,
    task === undefined ? (r.options.from === undefined ? '' : ` --from ${r.options.from}`) : ` --task ${task}`,
  ].join('');
  return `npm run soak -- --seconds ${r.seconds} --seed ${r.seed}${extra}`;
}

function crashLines(r: SoakReport, c: Crash, i: number): string[] {
  const out = c.kind === 'exit'
    ? [`crash ${i + 1} at ${c.at.toFixed(1)} s: exit code ${c.code}${c.signal === null ? '' : ` signal ${c.signal}`}: ${c.signature}`]
    : [`hang ${i + 1} at ${c.at.toFixed(1)} s: ${c.signature}; killed by the soak`];
  if (c.stderr.trim() !== '') out.push('  stderr:', ...c.stderr.split('\n').slice(0, STDERR_LINES).map((l) => `    ${l}`));
  out.push(`  suspects (running at the exit or ended within the window before it, newest first; ${c.suspects.length} in all):`);
  for (const s of c.suspects.slice(0, SUSPECTS_SHOWN)) out.push(`    #${s.index} ${s.label}${s.end === undefined ? ' [running]' : ''}`);
  const byBehaviour: Record<string, number> = {};
  for (const s of c.suspects) byBehaviour[`${s.behaviour}${s.pool === undefined ? '' : ` pool=${s.pool}`}`] = (byBehaviour[`${s.behaviour}${s.pool === undefined ? '' : ` pool=${s.pool}`}`] ?? 0) + 1;
  out.push(`  suspects by behaviour and pool: ${sorted(byBehaviour)}`);
  if (c.suspects.length > 0) out.push(`  replay one: ${replayCommand(r, c.suspects[0].index)}`);
  if (c.suspects.length > 3 && r.options.isolate !== true) out.push(`  to name the task: ${replayCommand(r)} --isolate --keep-going (one task at a time)`);
  return out;
}

function failureLines(failures: TaskRecord[]): string[] {
  const groups = new Map<string, TaskRecord[]>();
  for (const f of failures) {
    const k = `${f.behaviour}: ${f.outcome?.note}`;
    groups.set(k, [...(groups.get(k) ?? []), f]);
  }
  const out: string[] = [];
  for (const [k, list] of groups) {
    out.push(`  ${k} (${list.length}${failures.length >= 200 ? '+' : ''})`);
    for (const f of list.slice(0, FAILURES_PER_GROUP)) out.push(`    #${f.index} ${f.label}`, `      ${f.outcome?.detail ?? ''}`);
  }
  return out;
}

/** The one-line summary. */
export function summaryLine(r: SoakReport): string {
  const mb = (n: number): string => `${n >= 0 ? '+' : ''}${(n / 1048576).toFixed(1)} MB`;
  const figures = r.baseline !== undefined && r.after !== undefined
    ? `; fds ${r.after.fds} (baseline ${r.baseline.fds}), connections ${r.after.conns}, upstream sockets ${r.after.upstream}, RSS ${mb(r.after.rss - r.baseline.rss)}`
    : '';
  const failedChecks = r.checks.filter((c) => !c.ok).length;
  return `waygate soak ${r.ok ? 'PASS' : 'FAIL'}: seed ${r.seed}, ${r.seconds} s (chaos ${(r.ranMs / 1000).toFixed(1)} s), ${r.tasks} tasks, ${r.failedTasks} failed${r.lostTasks > 0 ? `, ${r.lostTasks} lost to crashes` : ''}, ${r.crashes.length} crashes/hangs, ${failedChecks} failed checks${figures}${r.harnessError === undefined ? '' : '; HARNESS ERROR'} — replay: ${replayCommand(r)}`;
}

/** The whole report as lines. */
export function reportLines(r: SoakReport): string[] {
  const out: string[] = [];
  if (r.harnessError !== undefined) out.push('harness error (the soak itself failed):', `  ${r.harnessError}`);
  out.push(`checks${r.listeners === undefined ? '' : ` (waygate listening on ${r.listeners})`}:`);
  for (const c of r.checks) out.push(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);
  r.crashes.forEach((c, i) => out.push(...crashLines(r, c, i)));
  if (r.failures.length > 0) out.push(`failed tasks (${r.failedTasks}):`, ...failureLines(r.failures));
  out.push('client behaviours (outcome counts):');
  for (const [name, notes] of Object.entries(r.byBehaviour).sort()) out.push(`  ${name} ${total(notes)}: ${sorted(notes)}`);
  out.push('pools (tasks aimed at them; waygate access-log statuses, or for L4 routes the terminations of its connection lines):');
  const pools = new Set([...Object.keys(r.tasksByPool), ...Object.keys(r.statusesByPool), ...Object.keys(r.terminations)]);
  for (const p of [...pools].sort()) {
    const l4 = r.terminations[p];
    out.push(`  ${p}: ${r.tasksByPool[p] ?? 0} tasks; ${l4 === undefined ? `statuses ${sorted(r.statusesByPool[p] ?? {}) || 'none'}` : `terminations ${sorted(l4)}`}`);
  }
  const byTermination: Record<string, number> = {};
  for (const ends of Object.values(r.terminations)) for (const [k, n] of Object.entries(ends)) byTermination[k] = (byTermination[k] ?? 0) + n;
  out.push(`L4 connections by termination (waygate's connection lines, ${total(byTermination)} in all): ${sorted(byTermination) || 'none'}`);
  out.push(`upstream faults served: ${sorted(r.faultHits) || 'none'}`);
  out.push(`upstream attempts failed on a refused HTTP/2 stream, by pool: ${sorted(r.refusals) || 'none'}`);
  if (r.peakRss !== undefined) out.push(`waygate peak RSS during the chaos: ${(r.peakRss / 1048576).toFixed(1)} MB`);
  out.push(`waygate log lines by level: ${sorted(r.logLevels) || 'none'}`);
  // A pool that must answer 200: its 5xx access lines and its upstream warnings say why.
  const okPools = new Set(r.okPools);
  const telling = Object.entries(r.samples).filter(([k]) => okPools.has(k.split(' ')[0]));
  if (telling.length > 0) out.push('5xx answers and upstream warnings of healthy pools (first of each):', ...telling.flatMap(([, lines]) => lines.map((l) => `  ${l.slice(0, 600)}`)));
  if (r.errorLines.length > 0) out.push('waygate error lines (first ones):', ...r.errorLines.slice(0, 8).map((l) => `  ${l.slice(0, 400)}`));
  out.push(summaryLine(r));
  return out;
}

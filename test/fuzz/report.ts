// Printing a fuzz run: the figures, and every disagreement as a case that replays (its bytes,
// its split points and pauses, the method, what the upstream did with the connection).
import { writeFileSync } from 'node:fs';
import { toJson } from './case.ts';
import { LATE_HEAD_REFUSAL } from './compare.ts';
import type { Result, Stats } from './fuzz.ts';
import type { Observation } from './observation.ts';

/** One observation in a line. */
export function describe(o: Observation): string {
  const head = o.status === undefined ? 'no head' : `${o.status} ${JSON.stringify(o.reason)} ${(o.raw?.length ?? 0) / 2} fields`;
  const parts = [o.verdict, o.error ?? '', head, `body ${o.body.length} B`];
  if (o.interim.length > 0) parts.push(`interim ${o.interim.map((i) => i.status).join(',')}`);
  if (o.trailers !== undefined && Object.keys(o.trailers).length > 0) parts.push(`trailers ${JSON.stringify(o.trailers).slice(0, 80)}`);
  if (o.reused !== undefined) parts.push(o.reused ? 'reused' : 'not reused');
  if (o.followUp !== undefined && o.followUp !== 'ok') parts.push(`follow-up ${o.followUp}`);
  return parts.filter((p) => p !== '').join(' | ');
}

/** A result in a few lines: what differs, the case, and both observations. */
export function describeResult(r: Result): string {
  const c = r.case;
  const where = c.seed === undefined ? '' : ` seed ${c.seed} index ${c.index}`;
  return [
    `  [${c.category}]${where} ${c.method}, ${c.end === 'close' ? 'then closed' : 'kept open'}: ${r.judgement.reason ?? r.judgement.kind}`,
    `    ${c.label.slice(0, 300)}`,
    `    bytes (${c.bytes.length}): ${JSON.stringify(c.bytes.toString('latin1').slice(0, 400))}${c.bytes.length > 400 ? '…' : ''}`,
    ...(c.pauses === undefined ? [] : [`    waygate's handler pauses on body chunks [${c.pauses.join(', ')}]`]),
    `    writes cut at [${c.splits.slice(0, 40).join(', ')}${c.splits.length > 40 ? ', …' : ''}], pauses [${c.gaps.slice(0, 40).join(', ')}${c.gaps.length > 40 ? ', …' : ''}]`,
    `    waygate: ${describe(r.builtin)}`,
    `    llhttp:  ${describe(r.node)}`,
  ].join('\n');
}

/** Writes the disagreements to `file` in the form `--case` reads back. */
export function writeCases(file: string, results: readonly Result[]): void {
  const list = results.map((r) => ({ reason: r.judgement.reason, case: toJson(r.case) }));
  writeFileSync(file, `${JSON.stringify({ disagreements: list }, null, 2)}\n`);
}

/** The run's figures as lines of text. */
export function summary(s: Stats): string {
  const rate = s.seconds > 0 ? (s.iterations / s.seconds).toFixed(1) : '-';
  const v = (r: Record<string, number>): string => `accepted ${r.accepted}, rejected ${r.rejected}, pending ${r.pending}`;
  const allowed = Object.entries(s.allowed).sort((a, b) => b[1] - a[1]);
  return [
    `seed ${s.seed}: ${s.iterations} cases in ${s.seconds.toFixed(1)} s (${rate}/s)`,
    `cases per category: ${Object.entries(s.perCategory).map(([k, n]) => `${k} ${n}`).join(', ')}`,
    `waygate (builtin): ${v(s.verdicts.builtin)}`,
    `node (llhttp):     ${v(s.verdicts.node)}`,
    `allowed differences: ${allowed.length === 0 ? 'none' : allowed.map(([k, n]) => `${k} ${n}`).join(', ')}`,
    `heads llhttp refused byte by byte that never ended (waygate refuses them at the response timeout): ${s.notes[LATE_HEAD_REFUSAL] ?? 0}`,
    `unconfirmed (not reproduced on rerun): ${s.unconfirmed.length}`,
    `disagreements: ${s.disagreements.length}`,
  ].join('\n');
}

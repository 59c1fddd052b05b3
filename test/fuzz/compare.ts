// The comparison of the two clients' observations of one case. When both accept, everything a
// proxy forwards or decides must be equal: status, reason, interim responses, raw header pairs,
// body bytes, trailers, and whether the connection is used again. When one refuses what the other
// accepts, the case must be on the allow-list (allow-list.ts) — deliberate strictness of waygate's,
// never the other way round.
import type { FuzzCase } from './case.ts';
import { ALLOW_LIST } from './allow-list.ts';
import type { Allowance } from './allow-list.ts';
import type { Observation } from './observation.ts';

/** The outcome of comparing one case. */
export interface Judgement {
  kind: 'agree' | 'allowed' | 'disagree';
  /** What differs, for a disagreement. */
  reason?: string;
  /** The allow-list entry that excused the difference. */
  allowance?: string;
  /** An agreement worth counting apart (see LATE_HEAD_REFUSAL). */
  note?: string;
}

/**
 * llhttp refuses a bad byte of a head as it arrives; waygate checks a head once its blank line is
 * there (one pass over a whole head, not one per read). A head that never ends is refused by
 * waygate at the response timeout instead: neither client accepted anything, so it counts as
 * agreement, apart.
 */
export const LATE_HEAD_REFUSAL = 'head refused late';

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
const show = (v: unknown): string => JSON.stringify(v)?.slice(0, 200) ?? 'undefined';

/** The first entry of `kind` that covers `c`. */
function allowed(c: FuzzCase, kind: Allowance['kind'], list: readonly Allowance[]): Allowance | undefined {
  return list.find((a) => a.kind === kind && a.applies(c));
}

/** Judges one case from what the builtin client (`b`) and Node (`n`) made of it. */
export function judge(c: FuzzCase, b: Observation, n: Observation, list: readonly Allowance[] = ALLOW_LIST): Judgement {
  if (b.violations.length > 0) return { kind: 'disagree', reason: `builtin client broke its contract: ${b.violations.join('; ')}` };
  // Whatever the case did, the pool must serve the next request (SPEC §4: misbehaviour costs one request).
  if (b.followUp !== 'ok') return { kind: 'disagree', reason: `builtin pool unusable after the case: follow-up ${b.followUp}` };
  const bRejected = b.verdict === 'rejected';
  const nRejected = n.verdict === 'rejected';
  if (bRejected && nRejected) return { kind: 'agree' };
  if (!bRejected && nRejected) {
    if (b.verdict === 'pending' && b.status === undefined && n.status === undefined) return { kind: 'agree', note: LATE_HEAD_REFUSAL };
    return { kind: 'disagree', reason: `waygate ${b.verdict === 'accepted' ? 'accepts' : 'is still reading'} what llhttp rejects (${n.error})` };
  }
  if (bRejected && !nRejected) {
    const a = allowed(c, 'reject', list);
    if (a !== undefined) return { kind: 'allowed', allowance: a.name };
    return { kind: 'disagree', reason: `waygate rejects (${b.error}) what llhttp ${n.verdict === 'accepted' ? 'accepts' : 'is still reading'}` };
  }
  // Neither rejected: both accepted, both still waiting, or one of each (a framing difference).
  if (b.verdict !== n.verdict) return { kind: 'disagree', reason: `framing: waygate ${b.verdict}, llhttp ${n.verdict}` };
  const fields: [string, unknown, unknown][] = [
    ['interim', b.interim, n.interim],
    ['status', b.status, n.status],
    ['reason', b.reason, n.reason],
    ['headers', b.raw, n.raw],
    ['body', b.body.toString('latin1'), n.body.toString('latin1')],
    ['trailers', b.trailers, n.trailers],
  ];
  for (const [name, x, y] of fields) {
    if (!same(x, y)) return { kind: 'disagree', reason: `${name} differ: waygate ${show(x)}, llhttp ${show(y)}` };
  }
  if (b.verdict === 'accepted' && b.reused !== n.reused) {
    // Only waygate closing where llhttp would reuse can be excused: the safe direction.
    const a = b.reused === false ? allowed(c, 'reuse', list) : undefined;
    if (a !== undefined) return { kind: 'allowed', allowance: a.name };
    return { kind: 'disagree', reason: `reuse: waygate ${b.reused ? 'reuses' : 'closes'} the connection, llhttp ${n.reused ? 'reuses' : 'closes'} it` };
  }
  return { kind: 'agree' };
}

// What a driver saw of one case, in the same shape for both clients, and the two waits every
// driver makes the same way: for the client to have read everything the upstream sent, and for a
// follow-up request.
import type { FuzzCase } from './case.ts';

/** accepted: a whole response; rejected: an error; pending: still waiting for bytes that never came. */
export type Verdict = 'accepted' | 'rejected' | 'pending';

/** One interim (1xx) response. */
export interface Interim {
  status: number;
  raw: string[];
}

/** What one client made of one case. */
export interface Observation {
  verdict: Verdict;
  /** The error's code and message, when rejected. */
  error?: string;
  interim: Interim[];
  /** The final response's head, once it arrived (also when rejected or pending later). */
  status?: number;
  reason?: string;
  raw?: string[];
  body: Buffer;
  /** Trailers by lower-case name, values of a repeated name joined with ", " (when accepted). */
  trailers?: Record<string, string>;
  /** When accepted: the follow-up request went over the case's connection. */
  reused?: boolean;
  /** How the follow-up request went: "ok", or what went wrong. */
  followUp?: string;
  /** Contract rules (upstream/client.ts) the client broke. */
  violations: string[];
}

/** How long a client gets, once the upstream has sent everything, to act on it (ms). */
export const SETTLE_MS = 10;
/** How long a client may take to close its side after the upstream's FIN (ms). */
export const CLOSE_WAIT_MS = 2000;
/** How long a follow-up request may take before it counts as hung (ms). */
export const FOLLOW_UP_TIMEOUT_MS = 3000;

/**
 * Lets a client act on every byte already in its socket: both clients run on this event loop,
 * and bytes the upstream's write callback saw leave are in the kernel's loopback buffer, read in
 * the next poll phase. Three turns of the loop and a short timer cover that with room to spare,
 * the same for both clients (a timer cannot be replaced by an event here: "the client is waiting
 * for more" has none).
 */
export async function settle(ms: number = SETTLE_MS): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
  await new Promise((r) => setTimeout(r, ms));
}

/**
 * Waits until the client has read everything the upstream sent: in 'close' mode until it closed
 * its side in answer to the FIN (an event, so a busy machine cannot make a client look as if it
 * kept a closed connection), then `settle`.
 */
export async function caughtUp(c: FuzzCase, up: { written: Promise<void>; caseClosed: Promise<void> }, settleMs?: number): Promise<void> {
  await up.written;
  if (c.end === 'close') await within(up.caseClosed, CLOSE_WAIT_MS, undefined);
  await settle(settleMs);
}

/** Resolves with `p`'s value, or with `fallback` after `ms`. */
export function within<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<T>((r) => {
    timer = setTimeout(() => r(fallback), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Trailers from a flat [name, value, …] list, in the builtin client's form. */
export function trailerRecord(raw: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    const prev = out[name];
    out[name] = prev === undefined ? raw[i + 1] : `${prev}, ${raw[i + 1]}`;
  }
  return out;
}

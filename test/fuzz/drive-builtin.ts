// The builtin client's driver: reads a case through H1Pool.request (waygate's HTTP/1.1 client,
// src/upstream/h1/), with the case's method, then sends a follow-up request through the same pool
// to see whether the connection is used again.
import type { UpstreamController, UpstreamHandler } from '../../src/upstream/client.ts';
import { H1Pool } from '../../src/upstream/h1/pool.ts';
import type { FuzzCase } from './case.ts';
import { FOLLOW_UP_TIMEOUT_MS, caughtUp, within } from './observation.ts';
import type { Observation } from './observation.ts';
import { FOLLOW_UP_BODY, serveCase } from './upstream.ts';

/** The pool's keep-alive timeout: long enough that only the response decides on reuse. */
export const KEEP_ALIVE_MS = 4000;

interface Run {
  obs: Observation;
  controller: UpstreamController | undefined;
  /** onEnd or onError was called. */
  ended: boolean;
  done: Promise<void>;
}

/**
 * Sends one request and records every call the handler gets, with the contract's ordering rules;
 * pauses on the body chunks listed in `pauses` (-1: in onHeaders), resuming a turn later.
 */
function send(pool: H1Pool, method: string, path: string, pauses: readonly number[] = [], replayable = false): Run {
  const obs: Observation = { verdict: 'pending', interim: [], body: Buffer.alloc(0), violations: [] };
  const chunks: Buffer[] = [];
  let paused = false;
  let finish: () => void = () => {};
  const run: Run = { obs, controller: undefined, ended: false, done: new Promise<void>((r) => (finish = r)) };
  const pauseOnce = (): void => {
    const ctl = run.controller;
    if (ctl === undefined || paused) return;
    paused = true;
    ctl.pause();
    setImmediate(() => {
      paused = false;
      ctl.resume();
    });
  };
  const check = (name: string): void => {
    if (run.ended) obs.violations.push(`${name} after the end`);
  };
  const handler: UpstreamHandler = {
    onStart: (ctl) => {
      if (run.controller !== undefined) obs.violations.push('onStart twice');
      run.controller = ctl;
    },
    onReplay: () => {
      if (!replayable) obs.violations.push('onReplay on a request not marked replayable');
    },
    onBodySent: () => {},
    onInterim: (status, raw) => {
      check('onInterim');
      if (obs.status !== undefined) obs.violations.push('onInterim after onHeaders');
      obs.interim.push({ status, raw: [...raw] });
    },
    onHeaders: (status, reason, raw) => {
      check('onHeaders');
      if (obs.status !== undefined) obs.violations.push('onHeaders twice');
      obs.status = status;
      obs.reason = reason;
      obs.raw = [...raw];
      if (pauses.includes(-1)) pauseOnce();
    },
    onData: (chunk, last) => {
      check('onData');
      if (obs.status === undefined) obs.violations.push('onData before onHeaders');
      if (paused) obs.violations.push('onData while paused');
      chunks.push(Buffer.from(chunk));
      obs.body = Buffer.concat(chunks);
      if (!last && pauses.includes(chunks.length - 1)) pauseOnce();
    },
    onEnd: (trailers) => {
      check('onEnd');
      if (obs.status === undefined) obs.violations.push('onEnd before onHeaders');
      run.ended = true;
      obs.verdict = 'accepted';
      obs.trailers = { ...trailers };
      finish();
    },
    onError: (err) => {
      check('onError');
      run.ended = true;
      obs.verdict = 'rejected';
      obs.error = `${(err as { code?: string }).code ?? 'ERR'}: ${err.message}`;
      finish();
    },
  };
  // No timeouts: the driver decides when a client is waiting for bytes that will never come.
  pool.request({ method, path, headers: ['host', 'fuzz.test'], body: null, responseTimeout: 0, idleTimeout: 0, replayable }, handler);
  return run;
}

/** Reads `c` with waygate's builtin client. */
export async function driveBuiltin(c: FuzzCase, settleMs?: number): Promise<Observation> {
  const up = await serveCase(c);
  const pool = new H1Pool({ host: '127.0.0.1', port: up.port, connectTimeout: 2000, keepAliveTimeout: KEEP_ALIVE_MS });
  try {
    const first = send(pool, c.method, '/case', c.pauses);
    await caughtUp(c, up, settleMs);
    const obs = first.obs;
    if (!first.ended) {
      first.controller?.abort(new Error('pending: the upstream sent everything'));
      await first.done;
      obs.verdict = 'pending';
      obs.error = undefined;
    }
    // Replayable, as the forwarder marks a GET with a retry left: a kept connection the upstream
    // closes as the follow-up goes out is the stale-connection race, which the pool handles.
    const follow = send(pool, 'GET', '/follow-up', [], true);
    const ok = await within(follow.done.then(() => true), FOLLOW_UP_TIMEOUT_MS, false);
    const f = follow.obs;
    if (!ok) follow.controller?.abort(new Error('follow-up hung'));
    obs.followUp = !ok ? 'hung' : f.verdict === 'accepted' && f.status === 200 && f.body.toString('latin1') === FOLLOW_UP_BODY ? 'ok' : f.error ?? `status ${f.status} body ${JSON.stringify(f.body.toString('latin1').slice(0, 40))}`;
    obs.violations.push(...f.violations.map((v) => `follow-up: ${v}`));
    if (obs.verdict === 'accepted') obs.reused = up.requestsOnCase() > 1;
    return obs;
  } finally {
    await pool.close();
    await up.close();
  }
}

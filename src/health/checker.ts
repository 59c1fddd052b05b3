// Active health checking: one probe loop per target (probe, await, schedule the next), each loop
// feeding a HealthState and reporting only flips (ARCHITECTURE rule 4). Collaborators are injected
// (rule 9): the checker never learns what a pool, a metric or a logger is; the caller turns flips
// into Target.setHealthy(), log lines and gauges. `type` picks the probe: an HTTP GET (probe.ts)
// or a connect / send-expect check of a tcp:// or udp:// target (probe-l4.ts).
import { probe } from './probe.ts';
import { probeL4 } from './probe-l4.ts';
import type { ProbeResult, ProbeTls, StatusRange } from './probe.ts';
import { HealthState } from './state.ts';

/** A target's probe settings (the `healthCheck:` block of its pool, durations in ms). */
export interface ProbeConfig {
  /** http: GET `path`; connect: a TCP connection opens; send-expect: `send`, then the reply contains `expect` (SPEC §7). */
  type: 'http' | 'connect' | 'send-expect';
  path: string;
  /** send-expect: bytes written after connecting ("" sends nothing: a server that speaks first). */
  send: string;
  /** send-expect: text the reply must contain. */
  expect: string | undefined;
  /** The pool's `proxyProtocol`: a probe's connection starts with a LOCAL header (v2) or UNKNOWN (v1). */
  proxyProtocol: 'off' | 'v1' | 'v2';
  interval: number;
  timeout: number;
  unhealthyAfter: number;
  healthyAfter: number;
  expectStatus: StatusRange[];
  tls?: ProbeTls;
}

/** What the checker needs of a target. */
export interface CheckedTarget {
  /** scheme://host:port to probe. */
  readonly origin: string;
}

/** What status() returns for a checked target. */
export interface CheckStatus {
  healthy: boolean;
  /** Epoch ms when the last probe settled, null before the first. */
  lastCheck: number | null;
  /** The last probe's reason ("status 200", "connect ECONNREFUSED"), null before the first. */
  lastResult: string | null;
}

/** Optional hooks of a HealthChecker. */
export interface HealthCheckerOptions<T> {
  /** Source of jitter in [0, 1); Math.random by default. */
  random?: () => number;
  /** Called with every probe result, flip or not (for lastCheck bookkeeping, metrics, tests). */
  onProbe?: (target: T, result: ProbeResult) => void;
}

// The first probe of a new target waits a random part of this window (capped at one interval), so
// replicas started together, or the targets of one pool, do not probe in lockstep; small, because
// at start the gateway wants to learn about dead targets quickly.
const FIRST_PROBE_WINDOW_MS = 250;
// Later probes come every interval ±10%, which spreads probes further apart over time (HAProxy
// `spread-checks`, Envoy `interval_jitter_percent`).
const INTERVAL_JITTER = 0.1;

/** Returns the delay before a new target's first probe: random × min(interval, 250 ms). */
export function firstProbeDelay(interval: number, random: () => number): number {
  return Math.min(interval, FIRST_PROBE_WINDOW_MS) * clamp01(random());
}

/** Returns the delay between two probe starts: interval ±10%, chosen by `random`. */
export function nextProbeDelay(interval: number, random: () => number): number {
  return interval * (1 - INTERVAL_JITTER + 2 * INTERVAL_JITTER * clamp01(random()));
}

interface Loop<T> {
  readonly target: T;
  config: ProbeConfig;
  readonly state: HealthState;
  /** False once the loop was stopped or its target dropped by sync(); it then reports nothing. */
  active: boolean;
  timer: NodeJS.Timeout | undefined;
  /** When `timer` fires (epoch ms), to reschedule it when the interval changes. */
  dueAt: number;
  /** The probe in flight, at most one per target. */
  inFlight: Promise<ProbeResult> | undefined;
  abort: AbortController | undefined;
  lastCheck: number | null;
  lastResult: string | null;
}

/** Probes targets on timers and reports health flips through `onChange`. */
export class HealthChecker<T extends CheckedTarget> {
  #onChange: (target: T, healthy: boolean, reason: string) => void;
  #random: () => number;
  #onProbe: ((target: T, result: ProbeResult) => void) | undefined;
  #loops = new Map<T, Loop<T>>();
  // Probes of loops that were dropped, still settling: a target dropped and re-added at once must
  // not get a second probe in flight, and stop() must wait for these too.
  #retiring = new Map<T, Promise<ProbeResult>>();

  /**
   * `onChange` is called only when a target's state flips, with the reason of the probe that caused
   * it. Callbacks run after the next probe is scheduled; a callback that throws is a bug of the
   * caller and surfaces as an unhandled rejection rather than being swallowed.
   */
  constructor(onChange: (target: T, healthy: boolean, reason: string) => void, options: HealthCheckerOptions<T> = {}) {
    this.#onChange = onChange;
    this.#random = options.random ?? Math.random;
    this.#onProbe = options.onProbe;
  }

  /** Makes the probed set exactly `entries`: starts loops for new targets, applies changed configs to running ones (keeping their HealthState), stops loops for targets no longer listed. */
  sync(entries: Iterable<{ target: T; config: ProbeConfig; healthy?: boolean }>): void {
    const wanted = new Map<T, ProbeConfig>();
    const initial = new Map<T, boolean>();
    for (const { target, config, healthy } of entries) {
      wanted.set(target, config);
      if (healthy !== undefined) initial.set(target, healthy);
    }

    for (const [target, loop] of this.#loops) {
      if (!wanted.has(target)) this.#drop(loop);
    }
    for (const [target, config] of wanted) {
      const loop = this.#loops.get(target);
      if (loop === undefined) this.#start(target, config, initial.get(target) ?? true);
      else this.#update(loop, config);
    }
  }

  /** Returns the probe state of a target: healthy, last check time (epoch ms) and last result reason; undefined when not checked. */
  status(target: T): CheckStatus | undefined {
    const loop = this.#loops.get(target);
    if (loop === undefined) return undefined;
    return { healthy: loop.state.healthy, lastCheck: loop.lastCheck, lastResult: loop.lastResult };
  }

  /** Stops every loop and waits for in-flight probes to settle (they are aborted, so this is prompt). */
  async stop(): Promise<void> {
    for (const loop of this.#loops.values()) this.#drop(loop);
    await Promise.all(this.#retiring.values());
  }

  #start(target: T, config: ProbeConfig, healthy: boolean): void {
    const loop: Loop<T> = {
      target,
      config,
      // Targets start healthy (Caddy, HAProxy): a fresh gateway serves at once instead of
      // answering 503 until enough probes have passed.
      // A target discovered later starts unhealthy and joins after healthyAfter passing probes.
      state: new HealthState(config, healthy),
      active: true,
      timer: undefined,
      dueAt: 0,
      inFlight: undefined,
      abort: undefined,
      lastCheck: null,
      lastResult: null,
    };
    this.#loops.set(target, loop);
    this.#schedule(loop, firstProbeDelay(config.interval, this.#random));
  }

  #update(loop: Loop<T>, config: ProbeConfig): void {
    const old = loop.config;
    loop.config = config;
    loop.state.setThresholds(config);
    // Type, path, send/expect, PROXY header, timeout, statuses and TLS are read at the next
    // probe. A pending wait computed from the old interval is shortened when the new one is
    // shorter, so a reload from 1m to 5s does not wait out the minute; a longer interval takes
    // effect after the pending probe.
    if (config.interval < old.interval && loop.timer !== undefined) {
      const delay = nextProbeDelay(config.interval, this.#random);
      if (Date.now() + delay < loop.dueAt) {
        clearTimeout(loop.timer);
        this.#schedule(loop, delay);
      }
    }
  }

  #drop(loop: Loop<T>): void {
    loop.active = false;
    clearTimeout(loop.timer);
    loop.timer = undefined;
    this.#loops.delete(loop.target);
    if (loop.inFlight !== undefined) {
      const settling = loop.inFlight;
      this.#retiring.set(loop.target, settling);
      void settling.then(() => {
        if (this.#retiring.get(loop.target) === settling) this.#retiring.delete(loop.target);
      });
      loop.abort?.abort();
    }
  }

  #schedule(loop: Loop<T>, delay: number): void {
    loop.dueAt = Date.now() + delay;
    loop.timer = setTimeout(() => {
      loop.timer = undefined;
      void this.#run(loop);
    }, delay);
    // A checker alone never keeps the process alive.
    loop.timer.unref();
  }

  async #run(loop: Loop<T>): Promise<void> {
    const previous = this.#retiring.get(loop.target);
    if (previous !== undefined) await previous;
    if (!loop.active) return;

    const config = loop.config;
    const started = Date.now();
    const abort = new AbortController();
    const pending = probeOnce(loop.target.origin, config, abort.signal);
    loop.abort = abort;
    loop.inFlight = pending;
    const result = await pending;
    loop.abort = undefined;
    loop.inFlight = undefined;
    // A dropped target's last result is stale: its config (or the whole checker) is gone.
    if (!loop.active) return;

    loop.lastCheck = Date.now();
    loop.lastResult = result.reason;
    const flipped = loop.state.observe(result.ok);
    // Probes are spaced start to start, so a slow target is not probed less often than configured;
    // a probe slower than the interval is followed at once, still never two at a time.
    const delay = nextProbeDelay(loop.config.interval, this.#random) - (loop.lastCheck - started);
    this.#schedule(loop, Math.max(0, delay));

    this.#onProbe?.(loop.target, result);
    if (flipped) this.#onChange(loop.target, loop.state.healthy, flipReason(loop.state.streak, result));
  }
}

// One probe of the kind the config names: an HTTP GET, or a TCP/UDP check of an L4 target.
function probeOnce(origin: string, config: ProbeConfig, signal: AbortSignal): Promise<ProbeResult> {
  const type = config.type;
  if (type === 'http') return probe(origin, config, config.tls, signal);
  return probeL4(origin, { type, send: config.send, expect: config.expect, proxyProtocol: config.proxyProtocol, timeout: config.timeout }, signal);
}

// "3 consecutive failures: status 503 not in 200-399" / "2 consecutive successes": the count says
// why the state machine flipped, the probe reason what the target did.
function flipReason(streak: number, result: ProbeResult): string {
  if (result.ok) return `${streak} consecutive success${streak === 1 ? '' : 'es'}`;
  return `${streak} consecutive failure${streak === 1 ? '' : 's'}: ${result.reason}`;
}

function clamp01(x: number): number {
  // A random source returning exactly 1 (or junk) must not push a delay outside its window.
  return Number.isFinite(x) ? Math.min(Math.max(x, 0), 1) : 0;
}

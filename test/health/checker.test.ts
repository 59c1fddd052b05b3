// HealthChecker against real upstream servers on 127.0.0.1 port 0. Flips are awaited through the
// onChange callback and counted in probes the server received, never in wall-clock time; the only
// timing assertions are loose lower bounds.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { firstProbeDelay, HealthChecker, nextProbeDelay } from '../../src/health/checker.ts';
import type { ProbeConfig } from '../../src/health/checker.ts';
import type { ProbeResult } from '../../src/health/probe.ts';
import { closedPort } from '../refusing-port.ts';

interface Tgt {
  readonly origin: string;
  readonly name: string;
}

/** A real upstream that numbers its requests (1-based) and tracks how many are in flight at once. */
interface ProbeServer {
  origin: string;
  hits: { url: string; at: number }[];
  inFlight: number;
  maxInFlight: number;
  open: Set<Socket>;
  close(): Promise<void>;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

async function probeServer(respond: (n: number, req: IncomingMessage, res: ServerResponse) => void): Promise<ProbeServer> {
  const server = createServer();
  const s: ProbeServer = {
    origin: '',
    hits: [],
    inFlight: 0,
    maxInFlight: 0,
    open: new Set(),
    close: () => new Promise<void>((r) => {
      for (const sock of s.open) sock.destroy();
      server.close(() => r());
    }),
  };
  server.on('connection', (sock: Socket) => {
    s.open.add(sock);
    sock.on('close', () => s.open.delete(sock));
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    s.hits.push({ url: req.url!, at: Date.now() });
    s.inFlight++;
    s.maxInFlight = Math.max(s.maxInFlight, s.inFlight);
    res.on('close', () => s.inFlight--);
    respond(s.hits.length, req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  s.origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  cleanups.push(() => s.close());
  return s;
}

const answer = (status: number) => (_n: number, _req: IncomingMessage, res: ServerResponse): void => {
  res.statusCode = status;
  res.end();
};


/**
 * Resolves when `cond()` holds, re-checked on every `poke()` and at least every 20 ms (for
 * conditions nobody pokes, like a server seeing a socket close); rejects after `ms` naming `what`.
 */
class Signal {
  #waiters: (() => void)[] = [];
  poke(): void {
    for (const w of this.#waiters.splice(0)) w();
  }
  async until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 20));
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}

/** A checker whose onChange and onProbe calls are recorded and awaitable. */
function recordingChecker(random: () => number = () => 0.5) {
  const changes: { target: Tgt; healthy: boolean; reason: string; at: number; hits: number }[] = [];
  const probes: { target: Tgt; result: ProbeResult }[] = [];
  const signal = new Signal();
  // Hit counts are read inside the callback: that is the exact moment of the flip.
  const hitsOf = new Map<Tgt, () => number>();
  const checker = new HealthChecker<Tgt>(
    (target, healthy, reason) => {
      changes.push({ target, healthy, reason, at: Date.now(), hits: hitsOf.get(target)?.() ?? -1 });
      signal.poke();
    },
    {
      random,
      onProbe: (target, result) => {
        probes.push({ target, result });
        signal.poke();
      },
    },
  );
  cleanups.push(() => checker.stop());
  const probesOf = (t: Tgt): number => probes.filter((p) => p.target === t).length;
  const changesOf = (t: Tgt) => changes.filter((c) => c.target === t);
  return { checker, changes, probes, signal, hitsOf, probesOf, changesOf };
}

const config = (over: Partial<ProbeConfig> = {}): ProbeConfig => ({
  type: 'http',
  path: '/health',
  send: '',
  expect: undefined,
  proxyProtocol: 'off',
  interval: 50,
  timeout: 2000,
  unhealthyAfter: 3,
  healthyAfter: 2,
  expectStatus: [[200, 399]],
  ...over,
});

describe('HealthChecker: flips', () => {
  test('evicts after unhealthyAfter consecutive failures and readmits after healthyAfter successes', async () => {
    // Requests 1-2 succeed, 3-7 fail, 8 on succeed: the flips must come at requests 5 and 9.
    const up = await probeServer((n, _req, res) => {
      res.statusCode = n <= 2 || n >= 8 ? 200 : 503;
      res.end();
    });
    const interval = 100;
    const target: Tgt = { origin: up.origin, name: 'a' };
    const r = recordingChecker();
    r.hitsOf.set(target, () => up.hits.length);
    r.checker.sync([{ target, config: config({ interval, unhealthyAfter: 3, healthyAfter: 2 }) }]);
    // Targets start healthy, before any probe.
    expect(r.checker.status(target)).toEqual({ healthy: true, lastCheck: null, lastResult: null });

    await r.signal.until(() => r.changes.length >= 2, 'two flips');
    const [down, up2] = r.changes;
    expect(down).toMatchObject({ target, healthy: false, reason: '3 consecutive failures: status 503 not in 200-399', hits: 5 });
    expect(up2).toMatchObject({ target, healthy: true, reason: '2 consecutive successes', hits: 9 });
    // Loose lower bounds: the server went bad after request 2 and good after request 7; the
    // failures (successes) needed were spaced by the interval, not fired back to back.
    expect(down!.at - up.hits[1]!.at).toBeGreaterThanOrEqual((3 - 1) * interval * 0.9);
    expect(up2!.at - up.hits[6]!.at).toBeGreaterThanOrEqual((2 - 1) * interval * 0.9);
    // Every probe but the flipping ones was reported to onProbe only.
    expect(r.probes.length).toBeGreaterThanOrEqual(9);
    expect(r.probes.slice(0, 9).map((p) => p.result.ok)).toEqual([true, true, false, false, false, false, false, true, true]);

    const st = r.checker.status(target)!;
    expect(st.healthy).toBe(true);
    expect(st.lastResult).toBe('status 200');
    expect(st.lastCheck).toBeGreaterThanOrEqual(up2!.at - 1000);
  });

  test('an unreachable target flips with the connect error in the reason', async () => {
    const target: Tgt = { origin: `http://127.0.0.1:${await closedPort()}`, name: 'gone' };
    const r = recordingChecker();
    r.checker.sync([{ target, config: config({ unhealthyAfter: 1 }) }]);
    await r.signal.until(() => r.changes.length >= 1, 'the flip');
    expect(r.changes[0]).toMatchObject({ healthy: false, reason: '1 consecutive failure: connect ECONNREFUSED' });
    expect(r.checker.status(target)).toMatchObject({ healthy: false, lastResult: 'connect ECONNREFUSED' });
    // Further failures are not flips.
    await r.signal.until(() => r.probes.length >= 4, 'more probes');
    expect(r.changes).toHaveLength(1);
  });

  test('a healthy target produces probes but no onChange call', async () => {
    const up = await probeServer(answer(204));
    const target: Tgt = { origin: up.origin, name: 'fine' };
    const r = recordingChecker();
    r.checker.sync([{ target, config: config({ unhealthyAfter: 1, healthyAfter: 1 }) }]);
    await r.signal.until(() => r.probes.length >= 4, 'four probes');
    expect(r.probes.every((p) => p.result.ok)).toBe(true);
    expect(r.changes).toEqual([]);
  });
});

describe('HealthChecker: scheduling', () => {
  test('a slow target never has more than one probe in flight', async () => {
    // Each answer takes 6 intervals: a timer-driven checker would stack up probes.
    const up = await probeServer((_n, _req, res) => {
      const t = setTimeout(() => res.end('slow'), 300);
      res.on('close', () => clearTimeout(t));
    });
    const target: Tgt = { origin: up.origin, name: 'slow' };
    const r = recordingChecker();
    r.checker.sync([{ target, config: config({ interval: 50, timeout: 5000 }) }]);
    await r.signal.until(() => r.probes.length >= 4, 'four slow probes');
    expect(up.maxInFlight).toBe(1);
    expect(r.probes.every((p) => p.result.ok)).toBe(true);
  });

  test('the first probe comes soon after start, not one interval later', async () => {
    const up = await probeServer(answer(200));
    const target: Tgt = { origin: up.origin, name: 'new' };
    // The largest jitter the random source can ask for, with an interval far beyond the wait.
    const r = recordingChecker(() => 0.999);
    r.checker.sync([{ target, config: config({ interval: 60_000 }) }]);
    await r.signal.until(() => r.probes.length >= 1, 'the first probe', 10_000);
    expect(up.hits).toHaveLength(1);
  });

  test('a shorter interval applied by sync() cuts the pending wait', async () => {
    const up = await probeServer(answer(200));
    const target: Tgt = { origin: up.origin, name: 't' };
    const r = recordingChecker(() => 0);
    r.checker.sync([{ target, config: config({ interval: 60_000 }) }]);
    await r.signal.until(() => r.probes.length >= 1, 'the first probe');
    // The next probe is now ~54 s away; the new interval must not wait for it.
    r.checker.sync([{ target, config: config({ interval: 50 }) }]);
    await r.signal.until(() => r.probes.length >= 3, 'probes at the new interval', 10_000);
    expect(up.hits.length).toBeGreaterThanOrEqual(3);
  });

  test('jitter: the first probe waits at most min(interval, 250 ms); later ones interval ±10%', () => {
    expect(firstProbeDelay(5000, () => 0)).toBe(0);
    expect(firstProbeDelay(5000, () => 1)).toBe(250);
    expect(firstProbeDelay(100, () => 1)).toBe(100);
    expect(firstProbeDelay(5000, () => 0.5)).toBe(125);
    expect(nextProbeDelay(1000, () => 0)).toBeCloseTo(900);
    expect(nextProbeDelay(1000, () => 0.5)).toBeCloseTo(1000);
    expect(nextProbeDelay(1000, () => 1)).toBeCloseTo(1100);
    // A broken random source cannot push a delay out of its window.
    expect(nextProbeDelay(1000, () => 7)).toBeCloseTo(1100);
    expect(nextProbeDelay(1000, () => Number.NaN)).toBeCloseTo(900);
    expect(firstProbeDelay(5000, () => -3)).toBe(0);
  });
});

describe('HealthChecker: sync', () => {
  test('stops probing removed targets and keeps the state of retained ones, applying their new config', async () => {
    const a = await probeServer(answer(200));
    // B is healthy only on /v2, so the probe that uses the new path is identifiable.
    const b = await probeServer((_n, req, res) => {
      res.statusCode = req.url === '/v2' ? 200 : 503;
      res.end();
    });
    const ta: Tgt = { origin: a.origin, name: 'a' };
    const tb: Tgt = { origin: b.origin, name: 'b' };
    const r = recordingChecker();
    const v2Hits = (): number => b.hits.filter((h) => h.url === '/v2').length;
    r.hitsOf.set(tb, v2Hits);
    r.checker.sync([
      { target: ta, config: config() },
      { target: tb, config: config({ unhealthyAfter: 2, healthyAfter: 3 }) },
    ]);
    await r.signal.until(() => r.changesOf(tb).length === 1, 'b to be evicted');
    expect(r.changesOf(tb)[0]).toMatchObject({ healthy: false, reason: '2 consecutive failures: status 503 not in 200-399' });
    expect(r.checker.status(ta)?.healthy).toBe(true);

    // Same target object for b, a new config; a is dropped.
    r.checker.sync([{ target: tb, config: config({ path: '/v2', unhealthyAfter: 2, healthyAfter: 1 }) }]);
    expect(r.checker.status(ta)).toBeUndefined();
    // Retained: still unhealthy (not restarted as a new, healthy target).
    expect(r.checker.status(tb)?.healthy).toBe(false);

    // The first probe on the new path is one success, which is now enough to readmit b.
    await r.signal.until(() => r.changesOf(tb).length === 2, 'b to be readmitted');
    expect(r.changesOf(tb)[1]).toMatchObject({ healthy: true, reason: '1 consecutive success', hits: 1 });

    // a gets nothing more: by the time b has had 3 more probes, an aborted in-flight probe of a
    // has long landed; after 3 further probes of b, a's count must not have moved.
    let mark = r.probesOf(tb);
    await r.signal.until(() => r.probesOf(tb) >= mark + 3, 'b to keep being probed');
    const aHits = a.hits.length;
    mark = r.probesOf(tb);
    await r.signal.until(() => r.probesOf(tb) >= mark + 3, 'b to keep being probed');
    expect(a.hits.length).toBe(aHits);
    expect(r.changesOf(ta)).toEqual([]);
    expect(r.changesOf(tb)).toHaveLength(2);
  });

  test('status() is undefined for a target never checked', () => {
    const checker = new HealthChecker<Tgt>(() => {});
    expect(checker.status({ origin: 'http://127.0.0.1:1', name: 'x' })).toBeUndefined();
  });

  test('targets are keyed by identity: an equal but distinct object is a new target', async () => {
    const up = await probeServer(answer(503));
    const first: Tgt = { origin: up.origin, name: 't' };
    const r = recordingChecker();
    r.checker.sync([{ target: first, config: config({ unhealthyAfter: 1 }) }]);
    await r.signal.until(() => r.changes.length === 1, 'the first object to be evicted');
    const second: Tgt = { ...first };
    r.checker.sync([{ target: second, config: config({ unhealthyAfter: 1 }) }]);
    expect(r.checker.status(first)).toBeUndefined();
    expect(r.checker.status(second)).toEqual({ healthy: true, lastCheck: null, lastResult: null });
    await r.signal.until(() => r.changesOf(second).length === 1, 'the second object to be evicted');
  });
});

describe('HealthChecker: stop', () => {
  test('stop() aborts in-flight probes, clears every timer and reports nothing afterwards', async () => {
    const hang = await probeServer(() => {});
    const ok = await probeServer(answer(200));
    const th: Tgt = { origin: hang.origin, name: 'hang' };
    const to: Tgt = { origin: ok.origin, name: 'ok' };

    // Watch the global timers the checker arms (unref()ed timers are invisible to
    // process.getActiveResourcesInfo()).
    const live = new Set<unknown>();
    const realSet = globalThis.setTimeout;
    const realClear = globalThis.clearTimeout;
    const setSpy = vi.spyOn(globalThis, 'setTimeout').mockImplementation(((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
      const t = realSet(() => {
        live.delete(t);
        fn(...args);
      }, ms);
      live.add(t);
      return t;
    }) as unknown as typeof setTimeout);
    const clearSpy = vi.spyOn(globalThis, 'clearTimeout').mockImplementation((t) => {
      live.delete(t);
      realClear(t);
    });
    cleanups.push(async () => {
      setSpy.mockRestore();
      clearSpy.mockRestore();
    });

    const r = recordingChecker();
    r.checker.sync([
      { target: th, config: config({ timeout: 60_000 }) },
      { target: to, config: config({ unhealthyAfter: 1 }) },
    ]);
    await r.signal.until(() => hang.hits.length === 1 && r.probesOf(to) >= 2, 'a hanging probe and two good ones');
    const started = Date.now();
    await r.checker.stop();
    // Loose: the hanging probe was aborted, not waited out for its 60 s timeout.
    expect(Date.now() - started).toBeLessThan(30_000);
    setSpy.mockRestore();
    clearSpy.mockRestore();
    expect(live.size).toBe(0);
    expect(r.checker.status(th)).toBeUndefined();
    expect(r.checker.status(to)).toBeUndefined();
    await r.signal.until(() => hang.open.size === 0 && ok.open.size === 0, 'probe connections to close');

    // Nothing after stop(): another checker serves as the clock for "a while".
    const counts = { hang: hang.hits.length, ok: ok.hits.length, probes: r.probes.length, changes: r.changes.length };
    const clock = await probeServer(answer(200));
    const c = recordingChecker();
    c.checker.sync([{ target: { origin: clock.origin, name: 'clock' }, config: config() }]);
    await c.signal.until(() => c.probes.length >= 4, 'the clock to tick');
    expect({ hang: hang.hits.length, ok: ok.hits.length, probes: r.probes.length, changes: r.changes.length }).toEqual(counts);
  });

  test('a running checker does not keep the process alive', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'waygate-health-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const script = join(dir, 'checker-alone.mts');
    const checkerUrl = pathToFileURL(join(import.meta.dirname, '../../src/health/checker.ts')).href;
    // The target refuses connections. A ref()ed 300 ms timer keeps the process up while the
    // checker probes; after it, only the checker's timers remain and the process must exit.
    await writeFile(script, [
      `import { HealthChecker } from ${JSON.stringify(checkerUrl)};`,
      `const checker = new HealthChecker(() => {}, { onProbe: (_t, r) => console.log('probed', r.reason) });`,
      `checker.sync([{ target: { origin: 'http://127.0.0.1:${await closedPort()}' }, config: { type: 'http', path: '/', send: '', proxyProtocol: 'off', interval: 50, timeout: 1000, unhealthyAfter: 3, healthyAfter: 2, expectStatus: [[200, 399]] } }]);`,
      `setTimeout(() => console.log('done'), 300);`,
    ].join('\n'));
    const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (out += d));
    const code = await new Promise<number | string>((resolve) => {
      const t = setTimeout(() => {
        child.kill('SIGKILL');
        resolve('still running after 20 s');
      }, 20_000);
      child.on('exit', (c) => {
        clearTimeout(t);
        resolve(c ?? 'killed');
      });
    });
    expect(code, out).toBe(0);
    // It probed while alive (the exit is not a crash before the first probe).
    expect(out).toContain('probed connect ECONNREFUSED');
    expect(out).toContain('done');
  });
});

// A real redis-server for the tests (installed by test/global-setup.ts), on a loopback port of its
// own: started, killed (SIGKILL, like a crash) and started again on the same port, so a client
// sees the same Redis go away and come back.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A redis-server under a test's control. */
export interface TestRedis {
  readonly port: number;
  /** redis://127.0.0.1:PORT */
  readonly url: string;
  /** True while a server runs. */
  readonly running: boolean;
  /** Kills the server (SIGKILL) and resolves once it exited; its data is gone. */
  stop(): Promise<void>;
  /** Starts a fresh server on the same port. */
  restart(): Promise<void>;
  /** Stops it for good and removes its directory. */
  close(): Promise<void>;
}

// Below Linux's ephemeral range (32768+), where the port-0 listeners of tests running in
// parallel land: a port this server gave up while stopped is still free when it restarts.
const PORT_MIN = 20_000;
const PORT_SPAN = 12_000;
const START_TIMEOUT_MS = 10_000;

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** Spawns redis-server on `port` and resolves once it accepts connections; rejects if it exits first. */
function spawnRedis(port: number, dir: string): Promise<ChildProcess> {
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--protected-mode', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  // A test that dies before its afterAll must not leave a redis-server behind.
  const reap = (): void => void proc.kill('SIGKILL');
  process.once('exit', reap);
  proc.once('exit', () => process.off('exit', reap));
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`redis-server on port ${port} not ready within ${START_TIMEOUT_MS} ms: ${out}`));
    }, START_TIMEOUT_MS);
    const onData = (c: Buffer): void => {
      out += c.toString();
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer);
        proc.stdout!.off('data', onData);
        proc.stdout!.resume();
        resolve(proc);
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    proc.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`redis-server could not start (is it installed? test/global-setup.ts installs it): ${err.message}`));
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server on port ${port} exited with ${code}: ${out}`));
    });
  });
}

function killed(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGKILL');
  return exited;
}

/** Starts a redis-server on a free loopback port. */
export async function startRedis(): Promise<TestRedis> {
  const dir = await mkdtemp(join(tmpdir(), 'waygate-redis-'));
  let proc: ChildProcess | undefined;
  let port = 0;
  for (let attempt = 0; proc === undefined; attempt++) {
    port = PORT_MIN + Math.floor(Math.random() * PORT_SPAN);
    if (!(await portFree(port))) continue;
    try {
      proc = await spawnRedis(port, dir);
    } catch (err) {
      // Another process took the port between the check and the bind: try another.
      if (attempt >= 5) throw err;
    }
  }
  let current: ChildProcess | undefined = proc;
  const stop = async (): Promise<void> => {
    if (current === undefined) return;
    const p = current;
    current = undefined;
    await killed(p);
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get running() {
      return current !== undefined;
    },
    stop,
    async restart() {
      await stop();
      current = await spawnRedis(port, dir);
    },
    async close() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

// The soak's Redis (SPEC §8 `store: redis`): a real redis-server (Debian package redis-server) on a
// loopback port below the ephemeral range, which the chaos pauses (SIGSTOP: commands time out),
// kills (SIGKILL: the connection drops, the buckets are gone) and starts again on the same port
// (kit/mw-chaos.ts). `ensureRedisServer` installs the package when it is missing, quietly, the way
// test/global-setup.ts does for npm test.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

// Below Linux's ephemeral range (32768+), where no port-0 socket lands while Redis is down.
const PORT_MIN = 20_000;
const PORT_SPAN = 12_000;
const START_TIMEOUT_MS = 10_000;
const START_TRIES = 5;
const PACKAGE = 'redis-server';

/** Whether redis-server is on the PATH. */
export function hasRedisServer(): boolean {
  return spawnSync('sh', ['-c', `command -v ${PACKAGE}`], { stdio: 'ignore' }).status === 0;
}

/** Installs redis-server with apt-get when it is missing (as root, or with sudo -n); says so on stderr only then. */
export function ensureRedisServer(): void {
  if (hasRedisServer()) return;
  const root = process.getuid?.() === 0 ? [] : ['sudo', '-n'];
  const run = (args: string[]): boolean => {
    const cmd = [...root, ...args];
    const r = spawnSync(cmd[0], cmd.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 300_000 });
    if (r.status !== 0) process.stderr.write(`soak setup: ${cmd.join(' ')} failed: ${r.stderr?.toString().trim().split('\n').slice(-3).join(' | ')}\n`);
    return r.status === 0;
  };
  process.stderr.write(`soak setup: installing ${PACKAGE} (apt-get)\n`);
  if (!run(['apt-get', 'install', '-y', '-qq', PACKAGE])) {
    run(['apt-get', 'update', '-qq']);
    run(['apt-get', 'install', '-y', '-qq', PACKAGE]);
  }
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** Spawns redis-server on `port`; resolves once it accepts connections. */
function spawnRedis(port: number, dir: string): Promise<ChildProcess> {
  const proc = spawn(PACKAGE, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--protected-mode', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  // An interrupted soak must not leave a redis-server behind.
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
      reject(new Error(`redis-server could not start (npm run soak installs it; or apt-get install redis-server): ${err.message}`));
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server on port ${port} exited with ${code}: ${out}`));
    });
  });
}

/** The soak's redis-server. */
export class SoakRedis {
  readonly port: number;
  readonly #dir: string;
  #proc: ChildProcess | undefined;
  #paused = false;

  private constructor(port: number, dir: string, proc: ChildProcess) {
    this.port = port;
    this.#dir = dir;
    this.#proc = proc;
  }

  /** Starts one on a free stable port; its (empty) working dir is `dir`. */
  static async start(dir: string): Promise<SoakRedis> {
    for (let attempt = 0; ; attempt++) {
      const port = PORT_MIN + Math.floor(Math.random() * PORT_SPAN);
      if (!(await portFree(port))) continue;
      try {
        return new SoakRedis(port, dir, await spawnRedis(port, dir));
      } catch (err) {
        // Another process took the port between the check and the bind: try another.
        if (attempt >= START_TRIES) throw err;
      }
    }
  }

  /** redis://127.0.0.1:PORT */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** running, paused or down. */
  get state(): 'running' | 'paused' | 'down' {
    return this.#proc === undefined ? 'down' : this.#paused ? 'paused' : 'running';
  }

  /** SIGSTOP: the connection stays up, every command waits (waygate's redis.timeout ends it). */
  pause(): void {
    if (this.#proc === undefined || this.#paused) return;
    this.#proc.kill('SIGSTOP');
    this.#paused = true;
  }

  /** SIGCONT after pause(). */
  resume(): void {
    if (this.#proc === undefined || !this.#paused) return;
    this.#proc.kill('SIGCONT');
    this.#paused = false;
  }

  /** SIGKILL, like a crash; resolves once it exited. */
  async kill(): Promise<void> {
    const p = this.#proc;
    if (p === undefined) return;
    this.#proc = undefined;
    this.#paused = false;
    if (p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGKILL');
    await exited;
  }

  /** A fresh redis-server on the same port (after kill()). */
  async restart(): Promise<void> {
    await this.kill();
    this.#proc = await spawnRedis(this.port, this.#dir);
  }

  /** Stops it for good. */
  async close(): Promise<void> {
    await this.kill();
  }
}

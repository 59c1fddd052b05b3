// waygate under soak: the real command (bin/waygate.js) as a child process with its own
// waygate.yaml, read from outside the way an operator would: the `listening` line, the admin
// API (/status, /metrics), and /proc (open file descriptors, resident memory). Its stdout is
// counted (access lines by status, L4 connection lines by route and termination, log lines by
// level) and its stderr kept for the report; a task finds its own connection line by its port.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { request } from 'node:http';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ConnectionLine, GatewayAddress } from './types.ts';

const ENTRY = fileURLToPath(new URL('../../bin/waygate.js', import.meta.url));
const LISTENING_TIMEOUT_MS = 20_000;
const ADMIN_TIMEOUT_MS = 5_000;
const KEEP_STDERR = 1_000_000;
const KEEP_ERROR_LINES = 20;
const KEEP_TAIL = 30;
const SAMPLES_KEPT = 2;
/** Connection lines kept for lookup by client port this long (a task reads its own within seconds). */
const LINE_KEEP_MS = 60_000;

/** How the process ended. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** ms since the epoch. */
  at: number;
}

/** One target in GET /status. */
export interface TargetStatus {
  url: string;
  inFlight: number;
  healthy: boolean;
  requests: number;
  failures: number;
}

/** A running waygate. */
export class WaygateProcess {
  readonly pid: number;
  readonly address: GatewayAddress;
  readonly admin: string;
  /** Set once the process has exited. */
  exit: Exit | undefined;
  /** Access lines by status. */
  readonly statuses: Record<string, number> = {};
  /** Access lines by pool, then status. */
  readonly poolStatuses: Record<string, Record<string, number>> = {};
  /** Log lines by level name (access lines excluded). */
  readonly levels: Record<string, number> = {};
  /** The first access lines of each pool and 5xx status, and warn lines of each pool and code ("pool status|code" → lines). */
  readonly samples: Record<string, string[]> = {};
  /** Upstream requests that failed because the target refused their HTTP/2 stream, by pool. */
  readonly refusals: Record<string, number> = {};
  /** Access lines naming a middleware in `rejectedBy` (SPEC §8), by "route middleware". */
  readonly rejectedBy: Record<string, number> = {};
  /** L4 connection lines by route (or `listener NAME` when none matched), then termination. */
  readonly terminations: Record<string, Record<string, number>> = {};
  /** The first log lines at level error or above. */
  readonly errorLines: string[] = [];
  /** The last stdout lines. */
  readonly tail: string[] = [];
  readonly #proc: ChildProcess;
  readonly #stderr: { text: string };
  readonly #exited: Promise<Exit>;
  /** The latest connection line of each client port, with when it was read. */
  /** Keyed by the client port, negated for a UDP session's line (TCP and UDP ports are apart). */
  // The last few lines per client port, newest last: Linux reuses a client port at once for a
  // connection to another listener, so a port alone does not name a connection.
  readonly #byPort = new Map<number, { line: ConnectionLine; at: number }[]>();
  readonly #portWaiters = new Map<number, Set<() => void>>();
  #linesSincePrune = 0;

  private constructor(proc: ChildProcess, listening: Listening, stderr: { text: string }, exited: Promise<Exit>) {
    this.#proc = proc;
    this.pid = proc.pid!;
    const port = (a: string): number => Number(a.slice(a.lastIndexOf(':') + 1));
    const tcp = Object.fromEntries(Object.entries(listening.tcp ?? {}).map(([name, a]) => [name, port(a)]));
    const udp = Object.fromEntries(Object.entries(listening.udp ?? {}).map(([name, a]) => [name, port(a)]));
    this.address = { host: '127.0.0.1', http: port(listening.http), https: port(listening.https), tcp, udp };
    this.admin = `http://${listening.admin}`;
    this.#stderr = stderr;
    this.#exited = exited;
    void exited.then((e) => (this.exit = e));
  }

  /**
   * Starts `bin/waygate.js --config FILE` and waits for its `listening` line.
   */
  static async start(configFile: string): Promise<WaygateProcess> {
    const proc = spawn(process.execPath, [ENTRY, '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    // An interrupted soak must not leave a proxy running.
    const reap = (): void => void proc.kill('SIGKILL');
    process.once('exit', reap);
    const exited = new Promise<Exit>((resolve) => proc.once('exit', (code, signal) => {
      process.off('exit', reap);
      resolve({ code, signal, at: Date.now() });
    }));
    const stderr = { text: '' };
    proc.stderr!.on('data', (c: Buffer) => {
      if (stderr.text.length < KEEP_STDERR) stderr.text += c;
    });
    let self: WaygateProcess | undefined;
    const early: string[] = [];
    const listening = await new Promise<Listening>((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`waygate printed no "listening" line within ${LISTENING_TIMEOUT_MS} ms: ${stderr.text}`));
      }, LISTENING_TIMEOUT_MS);
      // SOAK_LOG=FILE keeps every stdout line of waygate (access and process logs) for a post-mortem.
      const keep = process.env.SOAK_LOG === undefined ? undefined : createWriteStream(process.env.SOAK_LOG, { flags: 'a' });
      createInterface({ input: proc.stdout! }).on('line', (line) => {
        keep?.write(line + '\n');
        if (self !== undefined) return self.#line(line);
        early.push(line);
        if (line.includes('"msg":"listening"')) {
          clearTimeout(timer);
          resolve(JSON.parse(line) as Listening);
        }
      });
      void exited.then((e) => {
        clearTimeout(timer);
        reject(new Error(`waygate exited (${e.code ?? e.signal}) before listening: ${stderr.text}${early.join('\n')}`));
      });
    });
    self = new WaygateProcess(proc, listening, stderr, exited);
    for (const line of early) self.#line(line);
    return self;
  }

  /** Whether the process is still running. */
  get alive(): boolean {
    return this.exit === undefined;
  }

  /** Resolves when the process exits. */
  exited(): Promise<Exit> {
    return this.#exited;
  }

  /** Everything written to stderr so far. */
  stderr(): string {
    return this.#stderr.text;
  }

  /** GET on the admin API; resolves with status and body (a fresh connection, closed after). */
  adminGet(path: string, timeout = ADMIN_TIMEOUT_MS): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request(`${this.admin}${path}`, { agent: false, headers: { connection: 'close' }, timeout }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`admin ${path}: no answer within ${timeout} ms`)));
      req.on('error', reject);
      req.end();
    });
  }

  /**
   * Every target of every pool in GET /status, and the targets only /metrics shows (a
   * middleware's own, such as forwardAuth's under pool "forwardAuth:NAME": SPEC §8), with their
   * waygate_target_in_flight.
   */
  async targets(): Promise<(TargetStatus & { pool: string })[]> {
    const r = await this.adminGet('/status');
    const status = JSON.parse(r.body) as { pools: { name: string; targets: TargetStatus[] }[] };
    const out = status.pools.flatMap((p) => p.targets.map((t) => ({ ...t, pool: p.name })));
    const known = new Set(out.map((t) => `${t.pool} ${t.url}`));
    const metrics = (await this.adminGet('/metrics')).body;
    for (const m of metrics.matchAll(/^waygate_target_in_flight\{pool="([^"]*)",target="([^"]*)"\} (\S+)$/gm)) {
      if (!known.has(`${m[1]} ${m[2]}`)) out.push({ pool: m[1], url: m[2], inFlight: Number(m[3]), healthy: true, requests: 0, failures: 0 });
    }
    return out;
  }

  /** The sum of `waygate_open_connections` over every listener (GET /metrics). */
  async openConnections(): Promise<number> {
    const r = await this.adminGet('/metrics');
    let sum = 0;
    for (const m of r.body.matchAll(/^waygate_open_connections\{[^}]*\} (\S+)$/gm)) sum += Number(m[1]);
    return sum;
  }

  /** `waygate_tcp_open_connections` by "listener/route" (GET /metrics): L4 connections routed and not yet ended. */
  async tcpOpen(): Promise<Record<string, number>> {
    const r = await this.adminGet('/metrics');
    const out: Record<string, number> = {};
    for (const m of r.body.matchAll(/^waygate_tcp_open_connections\{listener="([^"]*)",route="([^"]*)"\} (\S+)$/gm)) out[`${m[1]}/${m[2]}`] = Number(m[3]);
    return out;
  }

  /** `waygate_udp_sessions` by "listener/route" (GET /metrics): UDP sessions open now. */
  async udpSessions(): Promise<Record<string, number>> {
    const r = await this.adminGet('/metrics');
    const out: Record<string, number> = {};
    for (const m of r.body.matchAll(/^waygate_udp_sessions\{listener="([^"]*)",route="([^"]*)"\} (\S+)$/gm)) out[`${m[1]}/${m[2]}`] = Number(m[3]);
    return out;
  }

  /** The connection line of client port `port` (a UDP session's with `udp`) read after `since`, waiting up to `ms` for it. */
  async connectionLine(tcpOrUdpPort: number, since: number, ms: number, udp = false, listener?: string): Promise<ConnectionLine | undefined> {
    const port = udp ? -tcpOrUdpPort : tcpOrUdpPort;
    const found = (): ConnectionLine | undefined => {
      const list = this.#byPort.get(port) ?? [];
      // With the listener known, the first line after `since` is this connection's: a later
      // connection from the same port to the same listener can only start once it ended (one
      // closed by a reset leaves no TIME_WAIT, so the port comes back at once).
      if (listener !== undefined) return list.find((e) => e.at >= since && e.line.listener === listener)?.line;
      for (let i = list.length - 1; i >= 0; i--) {
        const e = list[i];
        if (e.at >= since) return e.line;
      }
      return undefined;
    };
    const end = Date.now() + ms;
    for (;;) {
      const line = found();
      if (line !== undefined || Date.now() >= end || !this.alive) return line;
      await new Promise<void>((resolve) => {
        const set = this.#portWaiters.get(port) ?? new Set();
        this.#portWaiters.set(port, set);
        const wake = (): void => {
          clearTimeout(timer);
          set.delete(wake);
          if (set.size === 0 && this.#portWaiters.get(port) === set) this.#portWaiters.delete(port);
          resolve();
        };
        const timer = setTimeout(wake, Math.max(1, end - Date.now()));
        set.add(wake);
      });
    }
  }

  /** V8 heap used and total, and memory outside the heap (Buffers), from the default process metrics (bytes). */
  async memory(): Promise<{ heapUsed: number; heapTotal: number; external: number }> {
    const text = (await this.adminGet('/metrics')).body;
    const get = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    return { heapUsed: get('nodejs_heap_size_used_bytes'), heapTotal: get('nodejs_heap_size_total_bytes'), external: get('nodejs_external_memory_bytes') };
  }

  /** Open file descriptors of the process (/proc/PID/fd). */
  async fds(): Promise<number> {
    return (await readdir(`/proc/${this.pid}/fd`)).length;
  }

  /**
   * The TCP sockets the process holds, as "local → remote STATE" (from /proc/PID/fd and
   * /proc/net/tcp{,6}), listening sockets excluded: which connection is left when a count is off.
   */
  async sockets(): Promise<string[]> {
    const inodes = new Set<string>();
    for (const fd of await readdir(`/proc/${this.pid}/fd`)) {
      const link = await readlink(`/proc/${this.pid}/fd/${fd}`).catch(() => '');
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m !== null) inodes.add(m[1]);
    }
    const out: string[] = [];
    for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
      const text = await readFile(table, 'utf8').catch(() => '');
      for (const row of text.split('\n').slice(1)) {
        const f = row.trim().split(/\s+/);
        if (f.length < 10 || !inodes.has(f[9]) || f[3] === '0A') continue;
        const port = (a: string): number => parseInt(a.split(':')[1], 16);
        out.push(`:${port(f[1])} → :${port(f[2])} ${TCP_STATES[f[3]] ?? f[3]}`);
      }
    }
    // A TCP socket the kernel has closed (a reset) leaves its table while the process still holds
    // its descriptor: named by inode, so a descriptor that outlived its connection shows.
    const listed = new Set<string>();
    for (const table of ['/proc/net/tcp', '/proc/net/tcp6', '/proc/net/udp', '/proc/net/udp6', '/proc/net/unix']) {
      const text = await readFile(table, 'utf8').catch(() => '');
      for (const row of text.split('\n').slice(1)) {
        const f = row.trim().split(/\s+/);
        listed.add(table.endsWith('unix') ? f[6] : f[9]);
      }
    }
    for (const inode of inodes) if (!listed.has(inode)) out.push(`socket:[${inode}] in no table (closed by the kernel, descriptor still open)`);
    return out.sort();
  }

  /** Resident set size in bytes (/proc/PID/status VmRSS). */
  async rss(): Promise<number> {
    const status = await readFile(`/proc/${this.pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
  }

  /** Sends SIGTERM (the drain) and resolves with the exit; SIGKILL after `ms`. */
  async stop(ms: number): Promise<Exit & { killed: boolean }> {
    if (this.exit !== undefined) return { ...this.exit, killed: false };
    this.#proc.kill('SIGTERM');
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      this.#proc.kill('SIGKILL');
    }, ms);
    const e = await this.#exited;
    clearTimeout(timer);
    return { ...e, killed };
  }

  /** Kills the process at once (used when the soak itself fails). */
  kill(): void {
    if (this.exit === undefined) this.#proc.kill('SIGKILL');
  }

  #line(line: string): void {
    this.tail.push(line);
    if (this.tail.length > KEEP_TAIL) this.tail.shift();
    let obj: { level?: number; msg?: string; status?: number; pool?: string | null; route?: string | null; rejectedBy?: string };
    try {
      obj = JSON.parse(line) as typeof obj;
    } catch {
      this.levels['not-json'] = (this.levels['not-json'] ?? 0) + 1;
      return;
    }
    if (obj.msg === 'request') {
      const k = String(obj.status);
      this.statuses[k] = (this.statuses[k] ?? 0) + 1;
      // A middleware's rejection has no pool: it is counted under its route (named after its pool in the soak).
      const byPool = (this.poolStatuses[obj.pool ?? (typeof obj.rejectedBy === 'string' ? obj.route : undefined) ?? '(none)'] ??= {});
      byPool[k] = (byPool[k] ?? 0) + 1;
      if (typeof obj.rejectedBy === 'string') {
        const r = `${obj.route ?? '(none)'} ${obj.rejectedBy}`;
        this.rejectedBy[r] = (this.rejectedBy[r] ?? 0) + 1;
      }
      if ((obj.status ?? 0) >= 500) {
        const list = (this.samples[`${obj.pool ?? '(none)'} ${k}`] ??= []);
        if (list.length < SAMPLES_KEPT) list.push(line);
      }
      return;
    }
    if (obj.msg === 'connection') return this.#connection(obj as unknown as ConnectionLine);
    const level = LEVEL_NAMES[obj.level ?? 30] ?? String(obj.level);
    this.levels[level] = (this.levels[level] ?? 0) + 1;
    if ((obj.level ?? 0) === 40 && typeof obj.pool === 'string') {
      if (String((obj as { err?: string }).err).startsWith('upstream refused the stream')) this.refusals[obj.pool] = (this.refusals[obj.pool] ?? 0) + 1;
      // An upstream failure names its pool and code: the first of each kind, for diagnosis.
      const list = (this.samples[`${obj.pool} ${String((obj as { code?: string }).code ?? obj.msg)}`] ??= []);
      if (list.length < SAMPLES_KEPT) list.push(line);
    }
    if ((obj.level ?? 0) >= 50 && this.errorLines.length < KEEP_ERROR_LINES) this.errorLines.push(line);
  }

  /** An L4 connection line: counted by route and termination, kept for its client port's task. */
  #connection(c: ConnectionLine): void {
    const key = c.route ?? `listener ${c.listener}`;
    const byRoute = (this.terminations[key] ??= {});
    byRoute[c.termination] = (byRoute[c.termination] ?? 0) + 1;
    const now = Date.now();
    const portKey = c.transport === 'udp' ? -c.clientPort : c.clientPort;
    const list = this.#byPort.get(portKey) ?? [];
    list.push({ line: c, at: now });
    if (list.length > 8) list.shift();
    this.#byPort.set(portKey, list);
    for (const wake of [...(this.#portWaiters.get(portKey) ?? [])]) wake();
    if (++this.#linesSincePrune >= 1000) {
      this.#linesSincePrune = 0;
      for (const [p, list] of this.#byPort) if (now - list[list.length - 1].at > LINE_KEEP_MS) this.#byPort.delete(p);
    }
  }
}

/** The `listening` line: listener addresses ("host:port"), the TCP ones by name. */
type Listening = { http: string; https: string; admin: string; tcp?: Record<string, string>; udp?: Record<string, string> };

const TCP_STATES: Record<string, string> = { '01': 'ESTABLISHED', '02': 'SYN_SENT', '03': 'SYN_RECV', '04': 'FIN_WAIT1', '05': 'FIN_WAIT2', '06': 'TIME_WAIT', '07': 'CLOSE', '08': 'CLOSE_WAIT', '09': 'LAST_ACK', '0B': 'CLOSING' };

const LEVEL_NAMES: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

// Test harness: real upstream servers on port 0, a real gateway bound to loopback port 0 with
// its log lines captured, raw-socket and HTTP clients. No mocked network.
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadRoutesDir } from '../src/config/load.ts';
import { defaultStaticConfig } from '../src/config/schema.ts';
import type { StaticConfig } from '../src/config/schema.ts';
import { Gateway } from '../src/gateway/gateway.ts';
import type { GatewayOptions } from '../src/gateway/gateway.ts';
import { createLoggers } from '../src/observe/logger.ts';
import { makeLeaf } from './tls-helpers.ts';

/** A real HTTP server on 127.0.0.1 with an ephemeral port. */
export interface Upstream {
  url: string;
  port: number;
  server: Server;
  /** Every request the upstream received (method, url, headers, rawHeaders). */
  seen: { method: string; url: string; headers: IncomingHttpHeaders; rawHeaders: string[] }[];
  close(): Promise<void>;
}

/** Starts an upstream that records requests and answers with `handler` (default: JSON echo). */
export async function startUpstream(handler?: RequestListener): Promise<Upstream> {
  const seen: Upstream['seen'] = [];
  const server = createServer((req, res) => {
    seen.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders });
    (handler ?? echo)(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    seen,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

/** An upstream handler answering JSON: method, url, headers, body length. */
export function echo(req: IncomingMessage, res: ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
}

export { closedPort } from './refusing-port.ts';

/** A gateway under test. */
export interface TestGateway {
  gateway: Gateway;
  /** http://127.0.0.1:PORT of the public listener. */
  url: string;
  port: number;
  admin: string;
  routesDir: string;
  /** Parsed JSON log lines (process and access log). */
  logs: Record<string, unknown>[];
  /** Access-log lines only. */
  accessLogs(): Record<string, unknown>[];
  /** Waits until `n` access-log lines were written. */
  waitForAccessLogs(n: number): Promise<Record<string, unknown>[]>;
  /** Resolves with the first log line at index `from` or later that `pred` accepts, waiting for it if needed. */
  waitForLog(pred: (line: Record<string, unknown>) => boolean, from?: number): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

/**
 * Writes `files` (name → YAML) into a fresh routes directory and starts a gateway on loopback
 * port 0 with the admin API on port 0; `tweak` may change the static config first.
 */
export async function startGateway(
  files: Record<string, string> | string,
  tweak?: (c: StaticConfig) => void,
  env: NodeJS.ProcessEnv = process.env,
  extra: Pick<GatewayOptions, 'resolver' | 'watchRoutes'> = {},
): Promise<TestGateway> {
  const routesDir = await mkdtemp(join(tmpdir(), 'waygate-routes-'));
  const fileMap = typeof files === 'string' ? { 'routes.yaml': files } : files;
  for (const [name, text] of Object.entries(fileMap)) await writeFile(join(routesDir, name), text);
  const config = defaultStaticConfig();
  config.routesDir = routesDir;
  // A generated sticky secret goes to a temp dir, never into the repository.
  config.certsDir = join(routesDir, 'certs');
  config.listeners.http.address = { host: '127.0.0.1', port: 0 };
  config.listeners.https.address = null;
  config.admin.address = { host: '127.0.0.1', port: 0 };
  tweak?.(config);
  const routes = await loadRoutesDir(routesDir, env);
  if (!routes.ok) throw new Error('test routes invalid: ' + JSON.stringify(routes.errors));
  const logs: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  const destination = {
    write(line: string): void {
      logs.push(JSON.parse(line));
      for (const w of waiters.splice(0)) w();
    },
  };
  const { log, access } = createLoggers({ level: config.log.level, access: config.log.access, destination });
  const gateway = await Gateway.start({ config, routes: routes.value, log, access, env, ...extra });
  const port = Number(gateway.addresses.http!.split(':').pop());
  const accessLogs = (): Record<string, unknown>[] => logs.filter((l) => l.msg === 'request');
  return {
    gateway,
    url: `http://127.0.0.1:${port}`,
    port,
    admin: `http://${gateway.addresses.admin}`,
    routesDir,
    logs,
    accessLogs,
    async waitForAccessLogs(n) {
      while (accessLogs().length < n) await new Promise<void>((r) => waiters.push(r));
      return accessLogs();
    },
    async waitForLog(pred, from = 0) {
      for (;;) {
        const found = logs.slice(from).find(pred);
        if (found !== undefined) return found;
        await new Promise<void>((r) => waiters.push(r));
      }
    },
    async close() {
      await gateway.close(1000);
      await rm(routesDir, { recursive: true, force: true });
    },
  };
}

/** A gateway under test with its HTTPS listener on too. */
export type HttpsTestGateway = TestGateway & { httpsPort: number };

/**
 * startGateway with the HTTPS listener on loopback port 0 too, serving a fresh certificate for
 * localhost and 127.0.0.1 as its default (in the routes directory, so close() removes it);
 * `httpsPort` is where it listens.
 */
export async function startHttpsGateway(files: Record<string, string> | string, tweak?: (c: StaticConfig) => void): Promise<HttpsTestGateway> {
  const leaf = await makeLeaf(['localhost', '127.0.0.1']);
  const gw = await startGateway(files, (c) => {
    c.certsDir = join(c.routesDir, 'tls');
    mkdirSync(c.certsDir);
    writeFileSync(join(c.certsDir, 'default.crt'), leaf.cert);
    writeFileSync(join(c.certsDir, 'default.key'), leaf.key);
    c.listeners.https.address = { host: '127.0.0.1', port: 0 };
    tweak?.(c);
  });
  return Object.assign(gw, { httpsPort: Number(gw.gateway.addresses.https!.split(':').pop()) });
}

/** A response read whole. */
export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

/** Sends one request with node:http (a fresh connection) and reads the whole response. */
export function send(url: string, opts: { method?: string; headers?: Record<string, string | string[]>; body?: string | Buffer } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Sends raw bytes on a new TCP connection; resolves with everything received until the peer closes. */
export function rawExchange(port: number, bytes: string | Buffer, opts: { endAfterWrite?: boolean } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? resolve(Buffer.concat(chunks).toString('latin1')) : reject(err)));
    sock.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    sock.write(bytes, () => {
      if (opts.endAfterWrite) sock.end();
    });
  });
}

/** Parses the JSON body of an echo upstream's reply. */
export function echoed(r: Reply): { method: string; url: string; headers: IncomingHttpHeaders; body: string } {
  return JSON.parse(r.body);
}

/** A waygate CLI child process. */
export interface CliProcess {
  proc: import('node:child_process').ChildProcess;
  /** Parsed JSON lines from stdout so far. */
  lines: Record<string, unknown>[];
  stderr(): string;
  /** The "listening" line's addresses. */
  addresses: { http: string | null; https: string | null; admin: string | null };
  /** Resolves with the first stdout JSON line (already seen or still to come) that `pred` accepts. */
  waitForLine(pred: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  /** Sends `signal` (SIGTERM by default) and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

const ROOT = new URL('..', import.meta.url).pathname;

/** Runs the CLI to completion; resolves with exit code, stdout and stderr. */
export async function runCli(args: string[], env: Record<string, string> = {}, cwd = ROOT): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { spawn } = await import('node:child_process');
  const proc = spawn(process.execPath, [join(ROOT, 'src/main.ts'), ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (c: Buffer) => (stdout += c));
  proc.stderr.on('data', (c: Buffer) => (stderr += c));
  const code = await new Promise<number | null>((r) => proc.on('exit', (c) => r(c)));
  return { code, stdout, stderr };
}

/** Starts the CLI and waits for its "listening" line (rejects if it exits first). */
export async function startCli(args: string[], env: Record<string, string | undefined> = {}, cwd = ROOT, entry = 'src/main.ts'): Promise<CliProcess> {
  const { spawn } = await import('node:child_process');
  const { createInterface } = await import('node:readline');
  const proc = spawn(process.execPath, [join(ROOT, entry), ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  // A test that fails before its afterAll must not leave a proxy running.
  const reap = (): void => void proc.kill('SIGKILL');
  process.once('exit', reap);
  proc.once('exit', () => process.off('exit', reap));
  const lines: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  let err = '';
  proc.stderr!.on('data', (c: Buffer) => (err += c));
  const exited = new Promise<number | null>((r) => proc.on('exit', (c) => r(c)));
  const listening = await new Promise<Record<string, unknown>>((resolve, reject) => {
    // A proxy that never says "listening" is killed here, not left running after the test.
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`waygate printed no "listening" line within 20 s: ${err}`));
    }, 20_000);
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      try {
        const obj = JSON.parse(line) as Record<string, unknown>;
        lines.push(obj);
        for (const w of waiters.splice(0)) w();
        if (obj.msg === 'listening') {
          clearTimeout(timer);
          resolve(obj);
        }
      } catch {
        // not JSON: ignore
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`waygate exited with ${code} before listening: ${err}`));
    });
  });
  return {
    proc,
    lines,
    stderr: () => err,
    addresses: listening as CliProcess['addresses'],
    async waitForLine(pred) {
      for (;;) {
        const found = lines.find(pred);
        if (found !== undefined) return found;
        await new Promise<void>((r) => waiters.push(r));
      }
    },
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill(signal);
      return exited;
    },
  };
}

/** Writes routes files into a fresh temp directory; returns its path. */
export async function routesDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'waygate-cli-'));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

/** Resident set size of a process in bytes, read from /proc (Linux). */
export async function rssOf(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]);
  return kb * 1024;
}

// CLI (SPEC §1): flags and their environment twins → config → gateway; signals. The only
// module that touches process.* (exit codes, argv, env, signals, stdio).
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ClusterPrimary, isClusterWorker, runWorker, sharedStdout, workerCount } from './cluster/index.ts';
import { isAddressError, parseAddress } from './config/address.ts';
import type { ListenAddress } from './config/address.ts';
import { PROXY_USAGE, proxySetup } from './cli/proxy.ts';
import { jsonSchemaText } from './config/json-schema.ts';
import { formatConfigError, loadRoutesDir, loadStaticConfig } from './config/load.ts';
import type { RoutesConfig } from './config/load.ts';
import type { StaticConfig } from './config/schema.ts';
import { Gateway } from './gateway/gateway.ts';
import { createLoggers, logLevelFlag } from './observe/logger.ts';
import type { Logger } from './observe/logger.ts';
import { verifyMiddlewares } from './middleware/build.ts';
import { verifyRoutes } from './route/tests.ts';

const USAGE = `usage: waygate [--config FILE] [--routes DIR] [--certs DIR]
               [--http ADDR] [--https ADDR] [--admin ADDR] [--workers N|auto]
               [--log-level LEVEL] [--check]
       waygate proxy --from ADDR --to URL [--to URL ...]   (no files; --help for more)
       waygate schema routes|config                        (JSON Schema for editors)

  ADDR is HOST:PORT, :PORT or PORT (0 picks a free port), or "off".
  Every flag has an environment twin: WAYGATE_CONFIG, WAYGATE_ROUTES, WAYGATE_CERTS,
  WAYGATE_HTTP, WAYGATE_HTTPS, WAYGATE_ADMIN, WAYGATE_WORKERS, WAYGATE_LOG_LEVEL.`;

const FLAGS = {
  config: { type: 'string' },
  routes: { type: 'string' },
  certs: { type: 'string' },
  http: { type: 'string' },
  https: { type: 'string' },
  admin: { type: 'string' },
  workers: { type: 'string' },
  'log-level': { type: 'string' },
  check: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const;

type FlagName = 'config' | 'routes' | 'certs' | 'http' | 'https' | 'admin' | 'workers' | 'log-level';

function envName(flag: FlagName): string {
  return 'WAYGATE_' + flag.toUpperCase().replace('-', '_');
}

/** Applies flag/env overrides to the static config; returns the error lines (empty when fine). */
function applyOverrides(cfg: StaticConfig, get: (f: FlagName) => string | undefined): string[] {
  const errors: string[] = [];
  const source = (f: FlagName): string => (get(f) === undefined ? '' : `--${f}`);
  const address = (f: 'http' | 'https' | 'admin', set: (a: ListenAddress | null) => void): void => {
    const v = get(f);
    if (v === undefined) return;
    const r = parseAddress(v);
    if (isAddressError(r)) errors.push(`${source(f)}: ${r.error}`);
    else set(r);
  };
  address('http', (a) => (cfg.listeners.http.address = a));
  address('https', (a) => (cfg.listeners.https.address = a));
  address('admin', (a) => (cfg.admin.address = a));
  const routes = get('routes');
  if (routes !== undefined) cfg.routesDir = routes;
  const certs = get('certs');
  if (certs !== undefined) cfg.certsDir = certs;
  const workers = get('workers');
  if (workers !== undefined) {
    if (workers === 'auto') cfg.workers = 'auto';
    else if (/^[1-9]\d*$/.test(workers)) cfg.workers = Number(workers);
    else errors.push(`--workers: expected a positive integer or "auto", got ${JSON.stringify(workers)}`);
  }
  const level = get('log-level');
  if (level !== undefined) {
    const l = logLevelFlag(level);
    if (typeof l === 'string') cfg.log.level = l;
    else errors.push(l.error);
  }
  return errors;
}

async function main(argv: string[]): Promise<number> {
  // A worker takes its config from the primary, which validated it; it parses no flags.
  if (isClusterWorker()) return workerMain();
  if (argv[0] === 'proxy') return proxyMain(argv.slice(1));
  if (argv[0] === 'schema') return schemaMain(argv.slice(1));
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: argv, options: FLAGS, allowPositionals: false, strict: true }).values;
  } catch (err) {
    process.stderr.write(`waygate: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help === true) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (values.version === true) {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(pkg.version + '\n');
    return 0;
  }
  const get = (f: FlagName): string | undefined => {
    const v = values[f];
    if (typeof v === 'string') return v;
    const e = process.env[envName(f)];
    return e === undefined || e === '' ? undefined : e;
  };

  const explicitConfig = get('config');
  const configFile = explicitConfig ?? (existsSync('waygate.yaml') ? 'waygate.yaml' : undefined);
  const loaded = await loadStaticConfig(configFile, process.env);
  if (!loaded.ok) return report(loaded.errors.map(formatConfigError), values.check === true);
  const cfg = loaded.value;
  const flagErrors = applyOverrides(cfg, get);
  if (flagErrors.length > 0) return report(flagErrors, values.check === true);

  const routes = await loadRoutesDir(cfg.routesDir, process.env);
  if (!routes.ok && !existsSync(cfg.routesDir) && values.check !== true) {
    process.stderr.write(noRoutesHelp(cfg.routesDir, get('routes') !== undefined, configFile));
    return 1;
  }
  if (!routes.ok) return report(routes.errors.map(formatConfigError), values.check === true);
  // The routes files' tests are part of the config: a failing one is an error like any other.
  const failedTests = verifyRoutes(routes.value, cfg);
  if (failedTests.length > 0) return report(failedTests, values.check === true);
  if (values.check === true) {
    const mwErrors = await verifyMiddlewares(routes.value, createLoggers({ level: 'silent', access: false }).log);
    if (mwErrors.length > 0) return report(mwErrors, true);
    for (const w of routes.warnings) process.stderr.write(`warning: ${w}\n`);
    process.stdout.write('ok\n');
    return 0;
  }

  return serve(cfg, routes.value, loaded.warnings.concat(routes.warnings), true);
}

/** Starts the gateway (or the cluster primary) on a validated config and serves until a signal. */
async function serve(cfg: StaticConfig, routes: RoutesConfig, warnings: string[], watchRoutes: boolean): Promise<number> {
  const workers = workerCount(cfg.workers);
  const destination = workers > 1 ? sharedStdout() : undefined;
  // Registered before the loggers, so it runs before pino's exit hook writes stdout's buffer.
  let beforeExit = (): void => {};
  process.on('exit', () => beforeExit());
  const { log, access, lifecycle, ...loggers } = createLoggers({ level: cfg.log.level, access: cfg.log.access, destination });
  beforeExit = loggers.beforeExit;
  for (const w of warnings) log.warn(w);
  // One worker is today's single process exactly: no cluster, no primary in between.
  if (workers > 1) return primaryMain({ config: cfg, routes, workers, log, lifecycle, env: process.env });
  let gateway: Gateway;
  try {
    gateway = await Gateway.start({ config: cfg, routes, log, access, env: process.env, watchRoutes });
  } catch (err) {
    log.fatal({ err: (err as Error).message }, 'failed to start');
    log.flush();
    process.stderr.write(`waygate: ${(err as Error).message}\n`);
    return 1;
  }
  lifecycle.info(gateway.addresses, 'listening');
  // With no routes directory (waygate proxy), a reload is one of the certificates.
  return serveUntilSignal(watchRoutes ? gateway : { close: () => gateway.close(), reload: () => gateway.reloadCerts() }, lifecycle);
}

/** `waygate proxy --from ADDR --to URL ...`: no files (src/cli/proxy.ts). */
async function proxyMain(argv: string[]): Promise<number> {
  const setup = proxySetup(argv, process.env);
  if (!setup.ok && setup.help) {
    process.stdout.write(PROXY_USAGE + '\n');
    return 0;
  }
  if (!setup.ok) {
    for (const e of setup.errors) process.stderr.write(`waygate proxy: ${e}\n`);
    process.stderr.write(`\n${PROXY_USAGE}\n`);
    return 2;
  }
  return serve(setup.config, setup.routes, [], false);
}

/** `waygate schema routes|config`: the JSON Schema editors use for those files. */
function schemaMain(argv: string[]): number {
  const kind = argv[0];
  if (argv.length !== 1 || (kind !== 'routes' && kind !== 'config')) {
    process.stderr.write('usage: waygate schema routes|config\n  prints the JSON Schema of a routes file (routes) or of waygate.yaml (config)\n');
    return 2;
  }
  process.stdout.write(jsonSchemaText(kind));
  return 0;
}

/** What `waygate` says when the routes directory it looked for is not there. */
function noRoutesHelp(dir: string, named: boolean, configFile: string | undefined): string {
  const from = named ? 'from --routes / WAYGATE_ROUTES' : configFile !== undefined ? `from ${configFile}` : 'the default';
  return `waygate: routes directory "${dir}" not found (${from}; looked in ${process.cwd()}).

waygate reads its routes from the *.yaml files of a directory. To start:

  proxy one port to a service, no files:
    waygate proxy --from :8080 --to http://127.0.0.1:3000

  or write routes/app.yaml:
    pools:
      app: { targets: ["http://127.0.0.1:3000"] }
    routes:
      - { name: app, pool: app }
  and run: waygate --routes routes     (waygate --check checks it without starting)

  waygate --help lists the flags; waygate proxy --help the one-liner's.
`;
}

/**
 * Wires the signals of a running gateway or cluster primary (SPEC §1): SIGHUP reloads,
 * SIGTERM/SIGINT drain and exit 0. Returns -1: the process keeps running.
 */
function serveUntilSignal(running: { close(): Promise<unknown>; reload(): Promise<unknown> }, lifecycle: Logger): number {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    lifecycle.info({ signal }, 'draining');
    void running.close().then(() => {
      lifecycle.info('stopped');
      lifecycle.flush();
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => void running.reload());
  return -1;
}

/** --workers N > 1: the primary forks and supervises the workers and serves the admin API. */
async function primaryMain(o: Parameters<typeof ClusterPrimary.start>[0]): Promise<number> {
  const { log, lifecycle } = o;
  let primary: ClusterPrimary;
  try {
    primary = await ClusterPrimary.start(o);
  } catch (err) {
    log.fatal({ err: (err as Error).message }, 'failed to start');
    log.flush();
    process.stderr.write(`waygate: ${(err as Error).message}\n`);
    return 1;
  }
  lifecycle.info({ ...primary.addresses, workers: primary.pids.length }, 'listening');
  return serveUntilSignal(primary, lifecycle);
}

/** A cluster worker: serves until the primary (or a signal sent to this process) says drain. */
async function workerMain(): Promise<number> {
  const worker = runWorker(process.env);
  // Ctrl-C in a terminal signals the whole process group: the primary turns it into an orderly
  // drain of every worker, so a worker must not die of it on its own.
  process.on('SIGINT', () => {});
  // SIGTERM sent to one worker drains that worker; the primary then replaces it.
  process.on('SIGTERM', () => worker.drain());
  // A hangup of the terminal reaches the group too: the primary fans the reload out, and its
  // default action would kill the worker.
  process.on('SIGHUP', () => {});
  const code = await worker.done;
  worker.flush();
  process.exit(code);
}

// --check prints its verdict on stdout (it is the command's output); a failed start goes to stderr.
function report(lines: string[], check: boolean): number {
  const out = check ? process.stdout : process.stderr;
  for (const line of lines) out.write(line + '\n');
  if (check) out.write(`${lines.length} error${lines.length === 1 ? '' : 's'}\n`);
  return 1;
}

const code = await main(process.argv.slice(2));
if (code >= 0) process.exitCode = code;

// `waygate proxy`: one port to one service (or a few), with no files, as `caddy reverse-proxy`
// does. The flags become a routes file and a waygate.yaml in memory, validated by the same
// schemas as files, so a bad value gets the same message, named by its flag.
import { parseArgs } from 'node:util';
import { isAddressError, parseAddress } from '../config/address.ts';
import { parseRoutesText } from '../config/load.ts';
import type { RoutesConfig } from '../config/load.ts';
import { defaultStaticConfig } from '../config/static-schema.ts';
import type { StaticConfig } from '../config/schema.ts';
import { logLevelFlag } from '../observe/logger.ts';

export const PROXY_USAGE = `usage: waygate proxy --to URL [--to URL ...] [--from ADDR] [--https]
                     [--balance POLICY] [--health PATH] [--certs DIR]
                     [--admin ADDR] [--log-level LEVEL]

  Forwards every request that reaches --from (default :8080) to the --to targets, with no
  routes files and no waygate.yaml. Logs as usual (JSON lines on stdout).

  --to URL          a target, http:// or https://; repeat it for a pool
  --from ADDR       HOST:PORT, :PORT or PORT to listen on (default :8080)
  --https           serve HTTPS (HTTP/2 and HTTP/1.1) on --from instead of plain HTTP, with the
                    certificates in --certs, or a generated self-signed one for localhost
  --balance POLICY  round-robin (default), least-connections, ip-hash, random-two
  --health PATH     probe every target at PATH; a failing target gets no requests until it recovers
  --certs DIR       certificates directory (default certs)
  --admin ADDR      serve the admin API (/status, /metrics, ...) there (default off)

  example: waygate proxy --from :8080 --to http://127.0.0.1:3000 --to http://127.0.0.1:3001`;

const FLAGS = {
  to: { type: 'string', multiple: true },
  from: { type: 'string' },
  https: { type: 'boolean' },
  balance: { type: 'string' },
  health: { type: 'string' },
  certs: { type: 'string' },
  admin: { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** What the flags describe, or why they do not. */
export type ProxySetup =
  | { ok: true; config: StaticConfig; routes: RoutesConfig }
  | { ok: false; help: true }
  | { ok: false; help: false; errors: string[] };

/** The key paths of the generated routes file, named by the flag that set them. */
function flagOf(path: string): string {
  if (path.startsWith('pools.proxy.targets')) return '--to';
  if (path.startsWith('pools.proxy.balance')) return '--balance';
  if (path.startsWith('pools.proxy.healthCheck')) return '--health';
  return path;
}

function parseFlags(argv: string[]) {
  return parseArgs({ args: argv, options: FLAGS, allowPositionals: false, strict: true }).values;
}

/** Turns `waygate proxy`'s arguments into a configuration, validated. */
export function proxySetup(argv: string[], env: NodeJS.ProcessEnv = process.env): ProxySetup {
  let v: ReturnType<typeof parseFlags>;
  try {
    v = parseFlags(argv);
  } catch (err) {
    return { ok: false, help: false, errors: [(err as Error).message] };
  }
  if (v.help === true) return { ok: false, help: true };
  const errors: string[] = [];
  const targets = v.to ?? [];
  if (targets.length === 0) errors.push('--to: give at least one target, e.g. --to http://127.0.0.1:3000');
  for (const t of targets) {
    if (!/^https?:\/\//.test(t)) errors.push(`--to: expected an http:// or https:// URL, got ${JSON.stringify(t)}`);
  }

  const config = defaultStaticConfig();
  const from = parseAddress(v.from ?? ':8080');
  if (isAddressError(from)) errors.push(`--from: ${from.error}`);
  else if (from === null) errors.push('--from: the proxy needs an address to listen on, not "off"');
  else if (v.https === true) {
    config.listeners.https.address = from;
    config.listeners.http.address = null;
  } else {
    config.listeners.http.address = from;
    config.listeners.https.address = null;
  }
  const admin = parseAddress(v.admin ?? 'off');
  if (isAddressError(admin)) errors.push(`--admin: ${admin.error}`);
  else config.admin.address = admin;
  if (v.certs !== undefined) config.certsDir = v.certs;
  const level = v['log-level'];
  if (level !== undefined) {
    const l = logLevelFlag(level);
    if (typeof l === 'string') config.log.level = l;
    else errors.push(l.error);
  }
  // Not a directory anyone wrote: nothing watches or reloads it (SIGHUP reloads certificates).
  config.routesDir = '(waygate proxy)';
  if (errors.length > 0) return { ok: false, help: false, errors };

  const pool: Record<string, unknown> = { targets };
  if (v.balance !== undefined) pool.balance = v.balance;
  if (v.health !== undefined) pool.healthCheck = { path: v.health };
  const doc = { pools: { proxy: pool }, routes: [{ name: 'proxy', pool: 'proxy' }] };
  const parsed = parseRoutesText(JSON.stringify(doc), '(waygate proxy)', env);
  if (!parsed.ok) return { ok: false, help: false, errors: parsed.errors.map((e) => `${flagOf(e.path)}: ${e.message}`) };
  return { ok: true, config, routes: parsed.value };
}

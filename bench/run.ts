// The benchmark (issue 7): waygate against NGINX, HAProxy and the Node proxies, side by side.
//
//   npm run bench               # full run, under 10 minutes
//   npm run bench -- --quick    # the same cases with short runs, under 2 minutes
//   BASE=<rev> npm run bench    # also an earlier revision of waygate, side by side (before/after)
//   npm run bench -- --only l4 --quick   # only some groups (BENCH_ONLY=l4 alike): a group id
//                                        # (h1-100, l4-conn, …) or a prefix (h1, l4); comma-separated
//
// One nginx worker on CPU 1 is the upstream for every case (100-byte and 16 KiB bodies, /health).
// Each proxy is pinned to CPU 0; wrk/h2load share CPU 1 with the upstream. The cases run
// interleaved (A B C … A B C …) after one warm-up pass, and every ratio is the median of the
// per-round ratios, because absolute numbers drift on a shared machine. The proxy's CPU comes from
// /proc/<pid>/stat (utime+stime of its process tree) over each run, its RSS from /proc/<pid>/status
// after each run. The table goes to stdout and bench/results/latest.md (raw rounds: latest.json).
//
// L4 (issue 14): waygate's tcp listeners beside HAProxy `mode tcp` (nbthread 1) and NGINX `stream`
// (one worker), each pinned to CPU 0, the upstream nginx (plain, and a TLS server block) on CPU 1:
// 1 MiB bulk over 64 kept connections, a new connection per 100-byte exchange, the same over TLS
// passed through by SNI, and idle connections held (bench/l4-idle.ts, after the rounds).
//
// Middlewares (issue 15): one waygate process serving the same request on a route without
// middlewares, with ipAllowList + rateLimit (local store) and with ipAllowList + rateLimit
// (store: redis, a redis-server on CPU 1), interleaved like every other case (A/B in one process).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { middlewareRoutes, scaleMix, scaleRoutes, shopRoutes } from './configs.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(ROOT);
const QUICK = process.argv.includes('--quick');
/** `--only l4`, `--only=h1,tls` or BENCH_ONLY: the groups to run (ids or prefixes); all when unset. */
function onlyOption(): string[] | undefined {
  const i = process.argv.indexOf('--only');
  const v = i >= 0 ? process.argv[i + 1] : process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length) ?? process.env.BENCH_ONLY;
  const list = v?.split(',').map((t) => t.trim()).filter((t) => t !== '');
  return list === undefined || list.length === 0 ? undefined : list;
}
const ONLY = onlyOption();
const selected = (group: string): boolean => ONLY === undefined || ONLY.some((t) => group === t || group.startsWith(`${t}-`));
// An earlier revision to run beside the current one (same config, its own pinned process).
const BASE = process.env.BASE;
// rounds × seconds per run, plus one warm-up pass. Full: 22 HTTP cases × (2 + 5×3) s ≈ 6.5 min,
// plus 12 L4 cases × (2 + 5×2) s ≈ 2.4 min (l4secs per round) and the idle-connection pass (≈ 15 s).
const PLAN = QUICK ? { rounds: 3, secs: 1, warm: 1, l4secs: 1 } : { rounds: 5, secs: 3, warm: 2, l4secs: 2 };
const secsFor = (group: string): number => (group.startsWith('l4-') ? PLAN.l4secs : PLAN.secs);
const NODE = process.execPath;
const CONNS = 64;
const HOST = 'shop.example.com';
// The same request for every case. wrk adds a second Host header unless the key is spelled "Host".
const HEADERS: Record<string, string> = { Host: HOST, 'x-client': 'web' };
const P = {
  up: [19101, 19102, 19103], // upstream nginx: three ports, one worker
  nginx: 19110, nginxTls: 19111,
  haproxy: 19120, hp3: 19130, fastify: 19140, undici: 19150, caddy: 19155,
  wg: 19160, wgTls: 19161, wgAdmin: 19162,
  wg1: 19170, wg1Admin: 19171, wg2: 19175, wg2Admin: 19176,
  wg10: 19180, wg10Admin: 19181, wg1k: 19185, wg1kAdmin: 19186,
  base: 19190, baseTls: 19191, baseAdmin: 19192,
  // L4: the upstream nginx's TLS server block, the hold backend (bench/l4-idle.ts), then per proxy
  // a plain TCP listener and an SNI-routed one; the idle case's proxies are processes of their own.
  upTls: 19104, hold: 19105,
  wgL4: 19500, wgL4Sni: 19501, wgL4Admin: 19502,
  hpL4: 19510, hpL4Sni: 19511,
  ngL4: 19520, ngL4Sni: 19521,
  wgIdle: 19530, wgIdleAdmin: 19531, hpIdle: 19532, ngIdle: 19534,
  // Middlewares: one waygate, its Redis.
  wgMw: 19540, wgMwAdmin: 19541, redis: 19545,
};
// Idle connections to hold (issue 14: 10,000); fewer when the open-files limit cannot give a proxy
// two descriptors per connection (see idleCount()).
const IDLE_TARGET = 10_000;
const MiB = 1024 * 1024;
const UP = `http://127.0.0.1:${P.up[0]}`;
const t0 = Date.now();

// ---------------------------------------------------------------- processes and cleanup

const dir = mkdtempSync(join(tmpdir(), 'waygate-bench-'));
chmodSync(dir, 0o755); // nginx workers run as nobody and read www/ from here
const children: ChildProcess[] = [];
let cleaned = false;
function cleanup(): void {
  if (cleaned) return;
  cleaned = true;
  for (const c of children) {
    try {
      process.kill(-c.pid!, 'SIGKILL'); // each child leads its own process group (nginx workers, cluster workers)
    } catch {}
  }
  rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    console.error(`\n${sig}: stopping`);
    cleanup();
    process.exit(130);
  });
}

function start(name: string, cmd: string, args: string[], opts: { cpu?: string; stdout?: 'null'; env?: Record<string, string> } = {}): ChildProcess {
  const log = openSync(join(dir, `${name}.log`), 'a');
  const out = opts.stdout === 'null' ? 'ignore' : log;
  const [c, a] = opts.cpu === undefined ? [cmd, args] : ['taskset', ['-c', opts.cpu, cmd, ...args]];
  const child = spawn(c, a, { detached: true, stdio: ['ignore', out, log], env: { ...process.env, ...opts.env } });
  children.push(child);
  child.on('exit', (code, signal) => {
    if (!cleaned) console.error(`! ${name} exited (${code ?? signal}); see its log:\n${tail(join(dir, `${name}.log`))}`);
  });
  return child;
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '';
  }
}

function waitPort(port: number, ms = 15_000): Promise<boolean> {
  const until = Date.now() + ms;
  return new Promise((resolve) => {
    const tryOnce = (): void => {
      const s = createConnection({ port, host: '127.0.0.1' });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > until) resolve(false);
        else setTimeout(tryOnce, 100);
      });
    };
    tryOnce();
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- setup: tools, peers, configs

function have(bin: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
}

function ensureTools(): string[] {
  const pkgs: Record<string, string> = { wrk: 'wrk', nginx: 'nginx', haproxy: 'haproxy', caddy: 'caddy', h2load: 'nghttp2-client', openssl: 'openssl', curl: 'curl', taskset: 'util-linux', 'redis-server': 'redis-server' };
  const missing = Object.keys(pkgs).filter((b) => !have(b));
  if (missing.length > 0) {
    console.log(`installing with apt-get: ${missing.map((b) => pkgs[b]).join(' ')}`);
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    for (const b of missing) {
      spawnSync('apt-get', ['install', '-y', '-qq', pkgs[b]], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    }
  }
  const still = Object.keys(pkgs).filter((b) => !have(b));
  for (const b of ['wrk', 'nginx', 'taskset', 'curl']) if (still.includes(b)) throw new Error(`${b} is required and could not be installed`);
  // NGINX `stream` for the L4 cases: Debian builds it as a module of its own package.
  if (l4Selected() && streamModule() === null && nginxV().includes('--with-stream=dynamic')) {
    console.log('installing with apt-get: libnginx-mod-stream (NGINX stream, for the L4 cases)');
    if (missing.length === 0) spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    spawnSync('apt-get', ['install', '-y', '-qq', 'libnginx-mod-stream'], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  }
  if (streamModule() === null) still.push('nginx-stream');
  return still;
}

const l4Selected = (): boolean => [...GROUPS.map((g) => g.id), IDLE_GROUP].some((id) => id.startsWith('l4-') && selected(id));
const httpSelected = (): boolean => GROUPS.some((g) => !g.id.startsWith('l4-') && selected(g.id));

const nginxV = (): string => spawnSync('nginx', ['-V'], { encoding: 'utf8' }).stderr ?? '';

/** The `load_module` line NGINX stream needs ('' when built in), or null when it is not available. */
function streamModule(): string | null {
  const v = nginxV();
  if (/--with-stream(\s|$)/.test(v)) return '';
  if (!v.includes('--with-stream=dynamic')) return null;
  const so = ['/usr/lib/nginx/modules/ngx_stream_module.so', '/usr/share/nginx/modules/ngx_stream_module.so', '/etc/nginx/modules/ngx_stream_module.so'].find((f) => existsSync(f));
  return so === undefined ? null : `load_module ${so};`;
}

function ensurePeers(): void {
  const need = ['fastify', '@fastify/reply-from', 'http-proxy-3', 'undici'];
  const missing = need.filter((m) => {
    try {
      import.meta.resolve(m);
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) {
    console.log(`installing the Node peers (devDependencies): npm install`);
    spawnSync('npm', ['install', '--no-audit', '--no-fund'], { stdio: 'inherit' });
  }
}

function writeConfigs(idle: number): void {
  mkdirSync(join(dir, 'www'), { mode: 0o755 });
  writeFileSync(join(dir, 'www', 'b100'), 'x'.repeat(100));
  writeFileSync(join(dir, 'www', 'b16k'), 'x'.repeat(16 * 1024));
  writeFileSync(join(dir, 'www', 'b1m'), 'x'.repeat(MiB));
  for (const f of ['b100', 'b16k', 'b1m']) chmodSync(join(dir, 'www', f), 0o644);
  // A test certificate for 127.0.0.1 / localhost (P-256), used by nginx and waygate.
  mkdirSync(join(dir, 'certs'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,DNS:shop.example.com,IP:127.0.0.1',
    '-keyout', join(dir, 'certs', 'localhost.key'), '-out', join(dir, 'certs', 'localhost.crt')], { stdio: 'ignore' });
  chmodSync(join(dir, 'certs', 'localhost.key'), 0o644);

  const temps = (n: string): string => ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${t}_temp_path ${dir}/${n}-${t};`).join(' ');
  writeFileSync(join(dir, 'upstream.conf'), `
worker_processes 1;
pid ${dir}/upstream.pid;
error_log ${dir}/upstream-error.log warn;
events { worker_connections 8192; }
http {
  access_log off; ${temps('up')}
  keepalive_requests 10000000; keepalive_timeout 300s;
  sendfile on; tcp_nopush on; etag off;
  open_file_cache max=16 inactive=300s;
  default_type text/plain;
  server {
    ${P.up.map((p) => `listen 127.0.0.1:${p} reuseport;`).join(' ')}
    root ${dir}/www;
    location = /health { return 200 "ok\\n"; }
    location = /l4/b1m { try_files /b1m =404; }
    location ~ 16k { try_files /b16k =404; }
    location / { try_files /b100 =404; }
  }
  # The L4 TLS-passthrough cases' backend: the proxies pass the client's TLS through to it.
  server {
    listen 127.0.0.1:${P.upTls} ssl;
    ssl_certificate ${dir}/certs/localhost.crt; ssl_certificate_key ${dir}/certs/localhost.key;
    ssl_protocols TLSv1.3;
    root ${dir}/www;
    location = /l4/b1m { try_files /b1m =404; }
    location / { try_files /b100 =404; }
  }
}
`);
  writeFileSync(join(dir, 'nginx.conf'), `
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 8192; }
http {
  access_log off; ${temps('px')}
  keepalive_requests 10000000; keepalive_timeout 300s;
  upstream shop { ${P.up.map((p) => `server 127.0.0.1:${p};`).join(' ')} keepalive 64; keepalive_requests 10000000; }
  server {
    listen 127.0.0.1:${P.nginx};
    listen 127.0.0.1:${P.nginxTls} ssl http2;
    ssl_certificate ${dir}/certs/localhost.crt; ssl_certificate_key ${dir}/certs/localhost.key;
    ssl_protocols TLSv1.3;
    location / {
      proxy_pass http://shop;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
}
`);
  writeFileSync(join(dir, 'haproxy.cfg'), `
global
  nbthread 1
  maxconn 4000
  pidfile ${dir}/haproxy.pid
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  option forwardfor
  http-reuse always
frontend fe
  bind 127.0.0.1:${P.haproxy}
  default_backend shop
backend shop
  balance roundrobin
  option httpchk GET /health
${P.up.map((p, i) => `  server s${i} 127.0.0.1:${p} check inter 5s`).join('\n')}
`);
  // Caddy: what many users would pick instead; one core (GOMAXPROCS=1, pinned like the others),
  // round-robin over the same three ports, no access log (Caddy's default), admin API off.
  writeFileSync(join(dir, 'Caddyfile'), `{
  admin off
  auto_https off
}
# Any Host (the cases send Host: shop.example.com), bound to loopback.
http://:${P.caddy} {
  bind 127.0.0.1
  reverse_proxy ${P.up.map((p) => `127.0.0.1:${p}`).join(' ')} {
    lb_policy round_robin
  }
}
`);
  // waygate: the static config (TLS 1.3 like nginx; access log and metrics are the defaults).
  writeFileSync(join(dir, 'waygate.yaml'), 'listeners:\n  https: { minTlsVersion: TLSv1.3 }\nlog: { level: info, access: true }\n');
  writeFileSync(join(dir, 'waygate-mw.yaml'), `log: { level: info, access: true }\nredis: { url: "redis://127.0.0.1:${P.redis}", failMode: open }\n`);
  for (const [name, text] of Object.entries({ shop: shopRoutes(P.up), r10: scaleRoutes(10, 3, P.up), r1k: scaleRoutes(1000, 100, P.up), mw: middlewareRoutes(P.up) })) {
    mkdirSync(join(dir, name));
    writeFileSync(join(dir, name, 'routes.yaml'), text);
  }
  writeFileSync(join(dir, 'mix.lua'), scaleMix(10));
  writeL4Configs(idle);
}

/**
 * The L4 peers. Each load proxy has a plain TCP listener to the upstream nginx (19101) and one that
 * peeks the ClientHello and passes SNI "localhost" through to the upstream's TLS block (any other
 * name is refused); each idle proxy has one listener to the hold backend. Defaults otherwise.
 */
function writeL4Configs(idle: number): void {
  const up = `127.0.0.1:${P.up[0]}`, upTls = `127.0.0.1:${P.upTls}`, hold = `127.0.0.1:${P.hold}`;
  writeFileSync(join(dir, 'haproxy-l4.cfg'), `
global
  nbthread 1
  maxconn 4000
  pidfile ${dir}/haproxy-l4.pid
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend plain
  bind 127.0.0.1:${P.hpL4}
  default_backend up
frontend sni
  bind 127.0.0.1:${P.hpL4Sni}
  tcp-request inspect-delay 5s
  tcp-request content accept if { req_ssl_hello_type 1 }
  use_backend uptls if { req_ssl_sni -i localhost }
backend up
  server s0 ${up}
backend uptls
  server s0 ${upTls}
`);
  writeFileSync(join(dir, 'haproxy-idle.cfg'), `
global
  nbthread 1
  maxconn ${idle + 10}
  pidfile ${dir}/haproxy-idle.pid
defaults
  mode tcp
  timeout connect 5s
  timeout client 300s
  timeout server 300s
frontend idle
  bind 127.0.0.1:${P.hpIdle}
  default_backend hold
backend hold
  server s0 ${hold}
`);
  const load = streamModule() ?? '';
  writeFileSync(join(dir, 'nginx-l4.conf'), `
${load}
worker_processes 1;
pid ${dir}/nginx-l4.pid;
error_log ${dir}/nginx-l4-error.log warn;
events { worker_connections 8192; }
stream {
  upstream up { server ${up}; }
  upstream uptls { server ${upTls}; }
  map $ssl_preread_server_name $sni_pool { localhost uptls; default ""; }
  server { listen 127.0.0.1:${P.ngL4}; proxy_pass up; }
  server { listen 127.0.0.1:${P.ngL4Sni}; ssl_preread on; preread_timeout 5s; proxy_pass $sni_pool; }
}
`);
  writeFileSync(join(dir, 'nginx-idle.conf'), `
${load}
worker_processes 1;
pid ${dir}/nginx-idle.pid;
error_log ${dir}/nginx-idle-error.log warn;
events { worker_connections ${2 * idle + 50}; }
stream {
  server { listen 127.0.0.1:${P.ngIdle}; proxy_pass ${hold}; }
}
`);
  // waygate: the same listeners in waygate.yaml, the pools and tcpRoutes in a routes file.
  writeFileSync(join(dir, 'waygate-l4.yaml'), `listeners:
  tcp:
    plain: { address: "127.0.0.1:${P.wgL4}" }
    sni: { address: "127.0.0.1:${P.wgL4Sni}", peekTimeout: 5s }
log: { level: info, access: true }
`);
  mkdirSync(join(dir, 'l4'));
  writeFileSync(join(dir, 'l4', 'routes.yaml'), `pools:
  up: { targets: ["tcp://${up}"] }
  uptls: { targets: ["tcp://${upTls}"] }
tcpRoutes:
  - { name: plain, listener: plain, pool: up }
  - { name: sni, listener: sni, match: { sni: [localhost] }, pool: uptls }
`);
  writeFileSync(join(dir, 'waygate-idle.yaml'), `listeners:
  tcp:
    idle: { address: "127.0.0.1:${P.wgIdle}" }
log: { level: info, access: true }
`);
  mkdirSync(join(dir, 'idle'));
  writeFileSync(join(dir, 'idle', 'routes.yaml'), `pools:
  hold: { targets: ["tcp://${hold}"] }
tcpRoutes:
  - { name: idle, listener: idle, pool: hold }
`);
  // wrk resolves the URL's host itself; SNI "localhost" from the URL, the address pinned to IPv4.
  writeFileSync(join(dir, 'sni.lua'), 'function setup(thread) thread.addr = wrk.lookup("127.0.0.1", wrk.port)[1] end\n');
}

/** The open-files limit this process (and so every child) has: Node raised its soft limit to the hard one. */
function nofile(): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m === null || m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

/** Idle connections to hold: 10,000, or as many as a proxy can hold with two descriptors each. */
function idleCount(): number {
  return Math.min(IDLE_TARGET, Math.floor((nofile() - 100) / 2));
}

function startWaygate(name: string, routes: string, http: number | 'off', admin: number, opts: { https?: number; cpu?: string; workers?: number; root?: string; config?: string }): ChildProcess {
  // As installed users run it: the command, on the compiled dist/ (built in main()), with the
  // command's own defaults (4 MB young-generation semi-spaces).
  const args = [join(opts.root ?? ROOT, 'bin/waygate.js'), '--config', join(dir, opts.config ?? 'waygate.yaml'), '--routes', join(dir, routes), '--certs', join(dir, 'certs'),
    '--http', http === 'off' ? 'off' : `127.0.0.1:${http}`, '--https', opts.https === undefined ? 'off' : `127.0.0.1:${opts.https}`, '--admin', `127.0.0.1:${admin}`];
  if (opts.workers !== undefined) args.push('--workers', String(opts.workers));
  // The access log (one JSON line per request on stdout) goes to /dev/null.
  return start(name, NODE, args, { cpu: opts.cpu, stdout: 'null' });
}

// ---------------------------------------------------------------- load and measurement

interface Sample { rps: number; p50: number; p99: number; cpu: number | null; rss: number | null; errors: number; requests: number }

function procTable(): Map<number, { ppid: number; ticks: number }> {
  const m = new Map<number, { ppid: number; ticks: number }>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      m.set(Number(d), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) });
    } catch {}
  }
  return m;
}

function tree(pid: number, table = procTable()): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) for (const [p, v] of table) if (v.ppid === out[i]) out.push(p);
  return out;
}

function cpuTicks(pid: number): number {
  const t = procTable();
  return tree(pid, t).reduce((a, p) => a + (t.get(p)?.ticks ?? 0), 0);
}

function rssMB(pid: number): number {
  let kb = 0;
  for (const p of tree(pid)) {
    try {
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      kb += m === null ? 0 : Number(m[1]);
    } catch {}
  }
  return kb / 1024;
}

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

function ms(v: string, unit: string): number {
  return Number(v) * ({ us: 0.001, ms: 1, s: 1000, m: 60_000 } as Record<string, number>)[unit];
}

interface Load { tool: 'wrk' | 'h2load'; url: string; cpu?: string; threads?: number; script?: string; headers?: Record<string, string> }

function runLoad(load: Load, secs: number): Omit<Sample, 'cpu' | 'rss'> {
  const pin = (cmd: string, args: string[]): [string, string[]] => (load.cpu === undefined ? [cmd, args] : ['taskset', ['-c', load.cpu, cmd, ...args]]);
  const hdrs = Object.entries(load.headers ?? HEADERS);
  if (load.tool === 'wrk') {
    const args = [`-t${load.threads ?? 1}`, `-c${CONNS}`, `-d${secs}s`, '--timeout', '5s', '--latency'];
    for (const [k, v] of hdrs) args.push('-H', `${k}: ${v}`);
    if (load.script !== undefined) args.push('-s', load.script);
    const [c, a] = pin('wrk', [...args, load.url]);
    const out = execFileSync(c, a, { encoding: 'utf8', timeout: (secs + 20) * 1000 });
    const lat = (pct: string): number => {
      const m = new RegExp(`^\\s+${pct}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out);
      return m === null ? NaN : ms(m[1], m[2]);
    };
    const num = (re: RegExp): number => Number(re.exec(out)?.[1] ?? 0);
    const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
    const errors = num(/Non-2xx or 3xx responses: (\d+)/) + (sock === null ? 0 : sock.slice(1).reduce((a, b) => a + Number(b), 0));
    return { rps: num(/Requests\/sec:\s+([\d.]+)/), p50: lat('50'), p99: lat('99'), errors, requests: num(/(\d+) requests in/) };
  }
  // h2load: 16 connections × 8 streams; latency percentiles from its per-request log.
  const logFile = join(dir, 'h2load.tsv');
  rmSync(logFile, { force: true });
  const args = ['-t1', '-c16', '-m8', '-D', String(secs), '--log-file', logFile];
  for (const [k, v] of hdrs) args.push('-H', `${k.toLowerCase() === 'host' ? ':authority' : k}: ${v}`);
  const [c, a] = pin('h2load', [...args, load.url]);
  const out = execFileSync(c, a, { encoding: 'utf8', timeout: (secs + 20) * 1000 });
  const durs = readFileSync(logFile, 'utf8').trim().split('\n').map((l) => Number(l.split('\t')[2]) / 1000).sort((x, y) => x - y);
  const q = (p: number): number => durs[Math.min(durs.length - 1, Math.floor(p * durs.length))] ?? NaN;
  const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  const codes = /status codes: (\d+) 2xx/.exec(out);
  const done = Number(req?.[3] ?? 0);
  const errors = Number(req?.[5] ?? 0) + Number(req?.[6] ?? 0) + (done - Number(codes?.[1] ?? 0));
  return { rps: Number(/finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out)?.[1] ?? 0), p50: q(0.5), p99: q(0.99), errors, requests: done };
}

// ---------------------------------------------------------------- cases

interface Case {
  id: string;
  group: string;
  label: string;
  load: Load;
  proc?: () => number | undefined; // the proxy's pid, for CPU and RSS
  // The check request (curl). A URL whose host is a name is sent to 127.0.0.1 with that name as SNI;
  // `refuseSni`: a TLS hello with this SNI must get no response (the proxy routes by SNI).
  check: { url: string; bytes: number; h2?: boolean; refuseSni?: string };
  ok?: boolean;
  samples: Sample[];
  rssSeries: number[];
}

// `unit`: what one request counts as (default 1 req): 1 MiB for the bulk case, 1 connection for the
// connection-rate cases.
interface Group { id: string; title: string; note: string; ratios: { label: string; ref: string | string[] }[]; unit?: { label: string; per: number } }

/** The ratio column to the earlier revision, when BASE is set. */
function before(group: string): Group['ratios'] {
  return BASE === undefined ? [] : [{ label: `× waygate ${BASE}`, ref: `${group}:base` }];
}

const GROUPS: Group[] = [
  { id: 'h1-100', title: 'HTTP/1.1, 100-byte body', note: 'proxy on CPU 0; upstream nginx and wrk -t1 -c64 on CPU 1',
    ratios: [{ label: '× NGINX', ref: 'h1-100:nginx' }, { label: '× fastest Node peer', ref: ['h1-100:hp3', 'h1-100:fastify', 'h1-100:undici'] }, ...before('h1-100')] },
  { id: 'h1-16k', title: 'HTTP/1.1, 16 KiB body', note: 'as above',
    ratios: [{ label: '× NGINX', ref: 'h1-16k:nginx' }, { label: '× fastest Node peer', ref: ['h1-16k:hp3', 'h1-16k:fastify', 'h1-16k:undici'] }, ...before('h1-16k')] },
  { id: 'tls', title: 'HTTPS (TLS 1.3, HTTP/1.1, keep-alive), 100-byte body', note: 'wrk -t1 -c64 over TLS 1.3, P-256 certificate; plain HTTP/1.1 to the upstream',
    ratios: [{ label: '× NGINX', ref: 'tls:nginx' }, ...before('tls')] },
  { id: 'h2', title: 'HTTP/2 over TLS 1.3, 100-byte body', note: 'h2load -c16 -m8 on CPU 1; HTTP/1.1 to the upstream',
    ratios: [{ label: '× NGINX', ref: 'h2:nginx' }, ...before('h2')] },
  { id: 'workers', title: 'waygate --workers 2 vs 1 (NOT pinned; 2-core machine)', note: 'waygate unpinned, wrk -t2 -c64 unpinned: load generator, upstream (CPU 1) and proxy share both cores, so this shows what a 2nd worker buys on a box this small, not multi-core scaling',
    ratios: [{ label: '× 1 worker', ref: 'workers:w1' }] },
  { id: 'config', title: 'waygate config size: 10 routes vs 1,000 routes and 100 pools', note: 'same 10-request mix (host/path/header routes present in both tables); proxy on CPU 0, wrk on CPU 1',
    ratios: [{ label: '× 10 routes', ref: 'config:r10' }] },
  { id: 'mw', title: 'waygate middlewares: the same 100-byte request with and without them', note: 'one waygate process on CPU 0 (pool of 3, access log → /dev/null); ipAllowList 127.0.0.0/8 and a rateLimit that never refuses (its bucket is checked and taken on every request); redis-server on CPU 1 with the upstream and wrk',
    ratios: [{ label: '× no middlewares', ref: 'mw:none' }] },
  { id: 'l4-bulk', title: 'L4 TCP: 1 MiB transfers over 64 kept connections', unit: { label: 'MiB/s', per: 1 },
    note: 'wrk -t1 -c64 (keep-alive) GETs a 1 MiB file from the upstream nginx through each proxy\'s plain TCP listener; proxy on CPU 0, upstream and wrk on CPU 1; MiB/s = responses/s × 1 MiB',
    ratios: [{ label: '× HAProxy', ref: 'l4-bulk:haproxy' }, { label: '× NGINX', ref: 'l4-bulk:nginx' }] },
  { id: 'l4-conn', title: 'L4 TCP: a new connection per 100-byte exchange', unit: { label: 'conn/s', per: 1 },
    note: 'wrk -t1 -c64 with Connection: close, so each request is a new client connection and a new proxy → upstream connection; p50/p99 from the request\'s write to its response (the client\'s own connect excluded)',
    ratios: [{ label: '× HAProxy', ref: 'l4-conn:haproxy' }, { label: '× NGINX', ref: 'l4-conn:nginx' }] },
  { id: 'l4-tls-bulk', title: 'L4 TLS passthrough by SNI: 1 MiB transfers over 64 kept HTTPS connections', unit: { label: 'MiB/s', per: 1 },
    note: 'the bulk load over TLS 1.3 (P-256) to a TLS server block of the upstream nginx: each proxy peeks the ClientHello, routes SNI "localhost" (any other name is refused) and passes the bytes through; encryption costs CPU 1 (wrk, upstream), so compare per proxy core',
    ratios: [{ label: '× HAProxy', ref: 'l4-tls-bulk:haproxy' }, { label: '× NGINX', ref: 'l4-tls-bulk:nginx' }] },
  { id: 'l4-tls-conn', title: 'L4 TLS passthrough by SNI: a new connection (a peek) per 100-byte HTTPS exchange', unit: { label: 'conn/s', per: 1 },
    note: 'the connection-rate load over TLS, routed by SNI as above: a ClientHello peeked and a full handshake relayed (four flights, not two) per connection; the handshakes cost CPU 1, so compare per proxy core',
    ratios: [{ label: '× HAProxy', ref: 'l4-tls-conn:haproxy' }, { label: '× NGINX', ref: 'l4-tls-conn:nginx' }] },
];
// The idle-connection pass (not a wrk load; its own table). A group id, so --only can name it.
const IDLE_GROUP = 'l4-idle';

function buildCases(missing: string[], procs: Record<string, ChildProcess>): Case[] {
  const pid = (k: string) => (): number | undefined => procs[k]?.pid;
  const w = (url: string): Load => ({ tool: 'wrk', url, cpu: '1' });
  const cases: Case[] = [];
  const add = (c: Omit<Case, 'samples' | 'rssSeries'>): void => void cases.push({ ...c, samples: [], rssSeries: [] });
  for (const [g, path, bytes] of [['h1-100', '/api/b100', 100], ['h1-16k', '/api/b16k', 16384]] as const) {
    const peer = (id: string, label: string, port: number, proc?: string): void =>
      add({ id: `${g}:${id}`, group: g, label, load: w(`http://127.0.0.1:${port}${path}`), proc: proc === undefined ? undefined : pid(proc), check: { url: `http://127.0.0.1:${port}${path}`, bytes } });
    peer('direct', 'direct to the upstream (the limit, no proxy)', P.up[0]);
    peer('nginx', 'NGINX 1.22 proxy_pass, keep-alive pool of 3, access_log off', P.nginx, 'nginx');
    if (!missing.includes('haproxy')) peer('haproxy', 'HAProxy 2.6, nbthread 1, pool of 3, health checks, http-reuse always', P.haproxy, 'haproxy');
    if (!missing.includes('caddy')) peer('caddy', 'Caddy 2.6 reverse_proxy, GOMAXPROCS=1, pool of 3, no access log', P.caddy, 'caddy');
    peer('hp3', 'http-proxy-3 (keep-alive agent, 1 target)', P.hp3, 'hp3');
    peer('fastify', 'fastify + @fastify/reply-from (undici, 1 target)', P.fastify, 'fastify');
    peer('undici', 'minimal undici forwarder (1 target)', P.undici, 'undici');
    peer('waygate', 'waygate (realistic routes, pool of 3 + health checks, access log → /dev/null, metrics on)', P.wg, 'wg');
    if (BASE !== undefined) peer('base', `waygate at ${BASE} (the same)`, P.base, 'base');
  }
  if (!missing.includes('openssl')) {
    add({ id: 'tls:nginx', group: 'tls', label: 'NGINX 1.22', load: w(`https://127.0.0.1:${P.nginxTls}/api/b100`), proc: pid('nginx'), check: { url: `https://127.0.0.1:${P.nginxTls}/api/b100`, bytes: 100 } });
    add({ id: 'tls:waygate', group: 'tls', label: 'waygate (as above)', load: w(`https://127.0.0.1:${P.wgTls}/api/b100`), proc: pid('wg'), check: { url: `https://127.0.0.1:${P.wgTls}/api/b100`, bytes: 100 } });
    if (BASE !== undefined) add({ id: 'tls:base', group: 'tls', label: `waygate at ${BASE}`, load: w(`https://127.0.0.1:${P.baseTls}/api/b100`), proc: pid('base'), check: { url: `https://127.0.0.1:${P.baseTls}/api/b100`, bytes: 100 } });
    if (!missing.includes('h2load')) {
      const h = (port: number): Load => ({ tool: 'h2load', url: `https://127.0.0.1:${port}/api/b100`, cpu: '1' });
      add({ id: 'h2:nginx', group: 'h2', label: 'NGINX 1.22', load: h(P.nginxTls), proc: pid('nginx'), check: { url: `https://127.0.0.1:${P.nginxTls}/api/b100`, bytes: 100, h2: true } });
      add({ id: 'h2:waygate', group: 'h2', label: 'waygate (as above)', load: h(P.wgTls), proc: pid('wg'), check: { url: `https://127.0.0.1:${P.wgTls}/api/b100`, bytes: 100, h2: true } });
      if (BASE !== undefined) add({ id: 'h2:base', group: 'h2', label: `waygate at ${BASE}`, load: h(P.baseTls), proc: pid('base'), check: { url: `https://127.0.0.1:${P.baseTls}/api/b100`, bytes: 100, h2: true } });
    }
  }
  const free = (port: number): Load => ({ tool: 'wrk', url: `http://127.0.0.1:${port}/api/b100`, threads: 2 });
  add({ id: 'workers:w1', group: 'workers', label: 'waygate --workers 1, unpinned', load: free(P.wg1), proc: pid('wg1'), check: { url: `http://127.0.0.1:${P.wg1}/api/b100`, bytes: 100 } });
  add({ id: 'workers:w2', group: 'workers', label: 'waygate --workers 2, unpinned (primary + 2 workers)', load: free(P.wg2), proc: pid('wg2'), check: { url: `http://127.0.0.1:${P.wg2}/api/b100`, bytes: 100 } });
  const mix = (port: number): Load => ({ tool: 'wrk', url: `http://127.0.0.1:${port}`, cpu: '1', script: join(dir, 'mix.lua'), headers: {} });
  const mwUrl = (path: string): string => `http://127.0.0.1:${P.wgMw}${path}`;
  add({ id: 'mw:none', group: 'mw', label: 'route without middlewares', load: w(mwUrl('/api/b100')), proc: pid('wgMw'), check: { url: mwUrl('/api/b100'), bytes: 100 } });
  add({ id: 'mw:local', group: 'mw', label: 'ipAllowList + rateLimit (store: local)', load: w(mwUrl('/local/api/b100')), proc: pid('wgMw'), check: { url: mwUrl('/local/api/b100'), bytes: 100 } });
  if (!missing.includes('redis-server')) add({ id: 'mw:redis', group: 'mw', label: 'ipAllowList + rateLimit (store: redis, one Lua call per request)', load: w(mwUrl('/redis/api/b100')), proc: pid('wgMw'), check: { url: mwUrl('/redis/api/b100'), bytes: 100 } });
  add({ id: 'config:r10', group: 'config', label: 'waygate, 10 routes, 3 pools', load: mix(P.wg10), proc: pid('wg10'), check: { url: `http://127.0.0.1:${P.wg10}/svc1/x`, bytes: 100 } });
  add({ id: 'config:r1k', group: 'config', label: 'waygate, 1,000 routes, 100 pools', load: mix(P.wg1k), proc: pid('wg1k'), check: { url: `http://127.0.0.1:${P.wg1k}/svc1/x`, bytes: 100 } });
  // L4: the same four loads through each proxy's two listeners (plain; SNI-routed TLS passthrough).
  const l4: [string, string, string, number, number][] = [['waygate', 'waygate tcp listener (access log → /dev/null, metrics on)', 'wgL4', P.wgL4, P.wgL4Sni]];
  if (!missing.includes('haproxy')) l4.push(['haproxy', 'HAProxy 2.6 mode tcp, nbthread 1', 'hpL4', P.hpL4, P.hpL4Sni]);
  if (!missing.includes('nginx-stream')) l4.push(['nginx', 'NGINX 1.22 stream, 1 worker', 'ngL4', P.ngL4, P.ngL4Sni]);
  const close = { Connection: 'close' };
  for (const [id, label, proc, plain, sni] of l4) {
    add({ id: `l4-bulk:${id}`, group: 'l4-bulk', label, load: { tool: 'wrk', url: `http://127.0.0.1:${plain}/l4/b1m`, cpu: '1', headers: {} }, proc: pid(proc), check: { url: `http://127.0.0.1:${plain}/l4/b1m`, bytes: MiB } });
    add({ id: `l4-conn:${id}`, group: 'l4-conn', label, load: { tool: 'wrk', url: `http://127.0.0.1:${plain}/api/b100`, cpu: '1', headers: close }, proc: pid(proc), check: { url: `http://127.0.0.1:${plain}/api/b100`, bytes: 100 } });
    if (!missing.includes('openssl')) {
      const https = (path: string, headers: Record<string, string>): Load => ({ tool: 'wrk', url: `https://localhost:${sni}${path}`, cpu: '1', headers, script: join(dir, 'sni.lua') });
      add({ id: `l4-tls-bulk:${id}`, group: 'l4-tls-bulk', label: `${label}, SNI peek`, load: https('/l4/b1m', {}), proc: pid(proc),
        check: { url: `https://localhost:${sni}/l4/b1m`, bytes: MiB, refuseSni: 'other.example.com' } });
      add({ id: `l4-tls-conn:${id}`, group: 'l4-tls-conn', label: `${label}, SNI peek`, load: https('/api/b100', close), proc: pid(proc),
        check: { url: `https://localhost:${sni}/api/b100`, bytes: 100, refuseSni: 'other.example.com' } });
    }
  }
  return cases.filter((c) => selected(c.group));
}

// ---------------------------------------------------------------- idle connections (L4)

interface IdleCase { id: string; label: string; port: number; proc: string; ok?: boolean; result?: IdleResult }
interface IdleResult { wanted: number; open: number; greeted: number; failed: number; openMs: number; rssBefore: number; rssOpen: number; rssAfter: number; firstError?: string }

function idleCases(missing: string[]): IdleCase[] {
  if (!selected(IDLE_GROUP)) return [];
  const out: IdleCase[] = [{ id: 'l4-idle:waygate', label: 'waygate tcp listener', port: P.wgIdle, proc: 'wgIdle' }];
  if (!missing.includes('haproxy')) out.push({ id: 'l4-idle:haproxy', label: 'HAProxy 2.6 mode tcp, nbthread 1', port: P.hpIdle, proc: 'hpIdle' });
  if (!missing.includes('nginx-stream')) out.push({ id: 'l4-idle:nginx', label: 'NGINX 1.22 stream, 1 worker', port: P.ngIdle, proc: 'ngIdle' });
  return out;
}

/** The idle case's check: one connection through the proxy receives the hold backend's greeting byte. */
function greets(port: number, ms = 3000): Promise<string | null> {
  return new Promise((resolve) => {
    const s = createConnection({ port, host: '127.0.0.1' });
    const done = (err: string | null): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(err);
    };
    const timer = setTimeout(() => done(`no greeting from the backend within ${ms} ms`), ms);
    s.once('data', (d) => done(d.toString() === '+' ? null : `got ${JSON.stringify(d.toString())}, not the backend's greeting`));
    s.once('error', (err) => done(err.message));
    s.once('close', () => done('closed before the greeting'));
  });
}

/** Opens `n` connections through the proxy (bench/l4-idle.ts on CPU 1), reads the proxy's RSS with them open, closes them. */
async function measureIdle(ic: IdleCase, pid: number, n: number): Promise<IdleResult> {
  const rssBefore = rssMB(pid);
  const child = spawn('taskset', ['-c', '1', NODE, 'bench/l4-idle.ts', 'open', String(ic.port), String(n)], { detached: true, stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(child);
  const lines: string[] = [];
  let buf = '';
  let wake: (() => void) | undefined;
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    wake?.();
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.once('exit', () => wake?.());
  const waitFor = async (event: string, ms: number): Promise<Record<string, unknown>> => {
    const until = Date.now() + ms;
    for (;;) {
      const hit = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((j) => j.event === event);
      if (hit !== undefined) return hit;
      if (child.exitCode !== null || Date.now() > until) throw new Error(`bench/l4-idle.ts gave no "${event}" line`);
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 500);
      });
    }
  };
  let ready: Record<string, unknown>, rssOpen: number;
  try {
    ready = await waitFor('ready', 90_000);
    await sleep(1000); // let the proxy settle (lazy allocations, timers)
    rssOpen = rssMB(pid);
    child.stdin!.end('close\n');
    await waitFor('closed', 10_000);
    await exited;
  } catch (err) {
    try {
      process.kill(-child.pid!, 'SIGKILL'); // its connections go before the next proxy's run
    } catch {}
    throw err;
  }
  await sleep(1000);
  return { wanted: n, open: Number(ready.open), greeted: Number(ready.greeted), failed: Number(ready.failed), openMs: Number(ready.ms), rssBefore, rssOpen, rssAfter: rssMB(pid),
    firstError: ready.firstError === undefined ? undefined : String(ready.firstError) };
}

function sanity(c: Case): string | null {
  const args = ['-sk', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{http_version}'];
  if (c.check.h2) args.push('--http2');
  else args.push('--http1.1');
  if (c.group !== 'config' && !c.group.startsWith('l4-')) for (const [k, v] of Object.entries(HEADERS)) args.push('-H', `${k}: ${v}`);
  // A host name in the URL: sent to 127.0.0.1, the name as SNI.
  const at = (url: string): string[] => {
    const u = new URL(url);
    return /^[\d.]+$/.test(u.hostname) ? [url] : ['--resolve', `${u.hostname}:${u.port}:127.0.0.1`, url];
  };
  const r = spawnSync('curl', [...args, ...at(c.check.url)], { encoding: 'utf8' });
  const [code, size, ver] = r.stdout.split(' ');
  if (code !== '200' || Number(size) !== c.check.bytes) return `got ${code} with ${size} bytes`;
  if (c.check.h2 && ver !== '2') return `spoke HTTP/${ver}, not HTTP/2`;
  if (c.check.refuseSni !== undefined) {
    const other = new URL(c.check.url);
    other.hostname = c.check.refuseSni;
    const o = spawnSync('curl', [...args, ...at(other.href)], { encoding: 'utf8' });
    if (o.stdout.split(' ')[0] !== '000') return `answered SNI ${c.check.refuseSni} (${o.stdout.split(' ')[0]}): the proxy does not route by SNI`;
  }
  return null;
}

function measure(c: Case, secs: number): Sample {
  const pid = c.proc?.();
  const cpu0 = pid === undefined ? 0 : cpuTicks(pid);
  const w0 = process.hrtime.bigint();
  const r = runLoad(c.load, secs);
  const wall = Number(process.hrtime.bigint() - w0) / 1e9;
  const cpu = pid === undefined ? null : (cpuTicks(pid) - cpu0) / CLK_TCK / wall;
  const rss = pid === undefined ? null : rssMB(pid);
  if (rss !== null) c.rssSeries.push(rss);
  return { ...r, cpu, rss };
}

// ---------------------------------------------------------------- report

const median = (xs: number[]): number => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmtInt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—');
const fmtMs = (n: number): string => (Number.isFinite(n) ? (n < 10 ? n.toFixed(2) : n.toFixed(1)) + ' ms' : '—');

function report(cases: Case[], idles: IdleCase[] = []): string {
  const byId = new Map(cases.map((c) => [c.id, c]));
  const lines: string[] = [];
  const when = new Date().toISOString().slice(0, 16).replace('T', ' ');
  lines.push(`Run ${when} UTC${QUICK ? ' (--quick)' : ''}${ONLY === undefined ? '' : ` (--only ${ONLY.join(',')})`}: ${PLAN.rounds} interleaved rounds × ${PLAN.secs} s per case (L4: ${PLAN.l4secs} s) after a ${PLAN.warm} s warm-up pass, ` +
    `Node ${process.version}, ${readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? 'unknown CPU'}, ${spawnSync('nproc', { encoding: 'utf8' }).stdout.trim()} cores. ` +
    `req/s: median (min–max); p50/p99: medians of the rounds; proxy CPU: cores used by the proxy's process tree (utime+stime); ` +
    `ratios: median of the per-round ratios.`);
  const warnings: string[] = [];
  for (const g of GROUPS) {
    const gc = cases.filter((c) => c.group === g.id);
    if (gc.length === 0) continue;
    lines.push('', `### ${g.title}`, '', `_${g.note}._`, '');
    const refCase = (ref: string | string[]): Case | undefined => {
      const list = (Array.isArray(ref) ? ref : [ref]).map((r) => byId.get(r)).filter((c): c is Case => c?.ok === true && c.samples.length > 0);
      return list.sort((a, b) => median(b.samples.map((s) => s.rps)) - median(a.samples.map((s) => s.rps)))[0];
    };
    const refs = g.ratios.map((r) => ({ ...r, c: refCase(r.ref) }));
    const u = g.unit ?? { label: 'req/s', per: 1 };
    const head = ['case', u.label, 'p50', 'p99', 'proxy CPU', `${u.label} per proxy core`, 'RSS after load', ...refs.map((r) => r.label + (Array.isArray(r.ref) && r.c !== undefined ? ` (${r.c.id.split(':')[1]})` : ''))];
    lines.push(`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`);
    for (const c of gc) {
      if (c.ok !== true || c.samples.length === 0) {
        lines.push(`| ${c.label} | not run${c.ok === false ? ' (failed its check)' : ''} |${' |'.repeat(head.length - 2)}`);
        continue;
      }
      const s = c.samples;
      const rps = s.map((x) => x.rps * u.per);
      const errs = s.reduce((a, x) => a + x.errors, 0);
      if (errs > 0) warnings.push(`${c.id}: ${errs} non-2xx responses or socket errors over ${s.reduce((a, x) => a + x.requests, 0)} requests`);
      const cpu = c.proc === undefined ? NaN : median(s.map((x) => x.cpu ?? NaN));
      const perCore = c.proc === undefined ? NaN : median(s.map((x) => (x.cpu ? (x.rps * u.per) / x.cpu : NaN)));
      const rss = c.rssSeries.at(-1);
      const ratio = (ref: Case | undefined): string => {
        if (ref === undefined) return '—';
        if (ref === c) return '1.00';
        return median(s.map((x, i) => x.rps / (ref.samples[i]?.rps ?? NaN))).toFixed(2);
      };
      lines.push(`| ${c.label} | ${fmtInt(median(rps))} (${fmtInt(Math.min(...rps))}–${fmtInt(Math.max(...rps))}) | ${fmtMs(median(s.map((x) => x.p50)))} | ${fmtMs(median(s.map((x) => x.p99)))} | ` +
        `${Number.isFinite(cpu) ? cpu.toFixed(2) : '—'} | ${fmtInt(perCore)} | ${rss === undefined ? '—' : rss.toFixed(0) + ' MB'} | ${refs.map((r) => ratio(r.c)).join(' | ')} |`);
    }
  }
  lines.push(...barSection(byId));
  lines.push(...idleSection(idles));
  lines.push(...l4BarSection(byId, idles));
  // RSS across repeated runs, per waygate process.
  lines.push('', '### waygate RSS across repeated runs', '', '| process | runs under load | RSS after 1st | after median run | after last | growth 1st → last |', '| --- | ---: | ---: | ---: | ---: | ---: |');
  const seen = new Set<string>();
  for (const c of cases) {
    const pinned = ['h1-', 'tls', 'h2'].some((g) => c.id.startsWith(g));
    const l4 = c.group.startsWith('l4-') && c.id.endsWith(':waygate');
    const key = pinned && c.id.endsWith(':waygate') ? 'wg' : pinned && c.id.endsWith(':base') ? 'base' : l4 ? 'wgL4' : c.id;
    if (!c.id.includes('waygate') && key !== 'base' && !['workers', 'config'].includes(c.group)) continue;
    if (seen.has(key)) continue;
    seen.add(key);
    const series = c.rssSeries; // one array for all the cases of one process (shareSeries)
    if (series.length === 0) continue;
    const label = key === 'wg' ? 'waygate pinned (HTTP/1.1 100 B, 16 KiB, TLS, HTTP/2 cases)' : key === 'base' ? `waygate at ${BASE}, pinned (the same cases)` :
      key === 'wgL4' ? 'waygate L4 pinned (bulk, connection-rate and TLS passthrough cases)' : c.label;
    const first = series[0], last = series.at(-1)!;
    lines.push(`| ${label} | ${series.length} | ${first.toFixed(0)} MB | ${median(series).toFixed(0)} MB | ${last.toFixed(0)} MB | ${last - first >= 0 ? '+' : ''}${(last - first).toFixed(1)} MB |`);
  }
  if (warnings.length > 0) lines.push('', 'Errors seen:', ...warnings.map((w) => `- ${w}`));
  lines.push('', `Total time ${((Date.now() - t0) / 1000).toFixed(0)} s.`);
  return lines.join('\n');
}

// Issue 7's bar: waygate's req/s per proxy core against each Node peer (median of the per-round
// ratios), and its p99 against the best Node peer's.
const BAR: { peer: string; label: string; target: number }[] = [
  { peer: 'hp3', label: 'http-proxy-3', target: 1.5 },
  { peer: 'fastify', label: 'fastify + reply-from', target: 1.3 },
  { peer: 'undici', label: 'minimal undici forwarder', target: 1.0 },
];

function barSection(byId: Map<string, Case>): string[] {
  const out = ['', '### waygate against the bar (issue 7)', '',
    '_Per-core ratios are the median over rounds of (waygate req/s ÷ its CPU) ÷ (peer req/s ÷ its CPU); req/s ratios are the plain per-round ratios._', '',
    '| body | measure | target | req/s per core | req/s | met |', '| --- | --- | ---: | ---: | ---: | --- |'];
  for (const body of ['h1-100', 'h1-16k']) {
    const wg = byId.get(`${body}:waygate`);
    if (wg?.ok !== true || wg.samples.length === 0) continue;
    const name = body === 'h1-100' ? '100 B' : '16 KiB';
    const perCore = (x: Sample): number => (x.cpu ? x.rps / x.cpu : NaN);
    for (const b of BAR) {
      const peer = byId.get(`${body}:${b.peer}`);
      if (peer?.ok !== true || peer.samples.length === 0) continue;
      const core = median(wg.samples.map((x, i) => perCore(x) / perCore(peer.samples[i] ?? ({} as Sample))));
      const rps = median(wg.samples.map((x, i) => x.rps / (peer.samples[i]?.rps ?? NaN)));
      out.push(`| ${name} | × ${b.label} | ≥ ${b.target.toFixed(1)} | ${core.toFixed(2)} | ${rps.toFixed(2)} | ${core >= b.target ? 'yes' : 'no'} |`);
    }
    const peers = BAR.map((b) => byId.get(`${body}:${b.peer}`)).filter((c): c is Case => c?.ok === true && c.samples.length > 0);
    if (peers.length > 0) {
      const p99 = (c: Case): number => median(c.samples.map((x) => x.p99));
      const best = peers.sort((a, b) => p99(a) - p99(b))[0];
      out.push(`| ${name} | p99 vs the best Node peer's (${best.id.split(':')[1]}) | ≤ ${fmtMs(p99(best))} | ${fmtMs(p99(wg))} | | ${p99(wg) <= p99(best) ? 'yes' : 'no'} |`);
    }
  }
  return out.length > 7 ? out : []; // header only: no HTTP/1.1 cases in this run (--only)
}

// Shares the pinned waygate's RSS series across its four groups (one process, one history), and
// the L4 waygate's across its three.
function shareSeries(cases: Case[]): void {
  const sets = [
    ...['waygate', 'base'].map((name) => ['h1-100', 'h1-16k', 'tls', 'h2'].map((g) => `${g}:${name}`)),
    ['l4-bulk', 'l4-conn', 'l4-tls-bulk', 'l4-tls-conn'].map((g) => `${g}:waygate`),
  ];
  for (const ids of sets) {
    const shared: number[] = [];
    for (const c of cases) if (c.proc !== undefined && ids.includes(c.id)) c.rssSeries = shared;
  }
}

function idleSection(idles: IdleCase[]): string[] {
  const run = idles.filter((i) => i.result !== undefined || i.ok === false);
  if (run.length === 0) return [];
  const n = idles.find((i) => i.result !== undefined)?.result?.wanted ?? IDLE_TARGET;
  const out = ['', '### L4: idle connections held', '',
    `_${fmtInt(n)} connections opened from CPU 1 (bench/l4-idle.ts, 200 at a time), each through the proxy (CPU 0) to a backend on CPU 1 that greets it with one byte and holds it; ` +
    `a connection counts as held once the greeting came back through the proxy. RSS of the proxy's process tree before, 1 s after all were open, and 1 s after they closed` +
    `${n < IDLE_TARGET ? `; ${fmtInt(n)}, not ${fmtInt(IDLE_TARGET)}: the open-files limit here is ${fmtInt(nofile())} and a proxy needs two descriptors per connection` : ''}._`, '',
    '| proxy | held | opened in | RSS before | RSS with them open | per connection | RSS after they closed |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: |'];
  for (const i of run) {
    const r = i.result;
    if (r === undefined) {
      out.push(`| ${i.label} | not run (failed its check) | | | | | |`);
      continue;
    }
    const per = r.open > 0 ? ((r.rssOpen - r.rssBefore) * 1024) / r.open : NaN;
    out.push(`| ${i.label} | ${fmtInt(r.greeted)} of ${fmtInt(r.wanted)}${r.failed > 0 ? ` (${fmtInt(r.failed)} failed: ${r.firstError ?? '?'})` : ''} | ${(r.openMs / 1000).toFixed(1)} s | ` +
      `${r.rssBefore.toFixed(0)} MB | ${r.rssOpen.toFixed(0)} MB | ${Number.isFinite(per) ? per.toFixed(1) + ' KB' : '—'} | ${r.rssAfter.toFixed(0)} MB |`);
  }
  return out;
}

// Issue 14's bar (L4): per proxy core against HAProxy; TLS passthrough against waygate's own plain
// TCP figures (the target on the bulk one); the idle RSS.
function l4BarSection(byId: Map<string, Case>, idles: IdleCase[]): string[] {
  const live = (id: string): Case | undefined => {
    const c = byId.get(id);
    return c?.ok === true && c.samples.length > 0 ? c : undefined;
  };
  const perCore = (x: Sample | undefined): number => (x?.cpu ? x.rps / x.cpu : NaN);
  const ratios = (a: Case, b: Case): { core: number; raw: number } => ({
    core: median(a.samples.map((x, i) => perCore(x) / perCore(b.samples[i]))),
    raw: median(a.samples.map((x, i) => x.rps / (b.samples[i]?.rps ?? NaN))),
  });
  const rows: string[] = [];
  const row = (load: string, measure: string, target: number | undefined, a: Case | undefined, b: Case | undefined): void => {
    if (a === undefined || b === undefined) return;
    const r = ratios(a, b);
    rows.push(`| ${load} | ${measure} | ${target === undefined ? '(for comparison)' : `≥ ${target.toFixed(1)}`} | ${r.core.toFixed(2)} | ${r.raw.toFixed(2)} | ${target === undefined ? '' : r.core >= target ? 'yes' : 'no'} |`);
  };
  row('1 MiB bulk, 64 kept connections', '× HAProxy', 0.8, live('l4-bulk:waygate'), live('l4-bulk:haproxy'));
  row('1 MiB bulk, 64 kept connections', '× NGINX stream', undefined, live('l4-bulk:waygate'), live('l4-bulk:nginx'));
  row('new connection per 100 B', '× HAProxy', 0.4, live('l4-conn:waygate'), live('l4-conn:haproxy'));
  row('new connection per 100 B', '× NGINX stream', undefined, live('l4-conn:waygate'), live('l4-conn:nginx'));
  const p99 = (c: Case | undefined): string => (c === undefined ? '—' : fmtMs(median(c.samples.map((x) => x.p99))));
  if (live('l4-conn:waygate') !== undefined) {
    rows.push(`| new connection per 100 B | p99: waygate / HAProxy / NGINX | (reported) | ${p99(live('l4-conn:waygate'))} / ${p99(live('l4-conn:haproxy'))} / ${p99(live('l4-conn:nginx'))} | | |`);
  }
  for (const [load, tls, plain, target] of [['TLS passthrough, 1 MiB bulk', 'l4-tls-bulk', 'l4-bulk', 0.8], ['TLS passthrough, new connection per 100 B', 'l4-tls-conn', 'l4-conn', undefined]] as const) {
    const what = plain === 'l4-bulk' ? 'plain TCP bulk figure' : 'plain TCP connection rate';
    row(load, `waygate × its own ${what}`, target, live(`${tls}:waygate`), live(`${plain}:waygate`));
    row(load, `HAProxy × its own ${what}`, undefined, live(`${tls}:haproxy`), live(`${plain}:haproxy`));
    row(load, `NGINX × its own ${what}`, undefined, live(`${tls}:nginx`), live(`${plain}:nginx`));
    row(load, 'waygate × HAProxy', undefined, live(`${tls}:waygate`), live(`${tls}:haproxy`));
  }
  const wg = idles.find((i) => i.id === 'l4-idle:waygate')?.result;
  if (wg !== undefined && wg.greeted > 0) {
    // Below 10,000 (the open-files limit), the figure at 10,000 is extrapolated from the per-connection growth.
    const at10k = wg.rssBefore + ((wg.rssOpen - wg.rssBefore) * IDLE_TARGET) / wg.greeted;
    const full = wg.greeted >= IDLE_TARGET;
    rows.push(`| ${fmtInt(IDLE_TARGET)} idle connections | waygate RSS with them open${full ? '' : ` (${fmtInt(wg.greeted)} held; at ${fmtInt(IDLE_TARGET)} extrapolated)`} | ≤ 150 MB | ` +
      `${full ? wg.rssOpen.toFixed(0) : `${wg.rssOpen.toFixed(0)} → ${at10k.toFixed(0)}`} MB | | ${at10k <= 150 ? 'yes' : 'no'} |`);
  }
  if (rows.length === 0) return [];
  return ['', '### waygate against the bar (issue 14, L4)', '',
    '_Per-core ratios are the median over rounds of (waygate rate ÷ its CPU) ÷ (the other\'s rate ÷ its CPU), the targets apply to them; raw ratios are the plain per-round ratios. ' +
    'The TLS rows compare each proxy\'s TLS passthrough figure with its own plain TCP one (the same load without TLS, same round); the target applies to the bulk figure, ' +
    'the per-connection row shows what the peek and the relayed handshake cost._', '',
    '| load | measure | target | per core | raw | met |', '| --- | --- | ---: | ---: | ---: | --- |', ...rows];
}

/** Builds revision `rev` of waygate into the work dir (its dist/, this checkout's node_modules); returns its root. */
function buildBase(rev: string): string {
  const root = join(dir, 'base');
  mkdirSync(root);
  const archive = spawnSync('git', ['archive', '--format=tar', rev], { cwd: ROOT, maxBuffer: 1 << 30 });
  if (archive.status !== 0) throw new Error(`BASE=${rev}: git archive failed: ${archive.stderr.toString().trim()}`);
  execFileSync('tar', ['-x', '-C', root], { input: archive.stdout });
  symlinkSync(join(ROOT, 'node_modules'), join(root, 'node_modules'));
  const tsc = spawnSync(join(ROOT, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  if (tsc.status !== 0) throw new Error(`BASE=${rev}: its build failed`);
  return root;
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  if (spawnSync('taskset', ['-c', '1', 'true']).status !== 0) throw new Error('needs 2 CPUs for taskset -c 0/1');
  const known = [...GROUPS.map((g) => g.id), IDLE_GROUP];
  for (const t of ONLY ?? []) if (!known.some((id) => id === t || id.startsWith(`${t}-`))) throw new Error(`--only ${t}: no such group (groups: ${known.join(', ')}; or a prefix: h1, l4)`);
  const missing = ensureTools();
  if (missing.length > 0) console.log(`not available, cases skipped: ${missing.join(', ')}`);
  const http = httpSelected(), l4 = l4Selected();
  if (http) ensurePeers();
  // waygate runs from dist/ (WAYGATE_DIST=1), as the npm package and the container image do.
  if (spawnSync('npm', ['run', 'build'], { stdio: 'inherit' }).status !== 0) throw new Error('npm run build failed');
  process.env.WAYGATE_DIST = '1';
  const idleN = idleCount();
  if (selected(IDLE_GROUP) && idleN < IDLE_TARGET) {
    console.log(`! the open-files limit is ${nofile()} (ulimit -Hn): the idle case holds ${idleN} connections, not ${IDLE_TARGET} (a proxy needs 2 descriptors per connection; raise the hard limit above ${2 * IDLE_TARGET + 100} for the full count)`);
  }
  writeConfigs(idleN);
  console.log(`bench: ${QUICK ? 'quick' : 'full'} run${ONLY === undefined ? '' : ` of ${ONLY.join(', ')}`}, ${PLAN.rounds} rounds × ${PLAN.secs} s (L4 ${PLAN.l4secs} s), work dir ${dir}`);

  const procs: Record<string, ChildProcess> = {};
  procs.upstream = start('upstream', 'nginx', ['-e', `${dir}/upstream-error.log`, '-c', join(dir, 'upstream.conf'), '-g', 'daemon off;'], { cpu: '1' });
  const ports = [...P.up];
  if (http) startHttpPeers(procs, missing, ports);
  if (l4) startL4Peers(procs, missing, ports);
  const up = await Promise.all(ports.map((p) => waitPort(p)));
  ports.forEach((p, i) => up[i] || console.error(`! nothing listening on ${p}`));
  if (!up[0]) throw new Error('the upstream nginx did not start');
  await sleep(500);

  const cases = buildCases(missing, procs);
  shareSeries(cases);
  for (const c of cases) {
    const err = sanity(c);
    c.ok = err === null;
    if (err !== null) console.error(`! ${c.id} skipped: its check request ${err}`);
  }
  const idles = idleCases(missing);
  for (const i of idles) {
    const err = procs[i.proc]?.pid === undefined ? 'has no process' : await greets(i.port);
    i.ok = err === null;
    if (err !== null) console.error(`! ${i.id} skipped: its check connection ${err}`);
  }
  const live = cases.filter((c) => c.ok);
  const liveIdle = idles.filter((i) => i.ok);
  if (live.length === 0 && liveIdle.length === 0) throw new Error('no case passed its check request');
  const expected = live.reduce((a, c) => a + PLAN.warm + PLAN.rounds * secsFor(c.group), 0) + liveIdle.length * 6;
  console.log(`${live.length} cases${liveIdle.length > 0 ? ` and ${liveIdle.length} idle-connection runs` : ''}, about ${Math.round(expected / 60 * 10) / 10} min of load`);

  for (const c of live) measure(c, PLAN.warm); // warm-up pass (JIT, connection pools), discarded
  for (let r = 1; r <= PLAN.rounds && live.length > 0; r++) {
    for (const c of live) {
      try {
        c.samples.push(measure(c, secsFor(c.group)));
      } catch (err) {
        console.error(`! ${c.id} round ${r}: ${(err as Error).message.split('\n')[0]}`);
        c.samples.push({ rps: NaN, p50: NaN, p99: NaN, cpu: null, rss: null, errors: 0, requests: 0 });
      }
    }
    console.log(`round ${r}/${PLAN.rounds}: ${live.map((c) => `${c.id} ${fmtInt(c.samples.at(-1)!.rps)}`).join(', ')}`);
  }
  // Idle connections, after the loads (one proxy at a time, on processes of their own).
  for (const i of liveIdle) {
    try {
      i.result = await measureIdle(i, procs[i.proc]!.pid!, idleN);
      console.log(`${i.id}: ${i.result.greeted} of ${idleN} held, RSS ${i.result.rssBefore.toFixed(0)} → ${i.result.rssOpen.toFixed(0)} MB`);
    } catch (err) {
      console.error(`! ${i.id}: ${(err as Error).message.split('\n')[0]}`);
    }
  }

  const md = report(cases, idles);
  console.log('\n' + md);
  mkdirSync('bench/results', { recursive: true });
  // A partial run (--only) writes beside the full results, never over them.
  const name = `latest${ONLY === undefined ? '' : `-${ONLY.join('+')}`}${QUICK ? '-quick' : ''}`;
  writeFileSync(`bench/results/${name}.md`, md + '\n');
  writeFileSync(`bench/results/${name}.json`, JSON.stringify({ plan: PLAN, quick: QUICK, only: ONLY, cases: cases.map(({ id, label, samples, rssSeries, ok }) => ({ id, label, ok, samples, rssSeries })),
    idle: idles.map(({ id, label, ok, result }) => ({ id, label, ok, ...result })) }, null, 1) + '\n');
  console.log(`\nwritten: bench/results/${name}.md and .json`);
}

/** The HTTP groups' proxies (as before the L4 group). */
function startHttpPeers(procs: Record<string, ChildProcess>, missing: string[], ports: number[]): void {
  procs.nginx = start('nginx', 'nginx', ['-e', `${dir}/nginx-error.log`, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { cpu: '0' });
  if (!missing.includes('haproxy')) procs.haproxy = start('haproxy', 'haproxy', ['-db', '-f', join(dir, 'haproxy.cfg')], { cpu: '0' });
  if (!missing.includes('caddy')) procs.caddy = start('caddy', 'caddy', ['run', '--adapter', 'caddyfile', '--config', join(dir, 'Caddyfile')], { cpu: '0', env: { GOMAXPROCS: '1', HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir } });
  procs.hp3 = start('hp3', NODE, ['bench/peers/http-proxy-3.mjs', String(P.hp3), UP], { cpu: '0' });
  procs.fastify = start('fastify', NODE, ['bench/peers/fastify.mjs', String(P.fastify), UP], { cpu: '0' });
  procs.undici = start('undici', NODE, ['bench/mini-undici.mjs', String(P.undici), UP], { cpu: '0' });
  procs.wg = startWaygate('wg', 'shop', P.wg, P.wgAdmin, { https: P.wgTls, cpu: '0' });
  if (BASE !== undefined) procs.base = startWaygate('base', 'shop', P.base, P.baseAdmin, { https: P.baseTls, cpu: '0', root: buildBase(BASE) });
  procs.wg1 = startWaygate('wg1', 'shop', P.wg1, P.wg1Admin, { workers: 1 });
  procs.wg2 = startWaygate('wg2', 'shop', P.wg2, P.wg2Admin, { workers: 2 });
  procs.wg10 = startWaygate('wg10', 'r10', P.wg10, P.wg10Admin, { cpu: '0' });
  procs.wg1k = startWaygate('wg1k', 'r1k', P.wg1k, P.wg1kAdmin, { cpu: '0' });
  ports.push(P.nginx, P.nginxTls, P.hp3, P.fastify, P.undici, P.wg, P.wgTls, P.wg1, P.wg2, P.wg10, P.wg1k);
  if (selected('mw')) {
    if (!missing.includes('redis-server')) {
      procs.redis = start('redis', 'redis-server', ['--port', String(P.redis), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { cpu: '1', stdout: 'null' });
      ports.push(P.redis);
    }
    procs.wgMw = startWaygate('wgMw', 'mw', P.wgMw, P.wgMwAdmin, { cpu: '0', config: 'waygate-mw.yaml' });
    ports.push(P.wgMw);
  }
  if (procs.haproxy) ports.push(P.haproxy);
  if (procs.caddy) ports.push(P.caddy);
  if (procs.base) ports.push(P.base, P.baseTls);
}

/** The L4 groups' proxies, pinned to CPU 0, and the idle case's hold backend on CPU 1. */
function startL4Peers(procs: Record<string, ChildProcess>, missing: string[], ports: number[]): void {
  const load = GROUPS.some((g) => g.id.startsWith('l4-') && selected(g.id)), idle = selected(IDLE_GROUP);
  const nginxL4 = (name: string, conf: string): ChildProcess => start(name, 'nginx', ['-e', `${dir}/${name}-error.log`, '-c', join(dir, conf), '-g', 'daemon off;'], { cpu: '0' });
  if (load) {
    procs.wgL4 = startWaygate('wgL4', 'l4', 'off', P.wgL4Admin, { cpu: '0', config: 'waygate-l4.yaml' });
    ports.push(P.wgL4, P.wgL4Sni);
    if (!missing.includes('haproxy')) {
      procs.hpL4 = start('hpL4', 'haproxy', ['-db', '-f', join(dir, 'haproxy-l4.cfg')], { cpu: '0' });
      ports.push(P.hpL4, P.hpL4Sni);
    }
    if (!missing.includes('nginx-stream')) {
      procs.ngL4 = nginxL4('ngL4', 'nginx-l4.conf');
      ports.push(P.ngL4, P.ngL4Sni);
    }
  }
  if (idle) {
    procs.hold = start('hold', NODE, ['bench/l4-idle.ts', 'hold', String(P.hold)], { cpu: '1' });
    procs.wgIdle = startWaygate('wgIdle', 'idle', 'off', P.wgIdleAdmin, { cpu: '0', config: 'waygate-idle.yaml' });
    ports.push(P.hold, P.wgIdle);
    if (!missing.includes('haproxy')) {
      procs.hpIdle = start('hpIdle', 'haproxy', ['-db', '-f', join(dir, 'haproxy-idle.cfg')], { cpu: '0' });
      ports.push(P.hpIdle);
    }
    if (!missing.includes('nginx-stream')) {
      procs.ngIdle = nginxL4('ngIdle', 'nginx-idle.conf');
      ports.push(P.ngIdle);
    }
  }
}

main().then(
  () => {
    cleanup();
    process.exit(0);
  },
  (err: Error) => {
    console.error(`bench failed: ${err.stack ?? err.message}`);
    cleanup();
    process.exit(1);
  },
);

// The soak's world: a temp dir holding waygate.yaml, a routes dir (one pool and one route per
// fault pool) and a certs dir; a private CA whose leaf the TLS upstreams serve; the upstream
// host; and the short timeouts that make every fault end quickly. A tcp pool (L4, SPEC §7) gets
// a tcpRoute of its name on the TCP listener its fault names (one listener per plain pool, one
// shared by the SNI routes), a udp pool a udpRoute of its name on its UDP listener (sessionIdle
// from the soak's timeouts), and waygate.yaml gets every such listener on port 0. A pool's route
// lists its middlewares (SPEC §8, the routes file's `middlewares:`); a `store: redis` rate limit
// makes the soak start a redis-server (kit/mw-redis.ts) and name it in waygate.yaml.
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { makeCa, makeLeaf } from '../tls-helpers.ts';
import { middlewareMap, needsRedis, redisConfig } from './kit/mw-config.ts';
import { SoakRedis } from './kit/mw-redis.ts';
import type { PoolSpec, SoakTimeouts } from './types.ts';
import { UpstreamHost } from './upstreams.ts';

/** The soak's timeouts: short, so a fault ends in seconds (issue 12). */
export const SOAK_TIMEOUTS: SoakTimeouts = { clientHeader: 2000, clientIdle: 3000, connect: 1000, response: 2000, idle: 1000, peek: 2000, tcpIdle: 3000, halfClose: 2000, sessionIdle: 1000 };
/** waygate's drain on SIGTERM. */
export const SHUTDOWN_MS = 2000;
/** limits.maxBodySize: small enough that some uploads cross it (413). */
const MAX_BODY = '1mb';

/** Everything set up before the gateway starts. */
export interface World {
  dir: string;
  configFile: string;
  upstreams: UpstreamHost;
  pools: PoolSpec[];
  /** The Redis of `store: redis` rate limits, when a route has one. */
  redis?: SoakRedis;
}

/**
 * The routes file: each pool gets the soak's timeouts (unless it sets its own) and a route on
 * `/<pool>/*`; a tcp pool gets a tcpRoute of its name on its listener instead (SNI-matched when
 * its fault says so), with the soak's idle and half-close timeouts.
 */
export function routesYaml(pools: readonly PoolSpec[], t: SoakTimeouts): string {
  const timeouts = { connect: `${t.connect}ms`, response: `${t.response}ms`, idle: `${t.idle}ms` };
  const l7 = pools.filter((p) => p.kind !== 'tcp' && p.kind !== 'udp');
  const l4 = pools.filter((p) => p.kind === 'tcp');
  const udp = pools.filter((p) => p.kind === 'udp');
  const middlewares = middlewareMap(pools);
  return stringify({
    ...(middlewares === undefined ? {} : { middlewares }),
    pools: Object.fromEntries(pools.map((p) => [p.name, { targets: p.targets, timeouts: p.kind === 'tcp' || p.kind === 'udp' ? { connect: `${t.connect}ms` } : timeouts, ...p.options }])),
    routes: l7.map((p) => ({ name: p.name, match: { path: `/${p.name}/*` }, ...(p.middlewares === undefined ? {} : { middlewares: p.middlewares.map((m) => m.name) }), pool: p.name })),
    tcpRoutes: l4.map((p) => ({
      name: p.name,
      listener: p.l4!.listener,
      ...(p.l4!.sni === undefined ? {} : { match: { sni: p.l4!.sni } }),
      pool: p.name,
      idleTimeout: `${t.tcpIdle}ms`,
      halfCloseTimeout: `${t.halfClose}ms`,
      ...p.l4!.route,
    })),
    ...(udp.length === 0 ? {} : { udpRoutes: udp.map((p) => ({ name: p.name, listener: p.udp!.listener, pool: p.name })) }),
  });
}

/** The TCP listeners the tcp pools' routes name, in first-use order (`https`, the shared HTTPS port, is not one). */
export function tcpListeners(pools: readonly PoolSpec[]): string[] {
  return [...new Set(pools.filter((p) => p.kind === 'tcp').map((p) => p.l4!.listener))].filter((l) => l !== 'https');
}

/** The UDP listeners the udp pools' routes name, in first-use order. */
export function udpListeners(pools: readonly PoolSpec[]): string[] {
  return [...new Set(pools.filter((p) => p.kind === 'udp').map((p) => p.udp!.listener))];
}

/** Client addresses a UDP listener tracks at once (the burst client opens up to 50 each). */
export const UDP_MAX_SESSIONS = 4096;

/** waygate.yaml: loopback port 0 everywhere (the TCP and UDP listeners `tcp`, `udp` included), the soak's timeouts, access log on, the Redis at `redis`. */
export function staticYaml(dir: string, t: SoakTimeouts, tcp: readonly string[] = [], udp: readonly string[] = [], redis?: string): string {
  return stringify({
    listeners: {
      http: { address: '127.0.0.1:0' },
      https: { address: '127.0.0.1:0' },
      ...(tcp.length === 0 ? {} : { tcp: Object.fromEntries(tcp.map((name) => [name, { address: '127.0.0.1:0', peekTimeout: `${t.peek}ms` }])) }),
      ...(udp.length === 0 ? {} : { udp: Object.fromEntries(udp.map((name) => [name, { address: '127.0.0.1:0', sessionIdle: `${t.sessionIdle}ms`, maxSessions: UDP_MAX_SESSIONS }])) }),
    },
    admin: { address: '127.0.0.1:0' },
    routesDir: join(dir, 'routes'),
    certsDir: join(dir, 'certs'),
    timeouts: { clientHeader: `${t.clientHeader}ms`, clientIdle: `${t.clientIdle}ms`, shutdown: `${SHUTDOWN_MS}ms` },
    limits: { maxBodySize: MAX_BODY },
    log: { level: 'info', access: true },
    ...(redis === undefined ? {} : { redis: redisConfig(redis) }),
  });
}

/** Creates the temp dir, the CA, the upstream host and the config files. */
export async function prepare(timeouts: SoakTimeouts): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), 'waygate-soak-'));
  await mkdir(join(dir, 'routes'));
  await mkdir(join(dir, 'certs'));
  const ca = await makeCa('waygate soak CA');
  const leaf = await makeLeaf(['localhost', '127.0.0.1'], ca);
  const caFile = join(dir, 'upstream-ca.pem');
  await writeFile(caFile, ca.cert);
  const upstreams = await UpstreamHost.start({ caFile, cert: leaf.cert, key: leaf.key, timeouts, dir });
  let redis: SoakRedis | undefined;
  try {
    await writeFile(join(dir, 'routes', 'soak.yaml'), routesYaml(upstreams.pools, timeouts));
    if (needsRedis(upstreams.pools)) redis = await SoakRedis.start(dir);
    const configFile = join(dir, 'waygate.yaml');
    await writeFile(configFile, staticYaml(dir, timeouts, tcpListeners(upstreams.pools), udpListeners(upstreams.pools), redis?.url));
    return { dir, configFile, upstreams, pools: upstreams.pools, redis };
  } catch (err) {
    await redis?.close();
    await upstreams.close();
    throw err;
  }
}

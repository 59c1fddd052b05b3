// The JSON of GET /status for one gateway process (SPEC §6): listeners, config version and last
// reload, routes, pools with their targets' health and counters, certificates.
import type { CheckStatus } from '../health/checker.ts';
import type { Runtime } from '../runtime.ts';
import type { CertStore } from '../server/tls/index.ts';
import type { UpstreamPool } from '../upstream/pool.ts';
import type { Target } from '../upstream/target.ts';
import type { BoundAddresses } from './listeners.ts';

/** The last reload's time, result and errors. */
export interface LastReload {
  at: string;
  ok: boolean;
  errors: string[];
}

/** What GET /status reports on, as the gateway holds it. */
export interface StatusView {
  readonly ready: boolean;
  readonly listeners: BoundAddresses;
  readonly runtime: Runtime;
  readonly routesDir: string;
  readonly lastReload: LastReload | undefined;
  readonly pools: Iterable<UpstreamPool>;
  /** The active health checks' view of a target, undefined when it has none. */
  checkOf(target: Target): CheckStatus | undefined;
  readonly certs: CertStore;
}

/** Returns the JSON of GET /status. */
export function gatewayStatus(v: StatusView): Record<string, unknown> {
  return {
    ready: v.ready,
    pid: process.pid,
    listeners: v.listeners,
    config: { version: v.runtime.version, routesDir: v.routesDir, lastReload: v.lastReload ?? null },
    routes: v.runtime.router.size,
    // SPEC §7: the L4 routes by listener, as the routers hold them.
    tcpRoutes: [...Object.keys(v.listeners.tcp), 'https'].flatMap((l) => v.runtime.tcp.routesOf(l)).map((r) => ({
      name: r.name, listener: r.listener, sni: r.sni, alpn: r.alpn, clientIp: r.clientIp, priority: r.priority, tls: r.value.tls, pools: r.value.pools.map((p) => p.name),
    })),
    udpRoutes: Object.keys(v.listeners.udp).flatMap((l) => v.runtime.udp.routesOf(l)).map((r) => ({
      name: r.name, listener: r.listener, clientIp: r.clientIp, priority: r.priority, pools: r.value.pools.map((p) => p.name),
    })),
    // SPEC §8: every middleware, the routes that run it, and its settings (never a secret).
    middlewares: [...v.runtime.middlewares.values()].map((m) => ({ name: m.name, kind: m.kind, routes: v.runtime.middlewareRoutes.get(m.name) ?? [], ...m.describe() })),
    pools: [...v.pools].map((p) => ({
      name: p.name,
      // What the pool carries (SPEC §7): http (http:// and https:// targets), tcp or udp.
      kind: poolKindOf(p),
      balance: p.balance,
      sticky: p.sticky === undefined ? null : p.sticky.options.cookie,
      available: p.targets.filter((t) => t.available).length,
      targets: p.targets.map((t) => {
        const check = v.checkOf(t);
        return {
          url: t.url,
          weight: t.weight,
          healthy: t.available,
          activeHealthy: t.activeHealthy,
          ejected: t.ejected,
          inFlight: t.inFlight,
          requests: t.requests,
          failures: t.failures,
          lastCheck: check?.lastCheck == null ? null : new Date(check.lastCheck).toISOString(),
          lastCheckResult: check?.lastResult ?? null,
        };
      }),
    })),
    certificates: v.certs.certs.map((c) => ({ file: c.file, names: c.names, notAfter: c.notAfter, default: c === v.certs.defaultCert })),
  };
}

/** "tcp" or "udp" for an L4 pool, "http" otherwise (a pool has one scheme: config/schema.ts). */
function poolKindOf(p: UpstreamPool): 'http' | 'tcp' | 'udp' {
  const url = p.targets[0]?.url ?? '';
  return url.startsWith('tcp:') ? 'tcp' : url.startsWith('udp:') ? 'udp' : 'http';
}

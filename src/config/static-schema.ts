// waygate.yaml (SPEC §5): listeners and process-wide settings. Every key is optional, so
// parsing `{}` yields the complete default configuration.
import { z } from 'zod';
import { int, name, nonEmpty, strict } from './fields.ts';
import { HTTPS_LISTENER, tcpListenerSchema, udpListenerSchema } from './l4-schema.ts';
import { ipRange, listenAddress } from './net-fields.ts';
import { duration, size } from './units.ts';

// SPEC §1: with no flags and no file, these are the listeners.
const DEFAULT_HTTP = ':8080';
const DEFAULT_HTTPS = ':8443';
const DEFAULT_ADMIN = '127.0.0.1:9901';
// SPEC §5: ambiguous request paths are refused unless the operator opts out.
const DEFAULT_AMBIGUOUS_PATHS = 'reject';

const httpListenerSchema = strict({
  address: listenAddress().prefault(DEFAULT_HTTP),
  redirectToHttps: z.boolean().default(false),
  proxyProtocol: z.boolean().default(false),
});

const httpsListenerSchema = strict({
  address: listenAddress().prefault(DEFAULT_HTTPS),
  minTlsVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  hsts: z.boolean().default(false),
  proxyProtocol: z.boolean().default(false),
});

/** SPEC §8: the Redis that `store: redis` rate limits share between replicas. */
const redisSchema = strict({
  url: z.string().refine((u) => {
    try {
      const p = new URL(u).protocol;
      return p === 'redis:' || p === 'rediss:';
    } catch {
      return false;
    }
  }, { error: (iss) => `expected a redis:// or rediss:// URL such as redis://127.0.0.1:6379, got ${JSON.stringify(iss.input)}` }),
  // With Redis unreachable: let requests through (open) or answer 503 (closed).
  failMode: z.enum(['open', 'closed']).default('open'),
  // Longest wait for one check; past it the check counts as Redis being unreachable.
  timeout: duration().refine((ms) => ms > 0, 'must be greater than 0s').default(250),
  // Every key waygate writes starts with this, so one Redis can serve other things too.
  keyPrefix: nonEmpty().default('waygate:'),
});

/** The schema of waygate.yaml; `parse({})` is the default configuration. */
export const staticConfigSchema = strict({
  listeners: strict({
    http: httpListenerSchema.prefault({}),
    https: httpsListenerSchema.prefault({}),
    // SPEC §7: named L4 listeners; "https" is the shared HTTPS port's name in tcpRoutes.
    tcp: z.record(name().refine((n) => n !== HTTPS_LISTENER, `"${HTTPS_LISTENER}" names the HTTPS listener in tcpRoutes; give this TCP listener another name`), tcpListenerSchema(listenAddress())).default({}),
    udp: z.record(name(), udpListenerSchema(listenAddress())).default({}),
  }).prefault({}),
  admin: strict({
    address: listenAddress().prefault(DEFAULT_ADMIN),
  }).prefault({}),
  routesDir: nonEmpty().default('routes'),
  certsDir: nonEmpty().default('certs'),
  workers: z.union([int(1, 1024), z.literal('auto')]).default(1),
  trustedProxies: z.array(ipRange()).default([]),
  secret: nonEmpty().optional(),
  redis: redisSchema.optional(),
  timeouts: strict({
    clientHeader: duration().default(10_000),
    clientIdle: duration().default(60_000),
    shutdown: duration().default(30_000),
  }).prefault({}),
  limits: strict({
    maxBodySize: size().default(10 * 1024 ** 2),
    maxHeaderSize: size().default(16 * 1024),
    retryBuffer: size().default(64 * 1024),
    maxConnections: int(1).default(10_000),
  }).prefault({}),
  log: strict({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    access: z.boolean().default(true),
  }).prefault({}),
  security: strict({
    // SPEC §3: a path a backend could read with a dot segment (`/api/..%2Fadmin`) is refused
    // with 400 unless this says `forward` (router/path.ts has the rule).
    ambiguousPaths: z.enum(['reject', 'forward']).default(DEFAULT_AMBIGUOUS_PATHS),
  }).prefault({}),
});

/** The validated waygate.yaml with every default filled; addresses are null when "off". */
export type StaticConfig = z.output<typeof staticConfigSchema>;

/** Returns a fresh copy of the complete default configuration. */
export function defaultStaticConfig(): StaticConfig {
  return staticConfigSchema.parse({});
}

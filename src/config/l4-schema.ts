// Layer 4 in the routes file (SPEC §7): `tcpRoutes` and `udpRoutes`. Their pools are ordinary
// `pools:` entries with tcp:// or udp:// targets (schema.ts checks what a pool of each kind may
// say); the listeners they name are waygate.yaml's (static-schema.ts), cross-checked in load.ts.
import { z } from 'zod';
import { int, name, nonEmpty, strict } from './fields.ts';
import { ipRange, isHostName } from './net-fields.ts';
import { duration } from './units.ts';

/** The name a tcpRoute uses for the shared HTTPS listener. */
export const HTTPS_LISTENER = 'https';


/** An SNI pattern: an exact name, "*.example.com" (one label) or "~regex"; names lower-cased. */
function sniPattern() {
  return z.string().transform((s, ctx) => {
    if (s.startsWith('~')) {
      try {
        new RegExp(s.slice(1));
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: `invalid regular expression ${JSON.stringify(s.slice(1))}: ${(err as Error).message}` });
        return z.NEVER;
      }
      return s;
    }
    const lower = s.toLowerCase();
    const bare = lower.startsWith('*.') ? lower.slice(2) : lower;
    if (isHostName(bare)) return lower;
    const hint = /:\d+$/.test(s) ? ' (SNI carries no port)' : /^[\d.]+$|:/.test(s) ? ' (SNI never carries an IP address, RFC 6066 §3)' : '';
    ctx.addIssue({ code: 'custom', message: `invalid SNI pattern ${JSON.stringify(s)}: expected a name such as db.example.com, *.example.com or ~^db[0-9]+\\.example\\.com$${hint}` });
    return z.NEVER;
  });
}

/** One value or a list of them, as a list ("omitted = any" is the empty list). */
function oneOrMany<T extends z.ZodType>(item: T) {
  return z
    .union([item, z.array(item).min(1)])
    .optional()
    .transform((v) => (v === undefined ? [] : Array.isArray(v) ? v : [v]) as z.output<T>[]);
}

/** A weighted traffic split (HTTP routes use the same). */
export const splitSchema = z.array(strict({ pool: name(), weight: int(1) })).min(1);

const tcpMatchSchema = strict({
  sni: oneOrMany(sniPattern()),
  alpn: oneOrMany(nonEmpty().max(255)),
  clientIp: oneOrMany(ipRange()),
});

const tcpRouteObject = strict({
  name: name().optional(),
  listener: name(),
  match: tcpMatchSchema.prefault({}),
  priority: z.number().int().default(0),
  tls: z.enum(['passthrough', 'terminate', 'none']).optional(),
  pool: name().optional(),
  split: splitSchema.optional(),
  idleTimeout: duration().default(3_600_000),
  halfCloseTimeout: duration().default(30_000),
  limits: strict({
    maxConnections: int(1).optional(),
    perClient: int(1).optional(),
  }).prefault({}),
});

/** The schema of one tcpRoute; `tls` is filled in: passthrough when the route matches sni or alpn, none otherwise. */
export const tcpRouteSchema = tcpRouteObject
  .superRefine((r, ctx) => {
    poolOrSplit(r, ctx);
    const peeks = r.match.sni.length > 0 || r.match.alpn.length > 0;
    if (r.tls === 'none' && peeks) {
      ctx.addIssue({ code: 'custom', path: ['tls'], message: 'tls: none forwards bytes as they come, without reading a ClientHello; matching sni or alpn needs tls: passthrough or terminate' });
    }
    if (r.listener === HTTPS_LISTENER && r.match.sni.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['match'], message: 'a tcpRoute on the https listener needs match.sni: connections whose SNI no tcpRoute matches are served as HTTP' });
    }
    if (r.listener === HTTPS_LISTENER && r.tls === 'none') {
      ctx.addIssue({ code: 'custom', path: ['tls'], message: 'the https listener reads every ClientHello; use tls: passthrough or terminate' });
    }
  })
  .transform((r) => {
    const { pool, split, ...rest } = r;
    const peeks = r.match.sni.length > 0 || r.match.alpn.length > 0;
    const tls = r.tls ?? (peeks ? 'passthrough' : 'none');
    const target = pool !== undefined ? { kind: 'pool' as const, pool } : { kind: 'split' as const, split: split! };
    return { ...rest, tls, ...target };
  });

const udpRouteObject = strict({
  name: name().optional(),
  listener: name(),
  match: strict({ clientIp: oneOrMany(ipRange()) }).prefault({}),
  priority: z.number().int().default(0),
  pool: name().optional(),
  split: splitSchema.optional(),
});

/** The schema of one udpRoute. */
export const udpRouteSchema = udpRouteObject.superRefine(poolOrSplit).transform((r) => {
  const { pool, split, ...rest } = r;
  return { ...rest, ...(pool !== undefined ? { kind: 'pool' as const, pool } : { kind: 'split' as const, split: split! }) };
});

function poolOrSplit(r: { pool?: string; split?: unknown }, ctx: z.RefinementCtx): void {
  if (r.pool === undefined && r.split === undefined) ctx.addIssue({ code: 'custom', path: [], message: 'an L4 route needs pool or split' });
  if (r.pool !== undefined && r.split !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['split'], params: { at: 'key' }, message: '"split" cannot be combined with "pool": a route has exactly one of them' });
  }
}

/** A validated tcpRoute; `name` is filled in by the loader when omitted. */
export type TcpRouteConfig = z.output<typeof tcpRouteSchema>;
/** A validated udpRoute. */
export type UdpRouteConfig = z.output<typeof udpRouteSchema>;
/** The match conditions of a tcpRoute; empty lists mean "any". */
export type TcpMatchConfig = TcpRouteConfig['match'];

// ---- waygate.yaml ----

/** The schema of one `listeners.tcp` entry. */
export function tcpListenerSchema<A extends z.ZodType>(address: A) {
  return strict({
    address,
    // Accept a PROXY protocol header from an L4 balancer in front (the HTTP listeners' key).
    proxyProtocol: z.boolean().default(false),
    peekTimeout: duration().refine((ms) => ms > 0, 'must be greater than 0s').default(5000),
  });
}

/** The schema of one `listeners.udp` entry. */
export function udpListenerSchema<A extends z.ZodType>(address: A) {
  return strict({
    address,
    sessionIdle: duration().refine((ms) => ms > 0, 'must be greater than 0s').default(30_000),
    // Client addresses tracked at once; a datagram from a new address past it is dropped.
    maxSessions: int(1).default(10_000),
  });
}

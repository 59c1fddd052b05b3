// The contracts between the soak's parts. A client behaviour (clients/*.ts) plans a task from
// its own PRNG and runs it against the gateway; an upstream fault (faults/*.ts) starts real
// servers in the upstream host process and describes the pools that route to them. Adding a
// capability to the soak is adding one such file: registry.ts finds it. L4 (SPEC §7) pools are
// `kind: 'tcp'`: their `l4` says which TCP listener (and which SNI names on it) route to them.
import type { Agent as HttpAgent } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import type { Server } from 'node:net';
import type { Rng } from './prng.ts';

/**
 * What a client may expect from a pool: `ok` every request answers 200 (a healthy pool);
 * `ok-idempotent` GET and HEAD answer 200 (retries cover the faults); `any` only that the
 * exchange ends (a fault pool).
 */
export type PoolExpect = 'ok' | 'ok-idempotent' | 'any';

/** One pool of the soak's routes, as its fault module describes it (plain JSON, crosses IPC). */
export interface PoolSpec {
  /** Pool name; its route matches `/<name>/*`. */
  name: string;
  /** Target URLs (real servers of the upstream host, or a closed port). */
  targets: string[];
  /** Extra pool keys for the routes file (h2, retries, tls, timeouts), over the soak's defaults. */
  options?: Record<string, unknown>;
  /** Path suffixes (the fault's variants, may carry a query) a client asks for under `/<name>/`. */
  variants: string[];
  expect: PoolExpect;
  /** `ws` pools are WebSocket upstreams; `http` pools serve requests; `tcp` pools take raw connections, `udp` pools datagrams (SPEC §7). */
  kind: 'http' | 'ws' | 'tcp' | 'udp';
  /** For `tcp` pools: how the routes file reaches it (its tcpRoute is named after the pool). */
  l4?: L4Spec;
  /** For `udp` pools: the `listeners.udp` name its udpRoute (named after the pool) is on, and what its targets do. */
  udp?: { listener: string; target: 'echo' | 'refuse' };
  /** SPEC §8: the middlewares its route lists, in order (a name several pools list is defined once, the same way). */
  middlewares?: MiddlewareSpec[];
  /** The fault module that started it. */
  fault: string;
}

/**
 * One middleware of a pool's route (SPEC §8), as the routes file's `middlewares:` map defines it:
 * `name: { kind: options }`. `rejects` is what the end-of-run check holds it to: `some` — once its
 * clients reached the route, waygate_middleware_rejections_total moved for it; `never` — it stayed 0.
 */
export interface MiddlewareSpec {
  name: string;
  kind: string;
  options: Record<string, unknown>;
  rejects?: 'some' | 'never';
}

/** What an L4 target does (faults/l4.ts). */
export type L4Target = 'echo' | 'tls-echo' | 'refuse' | 'reset' | 'blackhole' | 'stop-reading' | 'half-close';

/** A tcp pool's route: its listener (a `listeners.tcp` name in waygate.yaml), the SNI names it matches there, what its target does. */
export interface L4Spec {
  listener: string;
  /** SNI names the route matches (the listener then peeks at every ClientHello); none: every connection of the listener. */
  sni?: string[];
  target: L4Target;
  /** For a TLS target: the SHA-256 fingerprint of its own certificate (as tls's getPeerCertificate() writes it). */
  fingerprint?: string;
  /** Extra tcpRoute keys over the soak's defaults. */
  route?: Record<string, unknown>;
}

/** One `msg: "connection"` line of waygate (SPEC §7), as a task reads it back by its local port. */
export interface ConnectionLine {
  /** `udp` for a UDP session's line; absent on TCP's. */
  transport?: string;
  listener: string;
  clientPort: number;
  sni: string | null;
  route: string | null;
  pool: string | null;
  target: string | null;
  bytesIn: number;
  bytesOut: number;
  durationMs: number;
  termination: string;
  detail?: string;
}

/** The soak's timeouts as written into waygate.yaml and the routes (ms). */
export interface SoakTimeouts {
  clientHeader: number;
  clientIdle: number;
  connect: number;
  response: number;
  idle: number;
  /** The TCP listeners' peekTimeout: the longest wait for a complete ClientHello. */
  peek: number;
  /** The tcpRoutes' idleTimeout: no byte either way this long closes both sides. */
  tcpIdle: number;
  /** The tcpRoutes' halfCloseTimeout: after one side's FIN, the other has this long to finish. */
  halfClose: number;
  /** The UDP listeners' sessionIdle: a session with no datagram either way this long is dropped. */
  sessionIdle: number;
}

/** Where the gateway listens (read from its `listening` line; changes if it is restarted). */
export interface GatewayAddress {
  host: string;
  http: number;
  https: number;
  /** The TCP listeners' ports, by name (listeners.tcp). */
  tcp: Record<string, number>;
  /** The UDP listeners' ports, by name (listeners.udp). */
  udp: Record<string, number>;
}

/** Something a task opened and must not outlive it. */
export interface Disposable {
  destroy(): unknown;
}

/** What a running task sees. */
export interface ClientContext {
  readonly gateway: GatewayAddress;
  readonly pools: readonly PoolSpec[];
  readonly timeouts: SoakTimeouts;
  /** Shared keep-alive agents (free sockets expire before the gateway's clientIdle). */
  readonly agents: { http: HttpAgent; https: HttpsAgent };
  /** Aborted when the task must end (its deadline, or the run is over). */
  readonly signal: AbortSignal;
  /** Registers a socket, session or stream to destroy when the task ends, whatever happens. */
  own<T extends Disposable>(resource: T): T;
  /**
   * waygate's connection line for the client connection from local port `port`, logged after
   * `since` (ms since the epoch); waits up to `ms` for it. Undefined if none came. `udp`: the
   * line of the UDP session of client port `port` (UDP and TCP ports are apart).
   */
  /** `listener`: the line of that listener only (a client port may be in use towards two listeners at once). */
  connectionLine(port: number, since: number, ms: number, udp?: boolean, listener?: string): Promise<ConnectionLine | undefined>;
}

/** How a task ended. `note` is short and countable ("502", "closed", "greeting lost"). */
export interface Outcome {
  ok: boolean;
  note: string;
  /** For failures: what was expected and what happened. */
  detail?: string;
}

/** One planned exchange: fully decided by the PRNG before it runs, so a seed replays it. */
export interface Task {
  /** What it will do, e.g. "upload-vanish pool=refuse h1 declared 300000 sent 2048 then stall". */
  label: string;
  /** The pool it exercises, for the per-fault counts. */
  pool?: string;
  run(ctx: ClientContext): Promise<Outcome>;
}

/** A kind of client (mis)behaviour: clients/*.ts each export one (or a list) as default. */
export interface ClientBehaviour {
  name: string;
  /** Relative frequency in the mix. */
  weight: number;
  /** Plans a task; undefined when no pool suits it (e.g. filtered out with --pools). */
  plan(rng: Rng, pools: readonly PoolSpec[]): Task | undefined;
}

/** What a fault module gets in the upstream host process. */
export interface FaultContext {
  /** A certificate for 127.0.0.1 and localhost, signed by the CA in `caFile`. */
  readonly tls: { cert: string; key: string };
  /** The CA's PEM file, for a pool's `tls.ca`. */
  readonly caFile: string;
  /** The timeouts the gateway runs with, so a fault can stall just past (or short of) one. */
  readonly timeouts: SoakTimeouts;
  /** The soak's temp dir (waygate.yaml and the routes are there): files a middleware reads (users, error pages) go here. */
  readonly dir: string;
  /**
   * Listens on 127.0.0.1:0 and tracks the server's sockets (all from the gateway); returns the
   * port. `stable`: a free port below the ephemeral range instead, so a server that stops
   * listening (a dying auth service) finds it free when it listens on it again.
   */
  listen(server: Server, opts?: { stable?: boolean }): Promise<number>;
  /** A port nothing listens on. */
  closedPort(): Promise<number>;
  /** Counts one occurrence of a fault actually served, e.g. "reset/mid-body". */
  hit(what: string): void;
}

/** An upstream fault: faults/*.ts each export one as default. */
export interface UpstreamFault {
  name: string;
  /** Starts the fault's servers; returns the pools routed to them. */
  start(ctx: FaultContext): Promise<Omit<PoolSpec, 'fault'>[]>;
}

// The middleware contract (SPEC §8): what a kind is (an options schema and build()), what a built
// middleware does with a request (answer it or let it through, possibly editing the request as
// forwarded and registering hooks on the response), and what it gets to build with. One file per
// kind implements MiddlewareKind; chain.ts runs them; every kind passes test/middleware/table.test.ts.
import type { Transform } from 'node:stream';
import type { z } from 'zod';
import type { Logger } from '../observe/logger.ts';
import type { UpstreamPool } from '../upstream/pool.ts';
import type { Target } from '../upstream/target.ts';
import type { LimitStores } from './limits/stores.ts';

/** What every middleware may read of a request. Nothing here moves state. */
export interface RequestFacts {
  readonly method: string;
  readonly scheme: 'http' | 'https';
  /** Normalised host name, without port. */
  readonly host: string;
  /** The Host the client sent, port included (x-forwarded-host). */
  readonly hostHeader: string;
  /** The request target as the client sent it: path and query (x-forwarded-uri). */
  readonly uri: string;
  /** The client address after `trustedProxies` and the PROXY protocol. */
  readonly clientIp: string;
  readonly requestId: string;
  /** The route's name. */
  readonly route: string;
  /** True for a WebSocket handshake: an answer goes out on the raw socket, no response hooks run. */
  readonly websocket: boolean;
  /** A request header by lower-case name (repeated fields joined with ", "; cookies with "; "). */
  header(name: string): string | undefined;
  /** Every request header as sent, flat [name, value, …] (HTTP/2 pseudo-headers excluded). */
  readonly rawHeaders: readonly string[];
}

/** Changes to the request as it is forwarded upstream; applied after the route's requestHeaders. */
export interface UpstreamEdits {
  /** Removes every field of this (lower-case) name from the forwarded request. */
  remove(name: string): void;
  /** Replaces every field of this name with one of this value. */
  set(name: string, value: string): void;
}

/** What a middleware sees while the request passes through it. */
export interface MiddlewareRequest extends RequestFacts {
  readonly upstream: UpstreamEdits;
  /**
   * Adds a hook on the response: it runs for whatever answers after this middleware (a later
   * middleware's rejection, the route's action, the upstream, waygate's own errors). Hooks run in
   * the order added. A WebSocket handshake accepts hooks and never runs them.
   */
  onResponse(hook: ResponseHook): void;
  /** Runs `fn` once when the exchange ends, however it ends (inFlightLimit's release). */
  onDone(fn: () => void): void;
}

/** A middleware's own answer to a request. waygate adds content-length and x-request-id. */
export interface Answer {
  readonly status: number;
  /** Flat [name, value, …]; content-type included when there is a body. */
  readonly headers: readonly string[];
  readonly body: string | Buffer;
  /**
   * True for a refusal (401, 403, 429, 503…): counted by waygate_middleware_rejections_total and
   * named in the access log's `rejectedBy`. False for an answer that is the middleware's job (a
   * CORS preflight's 204).
   */
  readonly rejection: boolean;
}

/** undefined: the request goes on to the next middleware. */
export type Verdict = Answer | undefined;

/** A response head about to be written, as response hooks see and edit it. */
export interface ResponseHead {
  status: number;
  /** Flat [name, value, …], edited in place by hooks. */
  headers: string[];
  /** True when waygate wrote this answer itself (a rejection, a respond/redirect route, its own 502/503/504). */
  readonly own: boolean;
}

/** A body that replaces the original one (errorPages); the status is kept. */
export interface Replacement {
  /** Flat [name, value, …] replacing the original's content-* fields (content-type at least). */
  readonly headers: readonly string[];
  readonly body: Buffer;
}

/** What a middleware does to responses (registered with MiddlewareRequest.onResponse). */
export interface ResponseHook {
  /**
   * Returns a replacement body for this head, or undefined to keep it. Every hook's `replace` runs
   * before any hook's `head`; the first replacement wins. A Promise makes the response wait for it
   * (the original body is read and dropped meanwhile); a rejected Promise keeps the original.
   */
  replace?(head: Readonly<ResponseHead>): Replacement | Promise<Replacement | undefined> | undefined;
  /**
   * Edits the head in place just before it is written (the replacement's, if any); may return a
   * transform the body then flows through (compress). Transforms chain in hook order.
   */
  head?(head: ResponseHead): Transform | undefined;
}

/** What /explain says a middleware would do with a request, without doing it. */
export interface Explained {
  /** passes: it lets the request through; rejects / answers: it would answer (with `status`);
   * unknown: it cannot tell without side effects (an auth call, a shared store). */
  readonly result: 'passes' | 'rejects' | 'answers' | 'unknown';
  readonly status?: number;
  /** One sentence: why. */
  readonly why: string;
}

/** One built middleware: a name from the routes file, its kind, and what it does. */
export interface Middleware {
  readonly name: string;
  readonly kind: KindName;
  /** The request phase: sync when it can be (no promise and no microtask for a local check). */
  request(r: MiddlewareRequest): Verdict | Promise<Verdict>;
  /** /explain: what request() would do, with no side effect (no token taken, no call made). */
  explain(r: RequestFacts): Explained;
  /** /status: the settings worth showing (never a secret: no password hashes). */
  describe(): Record<string, unknown>;
  /** Releases timers and connections when a reload drops it (state shared through LimitStores stays). */
  close?(): void;
}

/** What build() gets besides its options. */
export interface BuildDeps {
  /** The middleware's name in the routes file. */
  readonly name: string;
  /** Files the kind asked for with files(), read before the build; keyed by the path as configured. */
  readonly files: ReadonlyMap<string, Buffer>;
  /** The pools of the same config (errorPages' `pool`). */
  readonly pools: ReadonlyMap<string, UpstreamPool>;
  /**
   * A target outside any pool (forwardAuth's `address`), kept in the registry across reloads
   * under the pool name `poolName`, so its keep-alive connections, in-flight count and metrics live on.
   */
  target(poolName: string, url: string): Target;
  /** Token buckets and in-flight counters: in this process, across workers through the primary, or in Redis. */
  readonly limits: LimitStores;
  readonly log: Logger;
}

/** A middleware kind: the key in the routes file, its options, and how it is built. */
export interface MiddlewareKind<S extends z.ZodType = z.ZodType> {
  readonly kind: KindName;
  /** The options schema (zod): validated at load with file:line:col like every other key. */
  readonly options: S;
  /** The files build() needs (paths as configured), read by the loader first; omitted: none. */
  files?(options: z.output<S>): string[];
  /** Builds the middleware; throws an Error whose message is for the user (a bad htpasswd line). */
  build(options: z.output<S>, deps: BuildDeps): Middleware;
}

/** The kinds, as keys of a middleware in a routes file. */
export type KindName = 'rateLimit' | 'inFlightLimit' | 'ipAllowList' | 'basicAuth' | 'forwardAuth' | 'compress' | 'cors' | 'errorPages';

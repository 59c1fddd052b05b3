// One upstream target of one pool: its connection pool and its state. State changes only
// through the methods here (ARCHITECTURE rule 3): in-flight through acquire()/release, health
// through setHealthy() (driven by the health state machine).
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import type { Pool as PoolClass, buildConnector as BuildConnector } from 'undici';
import { H1Pool } from './h1/pool.ts';
import type { UpstreamClient } from './h1/pool.ts';

// Only the two parts of undici waygate uses, not its index: the index also loads fetch, web
// streams, the cache and WebSocket, ~5 MB of memory for nothing. undici has no exports map, so
// these paths are reachable; package.json pins undici's exact version because they are not API.
const require = createRequire(import.meta.url);
const UndiciPool: typeof PoolClass = require('undici/lib/dispatcher/pool.js');
const buildConnector: typeof BuildConnector = require('undici/lib/core/connect.js');

/** TLS settings for `https://` targets (file contents, not paths). */
export interface UpstreamTls {
  /** Extra trusted CA certificates (PEM); the system CAs otherwise. */
  ca?: string;
  rejectUnauthorized: boolean;
  /** SNI and certificate name to expect, instead of the target's host. */
  servername?: string;
  /** Client certificate and key for mutual TLS. */
  cert?: string;
  key?: string;
}

/** Connection settings of a target; a change of any of them replaces its connection pool. */
export interface TargetConnectOptions {
  connectTimeout: number;
  /** Idle keep-alive time of pooled upstream connections. */
  keepAliveTimeout: number;
  tls?: UpstreamTls;
  /** Speak HTTP/2: ALPN h2 for https://, prior knowledge (h2c) for http://. */
  h2: boolean;
  /** A string that changes whenever any of the above does (computed once per pool build). */
  key: string;
}

/** A target's identity within the registry: its pool's name and its configured URL. */
export function targetKey(pool: string, url: string): string {
  return pool + '\u0000' + url;
}

/** An upstream target with health, counters and a keep-alive connection pool. */
export class Target {
  /** The target URL as configured (the `target` label of metrics and logs). */
  readonly url: string;
  readonly pool: string;
  /** scheme://host:port, what undici connects to. */
  readonly origin: string;
  weight: number;

  #inFlight = 0;
  #requests = 0;
  #failures = 0;
  #consecutiveFailures = 0;
  // available = activeHealthy && !ejected, kept as one boolean because every pick reads it.
  #activeHealthy = true;
  #ejected = false;
  #available = true;
  #ejectTimer: NodeJS.Timeout | undefined;
  #dispatcher: UpstreamClient | undefined;
  #connectKey = '';
  #servername: string | undefined;
  #releaseFn: () => void;

  constructor(pool: string, url: string, weight: number) {
    this.pool = pool;
    this.url = url;
    this.origin = new URL(url).origin;
    this.weight = weight;
    this.#releaseFn = () => {
      this.#inFlight--;
    };
  }

  /** True when the target may receive new requests: passing active checks and not ejected. */
  get available(): boolean {
    return this.#available;
  }

  /** Requests in flight right now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Requests sent to this target since it was first configured. */
  get requests(): number {
    return this.#requests;
  }

  /** Failed attempts (connect errors, resets, timeouts, bad responses) since first configured. */
  get failures(): number {
    return this.#failures;
  }

  /** True while active health checks pass (or none are configured). */
  get activeHealthy(): boolean {
    return this.#activeHealthy;
  }

  /** True while passively ejected after consecutive connect failures or resets. */
  get ejected(): boolean {
    return this.#ejected;
  }

  /** Counts a request in flight; returns the release function, to be called exactly once in `finally`. */
  acquire(): () => void {
    this.#inFlight++;
    this.#requests++;
    return this.#releaseFn;
  }

  /** Records a failed attempt; returns the number of consecutive failures so far. */
  recordFailure(): number {
    this.#failures++;
    return ++this.#consecutiveFailures;
  }

  /** Records a successful attempt (ends a streak of consecutive failures). */
  recordSuccess(): void {
    this.#consecutiveFailures = 0;
  }

  /**
   * Sets the active-check verdict (only the health checker's flips call this); returns true
   * when availability changed.
   */
  setActiveHealth(healthy: boolean): boolean {
    this.#activeHealthy = healthy;
    return this.#updateAvailable();
  }

  /**
   * Ejects the target for `ms` (passive health); `readmitted` is called when the ejection ends.
   * Returns true when availability changed. Ejecting an ejected target extends nothing.
   */
  eject(ms: number, readmitted: () => void): boolean {
    if (this.#ejected) return false;
    this.#ejected = true;
    this.#ejectTimer = setTimeout(() => {
      this.#ejectTimer = undefined;
      this.#ejected = false;
      this.#consecutiveFailures = 0;
      if (this.#updateAvailable()) readmitted();
    }, ms);
    this.#ejectTimer.unref();
    return this.#updateAvailable();
  }

  /** Test and admin hook: sets availability directly, as if both health sources agreed. */
  setHealthy(healthy: boolean): boolean {
    this.#activeHealthy = healthy;
    if (healthy) this.#clearEjection();
    return this.#updateAvailable();
  }

  #clearEjection(): void {
    if (this.#ejectTimer !== undefined) clearTimeout(this.#ejectTimer);
    this.#ejectTimer = undefined;
    this.#ejected = false;
  }

  #updateAvailable(): boolean {
    const next = this.#activeHealthy && !this.#ejected;
    const changed = next !== this.#available;
    this.#available = next;
    return changed;
  }

  /**
   * The connection pool for this target, created on first use or when `opts` changed: waygate's
   * own HTTP/1.1 client, or undici for a pool that speaks HTTP/2.
   */
  dispatcher(opts: TargetConnectOptions): UpstreamClient {
    const key = opts.key;
    if (this.#dispatcher === undefined || key !== this.#connectKey) {
      const old = this.#dispatcher;
      const url = new URL(this.url);
      const https = url.protocol === 'https:';
      const host = url.hostname.replace(/^\[|\]$/g, '');
      // The certificate is checked against tls.serverName, else the target's own host — never
      // against the client's Host header, which undici would otherwise use. An IP target sends
      // no SNI (RFC 6066 §3) and is verified against the certificate's IP SANs.
      const name = (https ? opts.tls?.servername : undefined) ?? host;
      const sni = isIP(name) === 0 ? name : undefined;
      this.#servername = https ? name : undefined;
      const port = url.port !== '' ? Number(url.port) : https ? 443 : 80;
      this.#dispatcher = opts.h2 ? this.#undiciPool(opts, https, sni) : this.#h1Pool(opts, https, host, port, sni);
      this.#connectKey = key;
      // In-flight requests on the old pool finish; it closes once they have.
      if (old !== undefined) void old.close().catch(() => {});
    }
    return this.#dispatcher;
  }

  #h1Pool(opts: TargetConnectOptions, https: boolean, host: string, port: number, sni: string | undefined): UpstreamClient {
    const tls = opts.tls;
    return new H1Pool({
      host,
      port,
      connectTimeout: opts.connectTimeout,
      keepAliveTimeout: opts.keepAliveTimeout,
      tls: https ? { servername: sni, ca: tls?.ca, cert: tls?.cert, key: tls?.key, rejectUnauthorized: tls?.rejectUnauthorized ?? true } : undefined,
    });
  }

  #undiciPool(opts: TargetConnectOptions, https: boolean, sni: string | undefined): UpstreamClient {
    const tls = https ? opts.tls : undefined;
    const connector = buildConnector({
      timeout: opts.connectTimeout,
      ...(tls === undefined ? {} : { ca: tls.ca, rejectUnauthorized: tls.rejectUnauthorized, cert: tls.cert, key: tls.key }),
      allowH2: opts.h2,
      // An h2 pool offers h2 first; h2c is HTTP/2 with prior knowledge over plain TCP.
      ...(opts.h2 ? (https ? { preferH2: true } : { useH2c: true }) : {}),
    } as BuildConnector.BuildOptions);
    return new UndiciPool(this.origin, {
      connect: (o, cb) => connector({ ...o, servername: sni }, cb),
      keepAliveTimeout: opts.keepAliveTimeout,
      // Timeouts are set per request (pool timeouts); these are only the defaults.
      headersTimeout: 0,
      bodyTimeout: 0,
      allowH2: opts.h2,
    }) as UpstreamClient;
  }

  /**
   * The TLS name requests to this target carry (undici re-keys connections when it changes
   * between requests, so it must be constant per target); undefined for http:// targets.
   */
  get servername(): string | undefined {
    return this.#servername;
  }

  /** Closes the connection pool gracefully (in-flight requests finish); resolves when closed. */
  async close(): Promise<void> {
    this.#clearEjection();
    const d = this.#dispatcher;
    this.#dispatcher = undefined;
    if (d !== undefined) await d.close().catch(() => {});
  }
}

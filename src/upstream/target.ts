// One upstream target of one pool: its connection pool and its state. State changes only
// through the methods here (ARCHITECTURE rule 3): in-flight through acquire()/release, health
// through setHealthy() (driven by the health state machine).
import { isIP } from 'node:net';
import { originOf } from '../config/net-fields.ts';
import type { ClientKind, UpstreamClient } from './client.ts';
import { H1Pool } from './h1/pool.ts';
import { UndiciClient } from './undici.ts';

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
  /** The HTTP/1.1 client (an h2 pool is always served by undici). */
  client: ClientKind;
  /** SPEC §7: a PROXY protocol header first on every upstream connection (builtin client only). */
  proxyProtocol: 'off' | 'v1' | 'v2';
  /** A string that changes whenever any of the above does (computed once per pool build). */
  key: string;
}

/** Where a target is reached, worked out once from its URL. */
export interface Endpoint {
  readonly https: boolean;
  /** Host name or address, without IPv6 brackets. */
  readonly host: string;
  readonly port: number;
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
  /** scheme://host:port. */
  readonly origin: string;
  readonly endpoint: Endpoint;
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
  #client: UpstreamClient | undefined;
  #connectKey = '';
  #releaseFn: () => void;

  constructor(pool: string, url: string, weight: number) {
    this.pool = pool;
    this.url = url;
    const u = new URL(url);
    this.origin = originOf(u);
    const https = u.protocol === 'https:';
    this.endpoint = { https, host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port !== '' ? Number(u.port) : https ? 443 : 80 };
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
   * own HTTP/1.1 client, or undici for a pool that speaks HTTP/2 or asks for it (`client: undici`).
   */
  client(opts: TargetConnectOptions): UpstreamClient {
    const key = opts.key;
    if (this.#client === undefined || key !== this.#connectKey) {
      const old = this.#client;
      const { https, host, port } = this.endpoint;
      const sni = this.sni(opts.tls);
      const t = opts.tls;
      const tls = https ? { ca: t?.ca, cert: t?.cert, key: t?.key, rejectUnauthorized: t?.rejectUnauthorized ?? true } : undefined;
      this.#client = opts.h2 || opts.client === 'undici'
        ? new UndiciClient({ origin: this.origin, connectTimeout: opts.connectTimeout, keepAliveTimeout: opts.keepAliveTimeout, h2: opts.h2, tls, servername: sni })
        : new H1Pool({ host, port, connectTimeout: opts.connectTimeout, keepAliveTimeout: opts.keepAliveTimeout, tls: tls === undefined ? undefined : { ...tls, servername: sni } });
      this.#connectKey = key;
      // In-flight requests on the old pool finish; it closes once they have.
      if (old !== undefined) void old.close().catch(() => {});
    }
    return this.#client;
  }

  /**
   * The TLS server name a connection to this target sends, for every client and the WebSocket
   * tunnel alike: `tls.serverName`, else the target's own host — never the client's Host header.
   * Undefined for an http:// target, and for an IP, which sends no SNI (RFC 6066 §3) and is
   * checked against the certificate's IP SANs.
   */
  sni(tls: UpstreamTls | undefined): string | undefined {
    if (!this.endpoint.https) return undefined;
    const name = tls?.servername ?? this.endpoint.host;
    return isIP(name) === 0 ? name : undefined;
  }

  /** Closes the connection pool gracefully (in-flight requests finish); resolves when closed. */
  async close(): Promise<void> {
    this.#clearEjection();
    const d = this.#client;
    this.#client = undefined;
    if (d !== undefined) await d.close().catch(() => {});
  }
}

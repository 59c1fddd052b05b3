// UDP balancing (SPEC §7): the first datagram from a client address starts a session bound to
// one target, through a connected socket of its own; the target's replies go back to the client
// from the listener's socket (its address is the one the client sent to). A session idle for
// `sessionIdle` is dropped; the table holds at most `maxSessions` client addresses.
import { createSocket } from 'node:dgram';
import type { RemoteInfo, Socket as DgramSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { ListenAddress } from '../config/address.ts';
import { GatewayError } from '../errors.ts';
import type { AccessLogger, Logger } from '../observe/logger.ts';
import type { Metrics } from '../observe/metrics.ts';
import type { Runtime } from '../runtime.ts';
import type { UpstreamPool } from '../upstream/pool.ts';
import type { Target } from '../upstream/target.ts';
import type { UdpRoute } from './route.ts';

/** What UDP listeners need from the gateway. */
export interface UdpWiring {
  readonly log: Logger;
  readonly access: AccessLogger | undefined;
  readonly metrics: Metrics;
  readonly runtime: () => Runtime;
  readonly attempted: (pool: UpstreamPool, target: Target, err: GatewayError | undefined) => void;
}

/** A `listeners.udp` entry. */
export interface UdpListenerSettings {
  readonly name: string;
  readonly address: ListenAddress;
  readonly sessionIdle: number;
  readonly maxSessions: number;
}

/** Datagrams held for a session whose upstream socket is still connecting. */
const PENDING_DATAGRAMS = 64;

interface Session {
  readonly key: string;
  readonly id: string;
  readonly clientIp: string;
  readonly clientPort: number;
  readonly route: UdpRoute;
  readonly pool: UpstreamPool;
  readonly target: Target;
  readonly release: () => void;
  readonly up: DgramSocket;
  /** Datagrams waiting for the upstream socket's connect; undefined once connected. */
  pending: Buffer[] | undefined;
  readonly started: number;
  lastSeen: number;
  bytesIn: number;
  bytesOut: number;
}

let nextId = 0;
const ID_PREFIX = process.pid.toString(36) + '-u';

/** One UDP listener and its session table. */
export class UdpListener {
  readonly #s: UdpListenerSettings;
  readonly #w: UdpWiring;
  readonly #sessions = new Map<string, Session>();
  readonly #socket: DgramSocket;
  #sweep: NodeJS.Timeout | undefined;
  #draining = false;
  #full = false;

  /** `shared`: several processes bind the same address (workers); the kernel keeps a client on one (SO_REUSEPORT). */
  constructor(settings: UdpListenerSettings, wiring: UdpWiring, shared: boolean) {
    this.#s = settings;
    this.#w = wiring;
    const type = isIPv6(settings.address.host) ? 'udp6' : 'udp4';
    this.#socket = createSocket({ type, reuseAddr: shared, ...(shared ? { reusePort: true } : {}) });
    this.#socket.on('message', (msg, rinfo) => this.#onMessage(msg, rinfo));
    // A send to a client that went away (ICMP) must not end the listener.
    this.#socket.on('error', (err) => this.#w.log.debug({ listener: settings.name, err: err.message }, 'UDP listener socket error'));
  }

  /** Binds; resolves with "host:port". */
  listen(shared: boolean): Promise<string> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.#socket.once('error', onError);
      this.#socket.bind({ address: this.#s.address.host, port: this.#s.address.port, exclusive: shared }, () => {
        this.#socket.off('error', onError);
        const a = this.#socket.address();
        const interval = Math.max(100, Math.min(this.#s.sessionIdle / 4, 5000));
        this.#sweep = setInterval(() => this.#expire(), interval);
        this.#sweep.unref();
        resolve(a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`);
      });
    });
  }

  /** Sessions open now. */
  get size(): number {
    return this.#sessions.size;
  }

  #onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    const key = rinfo.address + '|' + rinfo.port;
    let s = this.#sessions.get(key);
    if (s === undefined) {
      if (this.#draining) return;
      s = this.#open(key, rinfo);
      if (s === undefined) return;
    }
    s.lastSeen = performance.now();
    if (s.pending !== undefined) {
      // bytesIn counts what goes on to the target, not what is dropped here.
      if (s.pending.length < PENDING_DATAGRAMS) {
        s.pending.push(msg);
        s.bytesIn += msg.length;
      }
      return;
    }
    s.bytesIn += msg.length;
    s.up.send(msg);
  }

  #open(key: string, rinfo: RemoteInfo): Session | undefined {
    if (this.#sessions.size >= this.#s.maxSessions) {
      // Logged once per spell of a full table, not once per datagram.
      if (!this.#full) this.#w.log.warn({ listener: this.#s.name, maxSessions: this.#s.maxSessions }, 'UDP session table full; datagrams from new clients are dropped');
      this.#full = true;
      return undefined;
    }
    const runtime = this.#w.runtime();
    const m = runtime.udp.match(this.#s.name, { sni: undefined, alpn: [], clientIp: rinfo.address });
    if (m === undefined) return undefined;
    const route = m.value;
    const pool = route.choosePool();
    const target = pool.select({ clientIp: rinfo.address });
    if (target === undefined) {
      // Dropped like a datagram past maxSessions: no session, nothing sent anywhere. (Not counted
      // in waygate_tcp_connections_total: that is TCP's; the health gauges say why.)
      this.#w.log.debug({ listener: this.#s.name, route: route.name, pool: pool.name, clientIp: rinfo.address }, 'UDP datagram dropped: no healthy upstream');
      return undefined;
    }
    const { host, port } = target.endpoint;
    const up = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    const now = performance.now();
    const s: Session = {
      key, id: ID_PREFIX + (nextId++).toString(36), clientIp: rinfo.address, clientPort: rinfo.port, route, pool, target,
      release: target.acquire(), up, pending: [], started: now, lastSeen: now, bytesIn: 0, bytesOut: 0,
    };
    this.#sessions.set(key, s);
    this.#w.metrics.udpSessions(this.#s.name, route.name, 1);
    up.on('message', (reply) => {
      s.bytesOut += reply.length;
      s.lastSeen = performance.now();
      this.#socket.send(reply, rinfo.port, rinfo.address);
    });
    up.on('error', (err) => {
      // ECONNREFUSED: the target's host answered ICMP port unreachable to an earlier datagram.
      const code = (err as NodeJS.ErrnoException).code ?? err.message;
      this.#w.attempted(pool, target, new GatewayError('upstream_connect', `udp ${code}`, { beforeSend: true }));
      // A target that never answered refused the session (connect_error, as a refused TCP
      // connect); one that had answered went away during it.
      this.#close(s, s.bytesOut === 0 ? 'connect_error' : 'upstream_close', `udp ${code}`);
    });
    up.connect(port, host, () => {
      const queued = s.pending ?? [];
      s.pending = undefined;
      for (const d of queued) up.send(d);
    });
    return s;
  }

  #expire(): void {
    const now = performance.now();
    for (const s of this.#sessions.values()) {
      if (now - s.lastSeen >= this.#s.sessionIdle) this.#close(s, 'idle_timeout');
    }
    if (this.#sessions.size < this.#s.maxSessions) this.#full = false;
  }

  #close(s: Session, termination: string, detail?: string): void {
    if (this.#sessions.get(s.key) !== s) return;
    this.#sessions.delete(s.key);
    s.release();
    try {
      s.up.close();
    } catch {
      // already closed
    }
    this.#w.metrics.udpSessions(this.#s.name, s.route.name, -1);
    const seconds = (performance.now() - s.started) / 1000;
    this.#w.access?.info({
      connId: s.id,
      transport: 'udp',
      listener: this.#s.name,
      clientIp: s.clientIp,
      clientPort: s.clientPort,
      // The fields of a TCP connection's line (SPEC §7), so one query reads both.
      sni: null,
      alpn: null,
      route: s.route.name,
      pool: s.pool.name,
      target: s.target.url,
      connectMs: null,
      durationMs: Math.round(seconds * 1e6) / 1000,
      bytesIn: s.bytesIn,
      bytesOut: s.bytesOut,
      termination,
      ...(detail !== undefined ? { detail } : {}),
    }, 'connection');
  }

  /** Shutdown: no new session; the open ones run until idle or `graceMs`, then the listener closes. */
  async drain(graceMs: number): Promise<void> {
    this.#draining = true;
    const deadline = performance.now() + graceMs;
    while (this.#sessions.size > 0 && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, Math.min(100, Math.max(1, deadline - performance.now()))));
      this.#expire();
    }
    for (const s of [...this.#sessions.values()]) this.#close(s, 'shutdown');
    clearInterval(this.#sweep);
    await new Promise<void>((r) => {
      try {
        this.#socket.close(() => r());
      } catch {
        r();
      }
    });
  }
}

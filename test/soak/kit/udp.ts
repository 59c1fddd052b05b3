// The client side of the UDP soak (SPEC §7): which udp pools suit a behaviour, a client socket
// (unconnected, so a reply from any other address than the listener's is seen and named), seeded
// datagrams that say which client and which one they are, and a well-behaved exchange: each
// datagram sent, its echo back exactly, from the listener's address.
import { createSocket } from 'node:dgram';
import type { RemoteInfo, Socket as DgramSocket } from 'node:dgram';
import { seededBytes } from './hello.ts';
import { within } from './time.ts';
import type { ClientContext, PoolSpec } from '../types.ts';

/** The udp pools, optionally only those with one of `expect`. */
export function udpPools(pools: readonly PoolSpec[], ...expect: PoolSpec['expect'][]): PoolSpec[] {
  return pools.filter((p) => p.kind === 'udp' && (expect.length === 0 || expect.includes(p.expect)));
}

/** The gateway port of `pool`'s UDP listener. */
export function udpPort(ctx: ClientContext, pool: PoolSpec): number {
  const port = ctx.gateway.udp[pool.udp!.listener];
  if (port === undefined) throw new Error(`waygate listens on no UDP listener "${pool.udp!.listener}" (it has ${Object.keys(ctx.gateway.udp).join(', ') || 'none'})`);
  return port;
}

/** A datagram of `size` bytes (at least 8): client `client`'s datagram `n`, the rest seeded. */
export function datagram(seed: number, client: number, n: number, size: number): Buffer {
  const b = seededBytes((seed ^ (client * 7919) ^ (n * 104_729)) >>> 0, Math.max(8, size));
  b.writeUInt32BE(client, 0);
  b.writeUInt32BE(n, 4);
  return b;
}

/** One client socket to a pool's UDP listener, owned by the task; every datagram it receives is kept. */
export class UdpClient {
  readonly socket: DgramSocket;
  readonly port: number;
  readonly received: { msg: Buffer; from: RemoteInfo }[] = [];
  /** When it was bound (ms since the epoch): its session's connection line comes after. */
  readonly since = Date.now();
  #waiters: (() => void)[] = [];
  #closed = false;

  private constructor(ctx: ClientContext, socket: DgramSocket, port: number) {
    this.socket = socket;
    this.port = port;
    socket.on('message', (msg, from) => {
      this.received.push({ msg, from });
      for (const w of this.#waiters.splice(0)) w();
    });
    ctx.own({ destroy: () => this.close() });
  }

  static async open(ctx: ClientContext, pool: PoolSpec): Promise<UdpClient> {
    const socket = createSocket('udp4');
    socket.on('error', () => {});
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
    return new UdpClient(ctx, socket, socket.address().port);
  }

  send(ctx: ClientContext, pool: PoolSpec, msg: Buffer): Promise<void> {
    return new Promise((resolve) => this.socket.send(msg, udpPort(ctx, pool), '127.0.0.1', () => resolve()));
  }

  /** Resolves once `n` datagrams have come (true), or after `ms` or the task's abort (false). */
  async receivedAtLeast(n: number, ms: number, signal: AbortSignal): Promise<boolean> {
    const wait = (async (): Promise<boolean> => {
      while (this.received.length < n) await new Promise<void>((r) => this.#waiters.push(r));
      return true;
    })();
    return within(wait, ms, false, signal);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.socket.close();
    } catch {
      // already closed
    }
  }
}

/** What is wrong with the datagrams `client` received for `sent` (each echoed once, exactly, from the listener), or undefined. */
export function echoProblem(client: UdpClient, sent: readonly Buffer[], listenerPort: number): string | undefined {
  const left = [...sent];
  for (const { msg, from } of client.received) {
    if (from.port !== listenerPort || from.address !== '127.0.0.1') return `a reply came from ${from.address}:${from.port}, not the listener's address 127.0.0.1:${listenerPort}`;
    const i = left.findIndex((s) => s.equals(msg));
    if (i === -1) {
      const what = msg.length >= 8 ? `client ${msg.readUInt32BE(0)} datagram ${msg.readUInt32BE(4)}` : 'unknown';
      return `a ${msg.length}-byte reply (${what}) is none of the ${sent.length} datagrams this client sent (or came twice)`;
    }
    left.splice(i, 1);
  }
  if (left.length > 0) return `${left.length} of ${sent.length} datagrams were not echoed (${client.received.length} replies)`;
  return undefined;
}

/**
 * A well-behaved exchange with an `ok` udp pool: `count` datagrams of `size` bytes, one after the
 * other, each echo waited for (up to `ms`). The client, and the problem or undefined.
 */
export async function udpEchoOnce(ctx: ClientContext, pool: PoolSpec, seed: number, count: number, size: number, ms: number): Promise<{ client: UdpClient; sent: number; problem?: string }> {
  const client = await UdpClient.open(ctx, pool);
  const listenerPort = udpPort(ctx, pool);
  const sent: Buffer[] = [];
  for (let n = 0; n < count; n++) {
    const d = datagram(seed, client.port, n, size);
    sent.push(d);
    await client.send(ctx, pool, d);
    if (!(await client.receivedAtLeast(n + 1, ms, ctx.signal))) return { client, sent: sent.length, problem: `datagram ${n} (${d.length} B) not echoed within ${ms} ms (${client.received.length} of ${n + 1} replies)` };
    const p = echoProblem(client, sent, listenerPort);
    if (p !== undefined) return { client, sent: sent.length, problem: p };
  }
  return { client, sent: sent.length };
}

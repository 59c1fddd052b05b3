// The client side of the L4 soak (SPEC §7): which tcp pools suit a behaviour, dialling a pool's
// listener (through TLS for the passthrough target), what goes first on an SNI route (a
// ClientHello naming it), checking an echo byte for byte as it streams back, waiting for the
// gateway to close a connection the client does not read, and reading back the gateway's own
// `connection` line for the connection (by its client port) to check what it says.
import { createHash } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { HTTPS_LISTENER, SNI } from '../faults/l4.ts';
import type { ClientContext, ConnectionLine, PoolSpec } from '../types.ts';
import { clientHello, seededBytes } from './hello.ts';
import type { HelloSpec } from './hello.ts';
import { sleep, within } from './time.ts';
import { Wire } from './wire.ts';

/** How long a task waits for its connection line once its connection is over. */
export const LINE_WAIT_MS = 3000;

/** The tcp pools, optionally only those with one of `expect`. */
export function tcpPools(pools: readonly PoolSpec[], ...expect: PoolSpec['expect'][]): PoolSpec[] {
  return pools.filter((p) => p.kind === 'tcp' && (expect.length === 0 || expect.includes(p.expect)));
}

/** The gateway port of `listener` (a listeners.tcp name, or `https`: the shared HTTPS port). */
export function listenerPort(ctx: ClientContext, listener: string): number {
  if (listener === HTTPS_LISTENER) return ctx.gateway.https;
  const port = ctx.gateway.tcp[listener];
  if (port === undefined) throw new Error(`waygate listens on no TCP listener "${listener}" (it has ${Object.keys(ctx.gateway.tcp).join(', ') || 'none'})`);
  return port;
}

/** Whether `pool`'s route is chosen by SNI (a ClientHello must go first). */
export function bySni(pool: PoolSpec): boolean {
  return (pool.l4?.sni?.length ?? 0) > 0;
}

/**
 * Whether `pool`'s route is on a TCP listener that peeks (SNI routes only): there, what is no
 * routable hello is closed. On the shared HTTPS port it is served as HTTPS instead.
 */
export function onPeekingListener(pool: PoolSpec): boolean {
  return bySni(pool) && pool.l4!.listener !== HTTPS_LISTENER;
}

/** The hello that opens a raw (non-TLS-library) connection to an SNI-routed pool: its first SNI name. */
export function helloFor(pool: PoolSpec, seed: number, spec: Omit<HelloSpec, 'sni'> = {}): Buffer {
  return clientHello(seed, { ...spec, sni: pool.l4!.sni![0] });
}

/**
 * A connection to `pool`'s listener: TCP, or for the TLS target a TLS session with its SNI
 * (`tls: true`), or a TLS session with another SNI on the same listener (`servername`).
 */
export function dial(ctx: ClientContext, pool: PoolSpec, opts: { tls?: boolean; servername?: string; alpn?: string[]; allowHalfOpen?: boolean } = {}): Wire {
  const port = listenerPort(ctx, pool.l4!.listener);
  if (opts.tls === true) return new Wire(ctx, { port, tls: true, servername: opts.servername ?? SNI.tls, alpn: opts.alpn, allowHalfOpen: opts.allowHalfOpen });
  return new Wire(ctx, { port, allowHalfOpen: opts.allowHalfOpen });
}

/** The SHA-256 fingerprint of the certificate the TLS peer presented. */
export function peerFingerprint(wire: Wire): string | undefined {
  return (wire.socket as TLSSocket).getPeerCertificate?.()?.fingerprint256;
}

/** Checks what comes back against what was sent, byte for byte, as it streams in. */
export class EchoCheck {
  readonly #expected: Buffer;
  readonly #hash = createHash('sha256');
  /** Bytes received so far. */
  bytes = 0;
  /** Offset of the first byte that differs (or is one too many), -1 while all match. */
  firstBad = -1;
  #waiters: (() => void)[] = [];

  constructor(wire: Wire, expected: Buffer) {
    this.#expected = expected;
    wire.socket.on('data', (c: Buffer) => this.#feed(c));
    void wire.ended.then(() => this.#wake());
  }

  #feed(c: Buffer): void {
    if (this.firstBad === -1) {
      const want = this.#expected.subarray(this.bytes, this.bytes + c.length);
      if (want.length < c.length) this.firstBad = this.#expected.length;
      if (!want.equals(c.subarray(0, want.length))) {
        for (let i = 0; i < want.length; i++) {
          if (want[i] !== c[i]) {
            this.firstBad = this.bytes + i;
            break;
          }
        }
      }
    }
    this.#hash.update(c);
    this.bytes += c.length;
    this.#wake();
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Resolves once every expected byte came back (true), or the wire ended, `ms` passed or the task was aborted (false). */
  async complete(wire: Wire, ms: number, signal: AbortSignal): Promise<boolean> {
    const wait = (async (): Promise<boolean> => {
      while (this.bytes < this.#expected.length) {
        if (wire.isEnded || this.firstBad !== -1) return false;
        await new Promise<void>((r) => this.#waiters.push(r));
      }
      return true;
    })();
    return within(wait, ms, false, signal);
  }

  /** What is wrong with the echo so far, or undefined when it is exactly what was sent. */
  problem(): string | undefined {
    if (this.firstBad === -1 && this.bytes === this.#expected.length) return undefined;
    const sent = createHash('sha256').update(this.#expected).digest('hex').slice(0, 16);
    const got = this.#hash.copy().digest('hex').slice(0, 16);
    if (this.firstBad !== -1) return `the echo differs from what was sent at byte ${this.firstBad} (${this.bytes} of ${this.#expected.length} bytes back; sha256 sent ${sent}…, got ${got}…)`;
    return `${this.bytes} of ${this.#expected.length} bytes came back (sha256 sent ${sent}…, got ${got}…)`;
  }
}

/** Writes `pieces` in order (each handed to the kernel before the next); stops if the wire ends or the task is aborted. */
export async function writePieces(ctx: ClientContext, wire: Wire, pieces: readonly Buffer[], gapMs = 0): Promise<number> {
  let sent = 0;
  for (const p of pieces) {
    if (wire.isEnded || ctx.signal.aborted) break;
    await wire.write(p);
    sent += p.length;
    if (gapMs > 0) await sleep(gapMs, ctx.signal);
  }
  return sent;
}

/**
 * For a client that does not read (its socket paused): whether the gateway closed the connection
 * within `ms`. A paused socket reports no end, so after `ms` it reads, and the close the gateway
 * sent shows at once (or within a short grace for the bytes queued before it).
 */
export async function closedWhilePaused(ctx: ClientContext, wire: Wire, ms: number): Promise<'closed' | 'reset' | `error:${string}` | 'open'> {
  const early = await wire.endedWithin(ms, ctx.signal);
  if (early !== 'open' || ctx.signal.aborted) return early;
  wire.socket.resume();
  return wire.endedWithin(1000, ctx.signal);
}

/** What a connection line must say; a list allows any of its values. */
export interface LineWant {
  route?: string | null;
  terminations?: readonly string[];
  /** `null`: the connection reached no target. */
  target?: null;
  sni?: string;
  bytesIn?: number;
  bytesOut?: number;
}

/**
 * The gateway's connection line for `wire`, checked against `want`: the problem found (no line,
 * or a field that differs), or the line's termination as a note.
 */
export async function checkLine(ctx: ClientContext, wire: Wire, want: LineWant): Promise<{ problem?: string; termination?: string; line?: ConnectionLine }> {
  const port = wire.localPort;
  if (port === 0) return { problem: 'the connection never came up, so it has no connection line' };
  // The listener the wire dialled, by its port: the same client port may be in use towards another
  // one. The dialled port, not tcp.remotePort: that is gone once the socket is (a refused connection).
  const remote = wire.dialled;
  const listener = remote === ctx.gateway.https ? 'https' : Object.entries(ctx.gateway.tcp ?? {}).find(([, p]) => p === remote)?.[0];
  const line = await ctx.connectionLine(port, wire.since, LINE_WAIT_MS, false, listener);
  if (line === undefined) {
    if (ctx.signal.aborted) return { problem: 'cut at the task deadline before its connection line' };
    return { problem: `waygate wrote no "connection" line for client port ${port} within ${LINE_WAIT_MS} ms of its end` };
  }
  const wrong: string[] = [];
  if (want.route !== undefined && line.route !== want.route) wrong.push(`route ${JSON.stringify(line.route)}, expected ${JSON.stringify(want.route)}`);
  if (want.terminations !== undefined && !want.terminations.includes(line.termination)) wrong.push(`termination ${line.termination}${line.detail === undefined ? '' : ` (${line.detail})`}, expected ${want.terminations.join(' or ')}`);
  if (want.target === null && line.target !== null) wrong.push(`target ${line.target}, expected none (nothing may reach a pool)`);
  if (want.sni !== undefined && line.sni !== want.sni) wrong.push(`sni ${JSON.stringify(line.sni)}, expected ${want.sni}`);
  if (want.bytesIn !== undefined && line.bytesIn !== want.bytesIn) wrong.push(`bytesIn ${line.bytesIn}, the client sent ${want.bytesIn}`);
  if (want.bytesOut !== undefined && line.bytesOut !== want.bytesOut) wrong.push(`bytesOut ${line.bytesOut}, the client received ${want.bytesOut}`);
  if (wrong.length > 0) return { problem: `connection line (port ${port}): ${wrong.join('; ')}: ${JSON.stringify(line)}`, termination: line.termination, line };
  return { termination: line.termination, line };
}

/**
 * One well-behaved exchange with an `ok` tcp pool (warm-up, final probe): a hello first on an
 * SNI route (TLS for the passthrough target, whose certificate must be the target's), `size`
 * seeded bytes echoed exactly, a FIN each way within `ms`. The problem, or undefined.
 */
export async function echoOnce(ctx: ClientContext, pool: PoolSpec, seed: number, size: number, ms: number): Promise<string | undefined> {
  const tls = pool.l4!.target === 'tls-echo';
  const wire = dial(ctx, pool, { tls, servername: tls ? pool.l4!.sni![0] : undefined });
  try {
    if (!(await within(wire.ready.then(() => true), ms, false, ctx.signal))) return `not connected within ${ms} ms`;
  } catch (err) {
    return `connect: ${(err as Error).message}`;
  }
  if (tls && peerFingerprint(wire) !== pool.l4!.fingerprint) return `the client saw certificate ${peerFingerprint(wire) ?? 'none'}, not the target's`;
  const first = bySni(pool) && !tls ? helloFor(pool, seed) : Buffer.alloc(0);
  const all = Buffer.concat([first, seededBytes(seed, size)]);
  const check = new EchoCheck(wire, all);
  void wire.write(all);
  if (!(await check.complete(wire, ms, ctx.signal))) {
    wire.destroy();
    return check.problem() ?? 'no echo';
  }
  wire.end();
  const ending = await wire.endedWithin(ms, ctx.signal);
  if (ending !== 'closed') {
    wire.destroy();
    return ending === 'open' ? `not closed within ${ms} ms of the FIN` : `ended ${ending}`;
  }
  return check.problem();
}

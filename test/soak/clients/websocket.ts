// WebSocket clients (`ws`) through the HTTP and HTTPS listeners to the ws:// and wss:// pools,
// killed at a random point: mid-handshake on a raw socket, before or on open, after the
// upstream's greeting, while sending a large message, after an echo; or a clean close by
// either side. Whenever the connection opens, the greeting must be the first message (issue 12,
// defect 7), and an echo must match what was sent.
import WebSocket from 'ws';
import type { RawData } from 'ws';
import { CLOSE_PLEASE, GREETING } from '../faults/websocket.ts';
import { sleep } from '../kit/time.ts';
import { requestHead, Wire } from '../kit/wire.ts';
import type { ClientBehaviour, ClientContext, Outcome, PoolSpec } from '../types.ts';

const KILLS = ['mid-handshake', 'before-open', 'on-open', 'after-greeting', 'mid-message', 'after-echo', 'client-close', 'upstream-close'] as const;
type Kill = (typeof KILLS)[number];
const WAIT_MS = 6_000;

/** A queue of received messages. */
class Inbox {
  readonly #items: string[] = [];
  readonly #waiters: (() => void)[] = [];
  push(m: string): void {
    this.#items.push(m);
    for (const w of this.#waiters.splice(0)) w();
  }
  async next(ms: number, signal: AbortSignal): Promise<string | undefined> {
    const end = Date.now() + ms;
    while (this.#items.length === 0) {
      if (Date.now() >= end || signal.aborted) return undefined;
      await Promise.race([new Promise<void>((r) => this.#waiters.push(r)), sleep(Math.max(1, end - Date.now()), signal)]);
    }
    return this.#items.shift();
  }
}

async function rawHandshake(ctx: ClientContext, tls: boolean, path: string, cutAt: number): Promise<Outcome> {
  const wire = new Wire(ctx, { tls });
  try {
    await wire.ready;
  } catch (err) {
    return { ok: false, note: 'connect failed', detail: (err as Error).message };
  }
  const head = requestHead('GET', path, { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': 13 });
  await wire.write(head.slice(0, Math.max(1, Math.floor(head.length * cutAt))));
  wire.reset();
  return { ok: true, note: 'cut mid-handshake' };
}

/** One WebSocket session as planned: where it connects, where it is killed, what it sends. */
export interface WsPlan {
  pool: PoolSpec;
  tls: boolean;
  kill: Kill;
  how: 'terminate' | 'close';
  message: string;
  /** Where a raw handshake is cut (fraction of the head). */
  cutAt: number;
}

/** Runs one WebSocket session and checks what it got. */
export async function wsSession(ctx: ClientContext, { pool, tls, kill, how, message, cutAt }: WsPlan): Promise<Outcome> {
  const path = `/${pool.name}/${pool.variants[0]}`;
  if (kill === 'mid-handshake') return rawHandshake(ctx, tls, path, cutAt);
  const url = `${tls ? 'wss' : 'ws'}://${ctx.gateway.host}:${tls ? ctx.gateway.https : ctx.gateway.http}${path}`;
  const client = new WebSocket(url, { rejectUnauthorized: false, handshakeTimeout: WAIT_MS, headers: { host: 'soak.test' } });
  ctx.own({ destroy: () => client.terminate() });
  const inbox = new Inbox();
  client.on('error', () => {});
  client.on('message', (d: RawData) => inbox.push(d.toString()));
  const closed = new Promise<number>((r) => client.once('close', (code) => r(code)));
  if (kill === 'before-open') {
    client.terminate();
    return { ok: true, note: 'killed before open' };
  }
  const opened = await Promise.race([new Promise<boolean>((r) => client.once('open', () => r(true))), closed.then(() => false), sleep(WAIT_MS, ctx.signal).then(() => false)]);
  if (!opened) return { ok: false, note: 'no upgrade', detail: `the WebSocket handshake did not complete within ${WAIT_MS} ms` };
  const end = (): void => (how === 'terminate' ? client.terminate() : client.close(1000));
  if (kill === 'on-open') {
    end();
    return { ok: true, note: 'killed on open' };
  }
  const first = await inbox.next(WAIT_MS, ctx.signal);
  if (first !== GREETING) {
    client.terminate();
    return { ok: false, note: 'greeting lost', detail: first === undefined ? `no greeting within ${WAIT_MS} ms after the upgrade` : `first message was ${JSON.stringify(first.slice(0, 60))}, not the greeting` };
  }
  if (kill === 'after-greeting') {
    end();
    return { ok: true, note: 'killed after greeting' };
  }
  if (kill === 'upstream-close') {
    client.send(CLOSE_PLEASE);
    const code = await Promise.race([closed, sleep(WAIT_MS, ctx.signal).then(() => -1)]);
    if (code === -1) return { ok: false, note: 'upstream close lost', detail: `the upstream closed, the client was not closed within ${WAIT_MS} ms` };
    return { ok: true, note: `upstream closed ${code}` };
  }
  client.send(message);
  if (kill === 'mid-message') {
    setImmediate(end);
    return { ok: true, note: 'killed mid-message' };
  }
  const echo = await inbox.next(WAIT_MS, ctx.signal);
  if (echo !== message) {
    client.terminate();
    return { ok: false, note: 'echo lost', detail: echo === undefined ? `no echo of a ${message.length}-byte message within ${WAIT_MS} ms` : `echo of ${echo.length} bytes differs from the ${message.length} sent` };
  }
  if (kill === 'after-echo') {
    end();
    return { ok: true, note: 'killed after echo' };
  }
  client.close(1000, 'bye');
  const code = await Promise.race([closed, sleep(WAIT_MS, ctx.signal).then(() => -1)]);
  if (code === -1) return { ok: false, note: 'close lost', detail: `a clean close was not completed within ${WAIT_MS} ms` };
  return { ok: true, note: `clean close ${code}` };
}

const websocket: ClientBehaviour = {
  name: 'websocket',
  weight: 8,
  plan(rng, pools) {
    const ws = pools.filter((p) => p.kind === 'ws');
    if (ws.length === 0) return undefined;
    const p: WsPlan = {
      pool: rng.pick(ws),
      tls: rng.chance(0.5),
      kill: rng.pick(KILLS),
      how: rng.pick(['terminate', 'close'] as const),
      message: rng.chance(0.7) ? `msg-${rng.u32()}` : 'x'.repeat(rng.int(1, 70_000)),
      cutAt: rng.next(),
    };
    const by = p.kill.startsWith('after') || p.kill === 'on-open' || p.kill === 'mid-message' ? ` by ${p.how}` : '';
    return {
      label: `websocket pool=${p.pool.name} via ${p.tls ? 'wss' : 'ws'} kill ${p.kill}${by} message ${p.message.length}B`,
      pool: p.pool.name,
      run: (ctx) => wsSession(ctx, p),
    };
  },
};
export default websocket;

// Clients that read a large answer slowly (one socket read per tick on HTTP/1.1; a 4 KiB flow
// control window on HTTP/2) and give up after a while, or read to the end. The gateway must
// apply backpressure, and whatever it paused must not poison a pooled upstream connection
// (issue 12, defect 3: the bursts of chunks below).
import { connect as h2connect } from 'node:http2';
import { httpPools, pathOf } from '../kit/plan.ts';
import { sleep } from '../kit/time.ts';
import { firstStatus, requestHead, Wire } from '../kit/wire.ts';
import type { ClientBehaviour, ClientContext } from '../types.ts';

const LARGE = ['data?size=4194304&chunked=1&burst=1', 'data?size=1048576&chunked=1&burst=1', 'data?size=4194304', 'data?size=262144&chunked=1&burst=1'];
const H2_WINDOW = 4096;

async function h1Slow(ctx: ClientContext, tls: boolean, path: string, tick: number, giveUp: number): Promise<string> {
  const wire = new Wire(ctx, { tls });
  await wire.ready;
  // One read per tick: every read pauses the socket again until the next one.
  wire.socket.on('data', () => wire.socket.pause());
  wire.socket.pause();
  await wire.write(requestHead('GET', path));
  const end = Date.now() + giveUp;
  while (Date.now() < end && !wire.isEnded && !ctx.signal.aborted) {
    wire.socket.resume();
    await sleep(tick, ctx.signal);
  }
  const note = wire.isEnded ? 'read to the end' : `gave up after ${wire.received} bytes`;
  wire.destroy();
  return `${firstStatus(wire.text()) || 'no status'}, ${note}`;
}

async function h2Slow(ctx: ClientContext, path: string, tick: number, giveUp: number): Promise<string> {
  const session = ctx.own(h2connect(`https://${ctx.gateway.host}:${ctx.gateway.https}`, { rejectUnauthorized: false, servername: 'localhost', settings: { initialWindowSize: H2_WINDOW } }));
  session.on('error', () => {});
  const stream = ctx.own(session.request({ ':path': path, ':authority': 'soak.test' }));
  stream.on('error', () => {});
  let status = 0;
  let bytes = 0;
  let ended = false;
  stream.on('response', (h) => (status = Number(h[':status'])));
  stream.on('data', (c: Buffer) => {
    bytes += c.length;
    stream.pause();
  });
  stream.on('close', () => (ended = true));
  stream.pause();
  const end = Date.now() + giveUp;
  while (Date.now() < end && !ended && !ctx.signal.aborted) {
    stream.resume();
    await sleep(tick, ctx.signal);
  }
  session.destroy();
  return `${status || 'no status'}, ${ended ? 'read to the end' : `gave up after ${bytes} bytes`}`;
}

const slowReader: ClientBehaviour = {
  name: 'slow-reader',
  weight: 5,
  plan(rng, pools) {
    const candidates = httpPools(pools).filter((p) => p.expect === 'ok' || p.name === 'pause' || p.name === 'h2-calm');
    if (candidates.length === 0) return undefined;
    const pool = rng.pick(candidates);
    const proto = rng.pick(['h1', 'h1s', 'h2'] as const);
    const path = pathOf(pool, pool.expect === 'ok' || pool.name === 'h2-calm' ? rng.pick(LARGE) : rng.pick(pool.variants));
    const tick = rng.int(20, 150);
    const giveUp = rng.int(300, 3000);
    return {
      label: `slow-reader pool=${pool.name} ${proto} GET ${path} a read every ${tick}ms, gives up after ${giveUp}ms`,
      pool: pool.name,
      async run(ctx) {
        try {
          const note = proto === 'h2' ? await h2Slow(ctx, path, tick, giveUp) : await h1Slow(ctx, proto === 'h1s', path, tick, giveUp);
          return { ok: true, note: note.replace(/\d+ bytes/, 'N bytes') };
        } catch (err) {
          return { ok: false, note: 'connect failed', detail: (err as Error).message };
        }
      },
    };
  },
};
export default slowReader;

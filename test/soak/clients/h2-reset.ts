// HTTP/2 clients that reset streams mid-way: 1–6 streams on one session, to any pool, each
// cancelled at a chosen point (at once, after the response head, mid-body, mid-upload) or read
// to the end; then the session is closed, destroyed, or sent a GOAWAY.
import { constants } from 'node:http2';
import type { ClientHttp2Stream } from 'node:http2';
import { h2Session } from '../kit/http-client.ts';
import { patternBody } from '../kit/pattern.ts';
import { anyPath, httpPools } from '../kit/plan.ts';
import { sleep } from '../kit/time.ts';
import type { ClientBehaviour, ClientContext } from '../types.ts';

const STREAM_WAIT_MS = 10_000;
type Cut = 'at-once' | 'after-head' | 'mid-body' | 'mid-upload' | 'complete';

function runStream(ctx: ClientContext, stream: ClientHttp2Stream, cut: Cut, upload: number): Promise<string> {
  return new Promise((resolve) => {
    let status = 0;
    const done = (what: string): void => {
      clearTimeout(timer);
      resolve(what);
    };
    const timer = setTimeout(() => done('no end'), STREAM_WAIT_MS);
    const cancel = (): void => void stream.close(constants.NGHTTP2_CANCEL);
    stream.on('error', () => {});
    stream.on('response', (h) => {
      status = Number(h[':status']);
      if (cut === 'after-head') cancel();
    });
    stream.on('data', () => {
      if (cut === 'mid-body') cancel();
    });
    stream.on('close', () => done(`${status || 'no status'} ${stream.rstCode === 0 ? 'ended' : `rst ${stream.rstCode}`}`));
    ctx.signal.addEventListener('abort', () => done('cut at the deadline'), { once: true });
    if (cut === 'at-once') cancel();
    if (cut === 'mid-upload') {
      stream.write(patternBody(upload));
      setImmediate(cancel);
    } else if (upload > 0) {
      stream.end(patternBody(upload));
    }
  });
}

const h2Reset: ClientBehaviour = {
  name: 'h2-reset',
  weight: 8,
  plan(rng, pools) {
    const candidates = httpPools(pools);
    if (candidates.length === 0) return undefined;
    const streams = Array.from({ length: rng.int(1, 6) }, () => {
      const pool = rng.pick(candidates);
      const cut = rng.pick(['at-once', 'after-head', 'mid-body', 'mid-upload', 'complete'] as const);
      const upload = cut === 'mid-upload' ? rng.pick([1000, 100_000]) : rng.chance(0.3) ? rng.pick([10, 20_000]) : 0;
      return { pool, path: anyPath(rng, pool), cut, upload, delay: rng.int(0, 200) };
    });
    const end = rng.pick(['close', 'destroy', 'goaway'] as const);
    return {
      label: `h2-reset ${streams.map((s) => `${s.path} ${s.cut}${s.upload > 0 ? ` +${s.upload}B` : ''}`).join(', ')} then ${end}`,
      pool: streams[0].pool.name,
      async run(ctx) {
        const session = h2Session(ctx);
        const notes = await Promise.all(streams.map(async (s) => {
          await sleep(s.delay, ctx.signal);
          if (session.destroyed || session.closed) return 'session gone';
          let stream: ClientHttp2Stream;
          try {
            stream = ctx.own(session.request({ ':method': s.upload > 0 ? 'POST' : 'GET', ':path': s.path, ':authority': 'soak.test' }, { endStream: s.upload === 0 }));
          } catch {
            return 'request refused';
          }
          return runStream(ctx, stream, s.cut, s.upload);
        }));
        if (end === 'goaway' && !session.destroyed) session.goaway(constants.NGHTTP2_NO_ERROR);
        if (end === 'destroy' || end === 'goaway') session.destroy();
        else session.close();
        const stuck = notes.filter((n) => n === 'no end').length;
        if (stuck > 0) return { ok: false, note: 'stream never ended', detail: `${stuck} of ${notes.length} streams neither ended nor were reset within ${STREAM_WAIT_MS} ms (${notes.join('; ')})` };
        return { ok: true, note: `${end}` };
      },
    };
  },
};
export default h2Reset;

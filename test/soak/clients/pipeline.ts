// Clients that pipeline 2–5 requests in one write (GETs, and POSTs with a body) to a healthy
// pool: the answers must come back complete and in the order sent (SPEC §4, issue 12 defect 9).
// Some vanish after the first answer instead.
import { httpPools, pathOf } from '../kit/plan.ts';
import type { Echo } from '../kit/content.ts';
import { parseHead, requestHead, Wire } from '../kit/wire.ts';
import type { ClientBehaviour } from '../types.ts';

const ANSWERS_WAIT_MS = 10_000;

/** The echo answers in `text`, in order (Content-Length framed). */
function answers(text: string): { status: number; url: string }[] {
  const out: { status: number; url: string }[] = [];
  let at = 0;
  for (;;) {
    const h = parseHead(text, at);
    if (h === undefined) return out;
    const len = Number(h.headers['content-length'] ?? -1);
    if (len < 0 || text.length < h.bodyStart + len) return out;
    let url = '?';
    try {
      url = (JSON.parse(text.slice(h.bodyStart, h.bodyStart + len)) as Echo).url;
    } catch {
      // not an echo (a gateway error page): keep '?'
    }
    out.push({ status: h.status, url });
    at = h.bodyStart + len;
  }
}

const pipeline: ClientBehaviour = {
  name: 'pipeline',
  weight: 5,
  plan(rng, pools) {
    const healthy = httpPools(pools, 'ok');
    if (healthy.length === 0) return undefined;
    const pool = rng.pick(healthy);
    const tls = rng.chance(0.4);
    const n = rng.int(2, 5);
    const reqs = Array.from({ length: n }, (_, i) => {
      const path = `${pathOf(pool, 'echo')}?n=${i}`;
      if (!rng.chance(0.35)) return { line: `GET ${path}`, path, bytes: requestHead('GET', path) };
      const body = 'x'.repeat(rng.int(1, 5000));
      return { line: `POST ${path}`, path, bytes: requestHead('POST', path, { 'content-length': body.length }) + body };
    });
    const vanish = rng.chance(0.2);
    return {
      label: `pipeline pool=${pool.name}${tls ? ' tls' : ''} ${reqs.map((r) => r.line).join(', ')}${vanish ? ' then vanish' : ''}`,
      pool: pool.name,
      async run(ctx) {
        const wire = new Wire(ctx, { tls });
        try {
          await wire.ready;
        } catch (err) {
          return { ok: false, note: 'connect failed', detail: (err as Error).message };
        }
        await wire.write(reqs.map((r) => r.bytes).join(''));
        const want = vanish ? 1 : n;
        await wire.until((t) => answers(t).length >= want, ANSWERS_WAIT_MS, ctx.signal);
        const got = answers(wire.text());
        wire.destroy();
        if (vanish) return { ok: true, note: `vanished after ${got.length}` };
        const order = got.map((a) => a.url);
        const expected = reqs.map((r) => r.path);
        if (got.length < n) return { ok: false, note: 'missing answers', detail: `${got.length} of ${n} answers (${order.join(', ')})` };
        if (got.some((a) => a.status !== 200)) return { ok: false, note: 'not 200', detail: `statuses ${got.map((a) => a.status).join(', ')}` };
        if (order.join() !== expected.join()) return { ok: false, note: 'out of order', detail: `sent ${expected.join(', ')}; answered ${order.join(', ')}` };
        return { ok: true, note: `${n} in order` };
      },
    };
  },
};
export default pipeline;

// Clients of the errorPages routes (SPEC §8): they ask the errors upstream for a status and check
// the body: the page (from the file, or fetched from the pages pool) for a status in the
// middleware's list, the upstream's own body for any other, and the status kept either way. The
// refusing pool's answers are waygate's own 502/503, with the page. A page the pages pool fails to
// give (silence past the fetch timeout, a reset, a 404) leaves the original body. On the chain
// route, cors + errorPages + compress: the page is compressed as the client accepts and carries
// the CORS fields of the allowed origin.
import { brotliDecompressSync, gunzipSync, zstdDecompressSync } from 'node:zlib';
import { ASKED, PAGE_FAILS } from '../faults/mw-errors.ts';
import { PROTOS } from '../kit/http-client.ts';
import { MW, ORIGINS, PAGE_BODY, mwPools, pageOf, upstreamErrorBody } from '../kit/mw.ts';
import { describeGot, field, mwSend } from '../kit/mw-http.ts';
import type { MwGot } from '../kit/mw-http.ts';
import type { ClientBehaviour, Outcome } from '../types.ts';

const FILE_STATUSES = [404, 502, 503, 504];
const HTML = 'text/html; charset=utf-8';
const DECODE: Record<string, (b: Buffer) => Buffer> = { gzip: gunzipSync, br: brotliDecompressSync, zstd: zstdDecompressSync };

const mwErrors: ClientBehaviour = {
  name: 'mw-errors',
  weight: 5,
  plan(rng, pools) {
    const candidates = mwPools(pools, MW.errors, MW.errorsDown, MW.errorsPool, MW.chain);
    if (candidates.length === 0) return undefined;
    const pool = rng.pick(candidates);
    const proto = rng.pick(PROTOS);
    const asked = rng.pick(ASKED);
    const chain = pool.name === MW.chain;
    const accept = chain ? rng.pick([undefined, 'gzip', 'br', 'zstd']) : undefined;
    const origin = chain ? rng.pick([ORIGINS.allowed, ORIGINS.other]) : undefined;
    const path = `/${pool.name}/status/${asked}`;
    return {
      label: `mw-errors pool=${pool.name} ${proto} GET ${path}${chain ? ` origin=${origin} accept-encoding=${accept ?? 'none'}` : ''}`,
      pool: pool.name,
      async run(ctx): Promise<Outcome> {
        let got: MwGot;
        const headers: Record<string, string> = {};
        if (accept !== undefined) headers['accept-encoding'] = accept;
        if (origin !== undefined) headers.origin = origin;
        try {
          got = await mwSend(ctx, proto, { method: 'GET', path, headers });
        } catch (err) {
          return { ok: false, note: 'no answer', detail: ctx.signal.aborted ? 'cut at the task deadline' : (err as Error).message };
        }
        const fail = (why: string): Outcome => ({ ok: false, note: 'wrong answer', detail: `${why}; got ${describeGot(got)}` });
        let body = got.body;
        const coding = field(got, 'content-encoding');
        if (coding !== '') {
          if (!chain || DECODE[coding] === undefined || coding !== accept) return fail(`content-encoding ${coding} (the client accepts ${accept ?? 'none'})`);
          try {
            body = DECODE[coding](got.body);
          } catch (err) {
            return fail(`the ${coding} body does not decode: ${(err as Error).message}`);
          }
        }
        const text = body.toString('utf8');
        if (pool.name === MW.errorsDown) {
          if (got.status !== 502 && got.status !== 503) return fail('the refusing pool is waygate\'s own 502 or 503');
          return text === PAGE_BODY && field(got, 'content-type') === HTML ? { ok: true, note: `own ${got.status}, page` } : fail('waygate\'s own error without the page');
        }
        if (got.status !== asked) return fail(`the status asked (${asked}) must be kept`);
        const original = upstreamErrorBody(asked);
        if (pool.name === MW.errorsPool) {
          if (asked < 500) return text === original ? { ok: true, note: 'original' } : fail('a status outside 500-599 keeps its body');
          if (PAGE_FAILS[asked] !== undefined) return text === original ? { ok: true, note: `no page (${PAGE_FAILS[asked]}), original` } : fail(`the pages pool gave no page (${PAGE_FAILS[asked]}): the original body stays`);
          // A page fetch slower than its timeout on a loaded machine also keeps the original.
          if (text === pageOf(asked)) return { ok: true, note: 'page' };
          return text === original ? { ok: true, note: 'page fetch timed out, original' } : fail('expected the fetched page (or the original body)');
        }
        const paged = FILE_STATUSES.includes(asked);
        if (paged && (text !== PAGE_BODY || field(got, 'content-type') !== HTML)) return fail(`status ${asked} is listed: expected the file's page`);
        if (!paged && text !== original) return fail(`status ${asked} is not listed: expected the upstream's body`);
        if (chain) {
          // The page (1.8 KiB of HTML) is eligible for compress; the upstream's short body is not.
          if (paged && accept !== undefined && coding !== accept) return fail(`the page must be compressed with ${accept}`);
          const acao = field(got, 'access-control-allow-origin');
          if (origin === ORIGINS.allowed ? acao !== origin : acao !== '') return fail(`access-control-allow-origin ${JSON.stringify(acao)} for origin ${origin}`);
        }
        return { ok: true, note: paged ? `page${coding === '' ? '' : ` ${coding}`}` : 'original' };
      },
    };
  },
};
export default mwErrors;

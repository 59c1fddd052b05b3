// Clients that send what is not a valid request: random bytes (on HTTP, and inside TLS), a TLS
// handshake to the HTTP port, HTTP to the HTTPS port, the HTTP/2 preface to the HTTP port,
// smuggling vectors (CL.TE, two Content-Lengths, `TE: gzip, chunked`), a bad request line, a
// NUL in a header, headers over limits.maxHeaderSize, a bad chunk size. The gateway must answer
// 4xx or nothing, and close the connection; none of it may be forwarded as a 2xx or 5xx (a bad
// chunk may meet a 503 of a pool with no healthy target, which never reads the body).
import { connect as tlsConnect } from 'node:tls';
import { httpPools, pathOf } from '../kit/plan.ts';
import { firstStatus, Wire } from '../kit/wire.ts';
import type { Rng } from '../prng.ts';
import type { ClientBehaviour } from '../types.ts';

const CLOSE_SLACK = 4;

function inputs(rng: Rng, path: string): Record<string, Buffer | string> {
  const host = 'host: soak.test\r\n';
  return {
    'random-http': rng.bytes(rng.int(1, 4000)),
    'random-https': rng.bytes(rng.int(1, 4000)),
    'http-to-https': `GET ${path} HTTP/1.1\r\n${host}\r\n`,
    'h2-preface-to-http': 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00',
    'cl-te': `POST ${path} HTTP/1.1\r\n${host}content-length: 6\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nG`,
    'two-content-lengths': `POST ${path} HTTP/1.1\r\n${host}content-length: 3\r\ncontent-length: 5\r\n\r\nhello`,
    'te-gzip-chunked': `POST ${path} HTTP/1.1\r\n${host}transfer-encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    'bad-request-line': `G(T ${path} HTTP/1.1\r\n${host}\r\n`,
    'nul-in-header': `GET ${path} HTTP/1.1\r\n${host}x-a: b\x00c\r\n\r\n`,
    'oversized-headers': `GET ${path} HTTP/1.1\r\n${host}x-big: ${'a'.repeat(20_000)}\r\n\r\n`,
    'bad-chunk-size': `POST ${path} HTTP/1.1\r\n${host}transfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`,
  };
}

const garbage: ClientBehaviour = {
  name: 'garbage',
  weight: 6,
  plan(rng, pools) {
    const candidates = httpPools(pools);
    const path = candidates.length === 0 ? '/' : pathOf(rng.pick(candidates), 'echo');
    const all = inputs(rng, path);
    const kind = rng.pick([...Object.keys(all), 'tls-to-http']);
    const tls = kind === 'random-https' || (!['random-http', 'http-to-https', 'h2-preface-to-http', 'tls-to-http'].includes(kind) && rng.chance(0.4));
    return {
      label: `garbage ${kind}${tls ? ' tls' : ''}`,
      async run(ctx) {
        const bound = ctx.timeouts.clientHeader * CLOSE_SLACK;
        if (kind === 'tls-to-http') {
          const s = ctx.own(tlsConnect({ host: ctx.gateway.host, port: ctx.gateway.http, rejectUnauthorized: false, servername: 'localhost' }));
          const ending = await new Promise<string>((resolve) => {
            const timer = setTimeout(() => resolve('open'), bound);
            s.on('error', (e: NodeJS.ErrnoException) => {
              clearTimeout(timer);
              resolve(`error ${e.code ?? 'tls'}`);
            });
            s.on('close', () => {
              clearTimeout(timer);
              resolve('closed');
            });
            s.on('secureConnect', () => {
              clearTimeout(timer);
              resolve('handshake completed');
            });
          });
          if (ending === 'open') return { ok: false, note: 'kept open', detail: `a TLS handshake to the HTTP port was neither refused nor closed within ${bound} ms` };
          if (ending === 'handshake completed') return { ok: false, note: 'tls on http', detail: 'the HTTP port completed a TLS handshake' };
          return { ok: true, note: ending.replace(/ERR_SSL_\w+/, 'ERR_SSL_*') };
        }
        const wire = new Wire(ctx, { tls, port: kind === 'http-to-https' ? ctx.gateway.https : undefined });
        try {
          await wire.ready;
        } catch (err) {
          return { ok: false, note: 'connect failed', detail: (err as Error).message };
        }
        await wire.write(all[kind]);
        const ending = await wire.endedWithin(bound, ctx.signal);
        const status = firstStatus(wire.text());
        if (ending === 'open') return { ok: false, note: 'kept open', detail: `after ${kind} the connection was still open ${bound} ms later (answer: ${status || 'none'})` };
        // A framing error inside the body is seen only by what reads the body: a route that answers
        // without reading it (a pool with no healthy target: 503) forwards nothing either.
        const unread = kind === 'bad-chunk-size' && status === 503;
        if (status !== 0 && !unread && (status < 400 || status >= 500)) return { ok: false, note: `answered ${status}`, detail: `${kind} was answered ${status}: ${JSON.stringify(wire.text().slice(0, 200))}` };
        return { ok: true, note: `${status || 'no answer'}, ${ending}` };
      },
    };
  },
};
export default garbage;

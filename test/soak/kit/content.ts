// The healthy upstreams' handler (HTTP/1.1, HTTPS and h2c alike, through the node:http
// compatibility API): `/…/echo` answers JSON describing the request and the size of its body;
// `/…/data?size=N` answers N pattern bytes, with `chunked=1` without Content-Length (chunked on
// HTTP/1.1), with `burst=1` all chunks and the terminator in a single write, with `delay=MS`
// after a pause. Anything else is an echo.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { MAX_PATTERN_BYTES, patternBody } from './pattern.ts';

/** What the echo answers. */
export interface Echo {
  method: string;
  url: string;
  bytes: number;
}

const PIECE = 16 * 1024;

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** Serves a request as described above; `hit` counts what was served. */
export function content(req: Req, response: Res, hit: (what: string) => void): void {
  // Both APIs have what is used here; node:http's types stand for both.
  const res = response as ServerResponse;
  req.on('error', () => {});
  res.on('error', () => {});
  const url = new URL(req.url ?? '/', 'http://upstream');
  const variant = url.pathname.slice(url.pathname.lastIndexOf('/') + 1);
  if (variant !== 'data') return echo(req, res, hit);
  const size = Math.min(MAX_PATTERN_BYTES, Number(url.searchParams.get('size') ?? 0) || 0);
  const chunked = url.searchParams.get('chunked') === '1';
  const burst = url.searchParams.get('burst') === '1';
  const delay = Number(url.searchParams.get('delay') ?? 0) || 0;
  // The request may carry a body nobody asked for: read it so the connection stays reusable.
  req.resume();
  const go = (): void => {
    if (res.destroyed) return;
    hit(`data${chunked ? (burst ? '/chunked-burst' : '/chunked') : ''}`);
    const body = patternBody(size);
    if (!chunked) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    if (req.method === 'HEAD') return void res.end();
    const socket = (res as ServerResponse).socket;
    if (burst && !('stream' in response) && socket !== null) {
      // One write holding every chunk and the terminator (issue 12, defect 3): a gateway that
      // pauses on the first chunk must still finish and reuse the connection correctly. The
      // socket is corked, not the response: res.cork() with several writes sends only the
      // first chunk on Node 24.21.
      socket.cork();
      for (let off = 0; off < size; off += PIECE) res.write(body.subarray(off, Math.min(size, off + PIECE)));
      res.end();
      process.nextTick(() => socket.uncork());
      return;
    }
    let off = 0;
    const next = (): void => {
      if (res.destroyed) return;
      if (off >= size) return void res.end();
      const piece = body.subarray(off, Math.min(size, off + PIECE));
      off += piece.length;
      if (res.write(piece)) setImmediate(next);
      else res.once('drain', next);
    };
    next();
  };
  if (delay > 0) setTimeout(go, delay);
  else go();
}

function echo(req: Req, res: ServerResponse, hit: (what: string) => void): void {
  let bytes = 0;
  req.on('data', (c: Buffer) => (bytes += c.length));
  req.on('end', () => {
    if (res.destroyed) return;
    hit('echo');
    const body = JSON.stringify({ method: req.method ?? '', url: req.url ?? '', bytes } satisfies Echo);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
}

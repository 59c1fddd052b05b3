// Response hooks applied (SPEC §8): every hook's replace() first (errorPages), then head() in the
// order the hooks were added (cors, rateLimit's headers, compress), then the body flows through
// the transforms head() returned. Used by the forwarder for upstream responses and by the
// exchange for waygate's own answers, so both get the same treatment.
import type { ServerResponse } from 'node:http';
import type { Transform, Writable } from 'node:stream';
import type { Replacement, ResponseHead, ResponseHook } from './types.ts';

/** True for a promise (a hook that must wait, e.g. for a page from a pool). */
export function isPromise<T>(v: unknown): v is Promise<T> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/** The replacement the first hook with one gives for `head`, a promise of it, or undefined. */
export function findReplacement(hooks: readonly ResponseHook[], head: Readonly<ResponseHead>): Replacement | Promise<Replacement | undefined> | undefined {
  for (const h of hooks) {
    if (h.replace === undefined) continue;
    const r = h.replace(head);
    if (r !== undefined) return r;
  }
  return undefined;
}

// What describes the original body and so goes with it when another body replaces it.
const BODY_FIELDS = new Set([
  'content-length', 'content-type', 'content-encoding', 'content-range', 'content-language', 'content-location',
  'content-md5', 'content-disposition', 'etag', 'last-modified', 'accept-ranges', 'transfer-encoding',
]);

/** Edits `head` for `rep`'s body: the original's body fields out, the replacement's in. */
export function replaceHead(head: ResponseHead, rep: Replacement): void {
  const out: string[] = [];
  const h = head.headers;
  for (let i = 0; i < h.length; i += 2) if (!BODY_FIELDS.has(h[i].toLowerCase())) out.push(h[i], h[i + 1]);
  for (let i = 0; i < rep.headers.length; i += 2) if (rep.headers[i].toLowerCase() !== 'content-length') out.push(rep.headers[i], rep.headers[i + 1]);
  out.push('content-length', String(rep.body.length));
  head.headers = out;
}

/** Runs every head() hook in order over `head`; returns the transforms the body goes through. */
export function runHeadHooks(hooks: readonly ResponseHook[], head: ResponseHead): Transform[] {
  let transforms: Transform[] | undefined;
  for (const h of hooks) {
    if (h.head === undefined) continue;
    const t = h.head(head);
    if (t !== undefined) (transforms ??= []).push(t);
  }
  return transforms ?? NONE;
}

const NONE: Transform[] = [];

/**
 * Chains `transforms` into `res` and returns the first, which the body is written into. The
 * chain owns the transforms: an error in one destroys the response; a response that closes
 * before they finished (the client left) destroys them all.
 */
export function bodySink(res: ServerResponse, transforms: readonly Transform[]): Writable {
  let prev: Transform | undefined;
  for (const t of transforms) {
    t.once('error', (err) => {
      if (!res.destroyed) res.destroy(err);
    });
    if (prev !== undefined) prev.pipe(t);
    prev = t;
  }
  prev!.pipe(res);
  res.once('close', () => {
    for (const t of transforms) if (!t.destroyed) t.destroy();
  });
  return transforms[0];
}

/**
 * Writes one of waygate's own answers (a rejection, a respond or redirect route, an error)
 * through `hooks`: a replacement page, head edits, transforms. `headers` includes
 * content-length. Nothing is written once the client is gone.
 */
export function writeOwn(res: ServerResponse, status: number, headers: string[], body: string | Buffer, hooks: readonly ResponseHook[], noBody: boolean): void {
  const head: ResponseHead = { status, headers, own: true };
  const finish = (rep: Replacement | undefined): void => {
    if (res.destroyed || res.headersSent) return;
    let b = body;
    if (rep !== undefined) {
      replaceHead(head, rep);
      b = rep.body;
    }
    const transforms = runHeadHooks(hooks, head);
    res.writeHead(head.status, head.headers);
    if (noBody || transforms.length === 0) {
      for (const t of transforms) t.destroy();
      res.end(noBody ? undefined : b);
      return;
    }
    bodySink(res, transforms).end(b);
  };
  const rep = findReplacement(hooks, head);
  // A throw from a settled promise would be an unhandled rejection (the process ends): this response's alone.
  if (isPromise<Replacement | undefined>(rep)) rep.then(finish, () => finish(undefined)).catch((err: Error) => res.destroy(err));
  else finish(rep);
}

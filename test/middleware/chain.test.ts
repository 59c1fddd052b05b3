// The chain runner and the request a middleware sees (SPEC §8): order, sync and async verdicts,
// a middleware that throws or rejects, onDone exactly once (also when added after the end), the
// upstream edits merged with the route's requestHeaders, and the response hooks' order.
import { PassThrough } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { compileHeaderOps } from '../../src/forward/headers.ts';
import { ChainRequest, runChain } from '../../src/middleware/chain.ts';
import type { ChainOutcome } from '../../src/middleware/chain.ts';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { findReplacement, replaceHead, runHeadHooks, writeOwn } from '../../src/middleware/shape.ts';
import type { Answer, Middleware, MiddlewareRequest, ResponseHead, Verdict } from '../../src/middleware/types.ts';

function incoming(headers: Record<string, string | string[]>, raw: string[] = []): IncomingMessage {
  return { method: 'GET', url: '/a?b=c', headers, rawHeaders: raw } as unknown as IncomingMessage;
}

function chainRequest(headers: Record<string, string | string[]> = {}, raw: string[] = []): ChainRequest {
  return new ChainRequest(incoming(headers, raw), { scheme: 'https', host: 'example.com', hostHeader: 'example.com:8443', clientIp: '10.0.0.1', requestId: 'r1', route: 'r', websocket: false });
}

const ANSWER: Answer = { status: 403, headers: ['content-type', 'text/plain'], body: 'forbidden', rejection: true };

/** A middleware whose request() is `fn`, recording its name in `calls`. */
function mw(name: string, calls: string[], fn: (r: MiddlewareRequest) => Verdict | Promise<Verdict> = () => undefined): Middleware {
  return {
    name,
    kind: 'ipAllowList',
    request: (r) => {
      calls.push(name);
      return fn(r);
    },
    explain: () => ({ result: 'passes', why: '' }),
    describe: () => ({}),
  };
}

function run(list: Middleware[], r = chainRequest()): Promise<{ outcome: ChainOutcome; err: unknown; sync: boolean }> {
  return new Promise((resolve) => {
    let sync = true;
    runChain(list, r, (outcome, err) => resolve({ outcome, err, sync }));
    sync = false;
  });
}

describe('runChain', () => {
  it('runs middlewares in order and goes on to the action, synchronously when all are', async () => {
    const calls: string[] = [];
    const r = await run([mw('a', calls), mw('b', calls), mw('c', calls)]);
    expect(calls).toEqual(['a', 'b', 'c']);
    expect(r).toEqual({ outcome: undefined, err: undefined, sync: true });
  });

  it('stops at the first answer; later middlewares never run', async () => {
    const calls: string[] = [];
    const r = await run([mw('a', calls), mw('b', calls, () => ANSWER), mw('c', calls)]);
    expect(calls).toEqual(['a', 'b']);
    expect(r.outcome?.answer).toBe(ANSWER);
    expect(r.outcome?.by.name).toBe('b');
  });

  it('resumes after a middleware that waits, in order', async () => {
    const calls: string[] = [];
    const later = (v: Verdict): Promise<Verdict> => new Promise((res) => setImmediate(() => res(v)));
    const pass = await run([mw('a', calls, () => later(undefined)), mw('b', calls), mw('c', calls, () => later(undefined))]);
    expect(calls).toEqual(['a', 'b', 'c']);
    expect(pass.outcome).toBeUndefined();
    expect(pass.sync).toBe(false);
    const refused = await run([mw('x', calls, () => later(ANSWER)), mw('y', calls)]);
    expect(refused.outcome?.by.name).toBe('x');
    expect(calls).not.toContain('y');
  });

  it('turns a throw or a rejection into a 500 of that request, with the error for the log', async () => {
    const calls: string[] = [];
    const boom = new Error('boom');
    const thrown = await run([mw('a', calls, () => { throw boom; }), mw('b', calls)]);
    expect(thrown.outcome?.answer.status).toBe(500);
    expect(thrown.outcome?.answer.body).toBe('internal error');
    expect(thrown.err).toBe(boom);
    const rejected = await run([mw('a', calls, () => Promise.reject(boom))]);
    expect(rejected.outcome?.answer.status).toBe(500);
    expect(rejected.err).toBe(boom);
    expect(calls).not.toContain('b');
  });
});

describe('ChainRequest', () => {
  it('reads headers by lower-case name, joining repeats (cookies with "; ")', () => {
    const r = chainRequest({ accept: ['a', 'b'], cookie: ['x=1', 'y=2'], host: 'h' });
    expect(r.header('accept')).toBe('a, b');
    expect(r.header('cookie')).toBe('x=1; y=2');
    expect(r.header('host')).toBe('h');
    expect(r.header('missing')).toBeUndefined();
    expect([r.method, r.uri, r.scheme, r.host, r.hostHeader, r.clientIp, r.requestId, r.route, r.websocket]).toEqual(['GET', '/a?b=c', 'https', 'example.com', 'example.com:8443', '10.0.0.1', 'r1', 'r', false]);
  });

  it('leaves HTTP/2 pseudo-headers out of rawHeaders', () => {
    const r = chainRequest({}, [':method', 'GET', ':path', '/', 'accept', '*/*', ':authority', 'h', 'x-a', '1']);
    expect(r.rawHeaders).toEqual(['accept', '*/*', 'x-a', '1']);
    const plain = ['accept', '*/*'];
    expect(chainRequest({}, plain).rawHeaders).toBe(plain);
  });

  it('runs onDone callbacks once at finish, and at once when added after it', () => {
    const r = chainRequest();
    const calls: string[] = [];
    r.onDone(() => calls.push('a'));
    r.finish();
    r.finish();
    expect(calls).toEqual(['a']);
    r.onDone(() => calls.push('late'));
    expect(calls).toEqual(['a', 'late']);
  });

  it('merges its edits after the route\'s requestHeaders; its removals win over the route\'s sets; the last set wins', () => {
    const r = chainRequest();
    expect(r.requestOps(undefined)).toBeUndefined();
    const route = compileHeaderOps({ set: { 'x-user': 'route', 'x-env': 'prod' }, remove: ['cookie'] });
    expect(r.requestOps(route)).toBe(route);
    r.upstream.remove('X-User');
    r.upstream.set('x-email', 'a@example.com');
    r.upstream.set('X-Email', 'b@example.com');
    const ops = r.requestOps(route)!;
    expect([...ops.drop].sort()).toEqual(['cookie', 'x-email', 'x-env', 'x-user']);
    expect(ops.append).toEqual(['x-env', 'prod', 'X-Email', 'b@example.com']);
  });
});

describe('response hooks', () => {
  const head = (): ResponseHead => ({ status: 502, headers: ['content-type', 'text/plain', 'content-length', '11', 'etag', '"x"', 'x-kept', '1'], own: false });

  it('takes the first replacement and swaps the body fields for the page\'s', () => {
    const page = { headers: ['content-type', 'text/html'], body: Buffer.from('<p>down</p>') };
    const h = head();
    expect(findReplacement([{ head: () => undefined }, { replace: () => undefined }, { replace: () => page }, { replace: () => { throw new Error('not reached'); } }], h)).toBe(page);
    replaceHead(h, page);
    expect(h.headers).toEqual(['x-kept', '1', 'content-type', 'text/html', 'content-length', '11']);
  });

  it('runs head hooks in the order added, each seeing the edits before it, and collects their transforms', () => {
    const order: string[] = [];
    const t = new PassThrough();
    const h = head();
    const transforms = runHeadHooks([
      { head: (x) => { order.push('a'); x.headers.push('x-a', '1'); return undefined; } },
      { replace: () => undefined },
      { head: (x) => { order.push(`b:${x.headers.includes('x-a')}`); return t; } },
    ], h);
    expect(order).toEqual(['a', 'b:true']);
    expect(transforms).toEqual([t]);
    expect(runHeadHooks([], h)).toEqual([]);
    t.destroy();
  });
});

describe('writeOwn', () => {
  it('cuts the response, and nothing escapes, when a head written after an awaited hook is invalid', async () => {
    // Regression: the answer was written from a promise callback, where a throw (ERR_INVALID_CHAR)
    // became an unhandled rejection, which ends a Node process.
    const rejections: unknown[] = [];
    const onRejection = (r: unknown): void => void rejections.push(r);
    process.on('unhandledRejection', onRejection);
    const server = createServer((_req, res) => {
      writeOwn(res, 403, ['x-bad', 'a\nb', 'content-length', '1'], 'x', [{ replace: () => Promise.resolve(undefined) }], false);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      const outcome = await new Promise<string>((resolve) => {
        const req = request({ port, host: '127.0.0.1', agent: false }, (res) => resolve(`status ${res.statusCode}`));
        req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
        req.end();
      });
      expect(outcome).toBe('ECONNRESET');
      await new Promise((r) => setImmediate(r));
      expect(rejections).toEqual([]);
    } finally {
      process.off('unhandledRejection', onRejection);
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

// What only the builtin HTTP/1.1 client does, against real upstream sockets: the exact request
// head it writes, latin1 header bytes, the stale keep-alive replay and its permission, TLS session
// resumption, timers cleared with the request. Everything both clients share is in
// ../conformance.test.ts.
import { createHook } from 'node:async_hooks';
import { once } from 'node:events';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterEach, describe, expect, test } from 'vitest';
import { H1Pool } from '../../../src/upstream/h1/pool.ts';
import { makeCa, makeLeaf } from '../../tls-helpers.ts';
import { call, closeAll, httpUpstream, rawUpstream, track } from '../client-harness.ts';

afterEach(closeAll);

function pool(port: number, keepAliveTimeout = 4000): H1Pool {
  const p = new H1Pool({ host: '127.0.0.1', port, connectTimeout: 2000, keepAliveTimeout });
  track(() => p.close());
  return p;
}

describe('H1Pool', () => {
  test('the head is one write of the request line and the headers as given, then a Host of the target if none was given', async () => {
    const heads: string[] = [];
    const up = await rawUpstream((head, sock) => {
      heads.push(head);
      sock.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    });
    const p = pool(up.port);
    await call(p, { path: '/a?i=2', headers: ['Host', 'shop.test', 'X-Forwarded-For', '10.0.0.1'] });
    await call(p, { headers: ['x-a', '1'] });
    expect(heads[0]).toBe('GET /a?i=2 HTTP/1.1\r\nHost: shop.test\r\nX-Forwarded-For: 10.0.0.1');
    expect(heads[1]).toBe(`GET / HTTP/1.1\r\nx-a: 1\r\nhost: 127.0.0.1:${up.port}`);
  });

  test('header bytes above 0x7f go out exactly as they came in (latin1 strings, as Node decodes them)', async () => {
    const heads: string[] = [];
    const up = await rawUpstream((head, sock) => {
      heads.push(head);
      sock.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    });
    // "café" sent by a client in UTF-8 reaches waygate as the latin1 string "cafÃ©".
    const utf8AsLatin1 = Buffer.from('café', 'utf8').toString('latin1');
    await call(pool(up.port), { headers: ['host', 'x', 'x-name', utf8AsLatin1] });
    expect(Buffer.from(heads[0], 'latin1').includes(Buffer.from('x-name: café', 'utf8'))).toBe(true);
  });

  test('a kept-alive connection closed unanswered under a replayable request: sent once more on a new connection, and the handler is told', async () => {
    // Every connection answers its first request and closes on the second without a word: what an
    // upstream idle timeout racing the request looks like from here.
    const seen: string[] = [];
    const up = await rawUpstream((head, sock, n) => {
      seen.push(`${head.split(' ')[0]} #${n}`);
      if (n === 0) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      else sock.destroy();
    });
    const p = pool(up.port);
    expect((await call(p)).body).toBe('ok');
    const put = await call(p, { method: 'PUT', body: Buffer.from('same body'), replayable: true });
    expect(put).toMatchObject({ status: 200, body: 'ok', replays: 1, violations: [] });
    expect(up.connections()).toBe(2);
    expect(seen).toEqual(['GET #0', 'PUT #1', 'PUT #0']);
  });

  test('issue 12 defect 5: a request the caller did not mark replayable is never sent twice', async () => {
    const seen: string[] = [];
    const up = await rawUpstream((head, sock, n) => {
      seen.push(`${head.split(' ')[1]} #${n}`);
      if (n === 0) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      else sock.destroy();
    });
    const p = pool(up.port);
    expect((await call(p, { path: '/warm' })).body).toBe('ok');
    const get = await call(p, { path: '/once', replayable: false });
    expect(['UND_ERR_SOCKET', 'ECONNRESET']).toContain(get.error?.code);
    expect(get.replays).toBe(0);
    expect(seen).toEqual(['/warm #0', '/once #1']);
    expect(up.connections()).toBe(1);
  });

  test('a new connection closed unanswered is not replayed, replayable or not', async () => {
    const up = await rawUpstream((_head, sock) => sock.destroy());
    const o = await call(pool(up.port), { replayable: true });
    expect(['UND_ERR_SOCKET', 'ECONNRESET']).toContain(o.error?.code);
    expect(o.replays).toBe(0);
    expect(up.connections()).toBe(1);
  });

  test('issue 12 defect 6: the response and body timers go with the request that armed them', async () => {
    // Timers are unref'd, so Node's active-resource list does not show them: watch their life
    // through async_hooks (a Timeout is destroyed when cleared or fired).
    const live = new Map<number, number>();
    const hook = createHook({
      init: (id, type, _trigger, resource) => {
        if (type === 'Timeout') live.set(id, (resource as { _idleTimeout: number })._idleTimeout);
      },
      destroy: (id) => {
        live.delete(id);
      },
    }).enable();
    try {
      const up = await httpUpstream((_req, res) => res.end('x'));
      const p = pool(up.port);
      await call(p, { responseTimeout: 61_000, idleTimeout: 62_000 });
      await Promise.all([call(p, { responseTimeout: 63_000 }), call(p, { responseTimeout: 64_000, idleTimeout: 65_000 })]);
      const left = [...live.values()].filter((ms) => ms >= 61_000 && ms <= 65_000);
      expect(left).toEqual([]);
    } finally {
      hook.disable();
    }
  });

  test('https: new connections resume the pool\'s last TLS session', async () => {
    const ca = await makeCa();
    const leaf = await makeLeaf(['127.0.0.1'], ca);
    const resumed: boolean[] = [];
    const server = createHttpsServer({ cert: leaf.cert, key: leaf.key }, (_req, res) => res.end('tls'));
    server.on('secureConnection', (s: TLSSocket) => resumed.push(s.isSessionReused()));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    track(() => {
      server.closeAllConnections();
      server.close();
    });
    const p = new H1Pool({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, connectTimeout: 2000, keepAliveTimeout: 4000, tls: { servername: undefined, ca: ca.cert, rejectUnauthorized: true } });
    track(() => p.close());
    expect((await call(p)).body).toBe('tls');
    // Several at once: new connections, each offered the first one's session.
    const many = await Promise.all([call(p), call(p), call(p)]);
    for (const o of many) expect(o.body).toBe('tls');
    expect(resumed.length).toBeGreaterThan(1);
    expect(resumed.slice(1).every(Boolean)).toBe(true);
  });
});

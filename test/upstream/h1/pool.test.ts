// What only the builtin HTTP/1.1 client does, against real upstream sockets: the exact request
// head it writes, latin1 header bytes, the stale keep-alive replay and its permission, TLS session
// resumption, timers cleared with the request. Everything both clients share is in
// ../conformance.test.ts.
import { createHook } from 'node:async_hooks';
import { once } from 'node:events';
import { maxHeaderSize } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterEach, describe, expect, test } from 'vitest';
import { fromUpstreamError } from '../../../src/errors.ts';
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

// Differences from llhttp found by the differential fuzz (test/fuzz, `npm run fuzz`), each checked
// to fail before its fix; the parser-level ones are in parse.test.ts.
describe('H1Pool, as the fuzz found it', () => {
  test('a head of exactly maxHeaderSize bytes is read whichever read ends inside its blank line; one byte more is refused', async () => {
    // Seed 1, cases 1019 and 7022: refused when a read ended after "\r\n\r" of the blank line.
    const head = (size: number): string => {
      const start = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Pad: ';
      return start + 'p'.repeat(size - start.length);
    };
    let response = '';
    let at = 0;
    const up = await rawUpstream((_head, sock) => {
      sock.write(response.slice(0, at), 'latin1');
      // Pacing only (nothing asserts on time): the client reads the first part on its own.
      setTimeout(() => sock.write(response.slice(at), 'latin1'), 30);
    });
    const p = pool(up.port);
    for (const extra of [1, 2, 3]) {
      response = `${head(maxHeaderSize)}\r\n\r\nok`;
      at = maxHeaderSize + extra;
      expect(await call(p)).toMatchObject({ status: 200, body: 'ok', violations: [] });
      response = `${head(maxHeaderSize + 1)}\r\n\r\nok`;
      at = maxHeaderSize + 1 + extra;
      expect((await call(p)).error?.code).toBe('HPE_HEADER_OVERFLOW');
    }
  });

  test('an interim response that closes the connection is a bad response: what follows it is not read as the final one', async () => {
    // Seed 1, cases 16 and 1756: llhttp refuses anything after a 1xx that ends the connection.
    const up = await rawUpstream((head, sock) => {
      const version = head.startsWith('GET /1.0 ') ? 'HTTP/1.0 103 Early Hints\r\n' : 'HTTP/1.1 100 Continue\r\nConnection: close\r\n';
      sock.write(`${version}\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok`);
    });
    const p = pool(up.port);
    for (const path of ['/close', '/1.0']) {
      const o = await call(p, { path });
      expect({ path, code: o.error?.code, status: o.status, kind: fromUpstreamError(o.error).code }).toEqual({ path, code: 'HPE_CLOSED_CONNECTION', status: undefined, kind: 'upstream_bad_response' });
    }
  });

  test('Transfer-Encoding: chunked followed by a tab is a bad response, not a body de-chunked where llhttp reads it to the close', async () => {
    // Seed 1, case 197: both accepted, with different body bytes.
    const up = await rawUpstream((_head, sock) => sock.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\t\r\n\r\n3\r\nabc\r\n0\r\n\r\n'));
    const o = await call(pool(up.port));
    expect(o.error?.code).toBe('HPE_INVALID_TRANSFER_ENCODING');
    expect(o.status).toBeUndefined();
  });

  test('no reuse after a HEAD response without a length, Keep-Alive: timeout=0, or Proxy-Connection: close', async () => {
    // Seed 1, cases 5005, 1189 and the Keep-Alive cases: waygate reused where llhttp would not.
    const up = await rawUpstream((head, sock) => {
      const path = head.split(' ')[1];
      if (path === '/head') sock.write('HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n');
      else if (path === '/timeout-0') sock.write('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=0\r\nContent-Length: 1\r\n\r\nx');
      else if (path === '/proxy-close') sock.write('HTTP/1.1 200 OK\r\nProxy-Connection: close\r\nContent-Length: 1\r\n\r\nx');
      else sock.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx');
    });
    const p = pool(up.port);
    expect(await call(p, { method: 'HEAD', path: '/head' })).toMatchObject({ status: 200, body: '', violations: [] });
    expect((await call(p, { path: '/timeout-0' })).body).toBe('x');
    expect((await call(p, { path: '/proxy-close' })).body).toBe('x');
    expect((await call(p)).body).toBe('x');
    expect(up.connections()).toBe(4);
  });

  test('a head broken by a bare LF or CR fails the request at once, even if its blank line never comes', async () => {
    // Fuzz, seed 5: such heads waited for the response timeout where llhttp refused them at the byte.
    const up = await rawUpstream((head, sock) => {
      if (head.startsWith('GET /lf ')) sock.write('HTTP/1.1 200 OK\r\nX-A: 1\nX-B: 2\r\n');
      else sock.write('HTTP/1.1 200 OK\r\nX-A: 1\rX-B: 2\r\n');
    });
    const p = pool(up.port);
    expect((await call(p, { path: '/lf', responseTimeout: 15_000 })).error?.code).toBe('HPE_CR_EXPECTED');
    expect((await call(p, { path: '/cr', responseTimeout: 15_000 })).error?.code).toBe('HPE_LF_EXPECTED');
  });

  test('the upstream closing while the end of the response is held back by a pause: read whole once resumed', async () => {
    // Seed 7: the close failed the request ("other side closed") with its last chunks unread; a
    // close-delimited body was passed on while the handler was paused.
    const up = await rawUpstream((head, sock) => {
      if (head.startsWith('GET /close-delimited ')) sock.end('HTTP/1.1 200 OK\r\n\r\nabcdef');
      else sock.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n');
    });
    const p = pool(up.port);
    for (const [path, pauseIn] of [['/chunked', 'onData'], ['/close-delimited', 'onHeaders'], ['/chunked', 'onHeaders']] as const) {
      let paused = false;
      let whilePaused = 0;
      const pause = (ctl: { pause(): void; resume(): void }): void => {
        paused = true;
        ctl.pause();
        // Pacing only: long enough for the upstream's FIN to arrive during the pause.
        setTimeout(() => {
          paused = false;
          ctl.resume();
        }, 50);
      };
      let first = true;
      const o = await call(p, {
        path,
        onHeaders: (ctl) => {
          if (pauseIn === 'onHeaders') pause(ctl);
        },
        onData: (ctl) => {
          if (paused) whilePaused++;
          if (pauseIn === 'onData' && first) pause(ctl);
          first = false;
        },
      });
      expect({ path, pauseIn, body: o.body, error: o.error?.code, whilePaused, violations: o.violations }).toEqual({ path, pauseIn, body: 'abcdef', error: undefined, whilePaused: 0, violations: [] });
    }
  });

  test('a chunk line refused at its offending byte fails the request at once, not at the idle timeout', async () => {
    // llhttp refuses "5; a" at the space; waygate used to wait for the end of the line.
    const up = await rawUpstream((_head, sock) => sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5; a'));
    const o = await call(pool(up.port), { idleTimeout: 15_000 });
    expect(o).toMatchObject({ status: 200, violations: [] });
    expect(o.error?.code).toBe('HPE_INVALID_CHUNK_SIZE');
  });
});

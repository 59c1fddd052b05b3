// Path confusion (SPEC §3 "Ambiguous paths", issue 12 defect 8): a path that a backend decoding
// %2F, %5C or '\' as a separator (or decoding twice, or dropping ;parameters) would resolve to
// another resource is refused with 400 and never forwarded; the connection is closed like any
// other 400's. `security.ambiguousPaths: forward` forwards them as before. A lone %2F keeps
// working. Requests go over raw `net` sockets: curl and HTTP libraries normalise paths, raw
// sockets send the bytes as written.
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startGateway, startUpstream } from '../helpers.ts';
import type { TestGateway, Upstream } from '../helpers.ts';

let api: Upstream;
let admin: Upstream;
/** Bytes both upstreams received, on all their connections (0 more = nothing forwarded). */
let upBytes = 0;
let gw: TestGateway;
let gwForward: TestGateway;

const ROUTES = (apiUrl: string, adminUrl: string): string => `
pools:
  api: { targets: ["${apiUrl}"] }
  admin: { targets: ["${adminUrl}"] }
routes:
  - { name: admin, match: { path: /admin/* }, pool: admin }
  - { name: api, match: { path: /api/* }, pool: api }
  - { name: project, match: { path: /projects/:id }, pool: api }
`;

beforeAll(async () => {
  [api, admin] = await Promise.all([startUpstream(), startUpstream()]);
  for (const u of [api, admin]) u.server.on('connection', (s: Socket) => s.on('data', (c: Buffer) => (upBytes += c.length)));
  gw = await startGateway(ROUTES(api.url, admin.url));
  gwForward = await startGateway(ROUTES(api.url, admin.url), (c) => {
    c.security.ambiguousPaths = 'forward';
  });
});
afterAll(async () => {
  await gw.close();
  await gwForward.close();
  await api.close();
  await admin.close();
});

interface Outcome {
  /** Everything received, latin1. */
  reply: string;
  /** Status codes of the responses received, in order. */
  statuses: string[];
  /** True when the gateway closed the connection. */
  closed: boolean;
}

/**
 * Writes `bytes` on a new connection and resolves once the gateway closed it, or once `expect`
 * responses arrived (then the client closes: the gateway kept the connection open). Infinity:
 * wait for the gateway to close.
 */
function exchange(port: number, bytes: string, expect: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    let reply = '';
    const statuses = (): string[] => [...reply.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1]);
    let settled = false;
    const done = (closed: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ reply, statuses: statuses(), closed });
    };
    // A bound for a failing run (the connection left open): the test then fails at once.
    const timer = setTimeout(() => {
      done(false);
      sock.destroy();
    }, EXCHANGE_LIMIT_MS);
    sock.on('data', (c: Buffer) => {
      reply += c.toString('latin1');
      // Every response here carries a body; a complete one ends with the echo's closing brace or
      // the error text.
      if (statuses().length >= expect && /(\}|bad request)$/.test(reply)) {
        done(false);
        sock.destroy();
      }
    });
    sock.on('error', () => {});
    sock.on('close', () => done(true));
    sock.write(bytes);
  });
}

/** How long an exchange may take before it counts as left open by the gateway. */
const EXCHANGE_LIMIT_MS = 5000;

/** The request line and headers of a GET for `path` (written as is). */
const get = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: a.test\r\n${extra}\r\n`;

// Each vector as a client writes it, and the canonical path `forward` sends upstream.
const VECTORS: [string, string][] = [
  ['/api/..%2Fadmin', '/api/..%2Fadmin'],
  ['/api/..%2fadmin', '/api/..%2Fadmin'],
  ['/api/%2e%2e%2fadmin', '/api/..%2Fadmin'],
  ['/api/%2E%2e%2Fadmin', '/api/..%2Fadmin'],
  ['/api/.%2e%2fadmin', '/api/..%2Fadmin'],
  ['/api/..%5Cadmin', '/api/..%5Cadmin'],
  ['/api/%2e%2e%5cadmin', '/api/..%5Cadmin'],
  ['/api/..\\admin', '/api/..%5Cadmin'],
  ['/api/..%252Fadmin', '/api/..%252Fadmin'],
  ['/api/%252e%252e%252fadmin', '/api/%252e%252e%252fadmin'],
  ['/api/%252e%252e/admin', '/api/%252e%252e/admin'],
  ['/api/x/..%2F..%2Fadmin/', '/api/x/..%2F..%2Fadmin/'],
  ['/api/x%2F..%2F..%2Fadmin', '/api/x%2F..%2F..%2Fadmin'],
  ['/api/%2F..', '/api/%2F..'],
  ['/api/..;/admin/', '/api/..;/admin/'],
  ['/api/%C0%AE%C0%AE%C0%AFadmin', '/api/%C0%AE%C0%AE%C0%AFadmin'],
];

describe('security.ambiguousPaths: reject (the default)', () => {
  test.each(VECTORS)('%j: 400, connection closed, the request pipelined behind it not served, no upstream byte', async (raw) => {
    const apiBefore = api.seen.length;
    const adminBefore = admin.seen.length;
    const bytesBefore = upBytes;
    const o = await exchange(gw.port, get(raw) + get('/api/after'), Infinity);
    expect(o.closed).toBe(true);
    expect(o.statuses).toEqual(['400']);
    expect(o.reply.toLowerCase()).toContain('connection: close');
    // The gateway's answer was written before it closed; a forwarded request would have been sent
    // before that answer (nothing is forwarded after a 400 on this connection).
    expect(api.seen.length - apiBefore).toBe(0);
    expect(admin.seen.length - adminBefore).toBe(0);
    expect(upBytes - bytesBefore).toBe(0);
  });

  test('the access log records the 400 with the path as sent and no route, pool or attempt', async () => {
    const from = gw.accessLogs().length;
    await exchange(gw.port, get('/api/..%2Fadmin?x=1'), 1);
    const [line] = (await gw.waitForAccessLogs(from + 1)).slice(from);
    expect(line).toMatchObject({ path: '/api/..%2Fadmin?x=1', status: 400, route: null, pool: null, attempts: 0 });
  });

  test('a WebSocket upgrade with an ambiguous path gets the same refusal, and no upstream byte', async () => {
    const bytesBefore = upBytes;
    const o = await exchange(gw.port, get('/api/..%2Fadmin', 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'), Infinity);
    expect(o.statuses).toEqual(['400']);
    expect(o.closed).toBe(true);
    expect(upBytes - bytesBefore).toBe(0);
  });

  test('GET /explain reports the refusal, reading the path as a client sends it (a "\\" included)', async () => {
    for (const raw of ['/api/..%2Fadmin', '/api/..\\admin', '/api/..%252Fadmin']) {
      const res = await fetch(`${gw.admin}/explain?url=${encodeURIComponent(`http://a.test${raw}`)}`);
      expect(res.status).toBe(200);
      const body = await res.json() as { refused?: string; route?: string };
      expect(body.refused, raw).toMatch(/^400: ambiguous path: segment "/);
      expect(body.route).toBeUndefined();
    }
  });
});

describe('what is not ambiguous is routed and forwarded as before', () => {
  // [as written, what the upstream receives, the pool]
  const SERVED: [string, string, 'api' | 'admin'][] = [
    ['/projects/a%2Fb', '/projects/a%2Fb', 'api'],
    ['/api/a%2fb/c', '/api/a%2Fb/c', 'api'],
    ['/api/a%5Cb', '/api/a%5Cb', 'api'],
    ['/api/a\\b', '/api/a%5Cb', 'api'],
    ['/api/v1.2/..x%2Fy', '/api/v1.2/..x%2Fy', 'api'],
    ['/api/...%2Fx', '/api/...%2Fx', 'api'],
    ['/api/x?next=..%2Fadmin', '/api/x?next=..%2Fadmin', 'api'],
    // Plain and encoded dot segments are resolved by waygate itself, so nothing is ambiguous.
    ['/api/../admin/x', '/admin/x', 'admin'],
    ['/api/%2e%2e/admin/x', '/admin/x', 'admin'],
  ];
  test.each(SERVED)('%j reaches %j on the %s pool (both settings)', async (raw, upstreamPath, pool) => {
    for (const g of [gw, gwForward]) {
      const u = pool === 'api' ? api : admin;
      const before = u.seen.length;
      const o = await exchange(g.port, get(raw), 1);
      expect(o.statuses).toEqual(['200']);
      expect(u.seen.slice(before).map((s) => s.url)).toEqual([upstreamPath]);
    }
  });

  test('a lone %2F is matched as part of its segment: /projects/:id takes "a%2Fb" whole', async () => {
    const res = await fetch(`${gw.admin}/explain?url=${encodeURIComponent('http://a.test/projects/a%2Fb')}`);
    const body = await res.json() as { route: string; params: Record<string, string>; ambiguous?: string };
    expect(body.route).toBe('project');
    expect(body.params.id).toBe('a%2Fb');
    expect(body.ambiguous).toBeUndefined();
  });
});

describe('security.ambiguousPaths: forward', () => {
  test.each(VECTORS)('%j is forwarded to the api pool as %j, as before the setting existed', async (raw, canonical) => {
    const apiBefore = api.seen.length;
    const adminBefore = admin.seen.length;
    const o = await exchange(gwForward.port, get(raw), 1);
    expect(o.statuses).toEqual(['200']);
    expect(api.seen.slice(apiBefore).map((s) => s.url)).toEqual([canonical]);
    expect(admin.seen.length - adminBefore).toBe(0);
  });
});

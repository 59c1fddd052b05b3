// DNS discovery (SPEC §3 `discovery: dns`): every address a name resolves to is a target; new
// addresses join (after passing health checks when configured), vanished ones drain, a failed
// lookup keeps the last good set. Upstreams are real servers on 127.0.0.1-3 sharing one port,
// as replicas behind one DNS name do; the resolver is injected.
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { send, startGateway } from '../helpers.ts';
import type { TestGateway } from '../helpers.ts';

const records = new Map<string, string[]>();
let lookupFails = false;
const resolver = async (host: string): Promise<string[]> => {
  if (lookupFails) throw new Error('SERVFAIL (test)');
  const r = records.get(host);
  if (r === undefined) throw new Error(`ENOTFOUND ${host}`);
  return r;
};

let port: number;
const servers: Server[] = [];
let gw: TestGateway;

function replica(ip: string, p: number): Promise<Server> {
  const s = createServer((req, res) => res.end(req.url === '/health' ? 'ok' : ip));
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.listen(p, ip, () => resolve(s));
  });
}

beforeAll(async () => {
  const first = await replica('127.0.0.1', 0);
  port = (first.address() as AddressInfo).port;
  servers.push(first, await replica('127.0.0.2', port), await replica('127.0.0.3', port));
  records.set('svc.test', ['127.0.0.1', '127.0.0.2']);
  const routes = `
pools:
  svc:
    targets: ["http://svc.test:${port}"]
    discovery: dns
    dnsRefresh: 100ms
    healthCheck: { path: /health, interval: 100ms, healthyAfter: 1 }
routes: [ { name: svc, pool: svc } ]
`;
  gw = await startGateway(routes, (c) => (c.admin.address = null), process.env, { resolver, watchRoutes: false });
});
afterAll(async () => {
  await gw?.close();
  for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
});

async function served(n: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) seen.add((await send(`${gw.url}/x`)).body);
  return seen;
}

test('every address the name resolves to is a target', async () => {
  expect([...(await served(10))].sort()).toEqual(['127.0.0.1', '127.0.0.2']);
  expect(gw.gateway.pools.get('svc')!.targets.map((t) => t.url).sort()).toEqual([`http://127.0.0.1:${port}`, `http://127.0.0.2:${port}`]);
});

test('a new address joins after passing its health check; a vanished one drains', async () => {
  const from = gw.logs.length;
  records.set('svc.test', ['127.0.0.2', '127.0.0.3']);
  await gw.waitForLog((l) => l.msg === 'discovered targets changed', from);
  await gw.waitForLog((l) => l.msg === 'target passed health checks' && l.target === `http://127.0.0.3:${port}`, from);
  expect([...(await served(12))].sort()).toEqual(['127.0.0.2', '127.0.0.3']);
  expect(gw.gateway.pools.get('svc')!.targets.some((t) => t.url.includes('127.0.0.1'))).toBe(false);
});

test('a failed lookup keeps the last good set and is logged', async () => {
  const from = gw.logs.length;
  lookupFails = true;
  try {
    const warn = await gw.waitForLog((l) => l.msg === 'DNS lookup failed; keeping the last addresses', from);
    expect(warn.host).toBe('svc.test');
    expect([...(await served(8))].sort()).toEqual(['127.0.0.2', '127.0.0.3']);
  } finally {
    lookupFails = false;
  }
});

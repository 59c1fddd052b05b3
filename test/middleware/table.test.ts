// The shared middleware table (ARCHITECTURE rule 1): every kind's case (test/middleware/table/*.ts)
// runs the same checks through a real gateway and a real upstream —
//   - a request it lets through reaches the upstream and comes back with the upstream's status;
//   - a request it answers gets that status, a short body with nothing of waygate's insides in it,
//     content-length and x-request-id, `rejectedBy` in the access log and the rejections metric
//     when it is a refusal, and the same answer to a WebSocket handshake on the raw socket;
//   - a route of the same gateway that lists no middleware is served exactly as by a gateway
//     with no middlewares at all (same request upstream, same response).
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawExchange, send, startGateway, startUpstream } from '../helpers.ts';
import type { Reply, TestGateway, Upstream } from '../helpers.ts';
import type { CaseRequest, CaseSetup, TableCase } from './table/case.ts';

const dir = join(import.meta.dirname, 'table');
const cases: TableCase[] = [];
for (const f of (await readdir(dir)).filter((n) => n.endsWith('.ts') && n !== 'case.ts').sort()) {
  const mod = (await import(join(dir, f))) as Record<string, unknown>;
  for (const v of Object.values(mod)) if (typeof v === 'object' && v !== null && 'kind' in v && 'setup' in v) cases.push(v as TableCase);
}

/** Replaces every string in `v` that names one of `files` with that file's absolute path. */
function withPaths(v: unknown, files: Record<string, string>, base: string): unknown {
  if (typeof v === 'string') return v in files ? join(base, v) : v;
  if (Array.isArray(v)) return v.map((x) => withPaths(x, files, base));
  if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, withPaths(x, files, base)]));
  return v;
}

function yamlOf(v: unknown): string {
  return JSON.stringify(v);
}

function routesFile(up: Upstream, s: CaseSetup | undefined, options: unknown): string {
  const pools: Record<string, unknown> = { up: { targets: [up.url] }, ...(s?.pools ?? {}) };
  const lines = [`pools: ${yamlOf(pools)}`];
  // JSON is YAML: the middleware as the case gives it, named "mw".
  if (s !== undefined) lines.push(`middlewares: { mw: ${yamlOf(options)} }`);
  lines.push('routes:');
  if (s !== undefined) lines.push(`  - { name: with, match: { path: "/mw/*" }, stripPrefix: /mw, middlewares: [mw], pool: up }`);
  lines.push(`  - { name: without, match: { path: "/plain/*" }, pool: up }`);
  return lines.join('\n') + '\n';
}

function request(gw: TestGateway, prefix: string, r: CaseRequest): Promise<Reply> {
  return send(gw.url + prefix + (r.path ?? '/x'), { method: r.method, headers: r.headers });
}

/** Response headers that differ between two identical exchanges by nature. */
const VOLATILE = new Set(['date', 'x-request-id', 'keep-alive', 'connection', 'host']);

function stable(headers: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(headers).filter(([k]) => !VOLATILE.has(k) && !k.startsWith('x-forwarded-')));
}

describe.each(cases.map((c) => [c.kind, c] as const))('middleware table: %s', (_kind, c) => {
  let up: Upstream;
  let s: CaseSetup;
  let gw: TestGateway;
  let bare: TestGateway;
  let files: string;

  beforeAll(async () => {
    up = await startUpstream();
    s = await c.setup();
    files = await mkdtemp(join(tmpdir(), 'waygate-table-'));
    for (const [name, text] of Object.entries(s.files ?? {})) await writeFile(join(files, name), text);
    const options = { [c.kind]: withPaths(s.options, s.files ?? {}, files) };
    gw = await startGateway(routesFile(up, s, options), (cfg) => Object.assign(cfg, s.config ?? {}));
    // The same waygate.yaml (trustedProxies, redis): only the middleware differs.
    bare = await startGateway(routesFile(up, undefined, options), (cfg) => Object.assign(cfg, s.config ?? {}));
  });
  afterAll(async () => {
    await gw?.close();
    await bare?.close();
    await s?.close();
    await up?.close();
    if (files !== undefined) await rm(files, { recursive: true, force: true });
  });

  it('lets a request it accepts through to the upstream', async () => {
    const before = up.seen.length;
    const r = await request(gw, '/mw', c.passes);
    expect(r.status).toBe(200);
    expect(up.seen.length).toBe(before + 1);
    expect(up.seen.at(-1)!.url).toBe(c.passes.path ?? '/x');
  });

  it('answers what it refuses with a short body and none of its insides', async () => {
    // compress and errorPages never answer; inFlightLimit needs requests held open first (its e2e tests do that).
    if (c.answered === undefined) return expect(['compress', 'errorPages', 'inFlightLimit']).toContain(c.kind);
    const before = up.seen.length;
    const r = await request(gw, '/mw', c.answered);
    expect(r.status).toBe(c.answered.status);
    expect(up.seen.length).toBe(before);
    expect(r.headers['x-request-id']).toMatch(/\S/);
    expect(Number(r.headers['content-length'] ?? 0)).toBe(Buffer.byteLength(r.body));
    expect(r.body.length).toBeLessThan(200);
    for (const leak of ['Error', '    at ', '/work/', 'node:', '127.0.0.1', String(up.port), 'undefined', '[object']) expect(r.body).not.toContain(leak);
    const line = (await gw.waitForAccessLogs(1)).findLast((l) => l.reqId === r.headers['x-request-id'])!;
    expect(line.status).toBe(c.answered.status);
    if (c.answered.status >= 400) {
      expect(line.rejectedBy).toBe('mw');
      const metrics = await (await fetch(gw.admin + '/metrics')).text();
      expect(metrics).toMatch(new RegExp(`waygate_middleware_rejections_total\\{route="with",middleware="mw",kind="${c.kind}"\\} [1-9]`));
    } else if (c.kind === 'cors') {
      // A preflight's 204 is the middleware's job, not a refusal.
      expect(line.rejectedBy).toBeUndefined();
    }
  });

  it('answers a WebSocket handshake it refuses on the raw socket, the same way', async () => {
    if (c.answered === undefined || c.answered.status < 400) return expect(c.answered?.status ?? 0).toBeLessThan(400);
    const headers = { ...(c.answered.headers ?? {}), host: 'table.test', upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' };
    const head = `GET /mw${c.answered.path ?? '/x'} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`;
    const before = up.seen.length;
    const text = await rawExchange(gw.port, head);
    expect(text.split('\r\n')[0]).toMatch(new RegExp(`^HTTP/1\\.1 ${c.answered.status} `));
    expect(up.seen.length).toBe(before);
  });

  it('leaves a route without it exactly as a gateway without middlewares serves it', async () => {
    const req = c.answered ?? c.passes;
    const seen = up.seen.length;
    const a = await request(gw, '/plain', req);
    const b = await request(bare, '/plain', req);
    expect(a.status).toBe(b.status);
    expect(a.body === b.body || JSON.stringify(stable(JSON.parse(a.body).headers)) === JSON.stringify(stable(JSON.parse(b.body).headers))).toBe(true);
    expect(stable(a.headers as Record<string, unknown>)).toEqual(stable(b.headers as Record<string, unknown>));
    const [ua, ub] = up.seen.slice(seen);
    expect(stable(ua.headers as Record<string, unknown>)).toEqual(stable(ub.headers as Record<string, unknown>));
  });
});

it('has a case for every kind', async () => {
  const { KIND_NAMES } = await import('../../src/middleware/kinds.ts');
  expect(cases.map((c) => c.kind).sort()).toEqual([...KIND_NAMES].sort());
});

// Three small demo services for `npm run demo`: two versions of a catalog API and a "whoami"
// echo service that shows what reached the upstream (path, headers, x-forwarded-*).
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

const ITEMS = [
  { id: 1, name: 'espresso cup', price: 9 },
  { id: 2, name: 'moka pot', price: 35 },
  { id: 3, name: 'grinder', price: 120 },
];

function json(res: import('node:http').ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function catalog(version: string): Server {
  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/health') return json(res, 200, { ok: true });
    if (url.pathname === '/items' || url.pathname === '/items/') return json(res, 200, { servedBy: version, items: ITEMS });
    const m = /^\/items\/(\d+)$/.exec(url.pathname);
    const item = m === null ? undefined : ITEMS.find((i) => i.id === Number(m[1]));
    if (item !== undefined) return json(res, 200, { servedBy: version, item });
    json(res, 404, { servedBy: version, error: `no such path ${url.pathname}` });
  });
}

function whoami(): Server {
  return createServer((req, res) => {
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => json(res, 200, { servedBy: 'whoami', method: req.method, url: req.url, headers: req.headers, bodyBytes: bytes }));
  });
}

/** The demo services and where they listen. */
export interface DemoServices {
  urls: { catalog: string; catalogV2: string; whoami: string };
  close(): Promise<void>;
}

function listen(server: Server, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
  });
}

/** Starts the three services on the given ports (0 = any free port); resolves with their URLs. */
export async function startDemoServices(ports: { catalog: number; catalogV2: number; whoami: number }): Promise<DemoServices> {
  const servers = [catalog('catalog-v1'), catalog('catalog-v2'), whoami()];
  const [c1, c2, w] = await Promise.all([listen(servers[0], ports.catalog), listen(servers[1], ports.catalogV2), listen(servers[2], ports.whoami)]);
  return {
    urls: { catalog: c1, catalogV2: c2, whoami: w },
    close: async () => {
      await Promise.all(servers.map((s) => new Promise<void>((r) => { s.closeAllConnections(); s.close(() => r()); })));
    },
  };
}

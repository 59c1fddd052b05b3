// Regression (found by the soak's tcp-echo fin-first): a client FIN that waygate read before the
// relay started — with the ClientHello on a listener that peeks, or alone while the target was
// still connecting — was lost. The target never saw the half-close, so the connection stayed
// open until idleTimeout and was logged idle_timeout instead of client_close.
import { connect, createServer } from 'node:net';
import type { Server } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startGateway } from '../helpers.ts';
import type { TestGateway } from '../helpers.ts';
import { captureHello } from '../l4-helpers.ts';

let echo: Server;
let gw: TestGateway;
let hello: Buffer;

beforeAll(async () => {
  echo = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const port = (echo.address() as { port: number }).port;
  const listener = { address: { host: '127.0.0.1', port: 0 }, proxyProtocol: false, peekTimeout: 5000 };
  gw = await startGateway(`
pools:
  e: { targets: ["tcp://127.0.0.1:${port}"] }
tcpRoutes:
  - { name: sni, listener: sni, match: { sni: [echo.test] }, pool: e, idleTimeout: 1h }
  - { name: plain, listener: plain, pool: e, idleTimeout: 1h }
`, (c) => {
    c.listeners.tcp = { sni: { ...listener }, plain: { ...listener } };
  });
  hello = await captureHello({ servername: 'echo.test' });
});
afterAll(async () => {
  await gw.close();
  await new Promise((r) => echo.close(r));
});

/** Writes `bytes` and a FIN in one go; resolves with what came back once waygate closed the connection. */
function exchange(listener: string, bytes: Buffer): Promise<{ echoed: Buffer; port: number }> {
  const addr = gw.gateway.addresses.tcp[listener];
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let port = 0;
    const s = connect(Number(addr.split(':').pop()), '127.0.0.1', () => {
      port = s.localPort!;
      s.end(bytes);
    });
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', reject);
    s.on('close', () => resolve({ echoed: Buffer.concat(chunks), port }));
  });
}

for (const [name, listener, bytes] of [
  ['a FIN alone while the target connects', 'plain', () => Buffer.alloc(0)],
  ['a FIN with the ClientHello', 'sni', () => hello],
  ['a FIN with the ClientHello and more bytes', 'sni', () => Buffer.concat([hello, Buffer.from('after the hello')])],
] as const) {
  test(`${name} reaches the target: the echo closes and the line says client_close`, async () => {
    const from = gw.logs.length;
    const r = await exchange(listener, bytes());
    expect(r.echoed.equals(bytes())).toBe(true);
    const line = await gw.waitForLog((l) => l.msg === 'connection' && l.clientPort === r.port, from);
    expect(line.termination).toBe('client_close');
  });
}

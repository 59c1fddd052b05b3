// The undici adapter on HTTP/2 under abort churn (what clients leaving mid-response cause). On
// Node 24 with undici 8.13, an aborted stream whose response was still arriving made the process
// spin in native code with memory growing by gigabytes a second (undici closes then destroys the
// stream; see sinkStreamErrors in src/upstream/undici.ts), or end on an 'error' nobody listened to.
// The scenario runs in a child process so a hang fails this test instead of stopping the run.
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';
import { fromUpstreamError } from '../../src/errors.ts';
import { UndiciClient } from '../../src/upstream/undici.ts';
import { call } from './client-harness.ts';

const SCENARIO = fileURLToPath(new URL('./fixtures/h2-abort-churn.ts', import.meta.url));

test('180 HTTP/2 requests aborted after their headers, a turn later or a few ms later: every one ends, and the process neither hangs nor dies', async () => {
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [SCENARIO], { timeout: 25_000, killSignal: 'SIGKILL' }, (err, out, errOut) => {
      resolve({ code: err === null ? 0 : ((err as { code?: number }).code ?? null), stdout: out, stderr: errOut });
    });
  });
  expect(stderr).toBe('');
  expect(code).toBe(0);
  const result = JSON.parse(stdout) as { error: number; end: number; rssMB: number };
  expect(result.error + result.end).toBe(180);
  expect(result.error).toBeGreaterThan(0);
}, 30_000);

// undici queues an HTTP/2 pool's requests behind its client's connect attempt, one attempt after
// another: to a target that accepts TCP and never finishes TLS, the fifth request of a burst
// waited five connect timeouts. Each request now waits at most its own.
test('requests to an h2 target stuck in its TLS handshake each fail after about their own connect timeout', async () => {
  const silent = createServer((s) => {
    s.resume();
    s.on('error', () => {});
  });
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  const connectTimeout = 1000;
  const client = new UndiciClient({
    origin: `https://127.0.0.1:${(silent.address() as AddressInfo).port}`,
    connectTimeout,
    keepAliveTimeout: 4000,
    h2: true,
    tls: { rejectUnauthorized: false },
    servername: 'x.test',
  });
  try {
    const waits = await Promise.all(Array.from({ length: 5 }, async (_, i) => {
      await new Promise((r) => setTimeout(r, i * 200));
      const started = Date.now();
      const o = await call(client);
      return { wait: Date.now() - started, kind: fromUpstreamError(o.error).code, beforeSend: fromUpstreamError(o.error).beforeSend };
    }));
    for (const w of waits) {
      expect(w.kind).toBe('upstream_timeout');
      expect(w.beforeSend).toBe(true);
      // Loose on purpose (a busy machine); queued behind the others, the last waited ~4 s.
      expect(w.wait).toBeLessThan(connectTimeout * 2.5);
    }
  } finally {
    await client.close();
    silent.close();
  }
}, 30_000);

// The undici adapter on HTTP/2 under abort churn (what clients leaving mid-response cause). On
// Node 24 with undici 8.13, an aborted stream whose response was still arriving made the process
// spin in native code with memory growing by gigabytes a second (undici closes then destroys the
// stream; see sinkStreamErrors in src/upstream/undici.ts), or end on an 'error' nobody listened to.
// The scenario runs in a child process so a hang fails this test instead of stopping the run.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';

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

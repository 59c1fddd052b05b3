// Bodies stream both ways with backpressure (SPEC §4): a large upload and a large download go
// through the real CLI process byte-exact, and its memory stays far below the body size.
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { routesDir, rssOf, startCli, startUpstream } from '../helpers.ts';
import type { CliProcess, Upstream } from '../helpers.ts';

const SIZE = Number(process.env.WAYGATE_STREAM_TEST_MB ?? 256) * 1024 * 1024;
const CHUNK = 64 * 1024;

/** A deterministic pseudo-random body of `size` bytes, generated lazily. */
function body(size: number, seed: number): Readable {
  let sent = 0;
  let x = seed;
  return new Readable({
    read() {
      if (sent >= size) return this.push(null);
      const n = Math.min(CHUNK, size - sent);
      const buf = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i += 4) {
        x = (x * 1103515245 + 12345) >>> 0;
        buf.writeUInt32LE(x, i);
      }
      sent += n;
      this.push(buf);
    },
  });
}

async function sha256(stream: Readable): Promise<string> {
  const h = createHash('sha256');
  for await (const c of stream) h.update(c as Buffer);
  return h.digest('hex');
}

let up: Upstream;
let cli: CliProcess;
let base: string;

beforeAll(async () => {
  up = await startUpstream((req, res) => {
    if (req.url === '/download') {
      res.writeHead(200, { 'content-length': String(SIZE) });
      void pipeline(body(SIZE, 7), res).catch(() => {});
      return;
    }
    // /upload: hash what arrived.
    void sha256(req).then((digest) => res.end(digest));
  });
  const dir = await routesDir({ 'r.yaml': `pools: { big: { targets: ["${up.url}"] } }\nroutes: [ { name: big, match: { path: /* }, pool: big } ]\n` });
  // Uploads this large need a raised limits.maxBodySize (10mb by default).
  await writeFile(join(dir, 'waygate.yml.conf'), 'limits: { maxBodySize: 4gb }\n');
  cli = await startCli(['--config', join(dir, 'waygate.yml.conf'), '--routes', dir, '--http', '127.0.0.1:0', '--https', 'off', '--admin', 'off', '--log-level', 'warn']);
  base = `http://${cli.addresses.http}`;
});
afterAll(async () => {
  await cli?.stop();
  await up?.close();
});

/**
 * Samples the proxy's RSS every 100 ms while `work` runs; resolves with the peak growth over
 * the RSS before it started. Garbage from per-chunk buffers makes RSS rise by a fixed amount
 * (measured: the same ~75 MB for 64 MiB and 1 GiB bodies); buffering would add the body size.
 */
async function rssGrowth(work: Promise<unknown>): Promise<number> {
  const before = await rssOf(cli.proc.pid!);
  let peak = before;
  let running = true;
  const sampler = (async () => {
    while (running) {
      peak = Math.max(peak, await rssOf(cli.proc.pid!));
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  await work;
  running = false;
  await sampler;
  return peak - before;
}

test('a large chunked upload reaches the upstream byte-exact without being buffered', async () => {
  const expected = await sha256(body(SIZE, 3));
  const upload = new Promise<string>((resolve, reject) => {
    const req = request(`${base}/upload`, { method: 'POST', agent: false }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
    body(SIZE, 3).pipe(req);
  });
  const growth = await rssGrowth(upload);
  if (process.env.WAYGATE_STREAM_TEST_REPORT) console.log(`upload ${SIZE / 2 ** 20} MiB: RSS growth ${(growth / 2 ** 20).toFixed(1)} MiB`);
  expect(await upload).toBe(expected);
  expect(growth).toBeLessThan(SIZE / 2);
}, 120_000);

test('a large download reaches the client byte-exact without being buffered', async () => {
  const expected = await sha256(body(SIZE, 7));
  const download = new Promise<string>((resolve, reject) => {
    request(`${base}/download`, { agent: false }, (res) => {
      void sha256(res).then(resolve, reject);
    }).on('error', reject).end();
  });
  const growth = await rssGrowth(download);
  if (process.env.WAYGATE_STREAM_TEST_REPORT) console.log(`download ${SIZE / 2 ** 20} MiB: RSS growth ${(growth / 2 ** 20).toFixed(1)} MiB`);
  expect(await download).toBe(expected);
  expect(growth).toBeLessThan(SIZE / 2);
}, 120_000);

// Compression never buffers a body (SPEC §8): a large streamed response goes through a real
// waygate process with compress on, a client decodes and counts it, and the process's RSS stays
// within a fixed bound over its idle RSS whatever the body's size. 256 MiB (zstd) by default;
// WAYGATE_LONG=1 sends 1 GiB. gzip and br (the slower codings, brotli the largest state) go
// through too, at 256 MiB. The bound is 128 MiB, half the smallest body: plain
// proxying already grows RSS by ~75 MB of per-chunk garbage before a collection (see
// streaming.test.ts; measured here: 68 MiB for 256 MiB and 70 MiB for 1 GiB with zstd, under
// 50 MiB for gzip and br), while a buffered body would add the body's size.
import { request } from 'node:http';
import type { ServerResponse } from 'node:http';
import { createBrotliDecompress, createGunzip, createZstdDecompress } from 'node:zlib';
import type { Transform } from 'node:stream';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { routesDir, rssOf, startCli, startUpstream } from '../helpers.ts';
import type { CliProcess, Upstream } from '../helpers.ts';

const MiB = 2 ** 20;
const LONG = process.env.WAYGATE_LONG === '1';
const ZSTD_SIZE = (LONG ? 1024 : 256) * MiB;
const OTHER_SIZE = 256 * MiB;
/** What RSS may grow by while a body streams: per-chunk garbage and one compressor, not the body. */
const RSS_BOUND = 128 * MiB;
const CHUNK = 64 * 1024;
const DECODER: Record<string, () => Transform> = { gzip: createGunzip, br: createBrotliDecompress, zstd: createZstdDecompress };

/** Eight distinct MiB of word-like text: cycled, they repeat farther apart than the 1 MiB compressor window. */
const BLOCKS = Array.from({ length: 8 }, (_, b) => {
  const words = ['proxy', 'route', 'upstream', '<li class="row">', 'waygate', 'compress', '{"id":', '},', 'lorem', 'ipsum', '\n'];
  let s = b + 1;
  const parts: string[] = [];
  let n = 0;
  while (n < MiB) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const w = s % 5 === 0 ? String(s % 1_000_000) : words[s % words.length];
    parts.push(w, ' ');
    n += w.length + 1;
  }
  return Buffer.from(parts.join('')).subarray(0, MiB);
});

/** Streams `size` bytes of text with backpressure, no content-length (chunked). */
function serve(res: ServerResponse, size: number): void {
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
  let sent = 0;
  const pump = (): void => {
    while (sent < size) {
      const block = BLOCKS[Math.floor(sent / MiB) % BLOCKS.length];
      const at = sent % MiB;
      const chunk = block.subarray(at, Math.min(at + CHUNK, MiB, at + size - sent));
      sent += chunk.length;
      if (!res.write(chunk)) return void res.once('drain', pump);
    }
    res.end();
  };
  pump();
}

let up: Upstream;
let cli: CliProcess;
let base: string;

beforeAll(async () => {
  up = await startUpstream((req, res) => serve(res, Number(new URL(req.url!, 'http://x').searchParams.get('bytes'))));
  const dir = await routesDir({
    'r.yaml': `pools: { up: { targets: ["${up.url}"] } }
middlewares:
  squeeze: { compress: {} }
routes: [ { name: big, match: { path: /* }, middlewares: [squeeze], pool: up } ]
`,
  });
  cli = await startCli(['--routes', dir, '--http', '127.0.0.1:0', '--https', 'off', '--admin', 'off', '--log-level', 'warn']);
  base = `http://${cli.addresses.http}`;
  // One compressed response of each coding first: the idle RSS is measured with zlib loaded.
  for (const coding of ['zstd', 'br', 'gzip']) await download(coding, MiB);
});
afterAll(async () => {
  await cli?.stop();
  await up?.close();
});

/** Downloads `bytes` with accept-encoding `coding`, decoding as it comes; resolves with the decoded count. */
function download(coding: string, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    request(`${base}/big?bytes=${bytes}`, { headers: { 'accept-encoding': coding }, agent: false }, (res) => {
      if (res.headers['content-encoding'] !== coding) return reject(new Error(`expected ${coding}, got ${res.headers['content-encoding']}`));
      const decoder = DECODER[coding]();
      let count = 0;
      decoder.on('data', (c: Buffer) => (count += c.length));
      decoder.on('end', () => resolve(count));
      decoder.on('error', reject);
      res.on('error', reject);
      res.pipe(decoder);
    })
      .on('error', reject)
      .end();
  });
}

/** Samples the proxy's RSS every 100 ms while `work` runs; resolves with the peak growth over the RSS before. */
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
  try {
    await work;
  } finally {
    running = false;
    await sampler;
  }
  return peak - before;
}

test.each([
  ['zstd', ZSTD_SIZE],
  ['gzip', OTHER_SIZE],
  ['br', OTHER_SIZE],
])('%s: a %d-byte streamed response compresses with flat memory, decoded whole by the client', async (coding, size) => {
  const work = download(coding, size);
  const growth = await rssGrowth(work);
  if (process.env.WAYGATE_STREAM_TEST_REPORT) console.log(`${coding} ${size / MiB} MiB: RSS growth ${(growth / MiB).toFixed(1)} MiB`);
  expect(await work).toBe(size);
  expect(growth).toBeLessThan(RSS_BOUND);
}, 120_000);

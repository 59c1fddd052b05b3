// SIGTERM drain (SPEC §1): the listener closes at once (new connections are refused), in-flight
// downloads finish byte-exact, and the process exits 0 — well within timeouts.shutdown.
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { connect } from 'node:net';
import { expect, test } from 'vitest';
import { routesDir, startCli, startUpstream } from '../helpers.ts';

test('SIGTERM lets an in-flight download finish byte-exact, refuses new connections, and exits 0', async () => {
  const chunk = Buffer.alloc(64 * 1024);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 31) & 0xff;
  const CHUNKS = 40;
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  // The upstream sends half the body, waits until the test has sent SIGTERM, then sends the rest.
  const up = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-length': String(chunk.length * CHUNKS) });
    for (let i = 0; i < CHUNKS / 2; i++) res.write(chunk);
    void released.then(() => {
      for (let i = 0; i < CHUNKS / 2; i++) res.write(chunk);
      res.end();
    });
  });
  const dir = await routesDir({ 'r.yaml': `pools: { p: { targets: ["${up.url}"] } }\nroutes: [ { name: r, pool: p } ]\n` });
  const cli = await startCli(['--routes', dir, '--http', '127.0.0.1:0', '--https', 'off', '--admin', 'off']);
  const [host, port] = [cli.addresses.http!.split(':')[0], Number(cli.addresses.http!.split(':')[1])];
  try {
    const expected = createHash('sha256');
    for (let i = 0; i < CHUNKS; i++) expected.update(chunk);
    let firstBytes!: () => void;
    const started = new Promise<void>((r) => (firstBytes = r));
    const download = new Promise<string>((resolve, reject) => {
      request({ host, port, path: '/big', agent: false }, (res) => {
        const h = createHash('sha256');
        res.once('data', () => firstBytes());
        res.on('data', (c: Buffer) => h.update(c));
        res.on('end', () => resolve(h.digest('hex')));
        res.on('error', reject);
      }).on('error', reject).end();
    });
    await started;
    const exited = cli.stop('SIGTERM');
    await cli.waitForLine((l) => l.msg === 'draining');
    // New connections are refused while the download is still in flight.
    const refused = await new Promise<boolean>((resolve) => {
      const s = connect(port, host);
      s.on('connect', () => { s.destroy(); resolve(false); });
      s.on('error', () => resolve(true));
    });
    expect(refused).toBe(true);
    release();
    expect(await download).toBe(expected.digest('hex'));
    expect(await exited).toBe(0);
  } finally {
    release();
    await cli.stop();
    await up.close();
  }
});

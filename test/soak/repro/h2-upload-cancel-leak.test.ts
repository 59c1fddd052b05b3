// Found by the chaos soak (h2-reset, `mid-upload` then the session destroyed, on the middleware
// routes where it ran thousands of times): when the HTTPS listener peeks at ClientHellos (a TLS
// passthrough tcpRoute on `listener: https`, SPEC §7), an HTTP/2 client that sends a request body
// larger than the stream's initial window (64 KiB), cancels the stream (RST_STREAM CANCEL) and
// destroys its connection leaves that connection in waygate for good: waygate_open_connections
// stays up, past timeouts.clientIdle, and the socket's descriptor stays open after the kernel has
// closed it (it is in no /proc/net table). Without the passthrough route (no peek) the same
// clients leave nothing behind; so does a bare node:http2 secure server. Here the route forwards
// to an upstream that reads the body (the soak saw it on pools and on middleware answers alike).
// waygate runs as the CLI, in a process of its own: in-process, the client's and the server's
// events interleave differently and it does not show.
import { connect, constants } from 'node:http2';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { routesDir, startCli, startUpstream } from '../../helpers.ts';
import type { CliProcess, Upstream } from '../../helpers.ts';
import { pollUntil } from '../kit/time.ts';

const CLIENT_IDLE_MS = 1000;
const CLIENTS = 10;
const BODY_BYTES = 100_000;

const routes = (upstream: string, peek: boolean): string => `
pools:
  p: { targets: ["${upstream}"] }
  pt: { targets: ["tcp://127.0.0.1:1"] }
routes:
  - { name: r, pool: p }
${peek ? 'tcpRoutes:\n  - { name: pt, listener: https, match: { sni: [passthrough.test] }, pool: pt }' : ''}
`;

let cli: CliProcess | undefined;
let upstream: Upstream | undefined;
afterEach(async () => {
  await cli?.stop('SIGKILL');
  await upstream?.close();
  cli = undefined;
  upstream = undefined;
});

async function openHttps(admin: string): Promise<number> {
  const text = await (await fetch(`http://${admin}/metrics`)).text();
  return Number(/^waygate_open_connections\{listener="https"\} (\S+)$/m.exec(text)?.[1] ?? 0);
}

/** One client: a POST whose body outgrows the stream window, cancelled, then the connection destroyed. */
async function cancelledUpload(address: string): Promise<void> {
  const session = connect(`https://${address}`, { rejectUnauthorized: false, servername: 'localhost' });
  session.on('error', () => {});
  await new Promise((r) => session.once('connect', r));
  const stream = session.request({ ':method': 'POST', ':path': '/upload' }, { endStream: false });
  stream.on('error', () => {});
  stream.write(Buffer.alloc(BODY_BYTES, 97));
  await new Promise((r) => setImmediate(r));
  stream.close(constants.NGHTTP2_CANCEL);
  await new Promise((r) => stream.once('close', r));
  session.destroy();
}

/** The scenario: CLIENTS cancelled uploads, then waygate must have closed every one of their connections. */
async function scenario(peek: boolean): Promise<void> {

  upstream = await startUpstream();
  const dir = await routesDir({ 'routes.yaml': routes(upstream.url, peek) });
  const etc = await routesDir({ 'waygate.yaml': `timeouts: { clientIdle: ${CLIENT_IDLE_MS}ms }\nlog: { access: false }\n` });
  cli = await startCli(['--config', join(etc, 'waygate.yaml'), '--routes', dir, '--certs', join(etc, 'certs'), '--http', '127.0.0.1:0', '--https', '127.0.0.1:0', '--admin', '127.0.0.1:0'], {}, undefined, 'bin/waygate.js');
  const https = cli.addresses.https!;
  const admin = cli.addresses.admin!;
  for (let i = 0; i < CLIENTS; i++) await cancelledUpload(https);
  // Past clientIdle several times over: nothing of these clients may be left.
  const wait = CLIENT_IDLE_MS * 8;
  const drained = await pollUntil(async () => (await openHttps(admin)) === 0, wait, 100);
  expect(drained, `waygate_open_connections{listener="https"} is ${await openHttps(admin)} ${wait} ms after ${CLIENTS} clients cancelled their uploads and left`).toBe(true);
}

// A known bug, open, and timing-dependent: on a quiet machine the peek case leaks 3–6 of 10
// connections every run and the control leaks none; run beside other load, the control leaked
// too and the peek case did not. So it runs only on demand (WAYGATE_REPRO=1 npx vitest run
// test/soak/repro/h2-upload-cancel-leak.test.ts) until the fix, whose regression test it becomes.
const repro = process.env.WAYGATE_REPRO === '1';

test.runIf(repro)('an HTTP/2 connection whose client cancelled an upload and went away is closed by waygate (no peek: the control)', () => scenario(false), 60_000);

test.runIf(repro)('the same with the HTTPS listener peeking for a passthrough route', () => scenario(true), 60_000);

// A GET to an `h2: true` pool whose https:// target accepts TCP and never answers the TLS
// handshake (timeouts.connect 1s, response 2s): when does the client get an answer?
import { createServer } from 'node:net';
import { startWaygate } from './lib.mjs';
const h2 = process.argv[2] !== 'h1';
const silent = createServer((s) => { s.on('error', () => {}); s.resume(); });
await new Promise((r) => silent.listen(0, '127.0.0.1', r));
const gw = await startWaygate(`{ targets: ["https://127.0.0.1:${silent.address().port}"], h2: ${h2}, timeouts: { connect: 1s, response: 2s, idle: 1s } }`);
const n = Number(process.argv[3] ?? 1);
const t = Date.now();
const rs = await Promise.all(Array.from({ length: n }, (_, i) => new Promise((r) => setTimeout(r, i * 300)).then(() => fetch(`http://${gw.addr.http}/x`, { signal: AbortSignal.timeout(20_000) })).then((res) => `${res.status} at ${Date.now() - t} ms`, (e) => `${e.name} at ${Date.now() - t} ms`)));
console.log(`pool h2: ${h2}, ${n} requests 300 ms apart: ${rs.join(', ')}; in-flight then ${await gw.inFlight()}`);
gw.proc.kill('SIGKILL'); silent.close(); process.exit(0);

// HTTP/2 uploads answered early: POST with content-length 100000 over HTTP/2 to a pool whose only
// target refuses connections; the 502 comes while the body is still being sent, the client
// finishes the upload, closes its session and socket. Counts the sockets waygate still holds.
import { connect } from 'node:http2';
import { closedPort } from '../../refusing-port.ts';
import { startWaygate } from './lib.mjs';
const dead = await closedPort();
const gw = await startWaygate(`{ targets: ["http://127.0.0.1:${dead}"], timeouts: { idle: 1s, response: 2s } }`, process.env.EXTRA ?? '');
const rounds = Number(process.argv[2] ?? 40);
async function once(pieces) {
  const s = connect(`https://${gw.addr.https}`, { rejectUnauthorized: false }); s.on('error', () => {});
  const body = Buffer.alloc(100000, 97);
  const st = s.request({ ':method': 'POST', ':path': '/x', 'content-length': '100000' }, { endStream: false });
  st.on('error', () => {});
  const done = new Promise((r) => { st.on('close', r); });
  let status = 0; st.on('response', (h) => (status = h[':status'])); st.resume();
  const step = Math.ceil(body.length / pieces);
  for (let off = 0; off < body.length; off += step) {
    if (st.destroyed) break;
    if (!st.write(body.subarray(off, off + step))) await new Promise((r) => st.once('drain', r));
    await new Promise((r) => setImmediate(r));
  }
  if (!st.destroyed) st.end();
  // A wait that ends after 5 s says so (the defect: neither the stream nor the session ever closed).
  let late = false;
  const within = (p, what) => {
    let timer;
    const t = new Promise((r) => (timer = setTimeout(() => r(console.log(`  ${what}: nothing after 5 s (status ${status}, stream destroyed ${st.destroyed}, rst ${st.rstCode})`), (late = true)), 5000)));
    return Promise.race([p, t]).finally(() => clearTimeout(timer));
  };
  await within(done, 'stream close'); s.close();
  await within(new Promise((r) => s.on('close', r)), 'session close');
  if (late) s.destroy();
  return status;
}
const seen = {};
for (let i = 0; i < rounds; i++) { const st = await once(1 + (i % 4)); seen[st] = (seen[st] ?? 0) + 1; console.log(`round ${i}: ${st}`); }
await new Promise((r) => setTimeout(r, Number(process.env.WAIT ?? 3000)));
const m = await (await fetch(`http://${gw.addr.admin}/metrics`)).text();
console.log('statuses', seen, m.split('\n').filter((l) => l.startsWith('waygate_open_connections')).join(' | '));
gw.proc.kill('SIGKILL'); process.exit(0);

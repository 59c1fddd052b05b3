// Rounds of HTTP/2 client streams reset at once, each asking an h2c (`h2: true`) pool for 1 MiB,
// some with a request body; after each round, /healthz and RSS. Shows the in-flight leak and the
// event-loop hang with runaway memory that follows.
import { connect, constants, createServer } from 'node:http2';
import { startWaygate } from './lib.mjs';
const upstream = createServer((req, res) => {
  req.on('error', () => {}); res.on('error', () => {}); req.resume();
  const size = Number(new URL(req.url, 'http://x').searchParams.get('size') ?? 0);
  res.writeHead(200);
  const body = Buffer.alloc(size, 97); let off = 0;
  const next = () => { if (res.destroyed) return; if (off >= size) return res.end(); const p = body.subarray(off, off + 16384); off += p.length; if (res.write(p)) setImmediate(next); else res.once('drain', next); };
  next();
});
upstream.on('sessionError', () => {});
await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
const gw = await startWaygate(`{ targets: ["http://127.0.0.1:${upstream.address().port}"], h2: true, timeouts: { idle: 1s, response: 2s } }`);
for (let round = 1; round <= 15; round++) {
  const s = connect(`https://${gw.addr.https}`, { rejectUnauthorized: false }); s.on('error', () => {});
  const closed = [];
  for (let i = 0; i < 4; i++) {
    const upload = i % 2 === 1;
    const st = s.request({ ':method': upload ? 'POST' : 'GET', ':path': '/x?size=1048576' }, { endStream: !upload });
    st.on('error', () => {});
    if (upload) st.end(Buffer.alloc(20000));
    st.close(constants.NGHTTP2_CANCEL);
    closed.push(new Promise((r) => st.on('close', r)));
  }
  await Promise.all(closed);
  s.destroy();
  await new Promise((r) => setTimeout(r, 500));
  const h = await gw.healthz();
  console.log(`round ${round}: healthz ${h}, in-flight ${h === 200 ? await gw.inFlight() : '?'}, RSS ${gw.rssMb()} MB`);
  if (h !== 200) break;
}
gw.proc.kill('SIGKILL'); upstream.close(); process.exit(0);

// HTTP/2 client streams reset (CANCEL) right after they are sent, to a plain HTTP/1.1 pool whose
// upstream answers 256 KiB chunked in one write. After each round: the target's in-flight.
// Usage: node h2-rst-inflight.mjs [h1|h2c]   (h2c: the pool is `h2: true`)
import { createServer } from 'node:http';
import { connect, constants, createServer as createH2c } from 'node:http2';
import { startWaygate } from './lib.mjs';
const h2 = process.argv[2] === 'h2c';
const body = Buffer.alloc(256 * 1024, 97);
const handler = (req, res) => {
  req.on('error', () => {}); res.on('error', () => {}); req.resume();
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  if (res.socket && !h2) { res.socket.cork(); for (let o = 0; o < body.length; o += 16384) res.write(body.subarray(o, o + 16384)); res.end(); process.nextTick(() => res.socket?.uncork()); }
  else res.end(body);
};
const upstream = h2 ? createH2c(handler) : createServer(handler);
await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
const gw = await startWaygate(`{ targets: ["http://127.0.0.1:${upstream.address().port}"], h2: ${h2}, timeouts: { idle: 1s, response: 2s } }`);
for (let round = 1; round <= 5; round++) {
  const s = connect(`https://${gw.addr.https}`, { rejectUnauthorized: false }); s.on('error', () => {});
  const st = s.request({ ':path': '/data' }); st.on('error', () => {});
  st.close(constants.NGHTTP2_CANCEL);
  await new Promise((r) => st.on('close', r));
  s.destroy();
  await new Promise((r) => setTimeout(r, 4000));
  console.log(`round ${round} (pool ${h2 ? 'h2: true' : 'HTTP/1.1'}): in-flight 4 s after the reset: ${await gw.inFlight()}`);
}
gw.proc.kill('SIGKILL'); upstream.close(); process.exit(0);

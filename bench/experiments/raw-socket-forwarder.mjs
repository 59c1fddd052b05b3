// The experiment behind waygate's own HTTP/1.1 client (src/upstream/h1-*.ts): bench/mini-undici.mjs
// with undici replaced by a raw keep-alive socket pool and a Content-Length-only parser. It
// validates nothing and handles no errors: it measures a ceiling, it is not a proxy. Against
// mini-undici.mjs (both pinned to CPU 0, wrk -c64 on CPU 1, 6 interleaved 3 s rounds) it ran 1.39×
// the req/s at 0.72× the CPU per request.
// usage: node bench/experiments/raw-socket-forwarder.mjs LISTEN_PORT UPSTREAM_PORT
import { createServer } from 'node:http';
import { connect } from 'node:net';
const [listen, uport] = [Number(process.argv[2]), Number(process.argv[3] ?? 19101)];
process.on('SIGTERM', () => process.exit(0));
const idle = [];
class Conn {
  constructor() { this.s = connect(uport, '127.0.0.1'); this.s.setNoDelay(true); this.buf = null; this.cb = null; this.s.on('data', (d) => this.data(d)); this.s.on('error', () => {}); }
  data(d) {
    this.buf = this.buf === null ? d : Buffer.concat([this.buf, d]);
    const b = this.buf; const end = b.indexOf('\r\n\r\n'); if (end < 0) return;
    const head = b.latin1Slice(0, end); const lines = head.split('\r\n');
    const status = Number(lines[0].slice(9, 12)); const headers = []; let cl = 0;
    for (let i = 1; i < lines.length; i++) { const c = lines[i].indexOf(':'); const n = lines[i].slice(0, c); const v = lines[i].slice(c + 1).trim(); headers.push(n, v); if (n.length === 14 && n.toLowerCase() === 'content-length') cl = Number(v); }
    if (b.length < end + 4 + cl) return;
    const body = b.subarray(end + 4, end + 4 + cl); this.buf = null;
    const cb = this.cb; this.cb = null; idle.push(this); cb(status, headers, body);
  }
}
createServer((req, res) => {
  const c = idle.pop() ?? new Conn();
  let h = `${req.method} ${req.url} HTTP/1.1\r\n`;
  const raw = req.rawHeaders; for (let i = 0; i < raw.length; i += 2) h += `${raw[i]}: ${raw[i + 1]}\r\n`;
  c.cb = (status, headers, body) => { res.writeHead(status, headers); res.end(body); };
  c.s.write(h + '\r\n');
}).listen(listen, '127.0.0.1');

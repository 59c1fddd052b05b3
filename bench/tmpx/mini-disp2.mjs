// undici dispatch handler, head at response start, body via write(chunk) then end() (waygate's pattern) or end(chunk) (MODE=end)
import { createServer } from 'node:http';
import { Pool } from 'undici';
const [listen, upstream] = [Number(process.argv[2]), process.argv[3]];
const END = process.env.MODE === 'end';
const pool = new Pool(upstream);
process.on('SIGTERM', () => process.exit(0));
class H {
  constructor(res) { this.res = res; this.last = null; }
  onRequestStart() {}
  onResponseStart(c, status) { this.res.writeHead(status, c.rawHeaders.map(String)); }
  onResponseData(c, chunk) { if (END) { if (this.last) this.res.write(this.last); this.last = chunk; } else this.res.write(chunk); }
  onResponseEnd() { if (END && this.last) (process.env.STR ? this.res.end(this.last.toString('latin1'), 'latin1') : this.res.end(this.last)); else this.res.end(); }
  onResponseError() { this.res.destroy(); }
}
createServer((req, res) => {
  pool.dispatch({ path: req.url, method: req.method, headers: req.rawHeaders }, new H(res));
}).listen(listen, '127.0.0.1');

// The baseline: a minimal undici forwarder with no routing, logging or header rules.
import { createServer } from 'node:http';
import { Pool } from 'undici';
const [listen, upstream] = [Number(process.argv[2] ?? 19002), process.argv[3] ?? 'http://127.0.0.1:19001'];
const pool = new Pool(upstream);
// A clean exit on SIGTERM, so that node --cpu-prof writes its profile (npm run bench:profile).
process.on('SIGTERM', () => process.exit(0));
createServer((req, res) => {
  pool.request({ path: req.url, method: req.method, headers: req.headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req }).then(
    ({ statusCode, headers, body }) => {
      res.writeHead(statusCode, headers);
      body.pipe(res);
    },
    () => {
      res.statusCode = 502;
      res.end();
    },
  );
}).listen(listen, '127.0.0.1');

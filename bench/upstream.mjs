// Benchmark upstream: answers every request with a 100-byte body.
import { createServer } from 'node:http';
const body = Buffer.alloc(100, 'x');
const port = Number(process.argv[2] ?? 19001);
createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 100 });
  res.end(body);
}).listen(port, '127.0.0.1');

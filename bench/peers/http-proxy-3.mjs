// Peer: http-proxy-3 (the maintained http-proxy fork) with a keep-alive agent to one target.
// Usage: node bench/peers/http-proxy-3.mjs PORT UPSTREAM_URL
import { createServer, Agent } from 'node:http';
import { createProxyServer } from 'http-proxy-3';
const [listen, target] = [Number(process.argv[2] ?? 19130), process.argv[3] ?? 'http://127.0.0.1:19101'];
const proxy = createProxyServer({ target, agent: new Agent({ keepAlive: true, maxSockets: 256 }), xfwd: true });
proxy.on('error', (_err, _req, res) => {
  if ('writeHead' in res && !res.headersSent) res.writeHead(502);
  res.end();
});
createServer((req, res) => proxy.web(req, res)).listen(listen, '127.0.0.1');

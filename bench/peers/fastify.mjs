// Peer: fastify + @fastify/reply-from (undici pool) forwarding every path to one target.
// Usage: node bench/peers/fastify.mjs PORT UPSTREAM_URL
import Fastify from 'fastify';
import replyFrom from '@fastify/reply-from';
const [listen, base] = [Number(process.argv[2] ?? 19140), process.argv[3] ?? 'http://127.0.0.1:19101'];
const app = Fastify({ logger: false });
await app.register(replyFrom, { base, undici: { connections: 128, pipelining: 1 } });
app.all('/*', (req, reply) => reply.from(req.url));
await app.listen({ port: listen, host: '127.0.0.1' });

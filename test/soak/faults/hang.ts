// Targets that accept TCP and never answer: an http:// one that reads the request and stays
// silent (the gateway's response timeout must end it), and https:// ones that never answer the
// TLS handshake (its connect timeout must), on the builtin client and on `h2: true`. Issue 12,
// defect 2: a client aborting an upload while such a handshake was pending crashed the process.
import { createServer } from 'node:net';
import type { UpstreamFault } from '../types.ts';

const hang: UpstreamFault = {
  name: 'hang',
  async start(ctx) {
    const silent = (what: string) => createServer((socket) => {
      ctx.hit(`hang/${what}`);
      // Read and drop whatever comes, so the gateway's writes never block; answer nothing.
      socket.resume();
    });
    const plain = await ctx.listen(silent('http'));
    const tls = await ctx.listen(silent('tls-handshake'));
    const tlsH2 = await ctx.listen(silent('tls-handshake-h2'));
    return [
      { name: 'hang', targets: [`http://127.0.0.1:${plain}`], variants: ['echo'], expect: 'any', kind: 'http' },
      { name: 'hang-tls', targets: [`https://127.0.0.1:${tls}`], options: { tls: { ca: ctx.caFile } }, variants: ['echo'], expect: 'any', kind: 'http' },
      { name: 'hang-tls-h2', targets: [`https://127.0.0.1:${tlsH2}`], options: { tls: { ca: ctx.caFile }, h2: true }, variants: ['echo'], expect: 'any', kind: 'http' },
    ];
  },
};
export default hang;

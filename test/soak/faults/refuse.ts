// Targets that refuse connections (a closed port), on the builtin client and on `h2: true`
// (undici). Issue 12, defect 1: a streamed upload to such a pool crashed the process.
import type { UpstreamFault } from '../types.ts';

const refuse: UpstreamFault = {
  name: 'refuse',
  async start(ctx) {
    const a = await ctx.closedPort();
    const b = await ctx.closedPort();
    return [
      { name: 'refuse', targets: [`http://127.0.0.1:${a}`], variants: ['echo', 'data?size=100'], expect: 'any', kind: 'http' },
      { name: 'refuse-h2', targets: [`http://127.0.0.1:${b}`], options: { h2: true }, variants: ['echo'], expect: 'any', kind: 'http' },
    ];
  },
};
export default refuse;

// h2c targets that refuse new streams: Node HTTP/2 servers with a 2 MB maxSessionMemory (the
// default is 10 MB), so a few slow readers' responses waiting in a session make the server
// answer ENHANCE_YOUR_CALM to every new stream on it. A refused stream was never processed:
// waygate sends it again on a fresh session, or to the other target, when its body is held whole
// (GET and HEAD here). A streamed upload (over limits.retryBuffer) cannot be sent twice and may
// get its 502.
import { createServer as createH2cServer } from 'node:http2';
import { content } from '../kit/content.ts';
import type { UpstreamFault } from '../types.ts';
import { HEALTHY_VARIANTS } from './healthy.ts';

const h2Calm: UpstreamFault = {
  name: 'h2-calm',
  async start(ctx) {
    const ports = await Promise.all([0, 1].map(() => {
      const s = createH2cServer({ maxSessionMemory: 2 }, (req, res) => content(req, res, (what) => ctx.hit(`h2-calm/${what}`)));
      s.on('sessionError', () => {});
      return ctx.listen(s);
    }));
    return [{ name: 'h2-calm', targets: ports.map((p) => `http://127.0.0.1:${p}`), options: { h2: true }, variants: HEALTHY_VARIANTS, expect: 'ok-idempotent', kind: 'http' }];
  },
};
export default h2Calm;

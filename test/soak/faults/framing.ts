// An upstream that answers with bad HTTP/1.1 framing (RFC 9112 §6): a chunk size that is not
// hex or overflows, two different Content-Lengths, `Transfer-Encoding: gzip, chunked` (issue 12,
// defect 4), both Content-Length and Transfer-Encoding, a garbage status line, binary junk, a
// header line without a colon, a body shorter than declared, bytes after the body. None of it
// may reach a client as a valid response, and no such connection may be reused.
import { createServer } from 'node:net';
import { readRequests, put, variantOf } from '../kit/raw-server.ts';
import type { UpstreamFault } from '../types.ts';

const ANSWERS: Record<string, string | Buffer> = {
  'bad-chunk-size': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n',
  'chunk-overflow': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nabc\r\n0\r\n\r\n',
  'dup-content-length': 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!',
  'te-gzip-chunked': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  'cl-and-te': 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  'garbage-status': 'HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok',
  'binary-junk': Buffer.from([0x00, 0xff, 0x16, 0x03, 0x01, 0x02, 0x00, 0x0d, 0x0a, 0x0d, 0x0a, 0x7f, 0x80]),
  'header-without-colon': 'HTTP/1.1 200 OK\r\nContent-Length 2\r\nX-Ok: 1\r\n\r\nok',
  'short-body': 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b',
  'bytes-after-body': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra',
};
/** Answers after which the upstream closes; the others leave the connection to the gateway. */
const CLOSE_AFTER = new Set(['short-body', 'garbage-status', 'binary-junk']);

const framing: UpstreamFault = {
  name: 'framing',
  async start(ctx) {
    const server = createServer((socket) => {
      readRequests(socket, (req) => {
        const v = variantOf(req.path);
        const answer = ANSWERS[v] ?? ANSWERS['bad-chunk-size'];
        ctx.hit(`framing/${v in ANSWERS ? v : 'bad-chunk-size'}`);
        put(socket, answer, () => {
          if (CLOSE_AFTER.has(v) || req.chunked) socket.end();
        });
      });
    });
    const port = await ctx.listen(server);
    return [{ name: 'framing', targets: [`http://127.0.0.1:${port}`], variants: Object.keys(ANSWERS), expect: 'any', kind: 'http' }];
  },
};
export default framing;

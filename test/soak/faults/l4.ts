// L4 targets (SPEC §7, issue 14) behind tcpRoutes: echo servers that behave (two, balanced, with
// connect health checks; one of them also behind an SNI route), and faults: a refusing port
// (with and without health checks, so connect_error and no_healthy_upstream both happen), a
// target that echoes a little and then resets mid-stream, one that black-holes (accepts, never
// reads nor writes), one that echoes and then stops reading (backpressure builds back to the
// client), one that half-closes first (a banner, its FIN) and keeps reading, and a TLS echo
// server with a certificate of its own behind the SNI route `soak.test` (passthrough: the client
// must see this certificate, not waygate's), and behind `passthrough.soak.test` on the shared
// HTTPS port (SPEC §7: `listener: https`; every other HTTPS connection of the soak then goes
// through that port's ClientHello peek before it is served as HTTP).
//
// A target that does not read cannot notice its peer leaving; the black-holing ones therefore
// read (and drop) after HOLD_MS, past the route's idle and half-close timeouts: by then waygate
// must have closed them, and their sockets close here too (the upstream socket count returns).
import { X509Certificate } from 'node:crypto';
import { createServer } from 'node:net';
import type { ServerOpts, Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { makeLeaf } from '../../tls-helpers.ts';
import { reset } from '../kit/raw-server.ts';
import type { FaultContext, L4Target, PoolSpec, UpstreamFault } from '../types.ts';

/** What the half-closing target sends before its FIN. */
export const HALF_CLOSE_BANNER = 'l4-half-close: the target has said all it will; it still reads\n';
/** The SNI names of the SNI listener's routes, and one that no route claims. */
export const SNI = { tls: 'soak.test', echo: 'echo.soak.test', https: 'passthrough.soak.test', unknown: 'nobody.soak.test' } as const;
/** The tcpRoutes' name for the shared HTTPS port. */
export const HTTPS_LISTENER = 'https';
/** The TCP listener the SNI routes share (it peeks at every ClientHello). */
export const SNI_LISTENER = 'l4-sni';
/** Bytes the resetting target echoes before its reset, in turn per connection. */
const RESET_AFTER = [1, 1000, 16_384, 100_000];
/** Bytes the stop-reading target echoes before it stops reading, in turn per connection. */
const STOP_AFTER = [0, 4096, 65_536, 300_000];

const tcp = (port: number): string => `tcp://127.0.0.1:${port}`;

/**
 * Never reads until `holdMs`, then reads and drops: the peer's close is seen, the socket goes. An
 * EOF Node had already read before the pause still comes as 'end' (at once, or at the resume):
 * that closes it too.
 */
function holdThenDrain(socket: Socket, holdMs: number, ctx: FaultContext, what: string): void {
  socket.on('end', () => socket.destroy());
  const timer = setTimeout(() => {
    ctx.hit(`${what}/drained`);
    if (socket.readableEnded) socket.destroy();
    else socket.resume();
  }, holdMs);
  socket.once('close', () => clearTimeout(timer));
}

const l4: UpstreamFault = {
  name: 'l4',
  async start(ctx) {
    const t = ctx.timeouts;
    const holdMs = 2 * Math.max(t.tcpIdle, t.halfClose);
    const echoServer = (): ReturnType<typeof createServer> => createServer({ allowHalfOpen: true }, (s) => {
      ctx.hit('l4-echo/connection');
      s.pipe(s);
    });
    const echo = await Promise.all([0, 1].map(() => ctx.listen(echoServer())));
    let resets = 0;
    const resetting = await ctx.listen(createServer({ allowHalfOpen: true }, (s) => {
      const after = RESET_AFTER[resets++ % RESET_AFTER.length];
      let seen = 0;
      s.on('data', (d: Buffer) => {
        if (s.destroyed) return;
        const before = seen;
        seen += d.length;
        if (seen < after) return void s.write(d);
        ctx.hit('l4-reset/mid-stream');
        s.write(d.subarray(0, after - before), () => reset(s));
      });
      s.on('end', () => {
        ctx.hit('l4-reset/at-fin');
        reset(s);
      });
    }));
    // pauseOnCreate (net.createServer, not in @types/node): the socket does not even read into its buffer.
    const blackhole = await ctx.listen(createServer({ pauseOnCreate: true, allowHalfOpen: true } as ServerOpts, (s) => {
      ctx.hit('l4-blackhole/accepted');
      holdThenDrain(s, holdMs, ctx, 'l4-blackhole');
    }));
    let stops = 0;
    const stopReading = await ctx.listen(createServer({ allowHalfOpen: true }, (s) => {
      const after = STOP_AFTER[stops++ % STOP_AFTER.length];
      let seen = 0;
      const stop = (): void => {
        ctx.hit('l4-stop-reading/stopped');
        s.removeAllListeners('data');
        s.removeAllListeners('end');
        s.pause();
        holdThenDrain(s, holdMs, ctx, 'l4-stop-reading');
      };
      if (after === 0) return stop();
      // Half-open until then: the client's FIN is answered with this side's.
      s.on('end', () => s.end());
      s.on('data', (d: Buffer) => {
        const before = seen;
        seen += d.length;
        if (seen < after) return void s.write(d);
        s.write(d.subarray(0, after - before));
        stop();
      });
    }));
    const halfClose = await ctx.listen(createServer({ allowHalfOpen: true }, (s) => {
      ctx.hit('l4-half-close/banner');
      s.end(HALF_CLOSE_BANNER);
      // Keeps reading until the client's FIN (then the socket closes: both sides are done).
      s.resume();
    }));
    // The passthrough target: its own self-signed certificate for soak.test.
    const leaf = await makeLeaf([SNI.tls]);
    const tlsServer = createTlsServer({ cert: leaf.cert, key: leaf.key }, (s) => {
      ctx.hit('l4-tls/handshake');
      s.on('error', () => {});
      s.pipe(s);
    });
    const tls = await ctx.listen(tlsServer);
    const fingerprint = new X509Certificate(leaf.cert).fingerprint256;
    const refused = await ctx.closedPort();
    const checked = { healthCheck: { type: 'connect', interval: '1s', timeout: '1s' } };
    /** A tcp pool, on a listener of its own name unless `l4` says otherwise. */
    const pool = (name: string, targets: string[], target: L4Target, more: Partial<Omit<PoolSpec, 'fault'>> = {}): Omit<PoolSpec, 'fault'> =>
      ({ name, targets, variants: [], expect: 'any', kind: 'tcp', l4: { listener: name, target }, ...more });
    return [
      pool('l4-echo', echo.map(tcp), 'echo', { expect: 'ok', options: checked }),
      pool('l4-sni-echo', [tcp(echo[0])], 'echo', { expect: 'ok', l4: { listener: SNI_LISTENER, sni: [SNI.echo], target: 'echo' } }),
      pool('l4-tls', [tcp(tls)], 'tls-echo', { expect: 'ok', l4: { listener: SNI_LISTENER, sni: [SNI.tls], target: 'tls-echo', fingerprint } }),
      pool('l4-tls-https', [tcp(tls)], 'tls-echo', { expect: 'ok', l4: { listener: HTTPS_LISTENER, sni: [SNI.https], target: 'tls-echo', fingerprint } }),
      pool('l4-refuse', [tcp(refused)], 'refuse'),
      pool('l4-refuse-checked', [tcp(refused)], 'refuse', { options: checked }),
      pool('l4-reset', [tcp(resetting)], 'reset'),
      pool('l4-blackhole', [tcp(blackhole)], 'blackhole'),
      pool('l4-stop-reading', [tcp(stopReading)], 'stop-reading'),
      pool('l4-half-close', [tcp(halfClose)], 'half-close'),
    ];
  },
};
export default l4;

// UDP targets (SPEC §7) behind udpRoutes: two echo sockets in one pool (a session is bound to one
// of them; each datagram comes back as it was, to the session's own upstream socket), and a pool
// whose target is a closed UDP port (the kernel answers ICMP port unreachable: the session is
// refused, connect_error). Each pool has a UDP listener of its own name.
import { createSocket } from 'node:dgram';
import type { Socket as DgramSocket } from 'node:dgram';
import type { FaultContext, PoolSpec, UpstreamFault } from '../types.ts';

const udp = (port: number): string => `udp://127.0.0.1:${port}`;

function bind(s: DgramSocket): Promise<number> {
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => {
      s.off('error', reject);
      resolve(s.address().port);
    });
  });
}

/**
 * A loopback UDP port that refuses right now (a connected send gets ECONNREFUSED back), taken
 * below the ephemeral range like the TCP one (refusing-port.ts), so no port-0 socket lands on it.
 */
async function closedUdpPort(): Promise<number> {
  for (let port = 1; port < 1024; port++) {
    const refused = await new Promise<boolean>((resolve) => {
      const s = createSocket('udp4');
      let again: NodeJS.Timeout | undefined;
      let settled = false;
      const done = (r: boolean): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clearTimeout(again);
        s.close(() => resolve(r));
      };
      const timer = setTimeout(() => done(false), 300);
      s.on('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED'));
      s.connect(port, '127.0.0.1', () => {
        s.send('probe', () => {});
        // The refusal comes as an error by itself or on the next operation: a second send provokes it.
        again = setTimeout(() => void (settled || s.send('probe', () => {})), 50);
      });
    });
    if (refused) return port;
  }
  throw new Error('no refusing UDP port below 1024 on 127.0.0.1');
}

const udpFault: UpstreamFault = {
  name: 'udp',
  async start(ctx: FaultContext) {
    const echo = await Promise.all([0, 1].map(async (i) => {
      const s = createSocket('udp4');
      s.on('error', () => {});
      s.on('message', (msg, rinfo) => {
        ctx.hit(`udp-echo/${i}`);
        s.send(msg, rinfo.port, rinfo.address);
      });
      return bind(s);
    }));
    const refused = await closedUdpPort();
    const pool = (name: string, targets: string[], target: 'echo' | 'refuse', expect: PoolSpec['expect']): Omit<PoolSpec, 'fault'> =>
      ({ name, targets, variants: [], expect, kind: 'udp', udp: { listener: name, target } });
    return [pool('udp-echo', echo.map(udp), 'echo', 'ok'), pool('udp-refuse', [udp(refused)], 'refuse', 'any')];
  },
};
export default udpFault;

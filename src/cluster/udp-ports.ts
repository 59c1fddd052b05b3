// UDP listeners on port 0 under --workers (SPEC §1: port 0 picks a free port). Each worker binds
// its UDP listeners itself (SO_REUSEPORT, so the kernel keeps one client address on one worker);
// node:cluster does not share those, so workers binding port 0 would each get a port of their
// own, and clients would reach only the one the "listening" line names. The primary picks the
// port first: it binds each such address with SO_REUSEPORT, hands the workers the port it got,
// and holds its socket (so no other program takes the port) until every worker is bound.
import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { StaticConfig } from '../config/schema.ts';

/** A config whose UDP listeners name real ports, and the hold on them to let go of. */
export interface ReservedUdpPorts {
  readonly config: StaticConfig;
  /** Closes the primary's sockets (once the workers are bound, or on failure). */
  release(): Promise<void>;
}

/** Returns `config` with every `listeners.udp` port 0 replaced by a port bound here for the workers to share. */
export async function reserveUdpPorts(config: StaticConfig): Promise<ReservedUdpPorts> {
  const held: Socket[] = [];
  const release = async (): Promise<void> => {
    await Promise.all(held.splice(0).map((s) => new Promise<void>((r) => {
      try {
        s.close(() => r());
      } catch {
        r();
      }
    })));
  };
  const udp: StaticConfig['listeners']['udp'] = {};
  try {
    for (const [name, l] of Object.entries(config.listeners.udp)) {
      if (l.address === null || l.address.port !== 0) {
        udp[name] = l;
        continue;
      }
      const host = l.address.host;
      const s = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4', reuseAddr: true, reusePort: true });
      // Datagrams that reach this socket before it closes are dropped: none should, since no
      // client knows the port before the "listening" line.
      s.on('message', () => {});
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.bind({ address: host, port: 0, exclusive: true }, () => {
          s.off('error', reject);
          resolve();
        });
      });
      s.on('error', () => {});
      held.push(s);
      udp[name] = { ...l, address: { host, port: s.address().port } };
    }
  } catch (err) {
    await release();
    throw err;
  }
  if (held.length === 0) return { config, release };
  return { config: { ...config, listeners: { ...config.listeners, udp } }, release };
}

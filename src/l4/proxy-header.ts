// PROXY protocol headers *out* (haproxy.org proxy-protocol.txt): what waygate writes first on a
// connection to a target whose pool says `proxyProtocol: v1 | v2`, so the target learns the
// client's address. The receiving side (listeners behind an L4 balancer) is
// server/proxy-protocol.ts. Pure: addresses in, bytes out.
import { isIPv4, isIPv6 } from 'node:net';

/** `proxyProtocol:` of a pool. */
export type ProxyVersion = 'off' | 'v1' | 'v2';

/** The two ends of the client's connection to waygate. */
export interface ProxyEnds {
  readonly sourceAddress: string;
  readonly sourcePort: number;
  readonly destAddress: string;
  readonly destPort: number;
}

// §2.2: "\r\n\r\n\0\r\nQUIT\n".
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_PROXY = 0x21; // version 2, command PROXY
const V2_LOCAL = 0x20; // version 2, command LOCAL
const V2_TCP4 = 0x11;
const V2_TCP6 = 0x21;
const V2_UNSPEC = 0x00;
const MAPPED = '::ffff:';

/** A dual-stack listener reports IPv4 clients as "::ffff:a.b.c.d": their IPv4 form, else undefined. */
function v4Of(address: string): string | undefined {
  if (isIPv4(address)) return address;
  if (address.toLowerCase().startsWith(MAPPED) && isIPv4(address.slice(MAPPED.length))) return address.slice(MAPPED.length);
  return undefined;
}

/**
 * Returns the header that announces `ends` (the client's connection), or — `ends` undefined — a
 * connection of waygate's own (a health probe): v2 `LOCAL`, v1 `UNKNOWN`. A pair of an IPv4 and an IPv6 address is sent
 * as TCP6 with the IPv4 one mapped; anything that is not an IP address at all as unknown, so
 * the target uses the real connection's addresses rather than a wrong one.
 */
export function proxyHeader(version: 'v1' | 'v2', ends: ProxyEnds | undefined): Buffer {
  let family: 4 | 6 | undefined;
  let src = '';
  let dst = '';
  if (ends !== undefined) {
    const s4 = v4Of(ends.sourceAddress);
    const d4 = v4Of(ends.destAddress);
    if (s4 !== undefined && d4 !== undefined) [family, src, dst] = [4, s4, d4];
    else if (isIPv6(ends.sourceAddress) && isIPv6(ends.destAddress)) [family, src, dst] = [6, ends.sourceAddress, ends.destAddress];
    // Mixed families (an IPv6 client announced by a balancer to an IPv4 listener, or the other
    // way round): TCP6 with the IPv4 side IPv4-mapped, as HAProxy sends it, so the client's
    // address is not lost.
    else if (s4 !== undefined && isIPv6(ends.destAddress)) [family, src, dst] = [6, MAPPED + s4, ends.destAddress];
    else if (isIPv6(ends.sourceAddress) && d4 !== undefined) [family, src, dst] = [6, ends.sourceAddress, MAPPED + d4];
  }
  if (version === 'v1') {
    if (family === undefined || ends === undefined) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
    return Buffer.from(`PROXY TCP${family} ${src} ${dst} ${ends.sourcePort} ${ends.destPort}\r\n`, 'latin1');
  }
  if (family === undefined || ends === undefined) {
    const out = Buffer.alloc(16);
    V2_SIGNATURE.copy(out);
    out[12] = ends === undefined ? V2_LOCAL : V2_PROXY;
    out[13] = V2_UNSPEC;
    out.writeUInt16BE(0, 14);
    return out;
  }
  const addrLen = family === 4 ? 4 : 16;
  const out = Buffer.alloc(16 + addrLen * 2 + 4);
  V2_SIGNATURE.copy(out);
  out[12] = V2_PROXY;
  out[13] = family === 4 ? V2_TCP4 : V2_TCP6;
  out.writeUInt16BE(addrLen * 2 + 4, 14);
  writeAddress(out, 16, src, family);
  writeAddress(out, 16 + addrLen, dst, family);
  out.writeUInt16BE(ends.sourcePort, 16 + addrLen * 2);
  out.writeUInt16BE(ends.destPort, 16 + addrLen * 2 + 2);
  return out;
}

function writeAddress(out: Buffer, at: number, address: string, family: 4 | 6): void {
  if (family === 4) {
    const parts = address.split('.');
    for (let i = 0; i < 4; i++) out[at + i] = Number(parts[i]);
    return;
  }
  const groups = expandIPv6(address);
  for (let i = 0; i < 8; i++) out.writeUInt16BE(groups[i], at + i * 2);
}

/** The eight 16-bit groups of an IPv6 address ("::1", "fe80::1%eth0", "::ffff:1.2.3.4" forms included). */
function expandIPv6(address: string): number[] {
  let a = address;
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  // A trailing dotted quad stands for the last two groups.
  const lastColon = a.lastIndexOf(':');
  const tail = a.slice(lastColon + 1);
  if (tail.includes('.')) {
    const q = tail.split('.').map(Number);
    a = a.slice(0, lastColon + 1) + ((q[0] << 8) | q[1]).toString(16) + ':' + ((q[2] << 8) | q[3]).toString(16);
  }
  const [head, rest] = a.includes('::') ? a.split('::') : [a, undefined];
  const left = head === '' ? [] : head.split(':');
  const right = rest === undefined || rest === '' ? [] : rest.split(':');
  const fill = rest === undefined ? 0 : 8 - left.length - right.length;
  return [...left, ...Array<string>(fill).fill('0'), ...right].map((g) => parseInt(g, 16));
}

/** The ends of a connected socket as a PROXY header announces them; undefined when the socket has no addresses (closed). */
export function socketEnds(socket: { remoteAddress?: string; remotePort?: number; localAddress?: string; localPort?: number }): ProxyEnds | undefined {
  const { remoteAddress, remotePort, localAddress, localPort } = socket;
  if (remoteAddress === undefined || remotePort === undefined || localAddress === undefined || localPort === undefined) return undefined;
  return { sourceAddress: remoteAddress, sourcePort: remotePort, destAddress: localAddress, destPort: localPort };
}

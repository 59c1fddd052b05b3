// PROXY protocol v1/v2 receiver (haproxy.org proxy-protocol.txt) for listeners behind an L4
// balancer: a raw TCP front reads and strips the header, remembers the client address it
// carried, then hands the socket to the real node:http / node:http2 server.
import type { EventEmitter } from 'node:events';
import { isIPv4, isIPv6, Server as NetServer, SocketAddress } from 'node:net';
import type { Server, Socket } from 'node:net';

/** The address information a PROXY header carried; `undefined` fields for LOCAL / UNKNOWN. */
export interface ProxyInfo {
  version: 1 | 2;
  command: 'PROXY' | 'LOCAL';
  family: 'TCP4' | 'TCP6' | 'UNKNOWN';
  sourceAddress?: string;
  sourcePort?: number;
  destAddress?: string;
  destPort?: number;
}

/** Longest v1 header, CRLF included: spec §2.1 guarantees a line never exceeds 107 characters. */
export const PROXY_V1_MAX_LENGTH = 107;

/**
 * Longest v2 header accepted, the 16-byte fixed part included. The 16-bit length of §2.2 allows
 * 16 + 65535 bytes. An IPv6 header carrying every standard TLV of §2.2.1–2.2.7 at a realistic
 * size (ALPN, AUTHORITY up to 255, UNIQUE_ID up to 128, SSL with version, CN and cipher) is
 * around 600 bytes, and cloud balancers (AWS NLB, GCP PSC, Azure Private Link) add one short TLV.
 * 536 bytes (the minimum IPv4 MSS) would refuse such a legitimate header, so 4 KiB: ample for
 * real senders while bounding what a connection can make us buffer before proving anything.
 */
export const PROXY_V2_MAX_LENGTH = 4096;

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
// §2.2: the 12-byte signature "\r\n\r\n\0\r\nQUIT\n", chosen so that it can never be the start
// of a v1 header or of any common protocol.
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_FIXED_LENGTH = 16;
const CR = 0x0d;
const LF = 0x0a;
// §2.1: ports are decimal 0..65535; a leading zero would let one port have many spellings.
const PORT_TEXT = /^(?:0|[1-9]\d{0,4})$/;

/** Parses a PROXY v1 or v2 header at the start of `buf`: { info, length } when complete, 'incomplete' when more bytes are needed, or an Error for an invalid header. */
export function parseProxyHeader(buf: Buffer): { info: ProxyInfo; length: number } | 'incomplete' | Error {
  if (buf.length === 0) return 'incomplete';
  // Decide on the bytes present so far: a connection that is not speaking the PROXY protocol
  // (a TLS ClientHello, "GET /") is rejected at its first byte instead of at the timeout.
  if (buf[0] === V2_SIGNATURE[0]) {
    const n = Math.min(buf.length, V2_SIGNATURE.length);
    if (!buf.subarray(0, n).equals(V2_SIGNATURE.subarray(0, n))) return new Error('not a PROXY protocol header');
    return buf.length < V2_FIXED_LENGTH ? 'incomplete' : parseV2(buf);
  }
  const n = Math.min(buf.length, V1_PREFIX.length);
  if (!buf.subarray(0, n).equals(V1_PREFIX.subarray(0, n))) return new Error('not a PROXY protocol header');
  return parseV1(buf);
}

function parseV1(buf: Buffer): { info: ProxyInfo; length: number } | 'incomplete' | Error {
  // §2.1: the line ends with CRLF and is at most 107 bytes; the receiver waits for the CRLF
  // before decoding. A bare CR or LF cannot be part of a valid line, so it fails at once rather
  // than at the timeout.
  const scan = Math.min(buf.length, PROXY_V1_MAX_LENGTH);
  let end = -1;
  for (let i = 0; i < scan; i++) {
    if (buf[i] === LF) return new Error('PROXY v1 line has a LF without CR');
    if (buf[i] === CR) {
      if (i + 1 >= buf.length) break;
      if (buf[i + 1] !== LF) return new Error('PROXY v1 line has a CR without LF');
      if (i + 2 > PROXY_V1_MAX_LENGTH) break;
      end = i;
      break;
    }
  }
  if (end < 0) return buf.length >= PROXY_V1_MAX_LENGTH ? new Error('PROXY v1 header longer than 107 bytes') : 'incomplete';
  const length = end + 2;
  const fields = buf.toString('latin1', 0, end).split(' ');
  const proto = fields[1];
  // §2.1: after "UNKNOWN" the receiver must ignore everything up to the CRLF and use the real
  // connection endpoints.
  if (proto === 'UNKNOWN') return { info: { version: 1, command: 'PROXY', family: 'UNKNOWN' }, length };
  if (proto !== 'TCP4' && proto !== 'TCP6') return new Error(`PROXY v1 protocol "${proto}" is not TCP4, TCP6 or UNKNOWN`);
  // §2.1: exactly one space between fields, so exactly six of them.
  if (fields.length !== 6) return new Error('PROXY v1 line does not have 6 single-space separated fields');
  const [, , src, dst, sport, dport] = fields;
  const source = v1Address(proto, src);
  const dest = v1Address(proto, dst);
  if (source === undefined) return new Error(`PROXY v1 source address "${src}" is not ${proto === 'TCP4' ? 'IPv4' : 'IPv6'}`);
  if (dest === undefined) return new Error(`PROXY v1 destination address "${dst}" is not ${proto === 'TCP4' ? 'IPv4' : 'IPv6'}`);
  const sourcePort = v1Port(sport);
  const destPort = v1Port(dport);
  if (sourcePort === undefined) return new Error(`PROXY v1 source port "${sport}" is invalid`);
  if (destPort === undefined) return new Error(`PROXY v1 destination port "${dport}" is invalid`);
  return { info: { version: 1, command: 'PROXY', family: proto, sourceAddress: source, sourcePort, destAddress: dest, destPort }, length };
}

/** The canonical text of a v1 address of the declared family, or undefined. */
function v1Address(proto: 'TCP4' | 'TCP6', text: string): string | undefined {
  if (proto === 'TCP4') return isIPv4(text) ? text : undefined;
  // A zone id ("fe80::1%eth0") names an interface of the sender's host, meaningless here;
  // net.isIPv6 would accept it.
  if (text.includes('%') || !isIPv6(text)) return undefined;
  // One spelling per address ("2001:DB8:0::1" → "2001:db8::1"), as node reports remoteAddress,
  // so ip-hash, trustedProxies and logs see the same client the same way.
  return new SocketAddress({ address: text, family: 'ipv6' }).address;
}

function v1Port(text: string): number | undefined {
  if (!PORT_TEXT.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
}

function parseV2(buf: Buffer): { info: ProxyInfo; length: number } | 'incomplete' | Error {
  // §2.2 byte 13: high nibble is the version (must be 2), low nibble the command; "the
  // receiver must drop connections presenting unexpected values".
  const verCmd = buf[12];
  if (verCmd >> 4 !== 2) return new Error(`PROXY v2 version ${verCmd >> 4} is not 2`);
  const command = verCmd & 0x0f;
  if (command > 1) return new Error(`PROXY v2 command ${command} is neither LOCAL nor PROXY`);
  const fam = buf[13];
  const length = V2_FIXED_LENGTH + buf.readUInt16BE(14);
  if (length > PROXY_V2_MAX_LENGTH) return new Error(`PROXY v2 header of ${length} bytes exceeds ${PROXY_V2_MAX_LENGTH}`);
  if (command === 0) {
    // §2.2 LOCAL: the balancer speaking for itself (health checks). The receiver must accept
    // it, use the real endpoints and skip the whole block, family included.
    if (buf.length < length) return 'incomplete';
    return { info: { version: 2, command: 'LOCAL', family: 'UNKNOWN' }, length };
  }
  // §2.2 byte 14: address family (high nibble) and transport (low nibble). Only the listed
  // combinations exist; others "must be rejected as invalid".
  let addrLength: number;
  switch (fam) {
    case 0x00: // UNSPEC: §2.2 says the receiver may accept and use the real endpoints.
      if (buf.length < length) return 'incomplete';
      return { info: { version: 2, command: 'PROXY', family: 'UNKNOWN' }, length };
    case 0x11: // TCP over IPv4
      addrLength = 12;
      break;
    case 0x21: // TCP over IPv6
      addrLength = 36;
      break;
    case 0x31: // UNIX stream: a path on the sender's host, no client address for us.
      addrLength = 216;
      break;
    case 0x12:
    case 0x22:
    case 0x32:
      // A datagram's endpoints are not this TCP connection's; trusting them would be a guess.
      return new Error('PROXY v2 datagram transport on a stream listener');
    default:
      return new Error(`PROXY v2 family/transport 0x${fam.toString(16).padStart(2, '0')} is not defined`);
  }
  if (length - V2_FIXED_LENGTH < addrLength) return new Error(`PROXY v2 length ${length - V2_FIXED_LENGTH} is shorter than its ${addrLength}-byte address block`);
  if (buf.length < length) return 'incomplete';
  // §2.2: TLVs follow the address block up to `len`. Their content is not used, but each must
  // fit inside the header: a TLV that overruns it means the sender and we disagree on framing.
  for (let pos = V2_FIXED_LENGTH + addrLength; pos < length; ) {
    if (pos + 3 > length) return new Error('PROXY v2 TLV header truncated');
    pos += 3 + buf.readUInt16BE(pos + 1);
    if (pos > length) return new Error('PROXY v2 TLV runs past the header');
  }
  const a = V2_FIXED_LENGTH;
  if (fam === 0x11) {
    return {
      info: {
        version: 2,
        command: 'PROXY',
        family: 'TCP4',
        sourceAddress: `${buf[a]}.${buf[a + 1]}.${buf[a + 2]}.${buf[a + 3]}`,
        destAddress: `${buf[a + 4]}.${buf[a + 5]}.${buf[a + 6]}.${buf[a + 7]}`,
        sourcePort: buf.readUInt16BE(a + 8),
        destPort: buf.readUInt16BE(a + 10),
      },
      length,
    };
  }
  if (fam === 0x21) {
    return {
      info: {
        version: 2,
        command: 'PROXY',
        family: 'TCP6',
        sourceAddress: ipv6Text(buf, a),
        destAddress: ipv6Text(buf, a + 16),
        sourcePort: buf.readUInt16BE(a + 32),
        destPort: buf.readUInt16BE(a + 34),
      },
      length,
    };
  }
  return { info: { version: 2, command: 'PROXY', family: 'UNKNOWN' }, length };
}

/** RFC 5952 text of the 16-byte address at `at` (inet_ntop, as node's remoteAddress; mapped IPv4 dotted). */
function ipv6Text(buf: Buffer, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(buf.readUInt16BE(at + i).toString(16));
  return new SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address;
}

// What the header said, keyed by the raw accepted socket. A WeakMap so nothing outlives the
// socket and nothing is added to node's objects.
const recorded = new WeakMap<object, ProxyInfo>();

/**
 * Returns a net.Server that accepts raw TCP for `target` (a node:http Server or node:http2 secure server):
 * reads the PROXY header within `timeout` ms, records it for the socket, unshifts any bytes after the header
 * and hands the socket to target.emit('connection', socket). A connection without a valid header (or too slow)
 * is destroyed, and `onReject(reason, remote)` is called.
 */
export function proxyProtocolFront(target: EventEmitter, options: { timeout: number; onReject?: (reason: string, remote: string) => void }): Server {
  // The front accepts the sockets, so it must create them as the target would have: node:http
  // wants allowHalfOpen (it decides itself when a half-closed client is done) and noDelay.
  // net.Server keeps its constructor options as (untyped) own properties.
  const t = (target instanceof NetServer ? target : {}) as AcceptOptions;
  const front = new ProxyProtocolServer(
    {
      allowHalfOpen: t.allowHalfOpen ?? false,
      noDelay: t.noDelay ?? true,
      keepAlive: t.keepAlive ?? false,
      keepAliveInitialDelay: t.keepAliveInitialDelay ?? 0,
      highWaterMark: t.highWaterMark,
    },
    target,
    options,
  );
  // node:http starts its connection list (headersTimeout checks, closeIdleConnections,
  // closeAllConnections) on its own 'listening'; the target never listens, the front does.
  front.on('listening', () => target.emit('listening'));
  return front;
}

/** The per-socket options a net.Server applies to the sockets it accepts. */
interface AcceptOptions {
  allowHalfOpen?: boolean;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
  highWaterMark?: number;
}

/** The front: a net.Server whose close() also ends connections still waiting for their header. */
class ProxyProtocolServer extends NetServer {
  readonly #pending = new Set<Socket>();

  constructor(netOptions: AcceptOptions, target: EventEmitter, options: { timeout: number; onReject?: (reason: string, remote: string) => void }) {
    super(netOptions);
    this.on('connection', (socket: Socket) => accept(socket, target, options, this.#pending));
  }

  // close() waits for every accepted socket to close (handed-off ones included). One that has
  // not finished its header has no request in flight, like an idle keep-alive connection, so
  // shutdown should not wait up to `timeout` for it.
  override close(callback?: (err?: Error) => void): this {
    super.close(callback);
    for (const s of this.#pending) s.destroy();
    return this;
  }
}

function accept(socket: Socket, target: EventEmitter, options: { timeout: number; onReject?: (reason: string, remote: string) => void }, pending: Set<Socket>): void {
  const remote = socket.remoteFamily === 'IPv6' ? `[${socket.remoteAddress}]:${socket.remotePort}` : `${socket.remoteAddress}:${socket.remotePort}`;
  let received: Buffer = Buffer.alloc(0);
  let done = false;

  const finish = (): void => {
    done = true;
    pending.delete(socket);
    clearTimeout(timer);
    socket.off('readable', onReadable);
    socket.off('end', onEnd);
    socket.off('error', onError);
    socket.off('close', finish);
  };
  const reject = (reason: string): void => {
    if (done) return;
    finish();
    // A late error from the destroyed socket must not become an unhandled 'error'.
    socket.on('error', ignore);
    socket.destroy();
    options.onReject?.(reason, remote);
  };
  const onReadable = (): void => {
    // 'readable' + read() rather than 'data': the socket never enters flowing mode, so no byte
    // can be emitted to nobody between the header and the handoff.
    for (let chunk: Buffer | null; !done && (chunk = socket.read() as Buffer | null) !== null; ) {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      const r = parseProxyHeader(received);
      if (r === 'incomplete') continue;
      if (r instanceof Error) return reject(r.message);
      finish();
      recorded.set(socket, r.info);
      // Bytes after the header (a ClientHello or request line sent in the same segment) go
      // back in front of the stream: node:http reads them as data, TLSSocket feeds a wrapped
      // socket's buffered bytes into the handshake before reading the handle.
      if (r.length < received.length) socket.unshift(received.subarray(r.length));
      // node:http attaches its 'error' handler in the 'connection' listener; TLSSocket takes
      // over the handle. This one only keeps an error on the raw socket from crashing the
      // process if the new owner does not listen on it.
      socket.on('error', ignore);
      target.emit('connection', socket);
      return;
    }
  };
  const onEnd = (): void => reject('connection closed before the PROXY header');
  const onError = (err: Error): void => reject(`connection error before the PROXY header: ${(err as NodeJS.ErrnoException).code ?? err.message}`);
  // An absolute deadline, not socket.setTimeout: an idle timer would let a client trickling one
  // byte at a time hold the connection forever.
  const timer = setTimeout(() => reject('PROXY header timeout'), options.timeout);
  pending.add(socket);
  socket.on('readable', onReadable);
  socket.on('end', onEnd);
  socket.on('error', onError);
  // Destroyed by close() (or anything else): nothing to report, only the timer to clear.
  socket.on('close', finish);
}

function ignore(): void {}

/** The address/port the client connected to, as the PROXY header for `socket` carried it (a header passed on keeps both ends); undefined when it had none. */
export function proxiedDestination(socket: Socket): { address: string; port: number } | undefined {
  const info = recordedInfo(socket);
  if (info === undefined || info.destAddress === undefined || info.destPort === undefined) return undefined;
  return { address: info.destAddress, port: info.destPort };
}

/** The client address/port from the PROXY header for a socket — the raw socket or a TLS/HTTP2 socket built on it — or undefined when it had none (or LOCAL). */
export function proxiedAddress(socket: Socket): { address: string; port: number } | undefined {
  const info = recordedInfo(socket);
  if (info === undefined || info.sourceAddress === undefined || info.sourcePort === undefined) return undefined;
  return { address: info.sourceAddress, port: info.sourcePort };
}

/** What the PROXY header said for `socket` or the socket it wraps. */
function recordedInfo(socket: Socket): ProxyInfo | undefined {
  // A TLSSocket keeps the socket it wraps in `_parent` (node's _tls_wrap; the tests pin this).
  // The http2 compat `req.socket` is a Proxy that forwards property reads to the session's
  // TLSSocket, so `_parent` through it is the raw socket too. Node does not let us make the TLS
  // socket inherit remoteAddress: its getter asks the native handle, not the wrapped socket.
  let s: unknown = socket;
  for (let hop = 0; hop < 3 && typeof s === 'object' && s !== null; hop++) {
    const info = recorded.get(s);
    if (info !== undefined) return info;
    try {
      s = (s as { _parent?: unknown })._parent;
    } catch {
      // The http2 proxy throws once its session has let go of the socket.
      return undefined;
    }
  }
  return undefined;
}

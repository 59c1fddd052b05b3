// TLS ClientHellos made by hand (RFC 8446 §4.1.2, as waygate's l4/hello.ts reads them), fully
// decided by a seed: SNI and ALPN as asked, padded to a size (a post-quantum hello is ~1.8 KB,
// the reader's limit 16 KiB), the handshake message split over several records (RFC 8446 §5.1
// allows it). Not a hello a TLS server can answer (its key share is random bytes): it is for the
// routes that echo, and for the peek itself. Also seeded payloads, fast enough for megabytes.

/** The reader's limit (src/l4/hello.ts MAX_HELLO_BYTES): records and headers included. */
export const HELLO_LIMIT = 16 * 1024;
const RECORD_MAX = 16384;

/** `n` bytes from a 32-bit seed (xorshift32): the same bytes for the same seed, at memcpy-like speed. */
export function seededBytes(seed: number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 0x9e3779b9;
  const step = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  let i = 0;
  for (; i + 4 <= n; i += 4) b.writeUInt32LE(step(), i);
  for (; i < n; i++) b[i] = step() & 0xff;
  return b;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function ext(type: number, data: Buffer): Buffer {
  return Buffer.concat([u16(type), u16(data.length), data]);
}

/** How a hello is made. */
export interface HelloSpec {
  /** The server_name; none: no SNI extension. */
  sni?: string;
  alpn?: string[];
  /** The handshake message's size at least (padding extension), in bytes. */
  size?: number;
  /** Records to split the handshake message over (1 = one record, as OpenSSL sends it). */
  records?: number;
}

/** The bytes of a ClientHello as the client sends them: record headers and the handshake message. */
export function clientHello(seed: number, spec: HelloSpec): Buffer {
  const rand = seededBytes(seed, 64 + 32);
  const exts: Buffer[] = [];
  if (spec.sni !== undefined) {
    const name = Buffer.from(spec.sni, 'latin1');
    exts.push(ext(0, Buffer.concat([u16(name.length + 3), Buffer.from([0]), u16(name.length), name])));
  }
  if (spec.alpn !== undefined && spec.alpn.length > 0) {
    const list = Buffer.concat(spec.alpn.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, 'latin1')])));
    exts.push(ext(16, Buffer.concat([u16(list.length), list])));
  }
  exts.push(ext(43, Buffer.from([4, 0x03, 0x04, 0x03, 0x03]))); // supported_versions: TLS 1.3, 1.2
  exts.push(ext(51, Buffer.concat([u16(36), u16(29), u16(32), rand.subarray(64, 96)]))); // key_share: x25519
  const fixed = Buffer.concat([
    Buffer.from([0x03, 0x03]), rand.subarray(0, 32), // legacy_version, random
    Buffer.from([32]), rand.subarray(32, 64), // legacy_session_id
    u16(8), Buffer.from([0x13, 0x01, 0x13, 0x02, 0x13, 0x03, 0xc0, 0x2f]), // cipher_suites
    Buffer.from([1, 0]), // compression: null
  ]);
  let extBytes = Buffer.concat(exts);
  const bare = 4 + fixed.length + 2 + extBytes.length;
  if (spec.size !== undefined && spec.size > bare) {
    // padding (RFC 7685): zeros; its own 4-byte header counts.
    const pad = Math.max(0, spec.size - bare - 4);
    extBytes = Buffer.concat([extBytes, ext(21, Buffer.alloc(pad))]);
  }
  const body = Buffer.concat([fixed, u16(extBytes.length), extBytes]);
  const message = Buffer.concat([Buffer.from([1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
  // Split points, spread by the seed; every record non-empty and at most 2^14.
  const records = Math.max(1, Math.min(spec.records ?? 1, message.length));
  const cuts = new Set<number>();
  for (let i = 1; i < records; i++) cuts.add(1 + (rand.readUInt32LE((i * 4) % 60) % (message.length - 1)));
  for (let at = RECORD_MAX; at < message.length; at += RECORD_MAX) cuts.add(at);
  const points = [0, ...[...cuts].sort((a, b) => a - b), message.length];
  const out: Buffer[] = [];
  for (let i = 0; i + 1 < points.length; i++) {
    const part = message.subarray(points[i], points[i + 1]);
    if (part.length === 0) continue;
    out.push(Buffer.from([0x16, 0x03, 0x01]), u16(part.length), part);
  }
  return Buffer.concat(out);
}

/** The pieces a buffer is written in: `n` pieces at split points from `seed`, or one byte each (`'bytes'`). */
export function piecesOf(buf: Buffer, n: number | 'bytes', seed: number): Buffer[] {
  if (n === 'bytes') return Array.from({ length: buf.length }, (_, i) => buf.subarray(i, i + 1));
  if (n <= 1 || buf.length <= 1) return [buf];
  const r = seededBytes(seed, n * 4);
  const cuts = [...new Set(Array.from({ length: n - 1 }, (_, i) => 1 + (r.readUInt32LE(i * 4) % (buf.length - 1))))].sort((a, b) => a - b);
  const points = [0, ...cuts, buf.length];
  return points.slice(0, -1).map((p, i) => buf.subarray(p, points[i + 1]));
}

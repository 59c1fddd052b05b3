// PROXY protocol v1/v2: the parser against a table of valid, invalid and truncated headers, and
// proxyProtocolFront with real sockets in front of node:http, node:https and node:http2 (h2 and
// HTTP/1.1 over the allowHTTP1 fallback).
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import type { IncomingMessage, RequestListener, Server as HttpServer, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect as h2connect, createSecureServer } from 'node:http2';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { connect as netConnect } from 'node:net';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseProxyHeader, PROXY_V2_MAX_LENGTH, proxiedAddress, proxyProtocolFront } from '../../src/server/proxy-protocol.ts';
import type { ProxyInfo } from '../../src/server/proxy-protocol.ts';
import { makeCa, makeLeaf } from './tls/fixtures.ts';
import type { Pair } from './tls/fixtures.ts';

// ---------------------------------------------------------------------------------------------
// Header builders

const SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

function v1(line: string): Buffer {
  return Buffer.from(line, 'latin1');
}

function ipv4Bytes(a: string): number[] {
  return a.split('.').map(Number);
}

function ipv6Bytes(a: string): number[] {
  // Only the forms used below: full groups, or one "::".
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.flatMap((g) => {
    const n = parseInt(g, 16);
    return [n >> 8, n & 0xff];
  });
}

interface V2Options {
  verCmd?: number;
  fam?: number;
  addr?: number[];
  tlvs?: Buffer;
  /** Overrides the length field. */
  len?: number;
}

function v2(o: V2Options): Buffer {
  const body = Buffer.concat([Buffer.from(o.addr ?? []), o.tlvs ?? Buffer.alloc(0)]);
  const head = Buffer.alloc(4);
  head[0] = o.verCmd ?? 0x21;
  head[1] = o.fam ?? 0x11;
  head.writeUInt16BE(o.len ?? body.length, 2);
  return Buffer.concat([SIG, head, body]);
}

function v2Inet4(src: string, dst: string, sport: number, dport: number, tlvs?: Buffer, verCmd = 0x21): Buffer {
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(sport, 0);
  ports.writeUInt16BE(dport, 2);
  return v2({ verCmd, fam: 0x11, addr: [...ipv4Bytes(src), ...ipv4Bytes(dst), ...ports], tlvs });
}

function v2Inet6(src: string, dst: string, sport: number, dport: number, tlvs?: Buffer): Buffer {
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(sport, 0);
  ports.writeUInt16BE(dport, 2);
  return v2({ fam: 0x21, addr: [...ipv6Bytes(src), ...ipv6Bytes(dst), ...ports], tlvs });
}

function tlv(type: number, value: Buffer | string): Buffer {
  const v = typeof value === 'string' ? Buffer.from(value) : value;
  const h = Buffer.alloc(3);
  h[0] = type;
  h.writeUInt16BE(v.length, 1);
  return Buffer.concat([h, v]);
}

// ---------------------------------------------------------------------------------------------
// Parser

const TCP4_INFO: ProxyInfo = { version: 1, command: 'PROXY', family: 'TCP4', sourceAddress: '192.0.2.10', sourcePort: 56324, destAddress: '198.51.100.1', destPort: 443 };

describe('parseProxyHeader: valid headers', () => {
  const TLVS = Buffer.concat([tlv(0x01, 'h2'), tlv(0x02, 'example.com'), tlv(0x05, Buffer.alloc(16, 7)), tlv(0x04, Buffer.alloc(0)), tlv(0xea, Buffer.alloc(40, 1))]);
  const cases: Array<[string, Buffer, ProxyInfo]> = [
    ['v1 TCP4', v1('PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r\n'), TCP4_INFO],
    [
      'v1 TCP6, address canonicalised',
      v1('PROXY TCP6 2001:DB8:0:0::1 2001:db8::ff 0 65535\r\n'),
      { version: 1, command: 'PROXY', family: 'TCP6', sourceAddress: '2001:db8::1', sourcePort: 0, destAddress: '2001:db8::ff', destPort: 65535 },
    ],
    [
      'v1 TCP6 with an IPv4-mapped address',
      v1('PROXY TCP6 ::ffff:192.0.2.7 ::1 1 2\r\n'),
      { version: 1, command: 'PROXY', family: 'TCP6', sourceAddress: '::ffff:192.0.2.7', sourcePort: 1, destAddress: '::1', destPort: 2 },
    ],
    ['v1 UNKNOWN', v1('PROXY UNKNOWN\r\n'), { version: 1, command: 'PROXY', family: 'UNKNOWN' }],
    ['v1 UNKNOWN with ignored addresses', v1('PROXY UNKNOWN ffff::1 ffff::2 65535 65535\r\n'), { version: 1, command: 'PROXY', family: 'UNKNOWN' }],
    ['v1 of exactly 107 bytes', v1(`PROXY UNKNOWN ${'x'.repeat(107 - 16)}\r\n`), { version: 1, command: 'PROXY', family: 'UNKNOWN' }],
    ['v2 PROXY IPv4', v2Inet4('192.0.2.10', '198.51.100.1', 56324, 443), { ...TCP4_INFO, version: 2 }],
    [
      'v2 PROXY IPv6',
      v2Inet6('2001:db8:0:0:0:0:0:1', '2001:db8::2', 65535, 0),
      { version: 2, command: 'PROXY', family: 'TCP6', sourceAddress: '2001:db8::1', sourcePort: 65535, destAddress: '2001:db8::2', destPort: 0 },
    ],
    [
      'v2 PROXY IPv6, IPv4-mapped source',
      v2Inet6('::ffff:c000:0207', '::1', 80, 81),
      { version: 2, command: 'PROXY', family: 'TCP6', sourceAddress: '::ffff:192.0.2.7', sourcePort: 80, destAddress: '::1', destPort: 81 },
    ],
    ['v2 LOCAL without address', v2({ verCmd: 0x20, fam: 0x00 }), { version: 2, command: 'LOCAL', family: 'UNKNOWN' }],
    // §2.2: for LOCAL the family and address block are ignored, even an undefined family.
    ['v2 LOCAL with an address block', v2({ verCmd: 0x20, fam: 0x77, addr: Array<number>(12).fill(9) }), { version: 2, command: 'LOCAL', family: 'UNKNOWN' }],
    ['v2 PROXY IPv4 with TLVs', v2Inet4('192.0.2.10', '198.51.100.1', 56324, 443, TLVS), { ...TCP4_INFO, version: 2 }],
    ['v2 PROXY UNSPEC', v2({ fam: 0x00, addr: [1, 2, 3] }), { version: 2, command: 'PROXY', family: 'UNKNOWN' }],
    ['v2 PROXY UNIX stream', v2({ fam: 0x31, addr: Array<number>(216).fill(0x41) }), { version: 2, command: 'PROXY', family: 'UNKNOWN' }],
  ];

  it.each(cases)('%s', (_name, header, info) => {
    const payload = Buffer.from('GET / HTTP/1.1\r\n');
    const r = parseProxyHeader(Buffer.concat([header, payload]));
    expect(r).toEqual({ info, length: header.length });
  });

  it.each(cases)('%s: every truncation is incomplete', (_name, header) => {
    for (let n = 0; n < header.length; n++) expect(parseProxyHeader(header.subarray(0, n)), `first ${n} bytes`).toBe('incomplete');
  });

  it('accepts a v2 header of exactly the cap and refuses one byte more', () => {
    const fill = (n: number): Buffer => tlv(0xe0, Buffer.alloc(n - 16 - 12 - 3));
    const atCap = v2Inet4('192.0.2.1', '192.0.2.2', 1, 2, fill(PROXY_V2_MAX_LENGTH));
    expect(atCap.length).toBe(PROXY_V2_MAX_LENGTH);
    expect(parseProxyHeader(atCap)).toMatchObject({ length: PROXY_V2_MAX_LENGTH });
    const over = v2Inet4('192.0.2.1', '192.0.2.2', 1, 2, fill(PROXY_V2_MAX_LENGTH + 1));
    // Refused from the fixed 16 bytes alone, without waiting for the rest.
    expect(parseProxyHeader(over.subarray(0, 16))).toBeInstanceOf(Error);
  });
});

describe('parseProxyHeader: invalid headers', () => {
  const badSig = Buffer.from(v2Inet4('192.0.2.1', '192.0.2.2', 1, 2));
  badSig[7] = 0x52;
  const cases: Array<[string, Buffer, RegExp]> = [
    ['plain HTTP', v1('GET / HTTP/1.1\r\nhost: x\r\n\r\n'), /not a PROXY/],
    ['a TLS ClientHello', Buffer.from([0x16, 0x03, 0x01, 0x00, 0xf1]), /not a PROXY/],
    ['v1 misspelled', v1('PROXX TCP4 1.2.3.4 5.6.7.8 1 2\r\n'), /not a PROXY/],
    ['v1 lower case', v1('proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n'), /not a PROXY/],
    ['v2 bad signature', badSig, /not a PROXY/],
    ['v2 signature cut by a different byte', Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x01]), /not a PROXY/],
    ['v1 unknown protocol', v1('PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n'), /protocol/],
    ['v1 empty protocol', v1('PROXY \r\n'), /protocol/],
    ['v1 TCP4 with an IPv6 source', v1('PROXY TCP4 ::1 5.6.7.8 1 2\r\n'), /source address/],
    ['v1 TCP4 octet over 255', v1('PROXY TCP4 1.2.3.4 5.6.7.256 1 2\r\n'), /destination address/],
    ['v1 TCP4 leading zero octet', v1('PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n'), /source address/],
    ['v1 TCP4 hostname', v1('PROXY TCP4 localhost 5.6.7.8 1 2\r\n'), /source address/],
    ['v1 TCP6 with an IPv4 source', v1('PROXY TCP6 1.2.3.4 ::1 1 2\r\n'), /source address/],
    ['v1 TCP6 with a zone id', v1('PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n'), /source address/],
    ['v1 TCP6 malformed', v1('PROXY TCP6 1::2::3 ::1 1 2\r\n'), /source address/],
    ['v1 source port over 65535', v1('PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n'), /source port/],
    ['v1 destination port over 65535', v1('PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n'), /destination port/],
    ['v1 port with a leading zero', v1('PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n'), /source port/],
    ['v1 negative port', v1('PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n'), /source port/],
    ['v1 six-digit port', v1('PROXY TCP4 1.2.3.4 5.6.7.8 1 100000\r\n'), /destination port/],
    ['v1 missing field', v1('PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n'), /6 single-space/],
    ['v1 extra field', v1('PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n'), /6 single-space/],
    ['v1 double space', v1('PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n'), /6 single-space/],
    ['v1 trailing space', v1('PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n'), /6 single-space/],
    ['v1 bare LF', v1('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n'), /LF without CR/],
    ['v1 CR not followed by LF', v1('PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n'), /CR without LF/],
    ['v1 107 bytes without CRLF', v1(`PROXY UNKNOWN ${'x'.repeat(93)}`), /longer than 107/],
    ['v1 CRLF at bytes 107-108', v1(`PROXY UNKNOWN ${'x'.repeat(92)}\r\n`), /longer than 107/],
    ['v2 version 1', v2({ verCmd: 0x11, fam: 0x11, addr: Array<number>(12).fill(1) }), /version 1 is not 2/],
    ['v2 version 3', v2({ verCmd: 0x31, fam: 0x11, addr: Array<number>(12).fill(1) }), /version 3 is not 2/],
    ['v2 command 2', v2({ verCmd: 0x22, fam: 0x11, addr: Array<number>(12).fill(1) }), /command 2/],
    ['v2 undefined family', v2({ fam: 0x41, addr: Array<number>(12).fill(1) }), /0x41 is not defined/],
    ['v2 undefined transport', v2({ fam: 0x13, addr: Array<number>(12).fill(1) }), /0x13 is not defined/],
    ['v2 UDP over IPv4', v2({ fam: 0x12, addr: Array<number>(12).fill(1) }), /datagram/],
    ['v2 IPv4 length shorter than the address block', v2({ fam: 0x11, addr: Array<number>(11).fill(1) }), /shorter than its 12-byte/],
    ['v2 IPv6 length shorter than the address block', v2({ fam: 0x21, addr: Array<number>(35).fill(1) }), /shorter than its 36-byte/],
    ['v2 TLV running past the header', v2Inet4('1.2.3.4', '5.6.7.8', 1, 2, Buffer.from([0x01, 0x00, 0x05, 0x61, 0x62])), /runs past/],
    ['v2 TLV header truncated', v2Inet4('1.2.3.4', '5.6.7.8', 1, 2, Buffer.from([0x01, 0x00])), /TLV header truncated/],
    ['v2 declared length over the cap', v2({ fam: 0x11, len: 0xffff }).subarray(0, 16), /exceeds/],
  ];

  it.each(cases)('%s', (_name, header, message) => {
    const r = parseProxyHeader(header);
    expect(r).toBeInstanceOf(Error);
    expect((r as Error).message).toMatch(message);
  });
});

// ---------------------------------------------------------------------------------------------
// Front, with real sockets

const TIMEOUT = 400;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Seen {
  proxied: { address: string; port: number } | null;
  peer: string | undefined;
  version: string;
  path: string;
}

/** A handler that answers with what it saw about the connection. */
function reporter(requests: Seen[]): (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => void {
  return (req, res) => {
    const seen: Seen = { proxied: proxiedAddress(req.socket) ?? null, peer: req.socket.remoteAddress, version: req.httpVersion, path: req.url ?? '' };
    requests.push(seen);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(seen));
  };
}

interface Front {
  port: number;
  front: NetServer;
  requests: Seen[];
  rejects: Array<{ reason: string; remote: string }>;
}

async function startFront(target: NetServer, requests: Seen[]): Promise<Front> {
  const rejects: Front['rejects'] = [];
  const front = proxyProtocolFront(target, { timeout: TIMEOUT, onReject: (reason, remote) => rejects.push({ reason, remote }) });
  front.listen(0, '127.0.0.1');
  await once(front, 'listening');
  cleanups.push(async () => {
    if ('closeAllConnections' in target && typeof target.closeAllConnections === 'function') target.closeAllConnections();
    const closed = front.listening ? once(front, 'close') : Promise.resolve();
    if (front.listening) front.close();
    for (const s of liveSockets.splice(0)) s.destroy();
    await closed;
  });
  return { port: (front.address() as AddressInfo).port, front, requests, rejects };
}

const liveSockets: Socket[] = [];

function rawConnect(port: number): Promise<Socket> {
  const s = netConnect(port, '127.0.0.1');
  liveSockets.push(s);
  return once(s, 'connect').then(() => s);
}

/** Reads from `s` until `done(text)` or the socket ends; resolves with the text and whether it closed. */
function readUntil(s: Socket | TLSSocket, done: (text: string) => boolean): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    let text = '';
    const finish = (closed: boolean): void => {
      s.off('data', onData);
      s.off('close', onClose);
      resolve({ text, closed });
    };
    const onData = (d: Buffer): void => {
      text += d.toString('latin1');
      if (done(text)) finish(false);
    };
    const onClose = (): void => finish(true);
    s.on('data', onData);
    s.on('close', onClose);
    s.on('error', () => {});
  });
}

/** True once `text` holds one complete HTTP/1.1 response per expected count (JSON bodies end in "}"). */
function responses(n: number): (text: string) => boolean {
  return (text) => text.split('HTTP/1.1 200').length - 1 >= n && text.endsWith('}');
}

function bodyOf(text: string): Seen {
  return JSON.parse(text.slice(text.lastIndexOf('\r\n\r\n') + 4)) as Seen;
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function httpTarget(requests: Seen[], opts: { headersTimeout?: number } = {}): HttpServer {
  const s = createHttpServer(
    { headersTimeout: opts.headersTimeout ?? 10_000, requestTimeout: 0, connectionsCheckingInterval: 50, keepAliveTimeout: 10_000 },
    reporter(requests) as RequestListener,
  );
  cleanups.push(() => {
    s.close();
  });
  return s;
}

const GET = 'GET /x HTTP/1.1\r\nhost: example.com\r\n\r\n';

describe('proxyProtocolFront + node:http', () => {
  it('v1: the request sent in the same write as the header is served with the header source', async () => {
    const requests: Seen[] = [];
    const f = await startFront(httpTarget(requests), requests);
    const s = await rawConnect(f.port);
    s.write(`PROXY TCP4 203.0.113.9 198.51.100.1 40001 8080\r\n${GET}`);
    const { text } = await readUntil(s, responses(1));
    expect(text).toMatch(/^HTTP\/1.1 200/);
    expect(bodyOf(text)).toEqual({ proxied: { address: '203.0.113.9', port: 40001 }, peer: '127.0.0.1', version: '1.1', path: '/x' });
    expect(f.rejects).toEqual([]);
  });

  it('v2: an IPv6 source from a binary header with TLVs', async () => {
    const requests: Seen[] = [];
    const f = await startFront(httpTarget(requests), requests);
    const s = await rawConnect(f.port);
    s.write(Buffer.concat([v2Inet6('2001:db8::7', '2001:db8::1', 50000, 443, tlv(0x05, Buffer.alloc(8, 3))), Buffer.from(GET)]));
    const { text } = await readUntil(s, responses(1));
    expect(bodyOf(text).proxied).toEqual({ address: '2001:db8::7', port: 50000 });
  });

  it('keep-alive: both requests on one connection see the header source', async () => {
    const requests: Seen[] = [];
    const f = await startFront(httpTarget(requests), requests);
    const s = await rawConnect(f.port);
    s.write(v2Inet4('192.0.2.33', '192.0.2.1', 12345, 80));
    s.write(GET);
    const first = await readUntil(s, responses(1));
    s.write(GET.replace('/x', '/y'));
    const second = await readUntil(s, responses(1));
    expect(first.closed).toBe(false);
    expect(second.closed).toBe(false);
    expect(requests.map((r) => [r.path, r.proxied])).toEqual([
      ['/x', { address: '192.0.2.33', port: 12345 }],
      ['/y', { address: '192.0.2.33', port: 12345 }],
    ]);
  });

  it('a header trickled one byte at a time still parses, and the request after it is served', async () => {
    const requests: Seen[] = [];
    const f = await startFront(httpTarget(requests), requests);
    const s = await rawConnect(f.port);
    const reply = readUntil(s, responses(1));
    for (const byte of v1('PROXY TCP6 2001:db8::5 2001:db8::1 7 8\r\n')) {
      s.write(Buffer.from([byte]));
      await delay(2);
    }
    s.write(GET);
    const { text } = await reply;
    expect(bodyOf(text).proxied).toEqual({ address: '2001:db8::5', port: 7 });
    expect(f.rejects).toEqual([]);
  });

  it('LOCAL (a balancer health check) is served with the real peer, no proxied address', async () => {
    const requests: Seen[] = [];
    const f = await startFront(httpTarget(requests), requests);
    const s = await rawConnect(f.port);
    s.write(Buffer.concat([v2({ verCmd: 0x20, fam: 0x00 }), Buffer.from(GET)]));
    const { text } = await readUntil(s, responses(1));
    expect(bodyOf(text)).toMatchObject({ proxied: null, peer: '127.0.0.1' });
  });

  it('v1 UNKNOWN is served with no proxied address', async () => {
    const requests: Seen[] = [];
    const f = await startFront(httpTarget(requests), requests);
    const s = await rawConnect(f.port);
    s.write(`PROXY UNKNOWN\r\n${GET}`);
    const { text } = await readUntil(s, responses(1));
    expect(bodyOf(text)).toMatchObject({ proxied: null, peer: '127.0.0.1' });
  });

  it('a request without a header is destroyed at once; the http server never sees it', async () => {
    const requests: Seen[] = [];
    const target = httpTarget(requests);
    let connections = 0;
    target.on('connection', () => connections++);
    const f = await startFront(target, requests);
    const s = await rawConnect(f.port);
    const local = s.localPort;
    const started = Date.now();
    s.write(GET);
    const { text, closed } = await readUntil(s, () => false);
    expect(closed).toBe(true);
    expect(text).toBe('');
    expect(Date.now() - started).toBeLessThan(TIMEOUT);
    expect(requests).toEqual([]);
    expect(connections).toBe(0);
    expect(f.rejects).toEqual([{ reason: 'not a PROXY protocol header', remote: `127.0.0.1:${local}` }]);
  });

  it('an invalid header is destroyed and reported', async () => {
    const requests: Seen[] = [];
    const f = await startFront(httpTarget(requests), requests);
    const s = await rawConnect(f.port);
    s.write(`PROXY TCP4 203.0.113.9 198.51.100.1 70000 8080\r\n${GET}`);
    const { closed } = await readUntil(s, () => false);
    expect(closed).toBe(true);
    expect(requests).toEqual([]);
    expect(f.rejects.map((r) => r.reason)).toEqual(['PROXY v1 source port "70000" is invalid']);
  });

  it('a connection that sends nothing is closed after the timeout, not before', async () => {
    const requests: Seen[] = [];
    const f = await startFront(httpTarget(requests), requests);
    const started = Date.now();
    const s = await rawConnect(f.port);
    const { closed } = await readUntil(s, () => false);
    const elapsed = Date.now() - started;
    expect(closed).toBe(true);
    expect(elapsed).toBeGreaterThanOrEqual(TIMEOUT - 20);
    expect(elapsed).toBeLessThan(TIMEOUT + 1000);
    expect(f.rejects.map((r) => r.reason)).toEqual(['PROXY header timeout']);
  });

  it('a header trickled slower than the timeout is cut at the deadline', async () => {
    const requests: Seen[] = [];
    const f = await startFront(httpTarget(requests), requests);
    const s = await rawConnect(f.port);
    const started = Date.now();
    const result = readUntil(s, () => false);
    const header = v1('PROXY TCP4 203.0.113.9 198.51.100.1 40001 8080\r\n');
    for (let i = 0; i < header.length && !s.destroyed; i++) {
      s.write(header.subarray(i, i + 1));
      await delay(TIMEOUT / 10);
    }
    const { closed } = await result;
    expect(closed).toBe(true);
    expect(Date.now() - started).toBeLessThan(TIMEOUT * 3);
    expect(f.rejects.map((r) => r.reason)).toEqual(['PROXY header timeout']);
    expect(requests).toEqual([]);
  });

  it("the http server's own headersTimeout and closeIdleConnections still work after the handoff", async () => {
    const requests: Seen[] = [];
    const target = httpTarget(requests, { headersTimeout: 300 });
    const f = await startFront(target, requests);
    // Slow headers after a valid PROXY header: node:http's headersTimeout must close it.
    const slow = await rawConnect(f.port);
    slow.write(`PROXY TCP4 203.0.113.9 198.51.100.1 40001 8080\r\nGET / HTTP/1.1\r\n`);
    const started = Date.now();
    const r = await readUntil(slow, () => false);
    expect(r.closed).toBe(true);
    expect(r.text).toMatch(/^HTTP\/1.1 408/);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(f.rejects).toEqual([]);
    // An idle keep-alive connection is closed by closeIdleConnections (graceful shutdown).
    const idle = await rawConnect(f.port);
    idle.write(`PROXY TCP4 203.0.113.9 198.51.100.1 40002 8080\r\n${GET}`);
    await readUntil(idle, responses(1));
    const closing = readUntil(idle, () => false);
    target.closeIdleConnections();
    expect((await closing).closed).toBe(true);
  });

  it('front.close() ends connections still waiting for their header at once and waits for handed-off ones', async () => {
    const requests: Seen[] = [];
    const target = httpTarget(requests);
    const f = await startFront(target, requests);
    const waiting = await rawConnect(f.port);
    waiting.write('PROXY TCP4 ');
    const active = await rawConnect(f.port);
    active.write(`PROXY TCP4 203.0.113.9 198.51.100.1 40003 8080\r\n${GET}`);
    await readUntil(active, responses(1));
    const waitingClosed = readUntil(waiting, () => false);
    const activeClosed = readUntil(active, () => false);
    let closed = false;
    const started = Date.now();
    f.front.close(() => (closed = true));
    expect((await waitingClosed).closed).toBe(true);
    expect(Date.now() - started).toBeLessThan(TIMEOUT / 2);
    await delay(50);
    // The keep-alive connection handed to the http server still holds the front open.
    expect(closed).toBe(false);
    target.closeIdleConnections();
    expect((await activeClosed).closed).toBe(true);
    await delay(20);
    expect(closed).toBe(true);
    // Shutdown is not a client's fault.
    expect(f.rejects).toEqual([]);
  });

  it('proxiedAddress is undefined for a connection that did not come through a front', async () => {
    const requests: Seen[] = [];
    const target = httpTarget(requests);
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    const s = await rawConnect((target.address() as AddressInfo).port);
    s.write(GET);
    const { text } = await readUntil(s, responses(1));
    s.destroy();
    expect(bodyOf(text)).toMatchObject({ proxied: null, peer: '127.0.0.1' });
  });
});

// ---------------------------------------------------------------------------------------------
// TLS: node:https and node:http2 (allowHTTP1) behind the front

let ca: Pair;
let leaf: Pair;
beforeAll(async () => {
  ca = await makeCa();
  leaf = await makeLeaf(ca, ['localhost']);
});

/** A net socket that has written `header`, then TLS over it. */
async function tlsAfterHeader(port: number, header: Buffer, alpn: string[]): Promise<TLSSocket> {
  const raw = await rawConnect(port);
  await new Promise<void>((resolve, reject) => raw.write(header, (err) => (err ? reject(err) : resolve())));
  const t = tlsConnect({ socket: raw, servername: 'localhost', ca: ca.cert, ALPNProtocols: alpn });
  t.on('error', () => {});
  await once(t, 'secureConnect');
  return t;
}

/**
 * TLS whose first flight (the ClientHello) goes out in the same write() as `header`, so the
 * front receives them together and must unshift the ClientHello.
 */
async function tlsWithHeaderInSameWrite(port: number, header: Buffer, alpn: string[]): Promise<TLSSocket> {
  const raw = await rawConnect(port);
  let first = true;
  const carrier = new Duplex({
    write(chunk: Buffer, _enc, cb) {
      const out = first ? Buffer.concat([header, chunk]) : chunk;
      first = false;
      raw.write(out, cb);
    },
    read() {
      raw.resume();
    },
    final(cb) {
      raw.end(cb);
    },
  });
  raw.on('data', (d: Buffer) => {
    if (!carrier.push(d)) raw.pause();
  });
  raw.on('end', () => carrier.push(null));
  const t = tlsConnect({ socket: carrier, servername: 'localhost', ca: ca.cert, ALPNProtocols: alpn });
  t.on('error', () => {});
  await once(t, 'secureConnect');
  return t;
}

describe('proxyProtocolFront + TLS', () => {
  it('node:https: PROXY header then TLS; proxiedAddress(req.socket) is the header source', async () => {
    const requests: Seen[] = [];
    const target = createHttpsServer({ cert: leaf.cert, key: leaf.key }, reporter(requests) as RequestListener);
    const f = await startFront(target, requests);
    const t = await tlsAfterHeader(f.port, v1('PROXY TCP4 203.0.113.50 198.51.100.1 33333 8443\r\n'), ['http/1.1']);
    t.write(GET);
    const { text } = await readUntil(t, responses(1));
    t.destroy();
    expect(bodyOf(text)).toMatchObject({ proxied: { address: '203.0.113.50', port: 33333 }, version: '1.1' });
  });

  it('node:https: the ClientHello in the same write as the header reaches the TLS server', async () => {
    const requests: Seen[] = [];
    const target = createHttpsServer({ cert: leaf.cert, key: leaf.key }, reporter(requests) as RequestListener);
    const f = await startFront(target, requests);
    const t = await tlsWithHeaderInSameWrite(f.port, v2Inet4('203.0.113.51', '198.51.100.1', 44444, 8443), ['http/1.1']);
    t.write(GET);
    const { text } = await readUntil(t, responses(1));
    t.destroy();
    expect(bodyOf(text).proxied).toEqual({ address: '203.0.113.51', port: 44444 });
  });

  describe('node:http2 secure server with allowHTTP1', () => {
    async function startH2(requests: Seen[]): Promise<Front> {
      const target = createSecureServer({ allowHTTP1: true, cert: leaf.cert, key: leaf.key }, reporter(requests));
      const sessions = new Set<import('node:http2').ServerHttp2Session>();
      target.on('session', (s) => sessions.add(s));
      cleanups.push(() => {
        for (const s of sessions) s.destroy();
      });
      return startFront(target, requests);
    }

    async function h2Get(t: TLSSocket): Promise<Seen> {
      expect(t.alpnProtocol).toBe('h2');
      const client = h2connect('https://localhost', { createConnection: () => t });
      client.on('error', () => {});
      try {
        const req = client.request({ ':path': '/h2' });
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (d: string) => (body += d));
        await once(req, 'end');
        return JSON.parse(body) as Seen;
      } finally {
        client.destroy();
      }
    }

    it('an h2 request sees the header source', async () => {
      const requests: Seen[] = [];
      const f = await startH2(requests);
      const t = await tlsAfterHeader(f.port, v1('PROXY TCP6 2001:db8::60 2001:db8::1 5060 8443\r\n'), ['h2', 'http/1.1']);
      const seen = await h2Get(t);
      expect(seen).toMatchObject({ proxied: { address: '2001:db8::60', port: 5060 }, version: '2.0', path: '/h2' });
    });

    it('an h2 request whose ClientHello shares the header write sees the header source', async () => {
      const requests: Seen[] = [];
      const f = await startH2(requests);
      const t = await tlsWithHeaderInSameWrite(f.port, v2Inet4('198.18.0.61', '198.51.100.1', 6061, 8443), ['h2']);
      const seen = await h2Get(t);
      expect(seen).toMatchObject({ proxied: { address: '198.18.0.61', port: 6061 }, version: '2.0' });
    });

    it('an HTTP/1.1 request (ALPN fallback) sees the header source', async () => {
      const requests: Seen[] = [];
      const f = await startH2(requests);
      const t = await tlsAfterHeader(f.port, v2Inet4('198.18.0.62', '198.51.100.1', 6062, 8443), ['http/1.1']);
      expect(t.alpnProtocol).toBe('http/1.1');
      t.write(GET);
      const { text } = await readUntil(t, responses(1));
      t.destroy();
      expect(bodyOf(text)).toMatchObject({ proxied: { address: '198.18.0.62', port: 6062 }, version: '1.1' });
    });

    it('a TLS ClientHello without a header never reaches the server', async () => {
      const requests: Seen[] = [];
      const f = await startH2(requests);
      const raw = await rawConnect(f.port);
      const t = tlsConnect({ socket: raw, servername: 'localhost', ca: ca.cert, ALPNProtocols: ['h2'] });
      const failed = await new Promise<boolean>((resolve) => {
        t.once('secureConnect', () => resolve(false));
        t.once('error', () => resolve(true));
        t.once('close', () => resolve(true));
      });
      expect(failed).toBe(true);
      expect(f.rejects.map((r) => r.reason)).toEqual(['not a PROXY protocol header']);
    });
  });
});

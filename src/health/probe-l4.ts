// Active health probes of L4 targets (SPEC §7): `connect` proves a TCP connection opens;
// `send-expect` writes `send` (nothing for a server that speaks first) and reads until the reply
// contains `expect`, over TCP (tcp://) or as one datagram (udp://). Like HAProxy `tcp-check
// send/expect` and nginx `health_check type=... send/expect`. Each probe uses a fresh socket,
// never pooled traffic, and resolves only once that socket is closed.
import { createSocket } from 'node:dgram';
import type { Socket as UdpSocket } from 'node:dgram';
import { lookup } from 'node:dns';
import { isIP, Socket } from 'node:net';
import { proxyHeader } from '../l4/proxy-header.ts';
import type { ProxyVersion } from '../l4/proxy-header.ts';
import type { ProbeResult } from './probe.ts';

/** What one L4 probe does and how it is judged. */
export interface L4ProbeRequest {
  type: 'connect' | 'send-expect';
  /** send-expect: bytes to write (latin1, one byte a character); "" sends nothing. */
  send: string;
  /** send-expect: text the reply must contain (latin1); undefined or "" matches any reply, even none. */
  expect: string | undefined;
  /** TCP: start the connection with the PROXY header of waygate's own connections (v2 LOCAL, v1 UNKNOWN). */
  proxyProtocol: ProxyVersion;
  /** Milliseconds for the whole probe: lookup, connect, send and the matching reply. */
  timeout: number;
}

/** A reply read this far without a match fails: a target streaming garbage cannot make us buffer more. */
export const MAX_REPLY_BYTES = 64 * 1024;
// What a reason shows of a reply: enough to recognise "-ERR unknown command" or a wrong banner.
const SHOWN_CHARS = 64;

/**
 * Probes `origin` ("tcp://host:port" or "udp://host:port") once; resolves (never rejects) once its
 * socket is closed. `signal` aborts the probe at once (reason "aborted").
 */
export function probeL4(origin: string, cfg: L4ProbeRequest, signal?: AbortSignal): Promise<ProbeResult> {
  const target = parseOrigin(origin);
  if (typeof target === 'string') return Promise.resolve({ ok: false, reason: target });
  if (signal?.aborted) return Promise.resolve({ ok: false, reason: 'aborted' });
  if (target.scheme === 'udp') {
    if (cfg.type !== 'send-expect') return Promise.resolve({ ok: false, reason: 'a udp:// target is checked with send-expect' });
    return probeUdp(target.host, target.port, cfg, signal);
  }
  return probeTcp(target.host, target.port, cfg, signal);
}

function parseOrigin(origin: string): { scheme: 'tcp' | 'udp'; host: string; port: number } | string {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return `invalid origin ${JSON.stringify(origin)}`;
  }
  if (url.protocol !== 'tcp:' && url.protocol !== 'udp:') return `unsupported scheme ${url.protocol}`;
  const port = Number(url.port);
  if (url.port === '' || !Number.isInteger(port) || port < 1 || port > 65535 || url.hostname === '') return `invalid origin ${JSON.stringify(origin)}`;
  // URL keeps IPv6 literals bracketed; the socket layer wants them bare.
  return { scheme: url.protocol === 'tcp:' ? 'tcp' : 'udp', host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port };
}

function probeTcp(host: string, port: number, cfg: L4ProbeRequest, signal: AbortSignal | undefined): Promise<ProbeResult> {
  return new Promise<ProbeResult>((resolve) => {
    const started = performance.now();
    const expect = cfg.expect ?? '';
    // connect: until the handshake completes; reply: reading for `expect`; closing: the verdict is
    // known, our FIN is sent and the peer's is awaited (within the deadline).
    let phase: 'connect' | 'reply' | 'closing' = 'connect';
    let verdict: ProbeResult | undefined;
    let received = '';
    let settled = false;
    // Set by the socket's 'close', which node emits once the handle is released; `socket.closed`
    // turns true earlier (before a connect error is even emitted).
    let closed = false;
    const socket = new Socket();

    // Ends the probe: the socket is destroyed (if not closed already) and the result delivered once
    // it has closed, so a settled probe leaves nothing behind.
    const finish = (result: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      if (closed) resolve(result);
      else socket.once('close', () => resolve(result));
    };
    // The verdict is known: close politely (FIN, never a reset) and let the peer close its side;
    // the probe settles on 'close', or at the deadline for a peer that keeps its half open.
    const conclude = (result: ProbeResult): void => {
      if (verdict !== undefined || settled) return;
      verdict = result;
      phase = 'closing';
      socket.end();
    };
    const failReply = (cause: string): ProbeResult => ({ ok: false, reason: `expected ${quote(expect)}, got ${shown(received)}, ${cause}` });
    const onAbort = (): void => finish(verdict ?? { ok: false, reason: 'aborted' });

    const timer = setTimeout(() => {
      if (verdict !== undefined) finish(verdict);
      else if (phase === 'connect') finish({ ok: false, reason: `connect timeout after ${formatMs(cfg.timeout)}` });
      else finish(failReply(`timeout after ${formatMs(cfg.timeout)}`));
    }, cfg.timeout);
    timer.unref();
    signal?.addEventListener('abort', onAbort, { once: true });

    socket.on('connect', () => {
      const ms = Math.round(performance.now() - started);
      phase = 'reply';
      if (cfg.proxyProtocol !== 'off') socket.write(proxyHeader(cfg.proxyProtocol, undefined));
      if (cfg.type === 'connect') return conclude({ ok: true, reason: `connected in ${ms} ms` });
      if (cfg.send !== '') socket.write(Buffer.from(cfg.send, 'latin1'));
      if (expect === '') conclude({ ok: true, reason: `connected in ${ms} ms` });
    });
    socket.on('data', (chunk: Buffer) => {
      // Read in every phase (a banner sent to a connect probe too): unread bytes left in the
      // kernel would turn our close into a reset, and the peer's FIN is only seen after them.
      if (phase !== 'reply') return;
      const before = received.length;
      received += chunk.toString('latin1', 0, Math.min(chunk.length, MAX_REPLY_BYTES - before));
      // A match may straddle segments ("+PO" then "NG\r\n"): search from where it could start.
      if (received.indexOf(expect, Math.max(0, before - expect.length + 1)) >= 0) {
        return conclude({ ok: true, reason: `matched ${quote(expect)} in ${Math.round(performance.now() - started)} ms` });
      }
      if (received.length >= MAX_REPLY_BYTES) conclude(failReply(`no match in the first ${MAX_REPLY_BYTES / 1024} KiB`));
    });
    socket.on('end', () => {
      if (phase === 'reply') conclude(failReply('then the connection closed'));
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? err.message;
      if (verdict !== undefined) finish(verdict);
      else if (phase === 'connect') finish({ ok: false, reason: `connect ${code}` });
      else finish(failReply(`then ${code}`));
    });
    socket.on('close', () => {
      closed = true;
      finish(verdict ?? failReply('then the connection closed'));
    });
    socket.connect({ host, port });
  });
}

function probeUdp(host: string, port: number, cfg: L4ProbeRequest, signal: AbortSignal | undefined): Promise<ProbeResult> {
  return new Promise<ProbeResult>((resolve) => {
    const started = performance.now();
    const expect = cfg.expect ?? '';
    let socket: UdpSocket | undefined;
    let settled = false;

    const finish = (result: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (socket === undefined) return resolve(result);
      try {
        socket.close(() => resolve(result));
      } catch {
        // Already closed (ERR_SOCKET_DGRAM_NOT_RUNNING): nothing is left open.
        resolve(result);
      }
    };
    const onAbort = (): void => finish({ ok: false, reason: 'aborted' });
    const timer = setTimeout(() => finish({ ok: false, reason: `udp timeout after ${formatMs(cfg.timeout)}: no reply` }), cfg.timeout);
    timer.unref();
    signal?.addEventListener('abort', onAbort, { once: true });

    const start = (address: string, family: number): void => {
      if (settled) return;
      const s = createSocket({ type: family === 6 ? 'udp6' : 'udp4' });
      socket = s;
      // A connected socket: only the target's datagrams are delivered, and an ICMP port
      // unreachable for our datagram surfaces as ECONNREFUSED.
      s.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, reason: `udp ${err.code ?? err.message}` }));
      s.on('message', (msg: Buffer) => {
        const text = msg.toString('latin1', 0, Math.min(msg.length, MAX_REPLY_BYTES));
        if (text.includes(expect)) finish({ ok: true, reason: `matched ${quote(expect)} in ${Math.round(performance.now() - started)} ms` });
        else finish({ ok: false, reason: `expected ${quote(expect)}, got ${shown(text)}` });
      });
      s.connect(port, address, () => {
        if (settled) return;
        s.send(Buffer.from(cfg.send, 'latin1'), (err) => {
          if (err) finish({ ok: false, reason: `udp ${(err as NodeJS.ErrnoException).code ?? err.message}` });
        });
      });
    };
    const family = isIP(host);
    if (family !== 0) start(host, family);
    else {
      // The socket's family follows the target's address, so a name is looked up first.
      lookup(host, (err, address, fam) => {
        if (err) finish({ ok: false, reason: `lookup ${err.code ?? err.message}` });
        else start(address, fam);
      });
    }
  });
}

/** "2s" for whole seconds, else "250ms": durations as a user writes them in config. */
function formatMs(ms: number): string {
  return ms >= 1000 && ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** What a reason shows of received text: "nothing", or its start quoted and escaped, with the length when cut. */
function shown(text: string): string {
  if (text === '') return 'nothing';
  if (text.length <= SHOWN_CHARS) return quote(text);
  return `${quote(text.slice(0, SHOWN_CHARS))}… (${text.length} bytes)`;
}

/** Double-quoted, with CR, LF, tab, quote and backslash escaped and other non-printable bytes as \xHH. */
function quote(text: string): string {
  let out = '"';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const ch = text[i]!;
    if (ch === '"' || ch === '\\') out += '\\' + ch;
    else if (ch === '\r') out += '\\r';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (c >= 0x20 && c < 0x7f) out += ch;
    else out += '\\x' + (c & 0xff).toString(16).padStart(2, '0');
  }
  return out + '"';
}

// One active health probe: a GET over a fresh connection, judged by status code only (like
// HAProxy `http-check expect status` and Caddy `expect_status`). A fresh connection (`agent: false`,
// `connection: close`) means a probe proves the target accepts connections now, never rides on a
// pooled socket of proxied traffic, and leaves nothing open once it has settled.
import { request as httpRequest } from 'node:http';
import type { ClientRequest, IncomingMessage, RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';

/** An inclusive range of acceptable status codes, e.g. [200, 399]. */
export type StatusRange = [lo: number, hi: number];

/** What one probe sends and how it is judged. */
export interface ProbeRequest {
  /** Path and optional query, starting with "/". */
  path: string;
  /** Milliseconds for the whole probe: DNS, connect, TLS and response headers. */
  timeout: number;
  /** The response status must fall in one of these inclusive ranges. */
  expectStatus: readonly StatusRange[];
}

/** TLS settings for https:// targets. */
export interface ProbeTls {
  /** Default true: verify the target's certificate. */
  rejectUnauthorized?: boolean;
  /** PEM of the CA(s) that sign the target's certificate (replaces the system roots). */
  ca?: string | Buffer;
  /** SNI and the name the certificate is checked against, when not the origin's host. */
  servername?: string;
  /** Client certificate and key (PEM) for targets that require mutual TLS. */
  cert?: string;
  key?: string;
}

/** The outcome of one probe. */
export interface ProbeResult {
  ok: boolean;
  /** Short and specific, e.g. "status 200", "status 503 not in 200-399", "connect ECONNREFUSED". */
  reason: string;
  /** The response status, when a response arrived. */
  status?: number;
}

/** The user-agent of every probe, so targets can tell probes from traffic in their logs. */
export const PROBE_USER_AGENT = 'waygate-health-check';

// A health endpoint that streams a large body must not cost the gateway more than this per probe;
// past it the connection is cut (the status is already known).
const MAX_BODY_BYTES = 64 * 1024;

/**
 * Probes `origin` ("http://host:port" or "https://…") once; resolves (never rejects) with ok iff
 * the status is in `cfg.expectStatus`, once the connection is closed. `signal` aborts the probe
 * (reason "aborted").
 */
export function probe(origin: string, cfg: ProbeRequest, tls?: ProbeTls, signal?: AbortSignal): Promise<ProbeResult> {
  return new Promise<ProbeResult>((resolve) => {
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      resolve({ ok: false, reason: `invalid origin ${JSON.stringify(origin)}` });
      return;
    }
    const secure = url.protocol === 'https:';
    if (!secure && url.protocol !== 'http:') {
      resolve({ ok: false, reason: `unsupported scheme ${url.protocol}` });
      return;
    }
    if (signal?.aborted) {
      resolve({ ok: false, reason: 'aborted' });
      return;
    }

    let phase: 'connect' | 'tls' | 'request' = 'connect';
    let socket: Socket | undefined;
    let req: ClientRequest | undefined;
    // Decided as soon as headers arrive; draining the body afterwards cannot change it.
    let verdict: ProbeResult | undefined;
    let settled = false;

    const finish = (result: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      req?.destroy();
      socket?.destroy();
      // Resolve only once the socket has closed, so a settled probe has left no socket behind.
      if (socket === undefined || socket.closed) resolve(result);
      else socket.once('close', () => resolve(result));
    };
    const onAbort = (): void => finish(verdict ?? { ok: false, reason: 'aborted' });

    // One deadline for everything (Node's `timeout` option only measures socket inactivity).
    const timer = setTimeout(() => finish(verdict ?? { ok: false, reason: `timeout after ${cfg.timeout}ms` }), cfg.timeout);
    timer.unref();
    signal?.addEventListener('abort', onAbort, { once: true });

    const options: RequestOptions & ProbeTls = {
      method: 'GET',
      // URL keeps IPv6 literals bracketed; the socket layer wants them bare.
      hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port === '' ? undefined : Number(url.port),
      path: cfg.path,
      headers: { 'user-agent': PROBE_USER_AGENT, accept: '*/*', connection: 'close' },
      agent: false,
    };
    if (secure && tls !== undefined) {
      if (tls.rejectUnauthorized !== undefined) options.rejectUnauthorized = tls.rejectUnauthorized;
      if (tls.ca !== undefined) options.ca = tls.ca;
      if (tls.servername !== undefined) options.servername = tls.servername;
      if (tls.cert !== undefined) options.cert = tls.cert;
      if (tls.key !== undefined) options.key = tls.key;
    }

    try {
      req = (secure ? httpsRequest : httpRequest)(options);
    } catch (err) {
      // Synchronous refusals: a path with characters that cannot go on the wire, a bad port.
      finish({ ok: false, reason: `invalid request: ${(err as Error).message}` });
      return;
    }
    req.on('socket', (s: Socket) => {
      socket = s;
      s.once('connect', () => {
        if (phase === 'connect') phase = secure ? 'tls' : 'request';
      });
      if (secure) s.once('secureConnect', () => (phase = 'request'));
    });
    req.on('error', (err: NodeJS.ErrnoException) => finish(verdict ?? { ok: false, reason: describeError(err, phase) }));
    req.on('response', (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      verdict = judge(status, cfg.expectStatus);
      let read = 0;
      const done = (): void => finish(verdict!);
      res.on('data', (chunk: Buffer) => {
        read += chunk.length;
        if (read > MAX_BODY_BYTES) done();
      });
      res.on('end', done);
      res.on('error', done);
      res.on('close', done);
    });
    req.end();
  });
}

/** Returns the ranges as written in config: "200-399", "200,204,300-399" ("none" when empty). */
export function formatStatusRanges(ranges: readonly StatusRange[]): string {
  if (ranges.length === 0) return 'none';
  return ranges.map(([lo, hi]) => (lo === hi ? String(lo) : `${lo}-${hi}`)).join(',');
}

/** Returns true when `status` lies in one of the inclusive `ranges` (false for no ranges). */
export function statusInRanges(status: number, ranges: readonly StatusRange[]): boolean {
  return ranges.some(([lo, hi]) => status >= lo && status <= hi);
}

function judge(status: number, ranges: readonly StatusRange[]): ProbeResult {
  return statusInRanges(status, ranges)
    ? { ok: true, reason: `status ${status}`, status }
    : { ok: false, reason: `status ${status} not in ${formatStatusRanges(ranges)}`, status };
}

// Names the phase that failed so an operator can tell "nothing listens" from "TLS is wrong" from
// "the app died mid-request" without reading a stack.
function describeError(err: NodeJS.ErrnoException, phase: 'connect' | 'tls' | 'request'): string {
  const code = err.code ?? err.message;
  if (phase === 'connect') return `connect ${code}`;
  if (phase === 'tls') return `tls ${code}`;
  if (err.code === 'ECONNRESET') return err.message === 'socket hang up' ? 'connection closed before response' : 'connection reset';
  if (err.code?.startsWith('HPE_')) return `bad response ${err.code}`;
  return code;
}

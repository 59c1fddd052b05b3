// One active health probe: a GET over a fresh connection, judged by status code only (like
// HAProxy `http-check expect status` and Caddy `expect_status`). A fresh connection (`agent: false`,
// `connection: close`) means a probe proves the target accepts connections now, never rides on a
// pooled socket of proxied traffic, and leaves nothing open once it has settled. A pool that
// speaks the PROXY protocol to its targets gets the header of waygate's own connections (v2 LOCAL,
// v1 UNKNOWN) first, on a socket the probe connects itself.
import { request as httpRequest } from 'node:http';
import type { ClientRequest, IncomingMessage, RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect, isIP } from 'node:net';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { proxyHeader } from '../l4/proxy-header.ts';
import type { ProxyVersion } from '../l4/proxy-header.ts';

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
  /** The pool's `proxyProtocol` (default off): v1/v2 write the LOCAL/UNKNOWN header before the request (before TLS for https). */
  proxyProtocol?: ProxyVersion;
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
    // Every socket of this probe: the request's, and under it the raw one a PROXY header went on.
    const sockets: Socket[] = [];
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
      for (const s of sockets) s.destroy();
      // Resolve only once the sockets have closed, so a settled probe has left no socket behind.
      void Promise.all(sockets.map((s) => (s.closed ? undefined : new Promise((r) => s.once('close', r))))).then(() => resolve(result));
    };
    const onAbort = (): void => finish(verdict ?? { ok: false, reason: 'aborted' });

    // One deadline for everything (Node's `timeout` option only measures socket inactivity).
    const timer = setTimeout(() => finish(verdict ?? { ok: false, reason: `timeout after ${cfg.timeout}ms` }), cfg.timeout);
    timer.unref();
    signal?.addEventListener('abort', onAbort, { once: true });

    const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = url.port === '' ? (secure ? 443 : 80) : Number(url.port);
    const options: RequestOptions & ProbeTls = {
      method: 'GET',
      // URL keeps IPv6 literals bracketed; the socket layer wants them bare.
      hostname,
      port,
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

    const send = (): void => {
      try {
        req = (secure ? httpsRequest : httpRequest)(options);
      } catch (err) {
        // Synchronous refusals: a path with characters that cannot go on the wire, a bad port.
        finish({ ok: false, reason: `invalid request: ${(err as Error).message}` });
        return;
      }
      req.on('socket', (s: Socket) => {
        if (!sockets.includes(s)) sockets.push(s);
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
    };

    const version = cfg.proxyProtocol ?? 'off';
    if (version === 'off') return send();

    // PROXY protocol: connect, write the header, and only then start TLS or the request on that
    // socket (`createConnection` with no agent), so the header is the first byte the target reads.
    const raw = netConnect({ host: hostname, port });
    sockets.push(raw);
    raw.on('error', (err: NodeJS.ErrnoException) => finish(verdict ?? { ok: false, reason: describeError(err, phase) }));
    raw.once('connect', () => {
      phase = secure ? 'tls' : 'request';
      raw.write(proxyHeader(version, undefined), (err) => {
        if (err || settled) return;
        let conn: Socket = raw;
        if (secure) {
          // What the https agent would pass: SNI is the host name (never an IP), and the
          // certificate is checked against servername, else host. Only keys that are set: an
          // explicit `rejectUnauthorized: undefined` would override tls.connect's default (true).
          const servername = options.servername ?? (isIP(hostname) === 0 ? hostname : undefined);
          conn = tlsConnect({
            socket: raw,
            host: hostname,
            ...(servername !== undefined && { servername }),
            ...(options.rejectUnauthorized !== undefined && { rejectUnauthorized: options.rejectUnauthorized }),
            ...(options.ca !== undefined && { ca: options.ca }),
            ...(options.cert !== undefined && { cert: options.cert }),
            ...(options.key !== undefined && { key: options.key }),
          });
          sockets.push(conn);
        }
        options.agent = undefined;
        options.createConnection = () => conn;
        send();
      });
    });
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

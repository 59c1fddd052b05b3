// Admin listener (SPEC §6): /healthz, /readyz, /status, POST /reload, /explain and /metrics.
// It reads everything through AdminSource, so one process (Gateway) or a cluster primary
// (asking its workers) can stand behind it. Bound beyond loopback, every endpoint except the
// two probes needs `Authorization: Bearer <WAYGATE_ADMIN_TOKEN>`.
import { timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import { isIP } from 'node:net';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { ListenAddress } from '../config/address.ts';

/** The request of GET /explain: a URL plus the method, headers and cookies to pretend. */
export interface ExplainQuery {
  url: string;
  method: string;
  headers: [string, string][];
  cookies: [string, string][];
  /** SPEC §8: the client address the middlewares see (`?clientIp=`, default 127.0.0.1). */
  clientIp?: string;
  /** SPEC §7: `?listener=edge&sni=…&alpn=h2&clientIp=…` asks about an L4 connection instead (url is then ""). */
  l4?: ExplainConnection;
}

/** The L4 half of GET /explain: a connection to a listener. */
export interface ExplainConnection {
  listener: string;
  sni: string | undefined;
  alpn: string[];
  clientIp: string;
}

/** What the admin endpoints read from the gateway (or from a cluster of them). */
export interface AdminSource {
  /** True once routes are loaded and the listeners serve (false while draining). */
  ready(): boolean;
  /** Prometheus exposition. */
  metrics: { text(): Promise<string>; readonly contentType: string };
  /** The JSON of GET /status. */
  status(): Promise<unknown>;
  /** Reloads routes and certificates; resolves with the JSON result (`ok` true or false). */
  reload(): Promise<{ ok: boolean } & Record<string, unknown>>;
  /** The JSON of GET /explain; rejects with an Error whose message is a 400 for bad input. */
  explain(q: ExplainQuery): Promise<unknown>;
}

/** Admin server options. */
export interface AdminOptions {
  /** Required bearer token for everything but /healthz and /readyz; undefined: no auth. */
  token?: string;
}

/** True for a loopback listen host (127.0.0.0/8, ::1, localhost). */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/**
 * The admin API's authentication, for a single process and a cluster primary alike: the token
 * (WAYGATE_ADMIN_TOKEN) guards the API whenever it is set, and beyond loopback it must be set.
 * Throws when the listener is reachable beyond loopback without one.
 */
export function adminAuth(address: ListenAddress, env: NodeJS.ProcessEnv): AdminOptions {
  const token = env.WAYGATE_ADMIN_TOKEN || undefined;
  if (token === undefined && !isLoopback(address.host)) {
    throw new Error(`the admin listener ${address.host}:${address.port} is reachable beyond loopback: set WAYGATE_ADMIN_TOKEN (a bearer token), or bind it to 127.0.0.1`);
  }
  return { token };
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}
const text = (res: ServerResponse, status: number, body: string): void => send(res, status, 'text/plain; charset=utf-8', body);
const json = (res: ServerResponse, status: number, body: unknown): void => send(res, status, 'application/json', JSON.stringify(body, null, 2) + '\n');

function authorized(req: IncomingMessage, token: string): boolean {
  const h = req.headers.authorization ?? '';
  if (!h.startsWith('Bearer ')) return false;
  const given = Buffer.from(h.slice(7));
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

/** Parses the query of GET /explain; returns an error message for bad input. */
export function parseExplainQuery(search: URLSearchParams): ExplainQuery | string {
  const listener = search.get('listener');
  if (listener !== null) {
    if (listener === '') return 'expected ?listener=NAME (a listeners.tcp or listeners.udp name, or https)';
    const clientIp = search.get('clientIp') ?? '127.0.0.1';
    if (isIP(clientIp) === 0) return `expected clientIp=an IP address, got ${JSON.stringify(clientIp)}`;
    const sni = search.get('sni');
    const alpn = search.getAll('alpn').flatMap((a) => a.split(',')).map((a) => a.trim()).filter((a) => a !== '');
    return { url: '', method: '', headers: [], cookies: [], l4: { listener, sni: sni === null || sni === '' ? undefined : sni.toLowerCase(), alpn, clientIp } };
  }
  const url = search.get('url');
  if (url === null || !URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) return 'expected ?url=http(s)://host/path, or ?listener=NAME for an L4 connection';
  const pairs = (key: string, sep: string): [string, string][] | string => {
    const out: [string, string][] = [];
    for (const v of search.getAll(key)) {
      const i = v.indexOf(sep);
      if (i <= 0) return `expected ${key}=name${sep}value, got ${JSON.stringify(v)}`;
      out.push([v.slice(0, i).trim(), v.slice(i + 1).trim()]);
    }
    return out;
  };
  const headers = pairs('header', ':');
  if (typeof headers === 'string') return headers;
  const cookies = pairs('cookie', '=');
  if (typeof cookies === 'string') return cookies;
  const clientIp = search.get('clientIp') ?? '127.0.0.1';
  if (isIP(clientIp) === 0) return `expected clientIp=an IP address, got ${JSON.stringify(clientIp)}`;
  return { url, method: (search.get('method') ?? 'GET').toUpperCase(), headers, cookies, clientIp };
}

/** Creates the admin server (not yet listening). */
export function createAdminServer(src: AdminSource, options: AdminOptions = {}): Server {
  return createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname;
    if (path === '/healthz' || path === '/readyz') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return text(res, 405, 'method not allowed');
      if (path === '/healthz') return text(res, 200, 'ok');
      return src.ready() ? text(res, 200, 'ready') : text(res, 503, 'not ready');
    }
    if (options.token !== undefined && !authorized(req, options.token)) {
      res.setHeader('www-authenticate', 'Bearer');
      return text(res, 401, 'unauthorized');
    }
    const fail = (err: Error): void => text(res, 500, `admin error: ${err.message}`);
    switch (path) {
      case '/metrics':
        if (req.method !== 'GET') return text(res, 405, 'method not allowed');
        src.metrics.text().then((body) => send(res, 200, src.metrics.contentType, body), fail);
        return;
      case '/status':
        if (req.method !== 'GET') return text(res, 405, 'method not allowed');
        src.status().then((body) => json(res, 200, body), fail);
        return;
      case '/reload':
        if (req.method !== 'POST') return text(res, 405, 'use POST');
        src.reload().then((body) => json(res, body.ok ? 200 : 422, body), fail);
        return;
      case '/explain': {
        if (req.method !== 'GET') return text(res, 405, 'method not allowed');
        const q = parseExplainQuery(url.searchParams);
        if (typeof q === 'string') return text(res, 400, q);
        src.explain(q).then((body) => json(res, 200, body), (err: Error) => text(res, 400, err.message));
        return;
      }
      default:
        return text(res, 404, 'not found');
    }
  });
}

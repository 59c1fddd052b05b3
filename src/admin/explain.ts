// GET /explain (SPEC §6): what the router and the balancers would do with a request — the route
// chosen, every candidate rejected and the condition that failed, the rewrites, the pool and the
// target that would be picked now and why — without sending anything or moving any state.
import { normalizeHost } from '../router/host.ts';
import { AMBIGUOUS_PATH, normalizePath, rawPathOf } from '../router/path.ts';
import type { AmbiguousPaths } from '../router/path.ts';
import { RequestView } from '../router/request-view.ts';
import type { RequestFacts } from '../middleware/types.ts';
import type { Runtime } from '../runtime.ts';
import { didYouMean } from '../config/issues.ts';
import type { ExplainConnection, ExplainQuery } from './admin.ts';

/** waygate.yaml's L4 listener names (listeners.tcp, listeners.udp), for telling an unknown listener from an idle one. */
export interface L4ListenerNames {
  readonly tcp: readonly string[];
  readonly udp: readonly string[];
}

/**
 * Returns the explanation of `q` against `runtime`; throws on an invalid host (a 400).
 * `ambiguousPaths`: waygate.yaml `security.ambiguousPaths`, so a refused path is reported as such.
 */
export function explainRequest(runtime: Runtime, q: ExplainQuery, ambiguousPaths: AmbiguousPaths = 'reject', listeners?: L4ListenerNames): Record<string, unknown> {
  if (q.l4 !== undefined) return explainConnection(runtime, q.l4, listeners);
  const url = new URL(q.url);
  const host = normalizeHost(url.host);
  if (host === undefined) throw new Error(`invalid host in ${q.url}`);
  const rawPath = rawPathOf(q.url) ?? url.pathname;
  const norm = normalizePath(rawPath, ambiguousPaths);
  if (!norm.ok) {
    const refused: Record<string, unknown> = { request: { method: q.method, url: q.url, path: rawPath }, refused: `400: ${norm.reason}` };
    if (norm.reason.startsWith(AMBIGUOUS_PATH)) refused.setting = 'security.ambiguousPaths: reject (waygate.yaml; "forward" would let it through)';
    return refused;
  }
  // Forwarded anyway (the operator opted out): say so next to the explanation.
  const ambiguity = ambiguousPaths === 'forward' ? normalizePath(rawPath, 'reject') : norm;
  const headers: Record<string, string> = { host: url.host };
  for (const [k, v] of q.headers) headers[k.toLowerCase()] = v;
  if (q.cookies.length > 0) headers.cookie = q.cookies.map(([k, v]) => `${k}=${v}`).join('; ');
  const query = url.search.slice(1);
  const view = new RequestView(q.method, host, norm.path, query, headers);
  const { match, rejected } = runtime.router.explain(view);
  const out: Record<string, unknown> = {
    request: { method: q.method, host, path: norm.path, query },
    ...(ambiguity.ok ? {} : { ambiguous: `${ambiguity.reason}; forwarded because security.ambiguousPaths is forward` }),
    route: match?.name ?? null,
    pattern: match?.pattern.source ?? null,
    params: match?.params ?? {},
    rejected,
  };
  if (match === undefined) return { ...out, result: '404 no route' };
  const chain = match.value.middlewares;
  if (chain !== undefined) {
    const clientIp = q.clientIp ?? '127.0.0.1';
    const uri = rawPathOf(q.url) ?? url.pathname;
    const raw = Object.entries(headers).flat();
    const facts: RequestFacts = {
      method: q.method, scheme: url.protocol === 'https:' ? 'https' : 'http', host, hostHeader: url.host, uri: url.search === '' ? uri : uri + url.search,
      clientIp, requestId: 'explain', route: match.name, websocket: (headers.upgrade ?? '').toLowerCase().includes('websocket'),
      header: (name) => headers[name], rawHeaders: raw,
    };
    // SPEC §8: each middleware in order, as far as the first that would answer.
    let stopped: { name: string; status?: number; result: string } | undefined;
    out.middlewares = chain.map((m) => {
      if (stopped !== undefined) return { name: m.name, kind: m.kind, result: 'not reached', why: `${stopped.name} answers first` };
      const e = m.explain(facts);
      if (e.result === 'rejects' || e.result === 'answers') stopped = { name: m.name, status: e.status, result: e.result };
      return { name: m.name, kind: m.kind, ...e };
    });
    out.rejectedBy = stopped?.result === 'rejects' ? stopped.name : null;
    if (stopped !== undefined) out.result = `${stopped.status ?? ''} from middleware ${stopped.name}`.trim();
  }
  const action = match.value.action;
  if (action.kind === 'respond') return { ...out, action: 'respond', status: action.status };
  if (action.kind === 'redirect') {
    const location = action.location({ scheme: url.protocol.slice(0, -1), host, port: url.port, path: norm.path, query: query === '' ? '' : `?${query}`, params: match.params });
    return { ...out, action: 'redirect', status: action.status, location };
  }
  const upstreamPath = action.rewrite(norm.path, match.params);
  const pools = action.pools.map((pool, i) => {
    const clientIp = '127.0.0.1';
    const skipped = pool.targets.filter((t) => !t.available).map((t) => ({ url: t.url, reason: t.ejected ? 'passively ejected' : 'failing health checks' }));
    let target: string | null = null;
    let why: string;
    const token = pool.sticky === undefined ? undefined : view.cookie(pool.sticky.options.cookie);
    const pinned = pool.sticky?.target(token);
    if (pinned !== undefined && pinned.available) {
      target = pinned.url;
      why = `sticky cookie "${pool.sticky!.options.cookie}" pins it`;
    } else if (pinned !== undefined && pool.sticky!.options.onDown === 'fail') {
      why = `sticky target ${pinned.url} is down and onDown is fail: 503`;
    } else {
      const t = pool.preview({ clientIp });
      target = t?.url ?? null;
      why = t === undefined ? 'no available target: 503 no healthy upstream' : `${pool.balance}${pool.balance === 'ip-hash' ? ` of client ${clientIp}` : ''}${pinned !== undefined ? ' (sticky target down: rebalanced)' : ''}`;
    }
    return { pool: pool.name, weight: action.weights[i], target, why, skipped };
  });
  return { ...out, action: action.pools.length > 1 ? 'split' : 'forward', upstreamPath: query === '' ? upstreamPath : `${upstreamPath}?${query}`, pools };
}

/**
 * SPEC §7: what the L4 router and the balancers would do with a connection to `q.listener` —
 * the route chosen, every other route and why not, the TLS mode, the pool and the target.
 */
export function explainConnection(runtime: Runtime, q: ExplainConnection, listeners?: L4ListenerNames): Record<string, unknown> {
  const udp = runtime.udp.hasRoutes(q.listener) || (listeners?.udp.includes(q.listener) ?? false);
  const router = udp ? runtime.udp : runtime.tcp;
  const query = { sni: udp ? undefined : q.sni, alpn: udp ? [] : q.alpn, clientIp: q.clientIp };
  const { match, rejected } = router.explain(q.listener, query);
  const out: Record<string, unknown> = {
    connection: { listener: q.listener, transport: udp ? 'udp' : 'tcp', sni: query.sni ?? null, alpn: query.alpn, clientIp: q.clientIp },
    peeks: !udp && runtime.tcp.needsHello(q.listener),
    route: match?.name ?? null,
    rejected,
  };
  const note = listenerNote(runtime, q.listener, udp, listeners);
  if (note !== undefined) out.note = note;
  if (match === undefined) return { ...out, result: q.listener === 'https' ? 'served as HTTPS (no tcpRoute claims it)' : udp ? 'dropped: no route' : 'closed: no route' };
  const route = match.value;
  const pools = route.pools.map((pool, i) => {
    const skipped = pool.targets.filter((t) => !t.available).map((t) => ({ url: t.url, reason: t.ejected ? 'passively ejected' : 'failing health checks' }));
    const t = pool.preview({ clientIp: q.clientIp });
    const why = t === undefined ? 'no available target: the connection is closed (no_healthy_upstream)' : `${pool.balance}${pool.balance === 'ip-hash' ? ` of client ${q.clientIp}` : ''}`;
    return { pool: pool.name, weight: route.weights[i], target: t?.url ?? null, why, skipped };
  });
  return { ...out, ...(route.kind === 'tcp' ? { tls: route.tls, sniMatch: match.sni } : {}), action: route.pools.length > 1 ? 'split' : 'forward', pools };
}

/** Why a listener gets no route at all, when that is so: unknown to waygate.yaml, or named by no route. */
function listenerNote(runtime: Runtime, listener: string, udp: boolean, listeners: L4ListenerNames | undefined): string | undefined {
  if (runtime.tcp.hasRoutes(listener) || runtime.udp.hasRoutes(listener)) return undefined;
  if (listener === 'https') return 'no tcpRoute names listener "https": every connection to the HTTPS port is served as HTTPS';
  if (listeners === undefined) return `unknown listener "${listener}": no tcpRoute or udpRoute names it`;
  if (listeners.tcp.includes(listener) || listeners.udp.includes(listener)) {
    return `no ${udp ? 'udpRoute' : 'tcpRoute'} names listener "${listener}": its ${udp ? 'datagrams are dropped' : 'connections are closed'}`;
  }
  const known = [...listeners.tcp, ...listeners.udp];
  const has = [
    listeners.tcp.length > 0 ? `tcp listeners ${listeners.tcp.join(', ')}` : '',
    listeners.udp.length > 0 ? `udp listeners ${listeners.udp.join(', ')}` : '',
  ].filter((x) => x !== '');
  return `unknown listener "${listener}"${didYouMean(listener, known)}: ${has.length === 0 ? 'waygate.yaml has no L4 listeners' : `waygate.yaml has ${has.join(' and ')}`}`;
}

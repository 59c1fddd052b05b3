// GET /explain (SPEC §6): what the router and the balancers would do with a request — the route
// chosen, every candidate rejected and the condition that failed, the rewrites, the pool and the
// target that would be picked now and why — without sending anything or moving any state.
import { normalizeHost } from '../router/host.ts';
import { AMBIGUOUS_PATH, normalizePath, rawPathOf } from '../router/path.ts';
import type { AmbiguousPaths } from '../router/path.ts';
import { RequestView } from '../router/request-view.ts';
import type { Runtime } from '../runtime.ts';
import type { ExplainQuery } from './admin.ts';

/**
 * Returns the explanation of `q` against `runtime`; throws on an invalid host (a 400).
 * `ambiguousPaths`: waygate.yaml `security.ambiguousPaths`, so a refused path is reported as such.
 */
export function explainRequest(runtime: Runtime, q: ExplainQuery, ambiguousPaths: AmbiguousPaths = 'reject'): Record<string, unknown> {
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

// Header rewriting between client and upstream (SPEC §4). Works on flat raw-header arrays
// ([name, value, name, value, …]) so names keep their case and repeated fields stay separate.

/** Route header operations, compiled once at load: remove, then set (replace), then add. */
export interface HeaderOps {
  /** Lower-case names removed, including every name that `set` replaces. */
  readonly drop: ReadonlySet<string>;
  /** Flat [name, value, …] appended after the drop: the `set` entries then the `add` entries. */
  readonly append: readonly string[];
}

/** Compiles `{set, add, remove}` into HeaderOps; undefined when there is nothing to do. */
export function compileHeaderOps(
  ops: { set?: Record<string, string>; add?: Record<string, string>; remove?: readonly string[] } | undefined,
): HeaderOps | undefined {
  if (ops === undefined) return undefined;
  const drop = new Set<string>();
  const append: string[] = [];
  for (const name of ops.remove ?? []) drop.add(name.toLowerCase());
  for (const [name, value] of Object.entries(ops.set ?? {})) {
    drop.add(name.toLowerCase());
    append.push(name, value);
  }
  for (const [name, value] of Object.entries(ops.add ?? {})) append.push(name, value);
  if (drop.size === 0 && append.length === 0) return undefined;
  return { drop, append };
}

// RFC 9110 §7.6.1 hop-by-hop fields, plus Proxy-Connection (legacy) and Expect (Node answers
// 100-continue itself; undici refuses to send it). Upgrade is handled by the WebSocket path;
// outside it an `Upgrade: h2c` and its HTTP2-Settings are dropped here, so the request goes on
// as plain HTTP/1.1 (RFC 9113 §3.1: the h2c upgrade is deprecated; a proxy never relays it).
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'http2-settings',
]);

/** Returns an Upgrade value without its "h2c" protocols (RFC 9110 §7.8); unchanged when it has none. */
function withoutH2c(value: string): string {
  if (!value.toLowerCase().includes('h2c')) return value;
  const kept: string[] = [];
  for (const t of value.split(',')) {
    const p = t.trim();
    const lower = p.toLowerCase();
    // protocol-name ["/" protocol-version]
    if (p !== '' && lower !== 'h2c' && !lower.startsWith('h2c/')) kept.push(p);
  }
  return kept.join(', ');
}

function connectionTokens(raw: readonly string[]): Set<string> | undefined {
  let tokens: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 10 && raw[i].toLowerCase() === 'connection') {
      for (const t of raw[i + 1].split(',')) {
        const name = t.trim().toLowerCase();
        if (name !== '' && name !== 'close' && name !== 'keep-alive') (tokens ??= new Set()).add(name);
      }
    }
  }
  return tokens;
}

/** What the forwarded headers say about the client. */
export interface ForwardInfo {
  readonly clientIp: string;
  /** Scheme the client used to reach waygate. */
  readonly proto: string;
  /** The Host the client asked for (as sent, port included). */
  readonly host: string;
  /** True when the peer is a trusted proxy, whose x-forwarded-* are kept and appended to. */
  readonly trusted: boolean;
  readonly requestId: string;
  /** Keep `te: trailers` (HTTP/2 upstreams: gRPC requires it, RFC 9113 §8.2.2). */
  readonly keepTeTrailers: boolean;
  /** Keep `Connection: upgrade` and `Upgrade` (a WebSocket handshake, RFC 6455 §4.1). */
  readonly keepUpgrade?: boolean;
}

/**
 * Returns the headers to send upstream: hop-by-hop fields removed, `x-forwarded-for` appended
 * (or replaced when the peer is not trusted), `x-forwarded-proto`/`-host` and `x-request-id`
 * set, then the route's operations applied. The original Host is kept.
 */
export function upstreamRequestHeaders(raw: readonly string[], info: ForwardInfo, ops: HeaderOps | undefined): string[] {
  const extra = connectionTokens(raw);
  const out: string[] = [];
  let xff: string | undefined;
  let xfProto: string | undefined;
  let xfHost: string | undefined;
  let hasHost = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    // HTTP/2 pseudo-headers (":authority", ":path", …) describe this hop only.
    if (name.charCodeAt(0) === 58) continue;
    // A name with "_" is dropped (nginx's `underscores_in_headers off`): CGI-style upstreams
    // (PHP, WSGI, Rack) map "-" and "_" to the same variable, so "X_Forwarded_For" would alias
    // the x-forwarded-for waygate sets, bypassing the trust rules below. RFC 9110 §5.1 allows
    // "_" in a field name, but no standard field uses it.
    if (name.indexOf('_') !== -1) continue;
    const lower = name.toLowerCase();
    if (lower === 'te' && info.keepTeTrailers && raw[i + 1].trim().toLowerCase() === 'trailers') {
      out.push('te', 'trailers');
      continue;
    }
    if (info.keepUpgrade && (lower === 'upgrade' || lower === 'connection')) {
      if (lower === 'connection') {
        out.push(name, 'upgrade');
        continue;
      }
      // Never an h2c upgrade, even alongside a WebSocket one (RFC 9113 §3.1 removed it; an
      // upstream that accepted it would speak HTTP/2 on a connection waygate reads as HTTP/1.1).
      const upgrade = withoutH2c(raw[i + 1]);
      if (upgrade !== '') out.push(name, upgrade);
      continue;
    }
    if (HOP_BY_HOP.has(lower) || lower === 'expect' || lower.startsWith('proxy-')) continue;
    if (lower === 'host') hasHost = true;
    if (extra !== undefined && extra.has(lower)) continue;
    if (lower.startsWith('x-forwarded-') || lower === 'forwarded') {
      if (!info.trusted) continue;
      if (lower === 'x-forwarded-for') {
        xff = xff === undefined ? raw[i + 1] : `${xff}, ${raw[i + 1]}`;
        continue;
      }
      if (lower === 'x-forwarded-proto') {
        xfProto ??= raw[i + 1];
        continue;
      }
      if (lower === 'x-forwarded-host') {
        xfHost ??= raw[i + 1];
        continue;
      }
    }
    if (lower === 'x-request-id') continue;
    if (ops !== undefined && ops.drop.has(lower)) continue;
    out.push(name, raw[i + 1]);
  }
  // An HTTP/2 client names the host in :authority; HTTP/1.1 upstreams need it as Host.
  if (!hasHost && info.host !== '') out.push('host', info.host);
  out.push(
    'x-forwarded-for', xff === undefined ? info.clientIp : `${xff}, ${info.clientIp}`,
    'x-forwarded-proto', xfProto ?? info.proto,
    'x-forwarded-host', xfHost ?? info.host,
    'x-request-id', info.requestId,
  );
  if (ops !== undefined) return applyDropToTail(out, ops);
  return out;
}

// Route ops may also replace or remove the headers waygate itself just added.
function applyDropToTail(out: string[], ops: HeaderOps): string[] {
  let result = out;
  if (ops.drop.has('x-forwarded-for') || ops.drop.has('x-forwarded-proto') || ops.drop.has('x-forwarded-host') || ops.drop.has('x-request-id')) {
    result = [];
    for (let i = 0; i < out.length; i += 2) {
      if (!ops.drop.has(out[i].toLowerCase())) result.push(out[i], out[i + 1]);
    }
  }
  for (let i = 0; i < ops.append.length; i++) result.push(ops.append[i]);
  return result;
}

/**
 * Returns the headers to send to the client from an upstream's raw response headers:
 * hop-by-hop fields removed, the route's operations applied, `x-request-id` set.
 */
export function clientResponseHeaders(strs: readonly string[], ops: HeaderOps | undefined, requestId: string): string[] {
  const extra = connectionTokens(strs);
  const out: string[] = [];
  for (let i = 0; i < strs.length; i += 2) {
    const lower = strs[i].toLowerCase();
    if (HOP_BY_HOP.has(lower) || lower.startsWith('proxy-') || lower === 'x-request-id') continue;
    if (extra !== undefined && extra.has(lower)) continue;
    if (ops !== undefined && ops.drop.has(lower)) continue;
    out.push(strs[i], strs[i + 1]);
  }
  if (ops !== undefined) for (let i = 0; i < ops.append.length; i++) out.push(ops.append[i]);
  out.push('x-request-id', requestId);
  return out;
}

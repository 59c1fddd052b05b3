// The L4 (TCP/UDP) router (SPEC §7): picks the route of a new connection from its listener, the
// SNI and ALPN of its ClientHello and the client address. Pure: no I/O, no timers, no logging.
//
// Precedence among the routes of a listener that match: higher `priority`; then the strength of
// the sni pattern that matched (exact > wildcard > regex > no sni condition; a route with several
// patterns counts the strongest that matched); then more kinds of alpn/clientIp conditions (0..2);
// then lower `order`; then the name, so the winner never depends on the order the specs come in.
//
// Per listener the routes are split into four buckets by sni kind, each sorted by the rest of the
// key: exact names in a Map (name -> routes), wildcards in a Map keyed by the suffix after "*.",
// regexes and sni-less routes in lists. match() scans the buckets strongest first and stops in each
// as soon as no entry left can beat the best so far, so a listener of 1,000 exact names costs one
// Map lookup, and a lone catch-all route costs one comparison.
import { BlockList, isIP } from 'node:net';

export interface L4RouteSpec<T> {
  readonly name: string;
  /** A listeners.tcp / listeners.udp name, or "https". */
  readonly listener: string;
  /** Exact names, "*.example.com" (one label) or "~regex"; [] = any (then a connection without SNI matches too). */
  readonly sni: readonly string[];
  /** [] = any. */
  readonly alpn: readonly string[];
  /** "ip/prefix" (a bare ip is accepted too); [] = any. */
  readonly clientIp: readonly string[];
  readonly priority: number;
  /** Position across files (file order, then position): lower is earlier. */
  readonly order: number;
  readonly value: T;
}

export interface L4Query {
  /** From the ClientHello; undefined when none was read or it had none. */
  readonly sni: string | undefined;
  /** The client's offered protocols, [] when none. */
  readonly alpn: readonly string[];
  /** As the socket reports it; "::ffff:10.1.2.3" matches 10.0.0.0/8. */
  readonly clientIp: string;
}

export interface L4Match<T> {
  readonly name: string;
  readonly value: T;
  readonly sni: 'exact' | 'wildcard' | 'regex' | 'any';
}

export interface L4Rejection {
  readonly route: string;
  readonly reason: string;
}

type SniKind = L4Match<unknown>['sni'];

/** Strength of each sni kind: higher wins. */
const STRENGTH: Record<SniKind, number> = { exact: 3, wildcard: 2, regex: 1, any: 0 };
const KIND_LABEL: Record<SniKind, string> = { exact: 'exact', wildcard: 'wildcard', regex: 'regex', any: 'none' };

/** One route, compiled. */
interface Route<T> {
  readonly spec: L4RouteSpec<T>;
  readonly name: string;
  readonly priority: number;
  readonly order: number;
  /** Kinds of alpn/clientIp conditions present, 0..2. */
  readonly conds: number;
  readonly hasSni: boolean;
  readonly exact: ReadonlySet<string>;
  /** Suffixes after "*.". */
  readonly wild: ReadonlySet<string>;
  readonly regexes: readonly RegExp[];
  readonly alpn: ReadonlySet<string> | null;
  readonly ips: BlockList | null;
  /** The prebuilt match per sni kind the route can match with. */
  readonly matches: Readonly<Partial<Record<SniKind, L4Match<T>>>>;
}

/** A route as it sits in one bucket: the sni kind is fixed by the bucket. */
interface Entry<T> {
  readonly route: Route<T>;
  readonly strength: number;
  readonly match: L4Match<T>;
  /** Regex bucket only: the route's regexes. */
  readonly regexes: readonly RegExp[];
}

interface Listener<T> {
  readonly specs: readonly L4RouteSpec<T>[];
  readonly routes: readonly Route<T>[];
  readonly exact: ReadonlyMap<string, readonly Entry<T>[]>;
  readonly wild: ReadonlyMap<string, readonly Entry<T>[]>;
  readonly regex: readonly Entry<T>[];
  readonly none: readonly Entry<T>[];
  readonly hasSni: boolean;
  readonly hasIp: boolean;
  readonly needsHello: boolean;
}

const EMPTY: readonly never[] = Object.freeze([]);

export class L4Router<T> {
  readonly size: number;
  readonly #listeners = new Map<string, Listener<T>>();

  constructor(specs: readonly L4RouteSpec<T>[]) {
    this.size = specs.length;
    const byListener = new Map<string, Route<T>[]>();
    for (const spec of specs) {
      const route = compile(spec);
      let list = byListener.get(spec.listener);
      if (list === undefined) byListener.set(spec.listener, (list = []));
      list.push(route);
    }
    for (const [name, routes] of byListener) this.#listeners.set(name, buildListener(routes));
  }

  /** True when the listener has a route matching sni or alpn: its connections must be peeked for a ClientHello. */
  needsHello(listener: string): boolean {
    return this.#listeners.get(listener)?.needsHello ?? false;
  }

  /** True when some route names this listener. */
  hasRoutes(listener: string): boolean {
    return this.#listeners.has(listener);
  }

  /** The best route for a connection on `listener`, or undefined (the connection is closed). */
  match(listener: string, q: L4Query): L4Match<T> | undefined {
    const l = this.#listeners.get(listener);
    if (l === undefined) return undefined;
    const sni = l.hasSni ? normalizeName(q.sni) : undefined;
    const ip = l.hasIp ? normalizeIp(q.clientIp) : undefined;
    let best: Entry<T> | undefined;
    if (sni !== undefined) {
      const exact = l.exact.get(sni);
      if (exact !== undefined) best = scan(exact, best, undefined, q.alpn, ip);
      if (l.wild.size > 0) {
        const dot = sni.indexOf('.');
        const wild = dot > 0 ? l.wild.get(sni.slice(dot + 1)) : undefined;
        if (wild !== undefined) best = scan(wild, best, undefined, q.alpn, ip);
      }
      if (l.regex.length > 0) best = scan(l.regex, best, sni, q.alpn, ip);
    }
    if (l.none.length > 0) best = scan(l.none, best, undefined, q.alpn, ip);
    return best?.match;
  }

  /** match() plus why every other route of the listener was not chosen, in config order (for GET /explain). */
  explain(listener: string, q: L4Query): { match: L4Match<T> | undefined; rejected: L4Rejection[] } {
    const l = this.#listeners.get(listener);
    const match = this.match(listener, q);
    if (l === undefined) return { match, rejected: [] };
    const sni = normalizeName(q.sni);
    const ip = normalizeIp(q.clientIp);
    const winner = match === undefined ? undefined : l.routes.find((r) => r.matches[match.sni] === match);
    const rejected: L4Rejection[] = [];
    for (const route of l.routes) {
      if (route === winner) continue;
      const failures: string[] = [];
      const kind = sniKindOf(route, sni);
      if (kind === undefined) {
        const wants = route.spec.sni.join(', ');
        failures.push(sni === undefined ? `no sni, route wants ${wants}` : `sni ${JSON.stringify(sni)} is not ${wants}`);
      }
      if (!alpnOk(route, q.alpn)) {
        const wants = route.spec.alpn.join(', ');
        failures.push(q.alpn.length === 0 ? `no alpn offered, route wants ${wants}` : `alpn ${q.alpn.join(', ')} offered, route wants ${wants}`);
      }
      if (!ipOk(route, ip)) failures.push(`client ${q.clientIp} not in ${route.spec.clientIp.join(', ')}`);
      let reason: string;
      if (failures.length > 0) reason = failures.join('; ');
      else if (winner !== undefined && match !== undefined) reason = outranked(winner, match.sni, route, kind!);
      else reason = 'not chosen'; // unreachable: a route that matches means match() found one
      rejected.push({ route: route.name, reason });
    }
    return { match, rejected };
  }

  /** True when some route on `listener` with sni conditions matches `name` (a host name, an optional ":port" ignored) by its sni alone. */
  claimsName(listener: string, name: string): boolean {
    const l = this.#listeners.get(listener);
    if (l === undefined || !l.hasSni) return false;
    const sni = normalizeName(stripPort(name));
    if (sni === undefined) return false;
    if (l.exact.has(sni)) return true;
    const dot = sni.indexOf('.');
    if (dot > 0 && l.wild.has(sni.slice(dot + 1))) return true;
    return l.regex.some((e) => e.regexes.some((re) => re.test(sni)));
  }

  /** The route specs of a listener in config order (by `order`, then name), whatever their precedence (for /status). */
  routesOf(listener: string): readonly L4RouteSpec<T>[] {
    return this.#listeners.get(listener)?.specs ?? EMPTY;
  }
}

/** Scans one bucket (sorted best first) for an entry that beats `best` and matches; returns the new best. */
function scan<T>(bucket: readonly Entry<T>[], best: Entry<T> | undefined, regexSni: string | undefined, alpn: readonly string[], ip: NormalIp | undefined): Entry<T> | undefined {
  for (const e of bucket) {
    if (best !== undefined && compareEntries(e, best) >= 0) return best;
    if (regexSni !== undefined && !e.regexes.some((re) => re.test(regexSni))) continue;
    const r = e.route;
    if (r.alpn !== null && !alpnOk(r, alpn)) continue;
    if (r.ips !== null && !ipOk(r, ip)) continue;
    return e;
  }
  return best;
}

/** Negative when `a` comes before (beats) `b`. */
function compareEntries<T>(a: Entry<T>, b: Entry<T>): number {
  return compareKeys(a.route, a.strength, b.route, b.strength);
}

function compareKeys<T>(a: Route<T>, as: number, b: Route<T>, bs: number): number {
  return b.priority - a.priority || bs - as || b.conds - a.conds || a.order - b.order || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/** Why `loser` (which matches too, with sni kind `lk`) lost to `winner` (matched as `wk`). */
function outranked<T>(winner: Route<T>, wk: SniKind, loser: Route<T>, lk: SniKind): string {
  const by = `outranked by ${JSON.stringify(winner.name)}`;
  if (winner.priority !== loser.priority) return `${by} (priority ${winner.priority} over ${loser.priority})`;
  if (wk !== lk) return `${by} (${KIND_LABEL[wk]} sni over ${KIND_LABEL[lk]})`;
  if (winner.conds !== loser.conds) return `${by} (${winner.conds} alpn/clientIp conditions over ${loser.conds})`;
  if (winner.order !== loser.order) return `${by} (declared earlier)`;
  return `${by} (same rank, name sorts first)`;
}

function alpnOk<T>(r: Route<T>, offered: readonly string[]): boolean {
  if (r.alpn === null) return true;
  for (const p of offered) if (r.alpn.has(p)) return true;
  return false;
}

interface NormalIp {
  readonly ip: string;
  readonly type: 'ipv4' | 'ipv6';
}

function ipOk<T>(r: Route<T>, ip: NormalIp | undefined): boolean {
  if (r.ips === null) return true;
  return ip !== undefined && r.ips.check(ip.ip, ip.type);
}

/** The strongest sni kind by which `route` matches `sni` (normalised), or undefined when it does not. */
function sniKindOf<T>(route: Route<T>, sni: string | undefined): SniKind | undefined {
  if (!route.hasSni) return 'any';
  if (sni === undefined) return undefined;
  if (route.exact.has(sni)) return 'exact';
  const dot = sni.indexOf('.');
  if (dot > 0 && route.wild.has(sni.slice(dot + 1))) return 'wildcard';
  if (route.regexes.some((re) => re.test(sni))) return 'regex';
  return undefined;
}

/** Lower-cases a name and drops one trailing dot; undefined for no name. */
function normalizeName(s: string | undefined): string | undefined {
  if (s === undefined || s === '') return undefined;
  let n = s.toLowerCase();
  if (n.endsWith('.')) n = n.slice(0, -1);
  return n === '' ? undefined : n;
}

/** "host:port" -> "host", "[::1]:443" -> "[::1]"; anything else unchanged. */
function stripPort(s: string): string {
  const colon = s.lastIndexOf(':');
  if (colon < 0 || !/^\d+$/.test(s.slice(colon + 1))) return s;
  const host = s.slice(0, colon);
  return host.includes(':') && !host.endsWith(']') ? s : host;
}

/** The client address with "::ffff:a.b.c.d" as IPv4 and a zone id dropped; undefined when it is no IP. */
function normalizeIp(raw: string): NormalIp | undefined {
  let ip = raw;
  const pct = ip.indexOf('%');
  if (pct >= 0) ip = ip.slice(0, pct);
  if (ip.length > 7 && ip.charCodeAt(0) === 58 /* : */ && /^::ffff:/i.test(ip)) {
    const v4 = ip.slice(7);
    if (isIP(v4) === 4) return { ip: v4, type: 'ipv4' };
  }
  const family = isIP(ip);
  if (family === 4) return { ip, type: 'ipv4' };
  if (family === 6) return { ip, type: 'ipv6' };
  return undefined;
}

function compile<T>(spec: L4RouteSpec<T>): Route<T> {
  const fail = (msg: string): never => {
    throw new Error(`route ${JSON.stringify(spec.name)}: ${msg}`);
  };
  const exact = new Set<string>();
  const wild = new Set<string>();
  const regexes: RegExp[] = [];
  for (const p of spec.sni) {
    if (p.startsWith('~')) {
      try {
        regexes.push(new RegExp(p.slice(1)));
      } catch (err) {
        fail(`sni: invalid regular expression ${JSON.stringify(p.slice(1))}: ${(err as Error).message}`);
      }
    } else if (p.startsWith('*.')) {
      const suffix = normalizeName(p.slice(2));
      if (suffix === undefined || suffix.includes('*')) fail(`invalid sni pattern ${JSON.stringify(p)}`);
      wild.add(suffix!);
    } else {
      const name = normalizeName(p);
      if (name === undefined || name.includes('*')) fail(`invalid sni pattern ${JSON.stringify(p)}`);
      exact.add(name!);
    }
  }
  let ips: BlockList | null = null;
  if (spec.clientIp.length > 0) {
    ips = new BlockList();
    for (const c of spec.clientIp) {
      const slash = c.indexOf('/');
      const addr = slash < 0 ? c : c.slice(0, slash);
      const family = isIP(addr);
      const max = family === 4 ? 32 : 128;
      const bits = slash < 0 ? max : Number(c.slice(slash + 1));
      if (family === 0 || !Number.isInteger(bits) || bits < 0 || bits > max || (slash >= 0 && !/^\d{1,3}$/.test(c.slice(slash + 1)))) {
        fail(`invalid clientIp ${JSON.stringify(c)}: expected "ip/prefix" such as 10.0.0.0/8 or fd00::/8`);
      }
      ips.addSubnet(addr, bits, family === 4 ? 'ipv4' : 'ipv6');
    }
  }
  const hasSni = exact.size + wild.size + regexes.length > 0;
  const alpn = spec.alpn.length > 0 ? new Set(spec.alpn) : null;
  const base = { name: spec.name, value: spec.value };
  const matches: Partial<Record<SniKind, L4Match<T>>> = {};
  if (!hasSni) matches.any = Object.freeze({ ...base, sni: 'any' as const });
  if (exact.size > 0) matches.exact = Object.freeze({ ...base, sni: 'exact' as const });
  if (wild.size > 0) matches.wildcard = Object.freeze({ ...base, sni: 'wildcard' as const });
  if (regexes.length > 0) matches.regex = Object.freeze({ ...base, sni: 'regex' as const });
  return {
    spec,
    name: spec.name,
    priority: spec.priority,
    order: spec.order,
    conds: (alpn !== null ? 1 : 0) + (ips !== null ? 1 : 0),
    hasSni,
    exact,
    wild,
    regexes,
    alpn,
    ips,
    matches,
  };
}

function buildListener<T>(routes: Route<T>[]): Listener<T> {
  const entry = (route: Route<T>, kind: SniKind): Entry<T> => ({ route, strength: STRENGTH[kind], match: route.matches[kind]!, regexes: kind === 'regex' ? route.regexes : EMPTY });
  const exact = new Map<string, Entry<T>[]>();
  const wild = new Map<string, Entry<T>[]>();
  const regex: Entry<T>[] = [];
  const none: Entry<T>[] = [];
  const add = (map: Map<string, Entry<T>[]>, key: string, e: Entry<T>): void => {
    const list = map.get(key);
    if (list === undefined) map.set(key, [e]);
    else list.push(e);
  };
  for (const r of routes) {
    if (!r.hasSni) none.push(entry(r, 'any'));
    if (r.exact.size > 0) {
      const e = entry(r, 'exact');
      for (const n of r.exact) add(exact, n, e);
    }
    if (r.wild.size > 0) {
      const e = entry(r, 'wildcard');
      for (const s of r.wild) add(wild, s, e);
    }
    if (r.regexes.length > 0) regex.push(entry(r, 'regex'));
  }
  for (const list of exact.values()) list.sort(compareEntries);
  for (const list of wild.values()) list.sort(compareEntries);
  regex.sort(compareEntries);
  none.sort(compareEntries);
  const inConfigOrder = [...routes].sort((a, b) => a.order - b.order || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return {
    specs: Object.freeze(inConfigOrder.map((r) => r.spec)),
    routes: inConfigOrder,
    exact,
    wild,
    regex,
    none,
    hasSni: routes.some((r) => r.hasSni),
    hasIp: routes.some((r) => r.ips !== null),
    needsHello: routes.some((r) => r.hasSni || r.alpn !== null),
  };
}

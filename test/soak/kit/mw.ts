// What the middleware soak (SPEC §8) shares between its upstreams (faults/mw-*.ts, in the upstream
// host) and its clients (clients/mw-*.ts): the pools' names, the headers a client steers an
// upstream with, the auth service's plans and answers, the users and their passwords, the
// origins. Pure constants and small helpers: both processes import it.
import type { MiddlewareSpec, PoolSpec } from '../types.ts';

/** The middleware pools, by role; each one's route matches `/<name>/*` and lists the pool's middlewares. */
export const MW = {
  /** forwardAuth, every client header sent to the auth service. */
  auth: 'mw-auth',
  /** forwardAuth with authRequestHeaders listed and two authResponseHeaders. */
  authListed: 'mw-auth-listed',
  /** forwardAuth (the same middleware as mw-auth's) in front of WebSocket handshakes. */
  authWs: 'mw-auth-ws',
  /** rateLimit, store: redis. */
  redis: 'mw-redis',
  /** rateLimit, store: local, headers: true. */
  local: 'mw-local',
  /** inFlightLimit in front of an upstream that holds requests until released. */
  inFlight: 'mw-inflight',
  /** The same upstream, no middleware: where a client releases what it held. */
  plain: 'mw-plain',
  basic: 'mw-basic',
  ipAllow: 'mw-ip-allow',
  ipDeny: 'mw-ip-deny',
  cors: 'mw-cors',
  compress: 'mw-compress',
  /** compress with other encodings and a larger minBytes. */
  compressGzip: 'mw-compress-gzip',
  /** errorPages from a file, in front of an upstream answering the status asked. */
  errors: 'mw-errors',
  /** The same errorPages, in front of a pool whose only target refuses (waygate's own 502, then 503). */
  errorsDown: 'mw-errors-down',
  /** errorPages fetched from the pages pool (which sometimes fails to give one). */
  errorsPool: 'mw-errors-pool',
  /** The pool errorPages fetches its pages from. */
  pages: 'mw-pages',
  /** cors, errorPages and compress on one route: a replaced page is compressed and gets the CORS fields. */
  chain: 'mw-chain',
} as const;

/** The request header that tells the auth service what to answer (it picks at random without one). */
export const AUTH_PLAN_HEADER = 'x-soak-auth';
/** The identity header forwardAuth copies from the auth answer: a client sends forged ones. */
export const USER_HEADER = 'x-user';
/** A second identity header (mw-auth-listed). */
export const EMAIL_HEADER = 'x-email';
/** The key the limits count under (`by: header:x-soak-key`); without it, the client IP. */
export const KEY_HEADER = 'x-soak-key';
/** forwardAuth's `timeout`: the `hang` plan stays silent past it. */
export const AUTH_TIMEOUT_MS = 500;
/** errorPages' `timeout` for a page fetched from the pages pool. */
export const PAGE_TIMEOUT_MS = 500;

/**
 * What the auth service does with one check. allow / allow-anonymous / allow-204: a 2xx (with an
 * x-user it made up, none, or a 204); slow-allow: allow after half the timeout; deny-401 /
 * deny-302 / deny-403 / error-500: that answer, with a body; oversize: a 401 of 2 MiB (over what
 * forwardAuth keeps); hang: silence past the timeout; reset: the socket destroyed at once;
 * reset-mid: a 200 head with an x-user, half its body, then a reset (must never let the request
 * through); die: the whole service goes away (listener closed, every connection destroyed) for a
 * while, then comes back on the same port.
 */
export const AUTH_PLANS = ['allow', 'allow-anonymous', 'allow-204', 'slow-allow', 'deny-401', 'deny-302', 'deny-403', 'error-500', 'oversize', 'hang', 'reset', 'reset-mid', 'die'] as const;
/** One auth plan. */
export type AuthPlan = (typeof AUTH_PLANS)[number];
/** The plans whose answer lets the request through to the upstream. */
export const ALLOWING: readonly AuthPlan[] = ['allow', 'allow-anonymous', 'allow-204', 'slow-allow'];
/** The plans after which the client may only get forwardAuth's 503 (no answer came from the auth service). */
export const UNAVAILABLE_PLANS: readonly AuthPlan[] = ['hang', 'reset', 'reset-mid', 'die'];
/** The size of the `oversize` denial's body. */
export const OVERSIZE_BYTES = 2 * 1024 * 1024;
/** forwardAuth's own answer when no answer came from the auth service. */
export const AUTH_UNAVAILABLE = { status: 503, body: 'authentication service unavailable' } as const;
/** The auth service's 401 challenge. */
export const AUTH_CHALLENGE = 'Bearer realm="soak"';
/** The login page of a deny-302. */
export const LOGIN_URL = 'https://login.soak.test/';
/** The field a deny-403 carries (it must reach the client as is). */
export const AUTH_REASON_HEADER = 'x-auth-reason';

/** A plan from a header value, or undefined. */
export function authPlanOf(v: string | string[] | undefined): AuthPlan | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  return (AUTH_PLANS as readonly string[]).includes(s ?? '') ? (s as AuthPlan) : undefined;
}

/** The body of the auth service's non-2xx answers: it names what was checked (from x-forwarded-method and -uri). */
export function authAnswerBody(plan: AuthPlan, method: string, uri: string): string {
  return `auth ${plan}: ${method} ${uri}`;
}

/** Where a deny-302 sends the client. */
export function loginLocation(uri: string): string {
  return `${LOGIN_URL}?rd=${encodeURIComponent(uri)}`;
}

/** What the upstream behind forwardAuth says it got (its `whoami` variant). */
export interface Whoami {
  method: string;
  url: string;
  bytes: number;
  /** Every x-user field it received, in order. */
  users: string[];
  /** Every x-email field it received. */
  emails: string[];
  /** Per x-user value: whether the auth service issued it. */
  issued: boolean[];
}

/** The upstream's 101 says which x-user fields (a JSON list) it got on the handshake, and whether each was issued. */
export const WS_USERS_HEADER = 'x-soak-users';
/** The same for the issued flags (a JSON list of booleans). */
export const WS_ISSUED_HEADER = 'x-soak-issued';

/** The basicAuth users (faults/mw-access.ts writes their hashes into the users file). */
export const USERS = [
  { name: 'alice', password: 'alice-in-soak', scheme: '$2y$' },
  { name: 'bob', password: 'bob:with:colons', scheme: '$2b$' },
  { name: 'carol', password: 'carol-apr1', scheme: '$apr1$' },
  { name: 'dave', password: 'dävé-ütf8', scheme: '$2a$' },
] as const;
/** basicAuth's realm. */
export const REALM = 'soak';
/** The users file's name in the soak's dir. */
export const USERS_FILE = 'soak.htpasswd';

/** What the access pools' upstream says it got (its `seen` variant). */
export interface Seen {
  method: string;
  url: string;
  /** The authorization field, when one reached it. */
  authorization: string | null;
  origin: string | null;
  xForwardedFor: string | null;
}

/** The origin cors allows, and one it does not. */
export const ORIGINS = { allowed: 'https://app.soak.test', other: 'https://evil.soak.test' } as const;

/** The cors middleware (mw-cors and the chain route list it). */
export const CORS_MIDDLEWARE: MiddlewareSpec = {
  name: 'soak-cors',
  kind: 'cors',
  options: { origins: [ORIGINS.allowed], methods: ['GET', 'POST'], headers: ['content-type', KEY_HEADER], exposeHeaders: ['x-soak-trace'], credentials: true, maxAge: '10m' },
};
/** The compress middleware with every coding (mw-compress and the chain route list it). */
export const SQUEEZE_MIDDLEWARE: MiddlewareSpec = { name: 'soak-squeeze', kind: 'compress', options: { encodings: ['zstd', 'br', 'gzip'], minBytes: '1kb' } };

/** The error page file's name in the soak's dir, and the first line of its body. */
export const PAGE_FILE = 'soak-error.html';
/** The page file's body (over 1 KiB, so compress takes it on the chain route). */
export const PAGE_BODY = `<!doctype html><title>soak: something went wrong</title>\n${'<p>waygate soak error page, served in place of an upstream failure.</p>\n'.repeat(24)}`;
/** What the pages pool answers for a status (when it answers). */
export function pageOf(status: number): string {
  return `soak page for ${status}\n`;
}
/** What the errors upstream answers for a status it was asked for. */
export function upstreamErrorBody(status: number): string {
  return `upstream says ${status}\n`;
}

/** The pools of `names` among `pools` (those the --pools filter left), in the order of `names`. */
export function mwPools(pools: readonly PoolSpec[], ...names: string[]): PoolSpec[] {
  return names.map((n) => pools.find((p) => p.name === n)).filter((p): p is PoolSpec => p !== undefined);
}

/** The middleware of `kind` on `pool`'s route. */
export function middlewareOf(pool: PoolSpec, kind: string): MiddlewareSpec {
  const m = pool.middlewares?.find((x) => x.kind === kind);
  if (m === undefined) throw new Error(`pool ${pool.name} has no ${kind} middleware`);
  return m;
}

/** A flat header list's values of `name` (lower case), from node's IncomingHttpHeaders or rawHeaders. */
export function headerValues(raw: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() === name) out.push(raw[i + 1]);
  return out;
}

// SPEC §8 `cors`: the route's cross-origin policy (Fetch standard §3.2, "CORS protocol"). A
// preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered here with 204 and
// never reaches the upstream; other requests pass, and a response hook puts this policy's
// access-control-* fields on whatever answers, replacing any the upstream sent.
import { isIP } from 'node:net';
import { z } from 'zod';
import { headerName, method, strict } from '../config/fields.ts';
import { duration } from '../config/units.ts';
import type { Answer, Explained, MiddlewareKind, MiddlewareRequest, RequestFacts, ResponseHead, ResponseHook } from './types.ts';

/** Methods a preflight allows when `methods` is omitted: the CORS-safelisted ones (Fetch §2.2.1). */
export const DEFAULT_CORS_METHODS = ['GET', 'HEAD', 'POST'];

const ANY = '*';
const PREFLIGHT_STATUS = 204;
const DEFAULT_PORTS: Record<string, string> = { http: '80', https: '443' };
// One DNS label: what "*" stands for in https://*.example.com (never a dot, so never two labels).
const LABEL_RE = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
const HOST_RE = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;
// scheme "://" host [":" port], and nothing after: an Origin header never has a path (RFC 6454 §6.1).
const ORIGIN_RE = /^([a-z][a-z0-9+.-]*):\/\/(\[[0-9a-f:.]+\]|[^/:?#[\]@]+)(?::(\d{1,5}))?(.*)$/;

/** A configured origin, normalised to the form browsers send (lower case, no default port). */
type OriginPattern = { readonly exact: string } | { readonly prefix: string; readonly suffix: string };

// Returns the origin as browsers serialise it, or the reason it is not an origin.
function parseOrigin(raw: string): OriginPattern | string {
  const s = raw.toLowerCase();
  const example = 'expected an origin such as https://app.example.com or https://*.example.com, or "*"';
  const m = ORIGIN_RE.exec(s);
  if (m === null) return `${example}, got ${JSON.stringify(raw)}`;
  const [, scheme, host, port, rest] = m;
  if (rest !== '' && !/^[/?#]/.test(rest)) return `${example}, got ${JSON.stringify(raw)}`;
  if (rest !== '') {
    const bare = `${scheme}://${host}${port === undefined ? '' : ':' + port}`;
    return `an origin is scheme://host[:port] with no path, query or trailing slash (browsers send it that way): write ${JSON.stringify(bare)}, got ${JSON.stringify(raw)}`;
  }
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) return `invalid port in origin ${JSON.stringify(raw)}: ports are 1-65535`;
  const wildcard = host.startsWith('*.');
  const bareHost = wildcard ? host.slice(2) : host;
  const ipv6 = bareHost.startsWith('[');
  if (!(ipv6 ? !wildcard && isIP(bareHost.slice(1, -1)) === 6 : HOST_RE.test(bareHost))) {
    const hint = host.includes('*') ? ' ("*" stands for one whole label, first: https://*.example.com)' : '';
    return `invalid host in origin ${JSON.stringify(raw)}${hint}`;
  }
  const portPart = port === undefined || DEFAULT_PORTS[scheme] === String(Number(port)) ? '' : `:${Number(port)}`;
  if (wildcard) return { prefix: `${scheme}://`, suffix: `.${bareHost}${portPart}` };
  return { exact: `${scheme}://${bareHost}${portPart}` };
}

function origin() {
  return z.string({ error: 'expected an origin such as https://app.example.com, or "*"' }).transform((s, ctx): OriginPattern | typeof ANY => {
    if (s === ANY) return ANY;
    const p = parseOrigin(s.trim());
    if (typeof p === 'string') {
      ctx.addIssue({ code: 'custom', message: p });
      return z.NEVER;
    }
    return p;
  });
}

// "*" in Access-Control-Allow-Methods/-Headers is a wildcard only for requests without
// credentials (Fetch §3.2.3) and a literal name otherwise; listing them says the same either way.
function listed<T extends z.ZodType<string>>(item: T, what: string) {
  return z.array(item).superRefine((list, ctx) => {
    list.forEach((v, i) => {
      if (v === ANY) ctx.addIssue({ code: 'custom', path: [i], message: `list the ${what} to allow: "*" is not accepted here` });
    });
  });
}

const options = strict({
  origins: z.array(origin(), { error: 'expected a list of origins such as [https://app.example.com]' }).refine((l) => l.length > 0, { error: 'list at least one origin, or "*"' }),
  methods: listed(method(), 'methods').refine((l) => l.length > 0, { error: 'list at least one method' }).default(DEFAULT_CORS_METHODS),
  headers: listed(headerName(), 'request headers').default([]),
  exposeHeaders: listed(headerName(), 'response headers').default([]),
  credentials: z.boolean({ error: 'expected true or false' }).default(false),
  maxAge: duration().optional(),
}).superRefine((o, ctx) => {
  const star = o.origins.indexOf(ANY);
  if (star < 0) return;
  if (o.credentials) {
    ctx.addIssue({
      code: 'custom',
      path: ['origins', star],
      message: 'origins "*" cannot be used with credentials: true: any site could then read responses made with the user\'s cookies; list the origins allowed instead (e.g. [https://app.example.com])',
    });
  } else if (o.origins.length > 1) {
    ctx.addIssue({ code: 'custom', path: ['origins', star], message: '"*" already allows every origin: list either "*" alone or the origins' });
  }
});

/** The options of a cors middleware, as validated. */
export type CorsOptions = z.output<typeof options>;

// Lower-case field names of every access-control-* field a response can carry (Fetch §3.2.3).
const RESPONSE_FIELD_PREFIX = 'access-control-';

/** Returns true when `headers` (flat) has a Vary listing `token` or "*". */
function varies(headers: readonly string[], token: string): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i].toLowerCase() !== 'vary') continue;
    for (const v of headers[i + 1].split(',')) {
      const t = v.trim().toLowerCase();
      if (t === token || t === ANY) return true;
    }
  }
  return false;
}

/** Adds `origin` to the Vary of `headers` (in place), once: into the existing field, or as a new one. */
export function addVaryOrigin(headers: string[]): void {
  if (varies(headers, 'origin')) return;
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (headers[i].toLowerCase() === 'vary' && headers[i + 1].trim() !== '') {
      headers[i + 1] = `${headers[i + 1]}, origin`;
      return;
    }
  }
  headers.push('vary', 'origin');
}

function removeCorsFields(headers: string[]): void {
  let w = 0;
  for (let r = 0; r < headers.length; r += 2) {
    if (headers[r].toLowerCase().startsWith(RESPONSE_FIELD_PREFIX)) continue;
    headers[w++] = headers[r];
    headers[w++] = headers[r + 1];
  }
  headers.length = w;
}

/** The cors middleware kind (SPEC §8). */
export const cors: MiddlewareKind<typeof options> = {
  kind: 'cors',
  options,
  build(o, deps) {
    const any = o.origins[0] === ANY;
    const exact = new Set<string>();
    const wildcards: { prefix: string; suffix: string }[] = [];
    for (const p of o.origins) {
      if (p === ANY) continue;
      if ('exact' in p) exact.add(p.exact);
      else wildcards.push(p);
    }
    const allows = (originHeader: string): boolean => {
      if (any) return true;
      const s = originHeader.toLowerCase();
      if (exact.has(s)) return true;
      for (const w of wildcards) {
        if (s.length > w.prefix.length + w.suffix.length && s.startsWith(w.prefix) && s.endsWith(w.suffix) && LABEL_RE.test(s.slice(w.prefix.length, s.length - w.suffix.length))) return true;
      }
      return false;
    };
    // With "*" and no credentials every site may read, so the literal "*" says it; otherwise the
    // origin is echoed, the only form a credentialed response accepts (Fetch §3.2.5).
    const allowOrigin = (originHeader: string): string => (any ? ANY : originHeader);
    const maxAge = o.maxAge === undefined ? undefined : String(Math.floor(o.maxAge / 1000));
    const preflightVary = 'origin, access-control-request-method, access-control-request-headers';
    const methods = o.methods.join(', ');
    const allowHeaders = o.headers.join(', ');
    const exposeHeaders = o.exposeHeaders.join(', ');

    const preflight = (originHeader: string): Answer => {
      const headers: string[] = ['vary', preflightVary];
      if (allows(originHeader)) {
        headers.push('access-control-allow-origin', allowOrigin(originHeader), 'access-control-allow-methods', methods);
        // Requested headers not configured are left out: the browser then refuses the request itself.
        if (allowHeaders !== '') headers.push('access-control-allow-headers', allowHeaders);
        if (o.credentials) headers.push('access-control-allow-credentials', 'true');
        if (maxAge !== undefined) headers.push('access-control-max-age', maxAge);
      }
      return { status: PREFLIGHT_STATUS, headers, body: '', rejection: false };
    };

    const hookFor = (originHeader: string | undefined): ResponseHook => ({
      head(head: ResponseHead) {
        // This middleware is the route's policy: an upstream's own access-control-* fields
        // (an "allow-origin: *" left in a framework default) would otherwise widen it.
        removeCorsFields(head.headers);
        if (originHeader !== undefined && allows(originHeader)) {
          head.headers.push('access-control-allow-origin', allowOrigin(originHeader));
          if (o.credentials) head.headers.push('access-control-allow-credentials', 'true');
          if (exposeHeaders !== '') head.headers.push('access-control-expose-headers', exposeHeaders);
        }
        // Whether the fields are there depends on Origin, so a shared cache must key on it.
        addVaryOrigin(head.headers);
        return undefined;
      },
    });

    const isPreflight = (r: RequestFacts, originHeader: string | undefined): originHeader is string =>
      r.method === 'OPTIONS' && originHeader !== undefined && r.header('access-control-request-method') !== undefined;

    return {
      name: deps.name,
      kind: 'cors',
      request(r: MiddlewareRequest) {
        const originHeader = r.header('origin');
        if (isPreflight(r, originHeader)) return preflight(originHeader);
        r.onResponse(hookFor(originHeader));
        return undefined;
      },
      explain(r: RequestFacts): Explained {
        const originHeader = r.header('origin');
        if (isPreflight(r, originHeader)) {
          const verdict = allows(originHeader) ? `origin ${originHeader} allowed` : `origin ${originHeader} not allowed: no access-control-* fields`;
          return { result: 'answers', status: PREFLIGHT_STATUS, why: `answers the preflight (${verdict})` };
        }
        if (originHeader === undefined) return { result: 'passes', why: 'passes, no Origin header: no access-control-* fields to add' };
        if (allows(originHeader)) return { result: 'passes', why: `passes, adds headers for origin ${originHeader}` };
        return { result: 'passes', why: `passes, origin ${originHeader} not allowed` };
      },
      describe() {
        return {
          origins: o.origins.map((p) => (p === ANY ? ANY : 'exact' in p ? p.exact : `${p.prefix}*${p.suffix}`)),
          methods: o.methods,
          headers: o.headers,
          exposeHeaders: o.exposeHeaders,
          credentials: o.credentials,
          ...(maxAge === undefined ? {} : { maxAgeSeconds: Number(maxAge) }),
        };
      },
    };
  },
};

// The `tests:` list of a routes file (SPEC §3): requests with the route, pool or response they
// must get. Only their shape is validated here; running them belongs to --check and reload.
import { isIP } from 'node:net';
import { z } from 'zod';
import { headerMap, nonEmpty, status, strict, text } from './fields.ts';

// "METHOD URL": what a user would type into curl, kept on one line for readable test lists.
const REQUEST_RE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (https?:\/\/\S+)$/;

// "tls://name[:port]" (a ClientHello with that SNI), "tcp://host[:port]" (plain bytes) or
// "udp://host[:port]": what an L4 client would connect with.
const CONNECT_RE = /^(tls|tcp|udp):\/\/([^\s/:]+|\[[0-9a-fA-F:.]+\])(?::(\d{1,5}))?\/?$/;

const HTTP_EXPECT = ['route', 'pool', 'path', 'status', 'location', 'host'] as const;
const HTTP_ONLY = ['headers', 'cookies'] as const;
const CONNECT_ONLY = ['listener', 'alpn', 'clientIp'] as const;

// One map for both kinds, told apart by `request` or `connect`, so a mistake is reported at its
// key ("listener" in an HTTP test) rather than as "matches neither kind".
const testObject = strict({
  request: z.string().transform((s, ctx) => {
    const m = REQUEST_RE.exec(s.trim());
    if (m === null || !URL.canParse(m[2])) {
      ctx.addIssue({ code: 'custom', message: `expected "METHOD URL" such as "GET https://shop.example.com/api", got ${JSON.stringify(s)}` });
      return z.NEVER;
    }
    return { method: m[1].toUpperCase(), url: m[2] };
  }).optional(),
  connect: z.string().transform((s, ctx) => {
    const m = CONNECT_RE.exec(s.trim());
    if (m === null) {
      ctx.addIssue({ code: 'custom', message: `expected "tls://NAME", "tcp://HOST" or "udp://HOST" such as "tls://db.example.com", got ${JSON.stringify(s)}` });
      return z.NEVER;
    }
    return { scheme: m[1] as 'tls' | 'tcp' | 'udp', host: m[2].toLowerCase() };
  }).optional(),
  headers: headerMap().optional(),
  cookies: z.record(z.string(), text()).optional(),
  listener: nonEmpty().optional(),
  alpn: z.array(nonEmpty()).optional(),
  clientIp: z.string().refine((s) => isIP(s) !== 0, { error: (iss) => `expected an IP address, got ${JSON.stringify(iss.input)}` }).optional(),
  expect: strict({
    route: nonEmpty().nullable().optional(),
    pool: nonEmpty().optional(),
    path: nonEmpty().optional(),
    status: status().optional(),
    location: nonEmpty().optional(),
    host: nonEmpty().optional(),
  }),
});

/** The schema of one routes-file test: an HTTP request or (SPEC §7) an L4 connection, and what it must get. */
export const routeTestSchema = testObject
  .superRefine((t, ctx) => {
    const issue = (path: string[], message: string, at?: 'key'): void => ctx.addIssue({ code: 'custom', path, message, ...(at ? { params: { at } } : {}) });
    if ((t.request === undefined) === (t.connect === undefined)) {
      issue([], t.request === undefined ? 'a test needs request ("GET https://…") or connect ("tls://…")' : 'a test has request or connect, not both');
      return;
    }
    const e = t.expect;
    if (t.request !== undefined) {
      for (const k of CONNECT_ONLY) if (t[k] !== undefined) issue([k], `"${k}" belongs to a connect test`, 'key');
      if (e.route === null) issue(['expect', 'route'], 'route: null is for connect tests (the connection is closed); an HTTP test expects a status such as 404');
      if (HTTP_EXPECT.every((k) => e[k] === undefined)) issue(['expect'], 'expect needs at least one of route, pool, path, status, location, host');
    } else {
      for (const k of HTTP_ONLY) if (t[k] !== undefined) issue([k], `"${k}" belongs to a request test`, 'key');
      if (t.listener === undefined) issue([], 'a connect test needs listener: the listeners.tcp or listeners.udp name (or https) it connects to');
      for (const k of ['path', 'status', 'location', 'host'] as const) if (e[k] !== undefined) issue(['expect', k], `"${k}" is for request tests; a connect test expects route and pool`, 'key');
      if (e.route === undefined && e.pool === undefined) issue(['expect'], 'expect needs route (null: the connection is closed) or pool');
    }
  })
  .transform((t) => {
    const { route, pool, path, status: st, location, host } = t.expect;
    if (t.connect !== undefined) {
      return { kind: 'connect' as const, connect: t.connect, listener: t.listener!, alpn: t.alpn ?? [], clientIp: t.clientIp ?? '127.0.0.1', expect: { route, pool } };
    }
    return { kind: 'request' as const, request: t.request!, headers: t.headers ?? {}, cookies: t.cookies ?? {}, expect: { route: route ?? undefined, pool, path, status: st, location, host } };
  });

type TestOutput = z.output<typeof routeTestSchema>;
/** A validated HTTP test; `request` is split into method (upper-cased) and absolute URL. */
export type HttpTestConfig = Extract<TestOutput, { kind: 'request' }>;
/** A validated L4 test. */
export type ConnectTestConfig = Extract<TestOutput, { kind: 'connect' }>;
/** A validated routes-file test. */
export type RouteTestConfig = TestOutput;

// Network-shaped config values: target URLs, host patterns, status ranges, trusted proxy
// ranges and listener addresses. Each schema normalises to the form the runtime compares.
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseAddress } from './address.ts';
import type { ListenAddress } from './address.ts';
import { describeValue } from './units.ts';

/** Returns a schema for a target URL, normalised to its origin ("http://10.0.0.11:3000"). */
export function targetUrl() {
  return z.string().transform((s, ctx) => {
    const problem = targetUrlProblem(s);
    if (problem !== undefined) {
      ctx.addIssue({ code: 'custom', message: problem });
      return z.NEVER;
    }
    return originOf(new URL(s));
  });
}

/** "scheme://host:port" of a target URL; `URL#origin` is "null" for tcp:// and udp://. */
export function originOf(url: URL): string {
  return url.protocol === 'http:' || url.protocol === 'https:' ? url.origin : `${url.protocol}//${url.host}`;
}

/** The schemes a target URL may have: HTTP pools, then L4 pools (SPEC §7). */
export const TARGET_SCHEMES = ['http:', 'https:', 'tcp:', 'udp:'];

// A target names a server, not a resource: path prefixes belong on the route (stripPrefix /
// rewritePath), where they are visible to the router and to /explain.
function targetUrlProblem(s: string): string | undefined {
  const got = JSON.stringify(s);
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    return `expected a target URL such as http://10.0.0.11:3000, got ${got}`;
  }
  if (!TARGET_SCHEMES.includes(url.protocol)) return `a target URL must start with http://, https://, tcp:// or udp://, got ${got}`;
  if (url.hostname === '') return `a target URL needs a host, got ${got}`;
  if ((url.protocol === 'tcp:' || url.protocol === 'udp:') && url.port === '') return `a ${url.protocol.slice(0, -1)}:// target needs a port, such as ${url.protocol}//10.0.0.21:5432, got ${got}`;
  if (url.username !== '' || url.password !== '') return `a target URL cannot carry user info, got ${got}`;
  if ((url.pathname !== '/' && url.pathname !== '') || s.includes('?') || s.includes('#')) {
    return `a target URL is scheme://host[:port] only, without path, query or fragment (rewrite paths on the route with stripPrefix/rewritePath), got ${got}`;
  }
  return undefined;
}

const LABEL = '[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?';
const HOST_RE = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})*$`);

/** True for a lower-case DNS name (labels of letters, digits, "-" and "_"), the form hosts and SNI names are matched in. */
export function isHostName(s: string): boolean {
  return HOST_RE.test(s);
}

/** Returns a schema for a host to match: an exact name, "*.example.com", or an IP; lower-cased. */
export function hostPattern() {
  return z.string().transform((s, ctx) => {
    const host = s.toLowerCase();
    const bare = host.startsWith('*.') ? host.slice(2) : host;
    const ipv6 = bare.startsWith('[') && bare.endsWith(']') && isIP(bare.slice(1, -1)) === 6;
    if (ipv6 && bare === host) return host;
    if (!ipv6 && HOST_RE.test(bare)) return host;
    const hint = /:\d+$/.test(host) ? ' (hosts are matched without the port)' : '';
    ctx.addIssue({ code: 'custom', message: `invalid host ${JSON.stringify(s)}: expected a host name such as shop.example.com or *.example.com${hint}` });
    return z.NEVER;
  });
}

/** An inclusive range of HTTP status codes. */
export type StatusRange = [lo: number, hi: number];

/** Returns the ranges of a status spec (200, "200-399", "200,204,300-399") or the reason it is invalid. */
export function parseStatusRanges(spec: number | string): StatusRange[] | string {
  const ranges: StatusRange[] = [];
  for (const part of String(spec).split(',')) {
    const m = /^\s*(\d{3})\s*(?:-\s*(\d{3})\s*)?$/.exec(part);
    if (!m) return `expected a status such as 200, a range such as 200-399 or a list such as "200,204", got ${JSON.stringify(spec)}`;
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (lo < 100 || hi > 599 || lo > hi) return `invalid status range "${part.trim()}": statuses are 100-599, low to high`;
    ranges.push([lo, hi]);
  }
  return ranges;
}

/** Returns a schema for a status spec, producing a list of [lo, hi] ranges. */
export function statusRanges() {
  return z
    .union([z.number(), z.string()], { error: (iss) => `expected a status such as 200 or 200-399, got ${describeValue(iss.input)}` })
    .transform((spec, ctx) => {
      const r = parseStatusRanges(spec);
      if (typeof r === 'string') {
        ctx.addIssue({ code: 'custom', message: r });
        return z.NEVER;
      }
      return r;
    });
}

/** Returns the canonical "ip/prefix" of an IP or CIDR, or `undefined` when invalid. */
export function parseIpRange(s: string): string | undefined {
  const slash = s.indexOf('/');
  const ip = slash < 0 ? s : s.slice(0, slash);
  const family = isIP(ip);
  if (family === 0) return undefined;
  const max = family === 4 ? 32 : 128;
  if (slash < 0) return `${ip}/${max}`;
  const bits = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return undefined;
  return `${ip}/${Number(bits)}`;
}

/** Returns a schema for a trusted proxy entry (IP or CIDR, v4 or v6), producing "ip/prefix". */
export function ipRange() {
  return z.string().transform((s, ctx) => {
    const r = parseIpRange(s.trim());
    if (r === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected an IP address or CIDR range such as 10.0.0.0/8 or fd00::/8, got ${JSON.stringify(s)}` });
      return z.NEVER;
    }
    return r;
  });
}

/** Returns a schema for a listener address ("HOST:PORT", ":PORT", "PORT" or "off"); null means off. */
export function listenAddress() {
  return z
    .union([z.string(), z.number()], { error: (iss) => `expected an address such as ":8080" or "off", got ${describeValue(iss.input)}` })
    .transform((raw, ctx): ListenAddress | null => {
      const r = parseAddress(String(raw));
      if (r !== null && 'error' in r) {
        ctx.addIssue({ code: 'custom', message: r.error });
        return z.NEVER;
      }
      return r;
    });
}

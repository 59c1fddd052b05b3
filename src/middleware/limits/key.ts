// `by` of rateLimit and inFlightLimit (SPEC §8): what a request is counted under. `client-ip`
// (the default), `host`, or `header:NAME`, where a request without the header is counted under
// its client IP. Header values are chosen by clients, so they get a namespace of their own (a
// header cannot spend the bucket of an IP it names) and a long one is hashed (a 16 KB value
// costs a table no more than an address).
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { isToken } from '../../config/fields.ts';
import { describeValue } from '../../config/units.ts';
import type { RequestFacts } from '../types.ts';

/** A parsed `by`. */
export type LimitBy =
  | { readonly source: 'client-ip'; readonly text: 'client-ip' }
  | { readonly source: 'host'; readonly text: 'host' }
  | { readonly source: 'header'; readonly header: string; readonly text: string };

/** The `by` everyone gets when they write none. */
export const DEFAULT_BY = 'client-ip';

/** Keys longer than this are replaced by their SHA-256 (addresses and host names stay as they are). */
export const MAX_KEY_CHARS = 128;

const HEADER_PREFIX = 'header:';
const BY_HINT = 'expected client-ip, host or header:NAME';

/** The zod schema of `by`. */
export function limitBy() {
  return z.string({ error: (iss) => `${BY_HINT}, got ${describeValue(iss.input)}` }).transform((s, ctx): LimitBy => {
    if (s === 'client-ip') return { source: 'client-ip', text: 'client-ip' };
    if (s === 'host') return { source: 'host', text: 'host' };
    if (s.toLowerCase().startsWith(HEADER_PREFIX)) {
      const name = s.slice(HEADER_PREFIX.length);
      if (isToken(name)) {
        const header = name.toLowerCase();
        return { source: 'header', header, text: `${HEADER_PREFIX}${header}` };
      }
      ctx.addIssue({ code: 'custom', message: `invalid header name ${JSON.stringify(name)} in ${JSON.stringify(s)}` });
      return z.NEVER;
    }
    ctx.addIssue({ code: 'custom', message: `${BY_HINT}, got ${JSON.stringify(s)}` });
    return z.NEVER;
  });
}

/** Returns the function that gives a request's key under `by` (chosen once, at build). */
export function keyFunction(by: LimitBy): (r: RequestFacts) => string {
  switch (by.source) {
    case 'client-ip':
      return (r) => bounded(r.clientIp);
    case 'host':
      return (r) => bounded(r.host);
    case 'header': {
      const name = by.header;
      return (r) => {
        const v = r.header(name);
        // "h=" never starts an address, so a header's keys and the IP fallback never meet.
        return v === undefined || v === '' ? bounded(r.clientIp) : bounded(`h=${v}`);
      };
    }
  }
}

/** `key` itself, or its digest when it is long. */
function bounded(key: string): string {
  return key.length <= MAX_KEY_CHARS ? key : `sha256=${createHash('sha256').update(key).digest('base64url')}`;
}

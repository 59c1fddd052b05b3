// Access control (SPEC §8) in front of one healthy upstream: basicAuth from an htpasswd file made
// here with bcryptjs ($2y$, $2b$, $2a$) and apache-md5 ($apr1$), an ipAllowList the soak's
// clients (127.0.0.1) are in — a healthy `ok` pool with a middleware, which the normal clients and
// the final probe use like the others — one they are not in, and cors. The upstream's `seen`
// variant says which of the fields the middlewares govern reached it; its `leaky` variant answers
// with permissive access-control-* fields of its own, which cors must replace by its policy.
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import apacheMd5 from 'apache-md5';
import { genSaltSync, hashSync } from 'bcryptjs';
import { content } from '../kit/content.ts';
import { CORS_MIDDLEWARE, MW, REALM, USERS, USERS_FILE } from '../kit/mw.ts';
import type { Seen } from '../kit/mw.ts';
import { variantOf } from '../kit/raw-server.ts';
import { HEALTHY_VARIANTS } from './healthy.ts';
import type { UpstreamFault } from '../types.ts';

// apache-md5 is CommonJS: its typings are one default level off (as src/middleware/htpasswd.ts notes).
const aprMd5 = apacheMd5 as unknown as (password: string, salt?: string) => string;
/** bcrypt's cheapest costs: the soak measures waygate, not bcryptjs. */
const COSTS: Record<string, number> = { '$2y$': 5, '$2b$': 4, '$2a$': 4 };

/** The htpasswd file's lines for USERS. */
function htpasswd(): string {
  return USERS.map((u) => {
    if (u.scheme === '$apr1$') return `${u.name}:${aprMd5(Buffer.from(u.password, 'utf8').toString('latin1'))}`;
    const salt = genSaltSync(COSTS[u.scheme]).replace(/^\$2b\$/, u.scheme);
    return `${u.name}:${hashSync(u.password, salt)}`;
  }).join('\n') + '\n';
}

function seen(req: IncomingMessage, res: ServerResponse, leaky: boolean): void {
  req.on('error', () => {});
  res.on('error', () => {});
  req.resume();
  req.on('end', () => {
    if (res.destroyed) return;
    const one = (name: string): string | null => {
      const v = req.headers[name];
      return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
    };
    const body = JSON.stringify({ method: req.method ?? '', url: req.url ?? '', authorization: one('authorization'), origin: one('origin'), xForwardedFor: one('x-forwarded-for') } satisfies Seen);
    const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
    if (leaky) Object.assign(headers, { 'access-control-allow-origin': '*', 'access-control-allow-credentials': 'true', 'access-control-allow-methods': 'DELETE' });
    res.writeHead(200, headers);
    res.end(body);
  });
}

const mwAccess: UpstreamFault = {
  name: 'mw-access',
  async start(ctx) {
    const usersFile = join(ctx.dir, USERS_FILE);
    await writeFile(usersFile, htpasswd(), { mode: 0o600 });
    const server = createServer((req, res) => {
      const v = variantOf(req.url ?? '');
      if (v === 'seen' || v === 'leaky') {
        ctx.hit(`mw-access/${v}`);
        return seen(req, res, v === 'leaky');
      }
      content(req, res, (what) => ctx.hit(`mw-access/${what}`));
    });
    server.keepAliveTimeout = 10_000;
    const port = await ctx.listen(server);
    const targets = [`http://127.0.0.1:${port}`];
    const some = ['seen', 'echo', 'data?size=100'];
    return [
      {
        name: MW.basic, targets, variants: some, expect: 'any', kind: 'http',
        middlewares: [{ name: 'soak-basic', kind: 'basicAuth', options: { usersFile, realm: REALM }, rejects: 'some' }],
      },
      {
        name: MW.ipAllow, targets, variants: [...HEALTHY_VARIANTS, 'seen'], expect: 'ok', kind: 'http',
        middlewares: [{ name: 'soak-loopback-only', kind: 'ipAllowList', options: { sourceRange: ['127.0.0.0/8', '::1/128'] }, rejects: 'never' }],
      },
      {
        name: MW.ipDeny, targets, variants: some, expect: 'any', kind: 'http',
        middlewares: [{ name: 'soak-office-only', kind: 'ipAllowList', options: { sourceRange: ['10.0.0.0/8', '2001:db8::/32'] }, rejects: 'some' }],
      },
      {
        name: MW.cors, targets, variants: ['seen', 'leaky', 'echo'], expect: 'any', kind: 'http',
        middlewares: [CORS_MIDDLEWARE],
      },
    ];
  },
};
export default mwAccess;

// forwardAuth (SPEC §8) against a real auth service: an HTTP server on a stable port that answers
// each check as the client's `x-soak-auth` plan says (at random without one): allow with an x-user
// it makes up (random, so no client can guess one), allow with none, deny (401, 302 to a login
// page, 403, 500, each with a body), a denial too big to keep, silence past the timeout, a reset
// before or in the middle of a 200, and "die": the whole service goes away for a while (listener
// closed, every connection destroyed) and comes back on the same port.
//
// Behind it, an upstream that records every x-user it receives (on requests and on WebSocket
// handshakes, the other path through the chain): a value the auth service did not
// issue for an allowing answer (a client's forged one, or one from a denial or a half-sent 200)
// is a violation, counted as a `/!` fault hit that fails the run (kit/mw-checks.ts), and its
// `whoami` answer tells the client what it got.
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { content } from '../kit/content.ts';
import { AUTH_CHALLENGE, AUTH_PLAN_HEADER, AUTH_REASON_HEADER, AUTH_TIMEOUT_MS, EMAIL_HEADER, MW, OVERSIZE_BYTES, USER_HEADER, WS_ISSUED_HEADER, WS_USERS_HEADER, authAnswerBody, authPlanOf, headerValues, loginLocation } from '../kit/mw.ts';
import type { AuthPlan, Whoami } from '../kit/mw.ts';
import { variantOf } from '../kit/raw-server.ts';
import type { FaultContext, UpstreamFault } from '../types.ts';

/** RFC 6455 §1.3: what the accept key is made with. */
const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** Plans drawn when a check carries none (the generic clients' requests), with their weights. */
const RANDOM_PLANS: [AuthPlan, number][] = [['allow', 40], ['allow-anonymous', 5], ['deny-401', 15], ['deny-302', 10], ['deny-403', 5], ['error-500', 3], ['hang', 5], ['reset', 5], ['reset-mid', 5], ['slow-allow', 5]];
/** How long a `die` keeps the service away, at random in this range (ms). */
const DEAD_MS: [number, number] = [300, 1500];
/** Issued identities remembered (far more than a run's allowing checks). */
const MAX_ISSUED = 200_000;
// Longer than waygate's keep-alive to the auth service (4 s), so an idle connection is never
// closed here just as waygate reuses it.
const KEEP_ALIVE_MS = 10_000;
const RELISTEN_TRIES = 20;
const RELISTEN_GAP_MS = 100;

function randomPlan(): AuthPlan {
  let x = Math.random() * RANDOM_PLANS.reduce((s, [, w]) => s + w, 0);
  for (const [p, w] of RANDOM_PLANS) if ((x -= w) < 0) return p;
  return 'allow';
}

/** Remembers values in insertion order, forgetting the oldest past `max`. */
class Bounded {
  readonly #set = new Set<string>();
  readonly #max: number;
  constructor(max: number) {
    this.#max = max;
  }
  add(v: string): string {
    this.#set.add(v);
    if (this.#set.size > this.#max) this.#set.delete(this.#set.values().next().value!);
    return v;
  }
  has(v: string): boolean {
    return this.#set.has(v);
  }
}

/** The auth service: one server whose listener can die and come back on its port. */
function authService(ctx: FaultContext, issued: Bounded, poisoned: Bounded): { server: Server; setPort(p: number): void } {
  const own = new Set<Socket>();
  let port = 0;
  let listening = true;
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, f: () => void): void => {
    const t = setTimeout(() => {
      timers.delete(t);
      f();
    }, ms);
    timers.add(t);
  };
  const relisten = (tries: number): void => {
    // The port was someone else's for a moment (a stable port is rarely taken): try again.
    const failed = (): void => {
      if (tries >= RELISTEN_TRIES) return void ctx.hit('mw-auth/restart failed: stays dead');
      later(RELISTEN_GAP_MS, () => relisten(tries + 1));
    };
    server.once('error', failed);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', failed);
      listening = true;
      ctx.hit('mw-auth/die: back');
    });
  };
  const die = (ms: number): void => {
    if (!listening) return;
    listening = false;
    ctx.hit('mw-auth/die: gone');
    server.close();
    for (const s of own) s.destroy();
    later(ms, () => relisten(0));
  };

  const answer = (req: IncomingMessage, res: ServerResponse): void => {
    const listed = (req.url ?? '').includes('listed=1');
    const method = String(req.headers['x-forwarded-method'] ?? '?');
    const uri = String(req.headers['x-forwarded-uri'] ?? '?');
    // The check itself: a GET with no body, always; on the listed route, only the listed fields.
    if (req.method !== 'GET') ctx.hit(`mw-auth/!the check was a ${req.method}, not a GET`);
    if (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') ctx.hit('mw-auth/!the check carried a body');
    if (listed && headerValues(req.rawHeaders, USER_HEADER).length > 0) ctx.hit('mw-auth/!an unlisted client field (x-user) reached the auth service');
    const plan = authPlanOf(req.headers[AUTH_PLAN_HEADER]) ?? randomPlan();
    ctx.hit(`mw-auth/${plan}`);
    const text = (status: number, headers: Record<string, string | number>, body: string): void => {
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers });
      res.end(body);
    };
    const body = authAnswerBody(plan, method, uri);
    // A denial carries an identity too: it must never reach the upstream.
    const poison = (): string => poisoned.add(`denied-${randomBytes(12).toString('hex')}`);
    const allow = (status: number, identity: boolean): void => {
      const headers: Record<string, string> = {};
      if (identity) {
        headers[USER_HEADER] = issued.add(`u-${randomBytes(16).toString('hex')}`);
        if (listed) headers[EMAIL_HEADER] = `${headers[USER_HEADER]}@soak.test`;
      }
      if (status === 204) {
        res.writeHead(204, headers);
        res.end();
      } else {
        text(status, headers, 'ok');
      }
    };
    switch (plan) {
      case 'allow':
        return allow(200, true);
      case 'allow-anonymous':
        return allow(200, false);
      case 'allow-204':
        return allow(204, true);
      case 'slow-allow':
        return later(AUTH_TIMEOUT_MS / 2, () => {
          if (!res.destroyed) allow(200, true);
        });
      case 'deny-401':
        return text(401, { 'www-authenticate': AUTH_CHALLENGE, [USER_HEADER]: poison() }, body);
      case 'deny-302':
        return text(302, { location: loginLocation(uri), 'set-cookie': 'soak_login=1; Path=/; HttpOnly', [USER_HEADER]: poison() }, body);
      case 'deny-403':
        return text(403, { [AUTH_REASON_HEADER]: 'soak says no' }, body);
      case 'error-500':
        return text(500, {}, body);
      case 'oversize':
        res.writeHead(401, { 'content-type': 'text/plain', 'content-length': OVERSIZE_BYTES, [USER_HEADER]: poison() });
        return void res.end(Buffer.alloc(OVERSIZE_BYTES, 0x61));
      case 'hang':
        // Never answered: waygate must give up at its timeout (and close the connection).
        return;
      case 'reset':
        return void req.socket.destroy();
      case 'reset-mid':
        res.writeHead(200, { 'content-length': 1000, [USER_HEADER]: poison() });
        return void res.write('partial', () => req.socket.resetAndDestroy());
      case 'die':
        return die(DEAD_MS[0] + Math.floor(Math.random() * (DEAD_MS[1] - DEAD_MS[0])));
    }
  };

  const server = createServer((req, res) => {
    req.on('error', () => {});
    res.on('error', () => {});
    req.resume();
    req.on('end', () => answer(req, res));
  });
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  server.on('connection', (s: Socket) => {
    own.add(s);
    s.once('close', () => own.delete(s));
  });
  server.on('close', () => {
    // The host closing for good (not a die): no comeback.
    if (listening) for (const t of timers) clearTimeout(t);
  });
  return { server, setPort: (p) => (port = p) };
}

const mwAuth: UpstreamFault = {
  name: 'mw-auth',
  async start(ctx) {
    const issued = new Bounded(MAX_ISSUED);
    const poisoned = new Bounded(MAX_ISSUED);
    const auth = authService(ctx, issued, poisoned);
    const authPort = await ctx.listen(auth.server, { stable: true });
    auth.setPort(authPort);

    // The protected upstream: judges every x-user it gets, and tells the client on `whoami`.
    /** The x-user fields a request brought, each judged. */
    const judge = (raw: readonly string[]): string[] => {
      const users = headerValues(raw, USER_HEADER);
      for (const u of users) {
        if (poisoned.has(u)) ctx.hit('mw-auth/!an x-user of a denied or half-sent auth answer reached the upstream');
        else if (!issued.has(u)) ctx.hit('mw-auth/!an x-user the auth service never issued reached the upstream');
      }
      if (users.length > 1) ctx.hit('mw-auth/!several x-user fields reached the upstream');
      return users;
    };
    const upstream = createServer((req, res) => {
      const users = judge(req.rawHeaders);
      if (variantOf(req.url ?? '') !== 'whoami') return content(req, res, (what) => ctx.hit(`mw-auth/upstream ${what}`));
      req.on('error', () => {});
      res.on('error', () => {});
      let bytes = 0;
      req.on('data', (c: Buffer) => (bytes += c.length));
      req.on('end', () => {
        if (res.destroyed) return;
        ctx.hit('mw-auth/upstream whoami');
        const who: Whoami = { method: req.method ?? '', url: req.url ?? '', bytes, users, emails: headerValues(req.rawHeaders, EMAIL_HEADER), issued: users.map((u) => issued.has(u)) };
        const body = JSON.stringify(who);
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    });
    upstream.keepAliveTimeout = KEEP_ALIVE_MS;
    // WebSocket handshakes (mw-auth-ws): the same judgement, then a 101 that says what came.
    upstream.on('upgrade', (req: IncomingMessage, socket: Socket) => {
      socket.on('error', () => {});
      const users = judge(req.rawHeaders);
      ctx.hit('mw-auth/upstream websocket');
      const accept = createHash('sha1').update(`${req.headers['sec-websocket-key'] ?? ''}${WS_GUID}`).digest('base64');
      socket.end([
        'HTTP/1.1 101 Switching Protocols', 'upgrade: websocket', 'connection: Upgrade', `sec-websocket-accept: ${accept}`,
        `${WS_USERS_HEADER}: ${JSON.stringify(users)}`, `${WS_ISSUED_HEADER}: ${JSON.stringify(users.map((u) => issued.has(u)))}`, '', '',
      ].join('\r\n'));
    });
    const port = await ctx.listen(upstream);
    const variants = ['whoami', 'echo', 'data?size=100', 'data?size=65536&chunked=1'];
    const address = `http://127.0.0.1:${authPort}/verify`;
    const sso = { name: 'soak-sso', kind: 'forwardAuth', options: { address, authResponseHeaders: [USER_HEADER], timeout: `${AUTH_TIMEOUT_MS}ms` }, rejects: 'some' as const };
    return [
      {
        name: MW.auth, targets: [`http://127.0.0.1:${port}`], variants, expect: 'any', kind: 'http',
        middlewares: [sso],
      },
      {
        name: MW.authWs, targets: [`http://127.0.0.1:${port}`], variants, expect: 'any', kind: 'http',
        middlewares: [sso],
      },
      {
        name: MW.authListed, targets: [`http://127.0.0.1:${port}`], variants, expect: 'any', kind: 'http',
        middlewares: [{ name: 'soak-sso-listed', kind: 'forwardAuth', options: { address: `${address}?listed=1`, authRequestHeaders: [AUTH_PLAN_HEADER, 'cookie', 'authorization'], authResponseHeaders: [USER_HEADER, EMAIL_HEADER], timeout: `${AUTH_TIMEOUT_MS}ms` }, rejects: 'some' }],
      },
    ];
  },
};
export default mwAuth;

// basicAuth (SPEC §8): HTTP Basic credentials (RFC 7617) checked against htpasswd users, inline
// or from `usersFile`. bcrypt in JavaScript costs ~65 ms at cost 10, so three things keep it from
// owning the event loop: bcryptjs's async compare, a cache of successful verifications (a
// logged-in client costs one hash check, not one per request) and a process-wide bound on hash
// checks running or waiting (beyond it: 503 `authentication busy`, retry-after 1).
import { createHmac, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { nonEmpty, strict } from '../config/fields.ts';
import { dummyUser, parseHtpasswd, parseLine, verifyPassword } from './htpasswd.ts';
import type { HtpasswdUser } from './htpasswd.ts';
import type { Answer, Explained, Middleware, MiddlewareKind, MiddlewareRequest, RequestFacts, Verdict } from './types.ts';

const DEFAULT_REALM = 'waygate';
/** Successful verifications remembered per middleware (a reload starts afresh). */
export const CACHE_ENTRIES = 1024;
/** Hash checks running at once in this process: they share one thread, so more only adds latency. */
export const MAX_RUNNING_CHECKS = 2;
/** Hash checks waiting for a slot; one more is answered 503 at once. */
export const MAX_WAITING_CHECKS = 16;
const BUSY_RETRY_AFTER_S = '1';
// Longer than any credentials a person types; a bigger value is not worth decoding.
const MAX_CREDENTIALS_CHARS = 4096;
const USERS_SHOWN = 50;
// The cache is keyed by an HMAC of the Authorization value, so the cache never holds a password
// and its keys mean nothing outside this process.
const CACHE_KEY = randomBytes(32);
const BASIC_RE = /^basic +([A-Za-z0-9+/]+={0,2}) *$/i;
// RFC 7617 §2: the realm is a quoted-string; kept to printable ASCII without quote or backslash
// so it needs no escaping in the header and shows as written in browsers' prompts.
const REALM_RE = /^[\x20\x21\x23-\x5b\x5d-\x7e]+$/;

const TEXT_PLAIN = 'text/plain; charset=utf-8';

const BUSY: Answer = Object.freeze({
  status: 503,
  headers: Object.freeze(['content-type', TEXT_PLAIN, 'retry-after', BUSY_RETRY_AFTER_S]),
  body: 'authentication busy',
  rejection: true,
});

const inlineFix = (user: string, flags = ''): string => `htpasswd -nB${flags} ${user}`;

const options = strict({
  users: z.array(z.string()).min(1, 'list at least one "user:hash" line (made with `htpasswd -nB USER`)').optional(),
  usersFile: nonEmpty().optional(),
  realm: z.string().regex(REALM_RE, 'a realm is printable ASCII without " or \\ (browsers show it in the login prompt)').default(DEFAULT_REALM),
  forwardHeader: z.boolean().default(false),
}).superRefine((o, ctx) => {
  if ((o.users === undefined) === (o.usersFile === undefined)) {
    ctx.addIssue({ code: 'custom', path: [], message: 'basicAuth needs exactly one of `users` (a list of "user:hash" lines) and `usersFile` (an htpasswd file)' });
  }
  // Inline lines are checked here, so each mistake points at its own line of the routes file.
  const seen = new Set<string>();
  o.users?.forEach((line, i) => {
    const r = parseLine(line.trim(), inlineFix);
    if ('problem' in r) {
      ctx.addIssue({ code: 'custom', path: ['users', i], message: r.user === undefined ? `this line ${r.problem}` : `user ${JSON.stringify(r.user)} ${r.problem}` });
    } else if (seen.has(r.name)) {
      ctx.addIssue({ code: 'custom', path: ['users', i], message: `user ${JSON.stringify(r.name)} is listed twice; keep one line per user` });
    }
    if (!('problem' in r)) seen.add(r.name);
  });
});

type Options = z.output<typeof options>;

/** Bounds the hash checks of the process: `run` returns undefined when running and waiting are full. */
export class HashGate {
  readonly #maxRunning: number;
  readonly #maxWaiting: number;
  #running = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(maxRunning: number, maxWaiting: number) {
    this.#maxRunning = maxRunning;
    this.#maxWaiting = maxWaiting;
  }

  /** Checks running now. */
  get running(): number {
    return this.#running;
  }

  /** Checks waiting for a slot. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Runs `check` when a slot is free; undefined (nothing run) when the bound is reached. */
  run(check: () => Promise<boolean>): Promise<boolean> | undefined {
    if (this.#running < this.#maxRunning) {
      this.#running++;
      // Through a promise executor: even a check that throws gives its slot back.
      return new Promise<boolean>((resolve) => resolve(check())).finally(() => this.#release());
    }
    if (this.#waiting.length >= this.#maxWaiting) return undefined;
    // #release hands its slot straight over, so the waiter starts counted as running.
    return new Promise<void>((start) => this.#waiting.push(start)).then(check).finally(() => this.#release());
  }

  #release(): void {
    const next = this.#waiting.shift();
    if (next === undefined) this.#running--;
    else next();
  }
}

/** The one bound of this process, shared by every basicAuth middleware (the CPU is shared too). */
export const HASH_GATE = new HashGate(MAX_RUNNING_CHECKS, MAX_WAITING_CHECKS);

/** Credentials decoded from an Authorization value, or undefined when it is not valid Basic. */
export function parseBasic(value: string): { user: string; password: Buffer } | undefined {
  if (value.length > MAX_CREDENTIALS_CHARS) return undefined;
  const m = BASIC_RE.exec(value);
  if (m === null) return undefined;
  const bytes = Buffer.from(m[1], 'base64');
  // Buffer.from skips what is not base64; only a value that round-trips is credentials.
  if (bytes.toString('base64').replace(/=+$/, '') !== m[1].replace(/=+$/, '')) return undefined;
  const colon = bytes.indexOf(0x3a);
  if (colon < 0) return undefined;
  return { user: bytes.subarray(0, colon).toString('utf8'), password: bytes.subarray(colon + 1) };
}

class BasicAuth implements Middleware {
  readonly name: string;
  readonly kind = 'basicAuth' as const;
  readonly #users: Map<string, HtpasswdUser>;
  readonly #dummy: HtpasswdUser;
  readonly #o: Options;
  readonly #challenge: Answer;
  /** HMAC of an Authorization value → the user it verified, oldest first. */
  readonly #verified = new Map<string, string>();
  /** Checks in progress by HMAC: the same credentials sent in parallel share one check. */
  readonly #pending = new Map<string, Promise<boolean>>();
  #checks = 0;
  #cacheHits = 0;
  #busy = 0;

  constructor(name: string, users: Map<string, HtpasswdUser>, o: Options) {
    this.name = name;
    this.#users = users;
    this.#dummy = dummyUser(users.values());
    this.#o = o;
    this.#challenge = Object.freeze({
      status: 401,
      headers: Object.freeze(['content-type', TEXT_PLAIN, 'www-authenticate', `Basic realm="${o.realm}", charset="UTF-8"`]),
      body: 'unauthorized',
      rejection: true,
    });
  }

  request(r: MiddlewareRequest): Verdict | Promise<Verdict> {
    const value = r.header('authorization');
    if (value === undefined) return this.#challenge;
    const key = createHmac('sha256', CACHE_KEY).update(value).digest('base64');
    const known = this.#verified.get(key);
    if (known !== undefined) {
      // Re-inserted: the map's order is least recently used first.
      this.#verified.delete(key);
      this.#verified.set(key, known);
      this.#cacheHits++;
      return this.#pass(r);
    }
    const creds = parseBasic(value);
    if (creds === undefined) return this.#challenge;
    const user = this.#users.get(creds.user);
    // An unknown user is checked against the dummy hash: the same cost as a known one.
    const against = user ?? this.#dummy;
    if (against.scheme === 'apr1') {
      this.#checks++;
      return this.#settle(r, key, user, verifyPassword(against, creds.password) === true);
    }
    let pending = this.#pending.get(key);
    if (pending === undefined) {
      const started = HASH_GATE.run(() => {
        this.#checks++;
        return verifyPassword(against, creds.password) as Promise<boolean>;
      });
      if (started === undefined) {
        this.#busy++;
        return BUSY;
      }
      pending = started.finally(() => this.#pending.delete(key));
      this.#pending.set(key, pending);
    }
    return pending.then((ok) => this.#settle(r, key, user, ok));
  }

  #settle(r: MiddlewareRequest, key: string, user: HtpasswdUser | undefined, ok: boolean): Verdict {
    if (!ok || user === undefined) return this.#challenge;
    if (!this.#verified.has(key)) {
      if (this.#verified.size >= CACHE_ENTRIES) this.#verified.delete(this.#verified.keys().next().value!);
      this.#verified.set(key, user.name);
    }
    return this.#pass(r);
  }

  #pass(r: MiddlewareRequest): undefined {
    if (!this.#o.forwardHeader) r.upstream.remove('authorization');
    return undefined;
  }

  explain(r: RequestFacts): Explained {
    const reject = (why: string): Explained => ({ result: 'rejects', status: 401, why });
    const value = r.header('authorization');
    if (value === undefined) return reject('the request has no Authorization header');
    const known = this.#verified.get(createHmac('sha256', CACHE_KEY).update(value).digest('base64'));
    if (known !== undefined) return { result: 'passes', why: `these credentials of user ${JSON.stringify(known)} were verified before` };
    const creds = parseBasic(value);
    if (creds === undefined) return reject('the Authorization header is not valid Basic credentials');
    const user = this.#users.get(creds.user);
    if (user === undefined) return reject(`there is no user ${JSON.stringify(creds.user)}`);
    if (user.scheme === 'bcrypt') return { result: 'unknown', why: `user ${JSON.stringify(user.name)} has a bcrypt hash: /explain does not spend a hash check on it` };
    return verifyPassword(user, creds.password) === true
      ? { result: 'passes', why: `the password of user ${JSON.stringify(user.name)} is right` }
      : reject(`the password of user ${JSON.stringify(user.name)} is wrong`);
  }

  describe(): Record<string, unknown> {
    const names = [...this.#users.keys()];
    const schemes = { bcrypt: 0, apr1: 0 };
    for (const u of this.#users.values()) schemes[u.scheme]++;
    return {
      ...(this.#o.usersFile === undefined ? { source: 'inline' } : { source: 'usersFile', usersFile: this.#o.usersFile }),
      userCount: names.length,
      users: names.slice(0, USERS_SHOWN),
      schemes,
      realm: this.#o.realm,
      forwardHeader: this.#o.forwardHeader,
      hashChecks: this.#checks,
      cacheHits: this.#cacheHits,
      cached: this.#verified.size,
      busyRejections: this.#busy,
    };
  }

  close(): void {
    this.#verified.clear();
  }
}

/** The basicAuth middleware kind. */
export const basicAuth: MiddlewareKind<typeof options> = {
  kind: 'basicAuth',
  options,
  files: (o) => (o.usersFile === undefined ? [] : [o.usersFile]),
  build(o, deps) {
    let parsed;
    if (o.usersFile !== undefined) {
      const file = o.usersFile;
      const text = deps.files.get(file);
      if (text === undefined) throw new Error(`usersFile ${JSON.stringify(file)} was not read`);
      parsed = parseHtpasswd(text.toString('utf8'), (user, flags = '') => `htpasswd -B${flags} ${file} ${user}`);
      if (!parsed.ok) throw new Error(`usersFile ${JSON.stringify(file)} ${parsed.problems.join('; ')}`);
    } else {
      // Already checked line by line by the schema; parsed again for the users map.
      parsed = parseHtpasswd(o.users!.join('\n'), inlineFix);
      if (!parsed.ok) throw new Error(`users ${parsed.problems.join('; ')}`);
    }
    return new BasicAuth(deps.name, parsed.users, o);
  },
};

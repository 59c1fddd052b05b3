// CHAIN-READY — the middleware chain (SPEC §8): a route's middlewares run in the order it lists
// them, before its action. Each may answer (the chain stops there) or let the request through,
// editing the request as forwarded and adding hooks on the response. A middleware that answers
// synchronously costs no promise and no microtask; one that waits (Redis, an auth service, a
// bcrypt check) resumes the chain when its promise settles. A route without middlewares has no
// chain at all: the request path reads one property and goes on.
import type { IncomingMessage } from 'node:http';
import type { HeaderOps } from '../forward/headers.ts';
import { isPromise } from './shape.ts';
import type { Answer, Middleware, MiddlewareRequest, ResponseHook, UpstreamEdits } from './types.ts';

/** The facts an exchange gives its chain. */
export interface ChainFacts {
  readonly scheme: 'http' | 'https';
  readonly host: string;
  readonly hostHeader: string;
  readonly clientIp: string;
  readonly requestId: string;
  readonly route: string;
  readonly websocket: boolean;
}

/** The answer to a middleware that threw or whose promise rejected: its bug, not the client's. */
const INTERNAL: Answer = { status: 500, headers: ['content-type', 'text/plain; charset=utf-8'], body: 'internal error', rejection: true };

/** One request's passage through its chain: the MiddlewareRequest every middleware gets. */
export class ChainRequest implements MiddlewareRequest, UpstreamEdits {
  readonly #req: IncomingMessage;
  readonly #facts: ChainFacts;
  #raw: readonly string[] | undefined;
  #drop: Set<string> | undefined;
  #append: string[] | undefined;
  #done: (() => void)[] | undefined;
  #finished = false;
  /** Response hooks in the order added; empty when no middleware added one. */
  readonly hooks: ResponseHook[] = [];

  constructor(req: IncomingMessage, facts: ChainFacts) {
    this.#req = req;
    this.#facts = facts;
  }

  get method(): string {
    return this.#req.method ?? '';
  }
  get scheme(): 'http' | 'https' {
    return this.#facts.scheme;
  }
  get host(): string {
    return this.#facts.host;
  }
  get hostHeader(): string {
    return this.#facts.hostHeader;
  }
  get uri(): string {
    return this.#req.url ?? '/';
  }
  get clientIp(): string {
    return this.#facts.clientIp;
  }
  get requestId(): string {
    return this.#facts.requestId;
  }
  get route(): string {
    return this.#facts.route;
  }
  get websocket(): boolean {
    return this.#facts.websocket;
  }

  header(name: string): string | undefined {
    const v = this.#req.headers[name];
    if (v === undefined || typeof v === 'string') return v;
    return v.join(name === 'cookie' ? '; ' : ', ');
  }

  get rawHeaders(): readonly string[] {
    if (this.#raw !== undefined) return this.#raw;
    const raw = this.#req.rawHeaders;
    // HTTP/2 pseudo-headers (":path", …) describe the hop, not the request.
    let out: string[] | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i].charCodeAt(0) !== 58) out?.push(raw[i], raw[i + 1]);
      else out ??= raw.slice(0, i);
    }
    this.#raw = out ?? raw;
    return this.#raw;
  }

  get upstream(): UpstreamEdits {
    return this;
  }

  remove(name: string): void {
    const lower = name.toLowerCase();
    (this.#drop ??= new Set()).add(lower);
    this.#unset(lower);
  }

  set(name: string, value: string): void {
    this.remove(name);
    (this.#append ??= []).push(name, value);
  }

  /** Drops what an earlier set() of this name appended: the last set() wins. */
  #unset(lower: string): void {
    const a = this.#append;
    if (a === undefined) return;
    for (let i = a.length - 2; i >= 0; i -= 2) if (a[i].toLowerCase() === lower) a.splice(i, 2);
  }

  onResponse(hook: ResponseHook): void {
    this.hooks.push(hook);
  }

  onDone(fn: () => void): void {
    // Added after the exchange ended (an async acquire that settled late): it ends at once.
    if (this.#finished) fn();
    else (this.#done ??= []).push(fn);
  }

  /** True once the exchange ended (finish() ran). */
  get finished(): boolean {
    return this.#finished;
  }

  /** Runs the onDone callbacks, once; called when the exchange ends, however it ends. */
  finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    const fns = this.#done;
    this.#done = undefined;
    if (fns !== undefined) for (const fn of fns) fn();
  }

  /**
   * The forwarded request's header operations: the route's `requestHeaders` first, then the
   * middlewares' edits (a middleware's removal also removes what the route set: forwardAuth's
   * identity headers cannot be forged through a route either).
   */
  requestOps(route: HeaderOps | undefined): HeaderOps | undefined {
    const drop = this.#drop;
    const append = this.#append;
    if (drop === undefined && append === undefined) return route;
    const d = new Set(route?.drop);
    if (drop !== undefined) for (const n of drop) d.add(n);
    const a: string[] = [];
    if (route !== undefined) {
      for (let i = 0; i < route.append.length; i += 2) if (drop === undefined || !drop.has(route.append[i].toLowerCase())) a.push(route.append[i], route.append[i + 1]);
    }
    if (append !== undefined) a.push(...append);
    return { drop: d, append: a };
  }
}

/** How a chain ended: an answer and the middleware that gave it, or undefined to go on to the action. */
export type ChainOutcome = { answer: Answer; by: Middleware } | undefined;

/** Called with the outcome, then with the error when a middleware threw (for the log). */
export type ChainDone = (outcome: ChainOutcome, err?: unknown) => void;

/**
 * Runs `list` over `r` and calls `done` once: synchronously when every middleware answered
 * synchronously, else when the last promise settles. A middleware that throws or rejects answers
 * 500 (its bug is this request's alone); `done` gets the error to log.
 */
export function runChain(list: readonly Middleware[], r: ChainRequest, done: ChainDone): void {
  let i = 0;
  const next = (): void => {
    while (i < list.length) {
      const m = list[i++];
      let v: ReturnType<Middleware['request']>;
      try {
        v = m.request(r);
      } catch (err) {
        done({ answer: INTERNAL, by: m }, err);
        return;
      }
      if (v === undefined) continue;
      if (isPromise<Answer | undefined>(v)) {
        v.then(
          (a) => (a === undefined ? next() : done({ answer: a, by: m })),
          (err: unknown) => done({ answer: INTERNAL, by: m }, err),
        );
        return;
      }
      done({ answer: v, by: m });
      return;
    }
    done(undefined);
  };
  next();
}

/**
 * An answer's head and body as waygate writes them: content-length added, except for a 204 or
 * 304, which carry neither a body nor a content-length (RFC 9110 §8.6, §15.4.5).
 */
export function answerParts(answer: Answer): { headers: string[]; body: Buffer | undefined } {
  if (answer.status === 204 || answer.status === 304) return { headers: [...answer.headers], body: undefined };
  const body = typeof answer.body === 'string' ? Buffer.from(answer.body) : answer.body;
  return { headers: [...answer.headers, 'content-length', String(body.length)], body };
}

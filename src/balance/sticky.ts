// Sticky sessions (SPEC §4): the cookie holds an opaque token of the target, an HMAC of the pool
// name and target URL keyed with the shared secret. Every replica with the same secret computes
// the same token (no shared state), a client cannot mint a token for a target of its choice, and
// a forged or stale token simply matches nothing.
import { createHmac } from 'node:crypto';

// 22 base64url characters = 132 bits of the HMAC: far beyond guessing, short in a cookie.
const TOKEN_LENGTH = 22;

/** Returns the sticky token of `url` in pool `pool` under `secret`. */
export function stickyToken(secret: string, pool: string, url: string): string {
  return createHmac('sha256', secret).update(pool).update('\u0000').update(url).digest('base64url').slice(0, TOKEN_LENGTH);
}

/** Sticky settings of a pool, compiled. */
export interface StickyOptions {
  cookie: string;
  /** Cookie lifetime in ms; undefined for a session cookie. */
  maxAge: number | undefined;
  onDown: 'rebalance' | 'fail';
}

/** Maps tokens to a pool's targets and back. */
export class StickyPins<T extends { readonly url: string }> {
  readonly options: StickyOptions;
  readonly #byToken = new Map<string, T>();
  readonly #tokenOf = new Map<T, string>();
  readonly #attributes: string;
  readonly #secureAttributes: string;

  constructor(secret: string, pool: string, targets: readonly T[], options: StickyOptions) {
    this.options = options;
    for (const t of targets) {
      const token = stickyToken(secret, pool, t.url);
      this.#byToken.set(token, t);
      this.#tokenOf.set(t, token);
    }
    const maxAge = options.maxAge === undefined ? '' : `; Max-Age=${Math.floor(options.maxAge / 1000)}`;
    this.#attributes = `; Path=/; HttpOnly; SameSite=Lax${maxAge}`;
    this.#secureAttributes = this.#attributes + '; Secure';
  }

  /** Returns the target a token pins, or undefined for an absent, forged or stale token. */
  target(token: string | undefined): T | undefined {
    return token === undefined ? undefined : this.#byToken.get(token);
  }

  /** Returns the token of a target of this pool. */
  token(target: T): string {
    return this.#tokenOf.get(target)!;
  }

  /** Returns the Set-Cookie value pinning `target` (with `Secure` when the client used HTTPS). */
  setCookie(target: T, secure: boolean): string {
    return `${this.options.cookie}=${this.token(target)}${secure ? this.#secureAttributes : this.#attributes}`;
  }
}

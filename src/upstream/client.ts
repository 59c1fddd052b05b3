// The upstream HTTP client contract, waygate's own: what the forwarder asks of a connection pool to
// one target, and the calls it gets back. The builtin HTTP/1.1 client (h1/) implements it directly;
// undici (for HTTP/2 and `client: undici` pools) is adapted to it (undici.ts). Both pass one
// conformance table (test/upstream/conformance.test.ts), so a pool behaves the same on either.
//
// Errors carry undici-style codes (UND_ERR_*, HPE_*, the socket's E*): errors.ts maps them to a
// status and to the retry rules, whichever client raised them.
import type { Readable } from 'node:stream';
import type { ProxyEnds } from '../l4/proxy-header.ts';

/**
 * A request body as a client sends it: none, bytes known in advance (sent with a Content-Length),
 * or a stream (sent as its Content-Length header declares, else chunked). The stream belongs to
 * the caller (forward/body.ts): a client reads it and detaches, it never destroys it.
 */
export type UpstreamBody = Buffer | Readable | null;

/** One request to one target. */
export interface UpstreamRequest {
  readonly method: string;
  /** Path and query, sent as they are. */
  readonly path: string;
  /** Flat [name, value, …], sent as given (latin1 strings: the bytes the client sent). */
  readonly headers: readonly string[];
  readonly body: UpstreamBody;
  /** Longest wait for the response head once the request was sent, in ms (0: none). */
  readonly responseTimeout: number;
  /** Longest silence between response body bytes, in ms (0: none). */
  readonly idleTimeout: number;
  /**
   * True when the caller allows one more send of this request on a new connection after a reused
   * keep-alive connection closed before any byte of a response (the upstream's idle timeout racing
   * the request). False: the request is never sent twice by the client.
   */
  readonly replayable: boolean;
  /**
   * SPEC §7, a pool with `proxyProtocol: v1 | v2` (builtin client only): every new connection
   * starts with the PROXY header announcing `ends`, and serves requests of `owner` alone.
   * Undefined for every other pool.
   */
  readonly proxy?: UpstreamProxy;
}

/** The client connection a request of a `proxyProtocol` pool came on (UpstreamRequest.proxy). */
export interface UpstreamProxy {
  readonly version: 'v1' | 'v2';
  /** Its two ends, as the PROXY header announces them. */
  readonly ends: ProxyEnds;
  /**
   * The client connection itself (the same object for all its requests): an upstream connection
   * made for it is reused by its later requests only, and closed once it is destroyed.
   */
  readonly owner: { readonly destroyed: boolean };
}

/** What the handler steers its request with. */
export interface UpstreamController {
  /** Stops delivering response bytes (backpressure) until resume(). */
  pause(): void;
  resume(): void;
  /** Ends the request with `reason`; onError follows once, asynchronously. */
  abort(reason: Error): void;
  readonly aborted: boolean;
}

/**
 * The calls a request makes back, in this order: onStart once (synchronously, inside request());
 * onReplay and onBodySent as they happen; onInterim for each 1xx (never 101); onHeaders once;
 * onData for each body chunk; then exactly one of onEnd or onError, and nothing after it. onError
 * is never called from inside another of these calls or from inside request() or abort().
 */
export interface UpstreamHandler {
  onStart(controller: UpstreamController): void;
  /** The request is being sent once more on a new connection (see UpstreamRequest.replayable). */
  onReplay(): void;
  /** `bytes` of the body went out. */
  onBodySent(bytes: number): void;
  /** An interim 1xx response (RFC 9110 §15.2), e.g. 103 Early Hints. */
  onInterim(status: number, rawHeaders: readonly string[]): void;
  /** The final response's head: flat [name, value, …] as received. */
  onHeaders(status: number, reason: string, rawHeaders: readonly string[]): void;
  /**
   * Body bytes. `last` is true when these are the body's last bytes and onEnd follows in the same
   * call stack: the handler may hold them and send them with the end (one write instead of two).
   */
  onData(chunk: Buffer, last: boolean): void;
  /** The response is complete; trailers by lower-case name (empty when none). */
  onEnd(trailers: Readonly<Record<string, string>>): void;
  onError(err: Error): void;
}

/** A connection pool to one target. */
export interface UpstreamClient {
  /** Starts `req`. Never throws: a request that cannot be sent ends in `handler.onError`. */
  request(req: UpstreamRequest, handler: UpstreamHandler): void;
  /** Lets in-flight requests finish, then closes every connection. */
  close(): Promise<void>;
}

/** Which HTTP/1.1 client a pool uses (`client:` in a routes file). */
export type ClientKind = 'builtin' | 'undici';

/** An error with an undici-style code, which errors.ts maps to a status and a retry rule. */
export function coded(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

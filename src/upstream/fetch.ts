// A whole, buffered request to one target through its UpstreamClient: the same keep-alive
// connections, connect timeout and framing as forwarded requests. For waygate's own calls
// (forwardAuth's check, errorPages' pages), never for client traffic.
import { GatewayError, fromUpstreamError } from '../errors.ts';
import type { UpstreamController, UpstreamHandler } from './client.ts';
import type { Target, TargetConnectOptions } from './target.ts';

/** One buffered request. */
export interface FetchRequest {
  readonly method: string;
  /** Path and query. */
  readonly path: string;
  /** Flat [name, value, …]; Host included. */
  readonly headers: readonly string[];
  /** Longest time for the whole exchange (connect, head and body), in ms. */
  readonly timeout: number;
  /** Largest body kept; a longer one fails the fetch (`upstream_bad_response`). */
  readonly maxBody: number;
}

/** A complete response. */
export interface FetchResponse {
  readonly status: number;
  /** Flat [name, value, …] as received. */
  readonly headers: readonly string[];
  readonly body: Buffer;
}

/**
 * Sends `req` to `target` and resolves with the whole response; rejects with a GatewayError
 * (`upstream_timeout` past `req.timeout`, connect failures, resets, a body over `maxBody`).
 * The target's in-flight count covers the exchange.
 */
export function fetchFrom(target: Target, connect: TargetConnectOptions, req: FetchRequest): Promise<FetchResponse> {
  return new Promise((resolve, reject) => {
    const release = target.acquire();
    let controller: UpstreamController | undefined;
    let status = 0;
    let headers: readonly string[] = [];
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (err: Error | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      release();
      if (err === undefined) {
        target.recordSuccess();
        resolve({ status, headers, body: Buffer.concat(chunks, size) });
      } else {
        const e = err instanceof GatewayError ? err : fromUpstreamError(err);
        if (e.source === 'upstream') target.recordFailure();
        reject(e);
      }
    };
    const timer = setTimeout(() => {
      const err = new GatewayError('upstream_timeout', `no complete answer from ${target.url} within ${req.timeout} ms`);
      // abort() reports through onError; settling first makes the timeout the reason given.
      controller?.abort(err);
      settle(err);
    }, req.timeout);
    timer.unref();
    const handler: UpstreamHandler = {
      onStart: (c) => {
        controller = c;
      },
      onReplay: () => {},
      onBodySent: () => {},
      onInterim: () => {},
      onHeaders: (s, _reason, raw) => {
        status = s;
        headers = raw;
      },
      onData: (chunk) => {
        size += chunk.length;
        if (size > req.maxBody) {
          const err = new GatewayError('upstream_bad_response', `answer from ${target.url} is over ${req.maxBody} bytes`);
          controller?.abort(err);
          settle(err);
          return;
        }
        chunks.push(chunk);
      },
      onEnd: () => settle(undefined),
      onError: (err) => settle(err),
    };
    target.client(connect).request(
      { method: req.method, path: req.path, headers: req.headers, body: null, responseTimeout: req.timeout, idleTimeout: req.timeout, replayable: req.method === 'GET' || req.method === 'HEAD' },
      handler,
    );
  });
}

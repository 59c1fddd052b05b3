// Typed errors: every failure on the request path is one of these codes, and the server turns
// them into responses in exactly one place (server/respond.ts), like Traefik's ComputeStatusCode.

/** Where a failure came from: the client's request, an upstream, or waygate itself. */
export type ErrorSource = 'client' | 'upstream' | 'internal';

/** Every failure a request can end with. */
export type ErrorCode =
  | 'bad_request'
  | 'no_route'
  | 'misdirected'
  | 'uri_too_long'
  | 'headers_too_large'
  | 'body_too_large'
  | 'client_timeout'
  | 'no_healthy_upstream'
  | 'upstream_connect'
  | 'upstream_timeout'
  | 'upstream_reset'
  | 'upstream_bad_response'
  | 'client_aborted'
  | 'internal';

/** The outcome label of `waygate_upstream_requests_total` (SPEC §6) for an upstream attempt. */
export type UpstreamOutcome = 'success' | 'connect_error' | 'timeout' | 'reset' | 'bad_response';

const STATUS: Record<ErrorCode, number> = {
  bad_request: 400,
  no_route: 404,
  misdirected: 421,
  uri_too_long: 414,
  headers_too_large: 431,
  body_too_large: 413,
  client_timeout: 408,
  no_healthy_upstream: 503,
  upstream_connect: 502,
  upstream_timeout: 504,
  upstream_reset: 502,
  upstream_bad_response: 502,
  // 499 is never sent (the client is gone); it is what the access log records, like nginx.
  client_aborted: 499,
  internal: 500,
};

const SOURCE: Record<ErrorCode, ErrorSource> = {
  bad_request: 'client',
  no_route: 'client',
  misdirected: 'client',
  uri_too_long: 'client',
  headers_too_large: 'client',
  body_too_large: 'client',
  client_timeout: 'client',
  no_healthy_upstream: 'upstream',
  upstream_connect: 'upstream',
  upstream_timeout: 'upstream',
  upstream_reset: 'upstream',
  upstream_bad_response: 'upstream',
  client_aborted: 'client',
  internal: 'internal',
};

/** A failure with a literal code, the status it maps to and where it came from. */
export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly source: ErrorSource;
  /** True when the request never reached the upstream (no byte of it was sent). */
  readonly beforeSend: boolean;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; beforeSend?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.status = STATUS[code];
    this.source = SOURCE[code];
    this.beforeSend = options?.beforeSend ?? false;
  }
}

// Errors whose code means the TCP/TLS connection was never established, so nothing was sent.
const CONNECT_CODES = new Set([
  'ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL',
  'ERR_TLS_CERT_ALTNAME_INVALID', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN', 'CERT_HAS_EXPIRED', 'ERR_SSL_WRONG_VERSION_NUMBER',
]);

const REFUSED_STREAM = /NGHTTP2_(REFUSED_STREAM|ENHANCE_YOUR_CALM)/;

/**
 * Classifies an error raised by an upstream client (undici-style codes) for one attempt into a GatewayError.
 * Returns the error unchanged when it already is one.
 */
export function fromUpstreamError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const e = err as { code?: string; message?: string } | undefined;
  const code = e?.code ?? '';
  const message = e?.message ?? String(err);
  if (code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new GatewayError('upstream_timeout', `connect timeout: ${message}`, { cause: err, beforeSend: true });
  }
  if (CONNECT_CODES.has(code)) {
    return new GatewayError('upstream_connect', `connect failed: ${message}`, { cause: err, beforeSend: true });
  }
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new GatewayError('upstream_timeout', message, { cause: err });
  }
  // undici's HTTPParserError carries no code for some llhttp errors (a status line of four digits).
  if (code.startsWith('HPE_') || (err as Error | undefined)?.name === 'HTTPParserError' || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' || code === 'UND_ERR_INFO' || code === 'UND_ERR_HEADERS_OVERFLOW') {
    return new GatewayError('upstream_bad_response', `invalid upstream response: ${message}`, { cause: err });
  }
  // An HTTP/2 stream the server refused before reading it (RFC 9113 §8.7: REFUSED_STREAM; Node
  // servers answer ENHANCE_YOUR_CALM when they cannot take another stream) was never processed:
  // like a failed connect, safe to send elsewhere whatever the method.
  if (REFUSED_STREAM.test(message)) {
    return new GatewayError('upstream_reset', `upstream refused the stream: ${message}`, { cause: err, beforeSend: true });
  }
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET' || code === 'UND_ERR_CLOSED') {
    return new GatewayError('upstream_reset', `upstream connection reset: ${message}`, { cause: err });
  }
  if (code === 'UND_ERR_ABORTED' || code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') {
    return new GatewayError('client_aborted', message, { cause: err });
  }
  return new GatewayError('upstream_reset', `upstream error: ${message}`, { cause: err });
}

/** The metrics outcome label for a failed attempt's error. */
export function outcomeOf(err: GatewayError): UpstreamOutcome {
  switch (err.code) {
    case 'upstream_connect':
      return 'connect_error';
    case 'upstream_timeout':
      return 'timeout';
    case 'upstream_bad_response':
      return 'bad_response';
    default:
      return 'reset';
  }
}

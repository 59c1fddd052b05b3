// The pieces the generator builds responses from: for each part of an HTTP/1.1 response (RFC 9112),
// values that are valid, values on the edge of valid, and values a strict parser must refuse.
// Weighted lists ([weight, value]) so that most cases stay close enough to valid to reach the
// next layer of the parser.

/** HTTP versions for a status line (RFC 9112 §2.3, §4). */
export const VERSIONS: readonly (readonly [number, string])[] = [
  [60, 'HTTP/1.1'], [25, 'HTTP/1.0'], [2, 'HTTP/1.2'], [2, 'HTTP/2.0'], [2, 'HTTP/0.9'], [1, 'HTTP/1.01'],
  [1, 'http/1.1'], [1, 'HTTP/11'], [1, 'HTTP/1.'], [1, 'HTTP/ 1.1'], [1, 'HTTPS/1.1'], [1, 'HTTP/3.0'],
  [1, 'HTTP/1.1 '], [1, ' HTTP/1.1'], [1, 'HTTP/9.9'], [1, 'HTTP/1.x'], [1, '\r\nHTTP/1.1'], [1, 'HTTP/1,1'],
];

/** Final status codes, valid and odd (RFC 9110 §15: three digits, 100..599 defined). */
export const CODES: readonly (readonly [number, string])[] = [
  [30, '200'], [3, '201'], [2, '202'], [2, '203'], [2, '205'], [2, '206'], [1, '226'], [1, '299'], [2, '301'],
  [2, '302'], [1, '307'], [3, '400'], [3, '404'], [1, '418'], [3, '500'], [2, '502'], [1, '599'], [1, '600'],
  [1, '700'], [1, '999'], [1, '099'], [1, '000'], [1, '001'], [1, '20'], [1, '2000'], [1, '2x0'], [1, '+20'],
  [1, '-20'], [1, ' 200'], [1, '20 0'], [1, '0200'], [1, '2\x000'],
];

/** Reason phrases (RFC 9112 §4: HTAB, SP, VCHAR, obs-text). */
export const REASONS: readonly (readonly [number, string])[] = [
  [40, 'OK'], [5, 'Not Found'], [5, ''], [2, 'O\tK'], [2, '\tOK'], [2, 'OK '], [2, 'Ok: colon'], [2, '\xe9t\xe9'],
  [2, '\x80\xff'], [1, 'a\x00b'], [1, 'a\x01b'], [1, 'a\x7fb'], [1, 'a\rb'], [1, 'a\nb'], [1, ' double'],
  [1, 'a\x1bb'], [1, 'HTTP/1.1 200 OK'],
];

/** What separates the code from the reason. */
export const REASON_SEPARATORS: readonly (readonly [number, string])[] = [[80, ' '], [8, ''], [3, '\t'], [3, '  ']];

/** Optional whitespace around a field value (RFC 9110 §5.6.3: SP / HTAB). */
export const OWS: readonly (readonly [number, string])[] = [[50, ' '], [15, ''], [8, '  '], [8, '\t'], [5, ' \t'], [5, '\t '], [2, '\x0b'], [2, '\x0c']];

/** Single control bytes (RFC 9110 §5.5: never valid in a field value, HTAB aside). */
export const CONTROLS = ['\x00', '\x01', '\x07', '\x08', '\x0b', '\x0c', '\x0e', '\x1b', '\x1f', '\x7f'];

/** Characters a field name may hold besides letters and digits: tchar (RFC 9110 §5.6.2). */
export const TCHARS = "!#$%&'*+-.^_`|~";
/** Characters a field name may not hold: separators, whitespace, controls, obs-text. */
export const NON_TCHARS = ['(', ')', ',', '/', ';', '<', '=', '>', '?', '@', '[', '\\', ']', '{', '}', '"', ' ', '\t', '\x80', '\xff', '\x00', '\x7f', '\x01'];

/** Ordinary fields of a response, as a server writes them. */
export const ORDINARY: readonly string[] = [
  'Date: Tue, 01 Dec 2026 20:16:06 GMT', 'Server: fuzz/1.0', 'Content-Type: text/plain; charset=utf-8',
  'Cache-Control: no-cache', 'Set-Cookie: a=1; Path=/; HttpOnly', 'X-Request-Id: 3f2a9c', 'Vary: Accept-Encoding',
  'ETag: "abc"', 'Link: </style.css>; rel=preload; as=style', 'X-Powered-By: fuzz',
];

/** Transfer-Encoding values (RFC 9112 §6.1, §7): one chunked, with odd spelling, or other codings. */
export const TE_VALUES: readonly (readonly [number, string])[] = [
  [30, 'chunked'], [4, 'Chunked'], [4, 'CHUNKED'], [2, 'cHuNkEd'], [3, ' chunked'], [3, 'chunked '], [3, '\tchunked\t'],
  [3, 'chunked, chunked'], [4, 'gzip, chunked'], [2, 'deflate,chunked'], [3, 'chunked, gzip'], [3, 'gzip'],
  [2, 'identity'], [2, 'identity, chunked'], [2, ',chunked'], [2, 'chunked,'], [2, 'chunked ,'], [2, ', chunked'],
  [1, ' , chunked'], [2, 'chunked;q=1'], [1, 'chunked;'], [2, 'chunk'], [2, 'chunkedx'], [1, 'x-chunked'],
  [1, 'chunked\x80'], [2, ''], [1, 'chunked chunked'], [1, '"chunked"'], [1, 'chunked\x00'], [1, 'compress, chunked'],
];

/** Connection field values (RFC 9112 §9.6, RFC 9110 §7.6.1). */
export const CONNECTION_VALUES: readonly (readonly [number, string])[] = [
  [15, 'close'], [15, 'keep-alive'], [4, 'Close'], [3, 'CLOSE'], [4, 'Keep-Alive'], [3, 'close, keep-alive'],
  [3, 'keep-alive, close'], [2, 'upgrade'], [2, 'Upgrade, close'], [2, 'foo'], [2, 'closed'], [2, 'close;'],
  [2, 'x, close'], [2, ' close '], [2, ''], [2, 'te, close'], [2, 'keep-alive,'], [1, 'close\x80'], [1, 'clos'],
  [1, ',close'], [1, 'keep-alive, upgrade'], [1, 'keepalive'],
];

/** Keep-Alive hints (RFC 2068 §19.7.1.1, kept by RFC 9112 Appendix C.2.2 for HTTP/1.0 peers). */
export const KEEP_ALIVE_VALUES: readonly (readonly [number, string])[] = [
  [10, 'timeout=5'], [6, 'timeout=1'], [4, 'timeout=0'], [4, 'timeout=2'], [5, 'max=100, timeout=5'],
  [5, 'timeout=5, max=100'], [3, 'max=5, timeout=1'], [2, 'Timeout=5'], [2, 'timeout = 5'], [2, 'timeout=abc'],
  [2, 'timeout=-1'], [2, 'timeout=99999999999'], [2, 'max=100'], [1, ''], [1, 'timeout=1.5'], [1, 'timeout=3;max=2'],
];

/** Chunk extensions that are valid (RFC 9112 §7.1.1: `;` name [ `=` token / quoted-string ]). */
export const GOOD_EXTENSIONS = [';a', ';a=b', ';name=value', ';a="quoted value"', ';a="esc\\"q"', ';a=b;c=d', ';a;b', ';a=1;b=""', ';x-y=z.1'];
/** Chunk extensions on or past the edge: whitespace (BWS), empty parts, bad bytes, unterminated quotes. */
export const ODD_EXTENSIONS = [
  '; a=b', ' ;a', '\t;a', ';a =b', ';a= b', ';a=b ', ';=b', ';a=', ';', ';a=b c', ';\x80', ';a=\x80', ';a="\x80"',
  ';a="unterminated', ';a="x\x01"', ';a="\x7f"', ';a\x00', ';a=b,c', ';a@b', ';a="x"y', ';a="x" ', ';a="\t"', ';;a', ';a;',
];
/** Chunk sizes a strict parser refuses. */
export const BAD_SIZES = ['g', '-1', '+1', '0x5', ' 5', '5 ', '', '5\x00', 'FFFFFFFFFFFFFFFFF', '1_0', '5\t'];
/** Chunk sizes far beyond any body, sent with a few bytes only. */
export const HUGE_SIZES = ['FFFFFFFFFFFFFFFF', '10000000000000000', '20000000000000', 'fffffffffffff', '1fffffffffffff', '7fffffffffffffff', '00000000000000000000000001'];

/** Bytes an upstream may send after the end of a response. */
export const TRAILING: readonly (readonly [number, string])[] = [
  [10, 'JUNK'], [8, '\r\n'], [4, '\n'], [4, '\r\n\r\n'], [3, ' '], [2, '\x00'], [6, 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'],
  [4, 'HTTP/1.1 200 OK\r\n'], [2, 'H'], [2, '\r'], [2, '0\r\n\r\n'],
];

/** Trailer fields that are valid (RFC 9112 §7.1.2: same syntax as header fields). */
export const GOOD_TRAILERS = ['X-Checksum: abc', 'Server-Timing: db;dur=53', 'X-Empty:', 'X-Ows: \t v \t', 'x-lower: 1', 'X-Latin: caf\xe9', 'Expires: 0'];
/** Trailer fields that are not, or that carry framing (RFC 9110 §6.5.1). */
export const ODD_TRAILERS = [
  'X-Fold: a\r\n b', 'X-NoColon', 'X-Sp : a', 'X-Lf: a\nX-B: b', 'X-Nul: a\x00b', ': empty-name', ' X-Lead: 1', 'Content-Length: 5',
  'Transfer-Encoding: chunked', 'Connection: close', 'X-Cr: a\r', 'X-Del: a\x7f', 'X(bad): 1', 'Trailer: X-Checksum',
];

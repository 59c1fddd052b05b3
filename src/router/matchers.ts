// Value matchers for header, cookie and query conditions (SPEC §3): a plain string is compared
// exactly; a string starting with "~" is a regular expression searched anywhere in the value
// (like Traefik's HeadersRegexp). A leading inline-flag group such as "(?i)" — the Go/PCRE
// spelling users copy from other proxies — becomes the JavaScript flag.

/** Tests one request value; `undefined` (absent) never matches. */
export type ValueMatcher = (value: string | undefined) => boolean;

/** The outcome of compiling a matcher: the test, or why the pattern is invalid. */
export type CompileMatcherResult =
  | { ok: true; test: ValueMatcher; regex: RegExp | undefined }
  | { ok: false; reason: string };

const INLINE_FLAGS = /^\(\?([ims]+)\)/;

/** Compiles "value" (exact) or "~regex" (search) into a matcher. */
export function compileValueMatcher(spec: string): CompileMatcherResult {
  if (!spec.startsWith('~')) {
    return { ok: true, test: (v) => v === spec, regex: undefined };
  }
  let source = spec.slice(1);
  let flags = '';
  const inline = INLINE_FLAGS.exec(source);
  if (inline) {
    flags = [...new Set(inline[1])].join('');
    source = source.slice(inline[0].length);
  }
  let re: RegExp;
  try {
    re = new RegExp(source, flags);
  } catch (err) {
    return { ok: false, reason: `invalid regular expression: ${(err as Error).message}` };
  }
  return { ok: true, test: (v) => v !== undefined && re.test(v), regex: re };
}

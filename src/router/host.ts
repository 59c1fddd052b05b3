// Host normalisation (SPEC §3 `match.host`): the Host header (or HTTP/2 :authority) is reduced to
// the bare name routes are written with — lower-case, no port, no trailing dot — so
// "Shop.Example.com.:8080" and "shop.example.com" reach the same route.
//
// Validation is deliberately strict (RFC 3986 §3.2.2 reg-name restricted to what DNS and
// proxies use: letters, digits, "-", "_", "."): a value with spaces, userinfo ("@"), a path, or
// a bad port is refused rather than guessed at, because a lenient parser is how host-based
// routing gets bypassed (e.g. "evil.com@shop.example.com").

const MAX_HOST_LENGTH = 253; // RFC 1035 §2.3.4, without the trailing dot
const MAX_PORT = 65535;

// 1 = allowed in a registered name (upper-case letters are accepted and lower-cased).
const NAME_CHAR = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.') NAME_CHAR[c.charCodeAt(0)] = 1;
// 1 = allowed inside "[...]" (IPv6 and IPv4-mapped forms; RFC 3986 §3.2.2 IP-literal).
const IPV6_CHAR = new Uint8Array(128);
for (const c of 'ABCDEFabcdef0123456789:.') IPV6_CHAR[c.charCodeAt(0)] = 1;

/** True when `s.slice(from)` is a valid port: empty (RFC 9110 §7.2 allows "host:") or 1-65535 digits. */
function validPort(s: string, from: number): boolean {
  if (from === s.length) return true;
  if (s.length - from > 5) return false;
  let n = 0;
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
    n = n * 10 + (c - 48);
  }
  return n <= MAX_PORT;
}

/**
 * Normalises a Host header value: "Shop.Example.com:8080" → "shop.example.com", "[::1]:80" → "[::1]",
 * one trailing dot removed. Returns `undefined` for an absent, empty or invalid value (spaces,
 * userinfo "@", empty labels, a bad port, unbracketed IPv6).
 */
export function normalizeHost(hostHeader: string | undefined): string | undefined {
  if (hostHeader === undefined || hostHeader.length === 0) return undefined;
  const s = hostHeader;

  if (s.charCodeAt(0) === 91 /* [ */) {
    const close = s.indexOf(']');
    if (close < 3) return undefined; // shortest literal is "[::]"
    for (let i = 1; i < close; i++) {
      const c = s.charCodeAt(i);
      if (c >= 128 || IPV6_CHAR[c] === 0) return undefined;
    }
    if (close + 1 < s.length && (s.charCodeAt(close + 1) !== 58 /* : */ || !validPort(s, close + 2))) return undefined;
    return s.slice(0, close + 1).toLowerCase();
  }

  // One scan: find the port separator, validate characters and labels, note upper case.
  let end = s.length;
  let upper = false;
  let prevDot = true; // a leading "." is an empty label
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 58 /* : */) {
      if (!validPort(s, i + 1)) return undefined; // also refuses a second ":" (unbracketed IPv6)
      end = i;
      break;
    }
    if (c >= 128 || NAME_CHAR[c] === 0) return undefined;
    if (c === 46 /* . */) {
      if (prevDot) return undefined;
      prevDot = true;
    } else {
      prevDot = false;
      if (c >= 65 && c <= 90) upper = true;
    }
  }
  // A single trailing dot is the fully-qualified spelling of the same name (RFC 1034 §3.1).
  if (end > 0 && s.charCodeAt(end - 1) === 46) end--;
  if (end === 0 || end > MAX_HOST_LENGTH) return undefined;
  const name = end === s.length ? s : s.slice(0, end);
  return upper ? name.toLowerCase() : name;
}

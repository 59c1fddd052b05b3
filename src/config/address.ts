// Listener addresses for waygate.yaml and the --http/--https/--admin flags (SPEC §1):
// "HOST:PORT", ":PORT", "PORT", "[::1]:PORT", or "off" to disable the listener.
import { isIP } from 'node:net';

/** A host and port to listen on; port 0 asks the OS for a free port. */
export type ListenAddress = { host: string; port: number };

/** The result of parsing an address: the address, `null` for "off", or why it is invalid. */
export type ParseAddressResult = ListenAddress | null | { error: string };

const ANY_HOST = '0.0.0.0';
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const EXPECTED = 'expected HOST:PORT, :PORT, PORT, [IPv6]:PORT or off';

/** Returns the listen address, `null` when the listener is "off", or `{ error }` explaining the problem. */
export function parseAddress(s: string): ParseAddressResult {
  const text = s.trim();
  if (text.toLowerCase() === 'off') return null;
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    // Bracketed IPv6 (RFC 3986 §3.2.2): the only way a host may itself contain colons.
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') return { error: `${EXPECTED}, got ${JSON.stringify(s)}` };
    host = text.slice(1, close);
    if (isIP(host) !== 6) return { error: `invalid IPv6 address "${host}" in ${JSON.stringify(s)}` };
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) {
      host = ANY_HOST;
      portText = text;
    } else {
      host = text.slice(0, colon) || ANY_HOST;
      portText = text.slice(colon + 1);
      if (host.includes(':')) return { error: `an IPv6 host must be bracketed, as in "[::1]:8080", got ${JSON.stringify(s)}` };
      if (isIP(host) === 0 && !HOST_NAME.test(host)) return { error: `invalid host "${host}" in ${JSON.stringify(s)}` };
    }
  }
  if (!/^\d{1,5}$/.test(portText)) return { error: `${EXPECTED}, got ${JSON.stringify(s)}` };
  const port = Number(portText);
  if (port > 65535) return { error: `port ${port} is out of range 0-65535` };
  return { host, port };
}

/** Returns true when a parse result is an error rather than an address or "off". */
export function isAddressError(r: ParseAddressResult): r is { error: string } {
  return r !== null && 'error' in r;
}

/** Renders an address as "host:port", bracketing IPv6 hosts; "off" for null. */
export function formatAddress(a: ListenAddress | null): string {
  if (a === null) return 'off';
  return isIP(a.host) === 6 ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

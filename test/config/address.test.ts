import { describe, expect, it } from 'vitest';
import { formatAddress, isAddressError, parseAddress } from '../../src/config/address.ts';

describe('parseAddress', () => {
  it('reads HOST:PORT, :PORT and PORT, defaulting the host to all interfaces', () => {
    expect(parseAddress('127.0.0.1:9901')).toEqual({ host: '127.0.0.1', port: 9901 });
    expect(parseAddress('localhost:8080')).toEqual({ host: 'localhost', port: 8080 });
    expect(parseAddress(':8080')).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(parseAddress('8443')).toEqual({ host: '0.0.0.0', port: 8443 });
  });

  it('reads bracketed IPv6 hosts', () => {
    expect(parseAddress('[::1]:8080')).toEqual({ host: '::1', port: 8080 });
    expect(parseAddress('[::]:0')).toEqual({ host: '::', port: 0 });
  });

  it('accepts port 0 (any free port) and 65535, and rejects 65536', () => {
    expect(parseAddress(':0')).toEqual({ host: '0.0.0.0', port: 0 });
    expect(parseAddress('65535')).toEqual({ host: '0.0.0.0', port: 65535 });
    expect(parseAddress('65536')).toEqual({ error: 'port 65536 is out of range 0-65535' });
  });

  it('turns "off" (any case) into null: the listener is disabled', () => {
    expect(parseAddress('off')).toBeNull();
    expect(parseAddress('OFF')).toBeNull();
  });

  it('explains malformed addresses', () => {
    for (const bad of ['', 'abc', 'host:', ':http', '::1:8080', '[::1]8080', '[zz]:80', 'bad host:80', '1.2.3.4:-1']) {
      const r = parseAddress(bad);
      expect(isAddressError(r), bad).toBe(true);
    }
    expect(parseAddress('::1:8080')).toEqual({ error: 'an IPv6 host must be bracketed, as in "[::1]:8080", got "::1:8080"' });
    expect(parseAddress('abc')).toEqual({ error: 'expected HOST:PORT, :PORT, PORT, [IPv6]:PORT or off, got "abc"' });
  });

  it('isAddressError tells errors from addresses and from off', () => {
    expect(isAddressError(parseAddress(':1'))).toBe(false);
    expect(isAddressError(parseAddress('off'))).toBe(false);
  });

  it('formats addresses back, bracketing IPv6', () => {
    expect(formatAddress({ host: '::1', port: 80 })).toBe('[::1]:80');
    expect(formatAddress({ host: '127.0.0.1', port: 80 })).toBe('127.0.0.1:80');
    expect(formatAddress(null)).toBe('off');
  });
});

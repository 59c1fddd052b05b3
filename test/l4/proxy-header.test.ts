// PROXY protocol headers out (src/l4/proxy-header.ts): exact bytes for IPv4, IPv6 and LOCAL, and
// every header read back by waygate's own receiver (server/proxy-protocol.ts).
import { describe, expect, test } from 'vitest';
import { proxyHeader } from '../../src/l4/proxy-header.ts';
import { parseProxyHeader } from '../../src/server/proxy-protocol.ts';

const v4 = { sourceAddress: '192.0.2.10', sourcePort: 51234, destAddress: '198.51.100.1', destPort: 443 };
const v6 = { sourceAddress: '2001:db8::10', sourcePort: 40000, destAddress: '2001:db8:0:0:1::1', destPort: 5432 };
const SIG = '0d0a0d0a000d0a515549540a';

describe('PROXY v1 out', () => {
  test('TCP4 and TCP6 lines', () => {
    expect(proxyHeader('v1', v4).toString('latin1')).toBe('PROXY TCP4 192.0.2.10 198.51.100.1 51234 443\r\n');
    expect(proxyHeader('v1', v6).toString('latin1')).toBe('PROXY TCP6 2001:db8::10 2001:db8:0:0:1::1 40000 5432\r\n');
  });
  test('a dual-stack listener\'s IPv4-mapped addresses are announced as TCP4', () => {
    const mapped = { ...v4, sourceAddress: '::ffff:192.0.2.10', destAddress: '::FFFF:198.51.100.1' };
    expect(proxyHeader('v1', mapped).toString('latin1')).toBe('PROXY TCP4 192.0.2.10 198.51.100.1 51234 443\r\n');
  });
  test('a probe (no client) says UNKNOWN; mixed families go as TCP6 with the IPv4 side mapped', () => {
    expect(proxyHeader('v1', undefined).toString('latin1')).toBe('PROXY UNKNOWN\r\n');
    expect(proxyHeader('v1', { ...v4, destAddress: '2001:db8::1' }).toString('latin1')).toBe('PROXY TCP6 ::ffff:192.0.2.10 2001:db8::1 51234 443\r\n');
    expect(proxyHeader('v1', { ...v4, sourceAddress: 'not-an-ip' }).toString('latin1')).toBe('PROXY UNKNOWN\r\n');
  });
});

describe('PROXY v2 out', () => {
  test('TCP4: signature, PROXY command, family 0x11, 12 address bytes', () => {
    expect(proxyHeader('v2', v4).toString('hex')).toBe(SIG + '21' + '11' + '000c' + 'c000020a' + 'c6336401' + 'c822' + '01bb');
  });
  test('TCP6: family 0x21, 36 address bytes, :: expanded', () => {
    expect(proxyHeader('v2', v6).toString('hex')).toBe(
      SIG + '21' + '21' + '0024' + '20010db8000000000000000000000010' + '20010db8000000000001000000000001' + '9c40' + '1538',
    );
  });
  test('LOCAL for waygate\'s own connections: no addresses', () => {
    expect(proxyHeader('v2', undefined).toString('hex')).toBe(SIG + '20' + '00' + '0000');
  });
  test('an IPv6 address with an embedded dotted quad and a zone', () => {
    const h = proxyHeader('v2', { sourceAddress: '64:ff9b::192.0.2.33', sourcePort: 1, destAddress: 'fe80::1%eth0', destPort: 2 });
    expect(h.subarray(16, 32).toString('hex')).toBe('0064ff9b0000000000000000c0000221');
    expect(h.subarray(32, 48).toString('hex')).toBe('fe800000000000000000000000000001');
  });
});

test('waygate\'s receiver reads back every header it writes', () => {
  for (const version of ['v1', 'v2'] as const) {
    for (const ends of [v4, v6]) {
      const parsed = parseProxyHeader(proxyHeader(version, ends));
      if (parsed === 'incomplete' || parsed instanceof Error) throw new Error(`${version}: ${String(parsed)}`);
      expect(parsed.info).toMatchObject({ version: version === 'v1' ? 1 : 2, command: 'PROXY', sourcePort: ends.sourcePort, destPort: ends.destPort });
      expect(parsed.length).toBe(proxyHeader(version, ends).length);
    }
    const local = parseProxyHeader(proxyHeader(version, undefined));
    if (local === 'incomplete' || local instanceof Error) throw new Error(String(local));
    expect(version === 'v1' ? local.info.family : local.info.command).toBe(version === 'v1' ? 'UNKNOWN' : 'LOCAL');
  }
});

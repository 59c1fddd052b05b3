// ipAllowList built directly (SPEC §8): IPv4 and IPv6 ranges and single addresses, an
// IPv4-mapped IPv6 client against IPv4 ranges, anything that is not an address refused, the 403
// answer (synchronous), explain naming the range that matched, and the options' load errors.
import { testDeps, testRequest } from './request.ts';
import { describe, expect, test } from 'vitest';
import { ipAllowList, VERDICT_ENTRIES } from '../../src/middleware/ip-allow-list.ts';
import type { Answer, Middleware, MiddlewareRequest } from '../../src/middleware/types.ts';

function build(sourceRange: unknown): Middleware {
  const deps = testDeps('office-only');
  return ipAllowList.build(ipAllowList.options.parse({ sourceRange }), deps);
}

function from(clientIp: string): MiddlewareRequest {
  return testRequest({ scheme: 'http', host: 'a.test', clientIp });
}

const RANGES = ['10.0.0.0/8', '192.168.1.7', '2001:db8::/32', '::1'];

describe('options', () => {
  const messages = (o: unknown): string[] => {
    const r = ipAllowList.options.safeParse(o);
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  test('ranges are validated and normalised to ip/prefix', () => {
    expect(ipAllowList.options.parse({ sourceRange: RANGES })).toEqual({ sourceRange: ['10.0.0.0/8', '192.168.1.7/32', '2001:db8::/32', '::1/128'] });
  });

  test.each([
    [{}, /^sourceRange: expected a list of IP addresses or CIDR ranges/],
    [{ sourceRange: '10.0.0.0/8' }, /^sourceRange: expected a list of IP addresses or CIDR ranges, such as \[10\.0\.0\.0\/8/],
    [{ sourceRange: [] }, /^sourceRange: list at least one IP address or CIDR range.*an empty list would refuse every client/],
    [{ sourceRange: ['10.0.0.0/8', '10.0.0.0/33'] }, /^sourceRange\.1: expected an IP address or CIDR range such as 10\.0\.0\.0\/8 or fd00::\/8, got "10\.0\.0\.0\/33"/],
    [{ sourceRange: ['office.example.com'] }, /^sourceRange\.0: expected an IP address or CIDR range/],
    [{ sourceRange: ['2001:db8::/129'] }, /^sourceRange\.0: /],
    [{ sourceRange: ['10.0.0.0/8'], ranges: [] }, /unknown key; expected one of: sourceRange/],
  ])('%j is refused with a message that says what is wrong', (o, message) => {
    expect(messages(o).join('\n')).toMatch(message);
  });
});

describe('requests', () => {
  const m = build(RANGES);

  test.each([
    ['10.0.0.1', true],
    ['10.255.255.255', true],
    ['11.0.0.1', false],
    ['9.255.255.255', false],
    ['192.168.1.7', true],
    ['192.168.1.8', false],
    ['2001:db8::1', true],
    ['2001:DB8:ffff::1', true],
    ['2001:db9::1', false],
    ['::1', true],
    ['::2', false],
    // IPv4-mapped IPv6: the IPv4 address it carries is what the ranges see.
    ['::ffff:10.1.2.3', true],
    ['::ffff:a01:203', true],
    ['::FFFF:11.1.2.3', false],
    // A zone names an interface, not another address.
    ['2001:db8::1%eth0', true],
    // Not an address: never in a range.
    ['', false],
    ['localhost', false],
    ['10.0.0.1:8080', false],
    ['[::1]', false],
    ['x'.repeat(200), false],
  ])('a client at %j passes: %s', (ip, passes) => {
    // Twice: the remembered verdict is the same as the first.
    for (let i = 0; i < 2; i++) {
      const v = m.request(from(ip));
      expect(v).not.toBeInstanceOf(Promise);
      if (passes) expect(v).toBeUndefined();
      else expect(v).toMatchObject({ status: 403, body: 'forbidden', rejection: true, headers: ['content-type', 'text/plain; charset=utf-8'] } satisfies Answer);
    }
  });

  test(`verdicts stay right past the ${VERDICT_ENTRIES} addresses remembered`, () => {
    const m = build(['10.0.0.0/16']);
    for (let i = 0; i < VERDICT_ENTRIES + 100; i++) {
      const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      expect(m.request(from(ip)) === undefined).toBe(i < 65536);
    }
    const outside = `10.1.0.0`;
    expect(m.request(from(outside))).toMatchObject({ status: 403 });
    expect(m.request(from('10.0.0.0'))).toBeUndefined();
  });
});

describe('explain and describe', () => {
  const m = build(RANGES);

  test('explain names the range that matched, or the ranges none of which did', () => {
    expect(m.explain(from('10.9.8.7'))).toEqual({ result: 'passes', why: 'the client 10.9.8.7 is in 10.0.0.0/8' });
    expect(m.explain(from('::ffff:192.168.1.7'))).toEqual({ result: 'passes', why: 'the client ::ffff:192.168.1.7 is in 192.168.1.7/32' });
    expect(m.explain(from('2001:db8::5'))).toEqual({ result: 'passes', why: 'the client 2001:db8::5 is in 2001:db8::/32' });
    expect(m.explain(from('203.0.113.9'))).toEqual({ result: 'rejects', status: 403, why: 'the client 203.0.113.9 is in none of sourceRange (10.0.0.0/8, 192.168.1.7/32, 2001:db8::/32, ::1/128)' });
    expect(m.explain(from(''))).toMatchObject({ result: 'rejects', why: expect.stringContaining('(unknown address)') });
  });

  test('a long list is shortened in explain; describe lists every range', () => {
    const ranges = Array.from({ length: 8 }, (_, i) => `10.0.${i}.0/24`);
    const big = build(ranges);
    expect(big.explain(from('1.1.1.1')).why).toMatch(/\(10\.0\.0\.0\/24, 10\.0\.1\.0\/24, 10\.0\.2\.0\/24, 10\.0\.3\.0\/24, 10\.0\.4\.0\/24, …\)$/);
    expect(big.describe()).toEqual({ sourceRange: ranges });
  });
});

import { describe, expect, test } from 'vitest';
import { L4Router, type L4Query, type L4RouteSpec } from '../../src/l4/router.ts';

type Spec = { name: string; listener?: string; sni?: string[]; alpn?: string[]; clientIp?: string[]; priority?: number; order?: number };

/** Routes in declaration order: listener defaults to "edge", `order` to the position, `value` to the name. */
function specsOf(specs: Spec[]): L4RouteSpec<string>[] {
  return specs.map((s, i) => ({ listener: 'edge', sni: [], alpn: [], clientIp: [], priority: 0, order: i, value: s.name, ...s }));
}

function router(specs: Spec[]): L4Router<string> {
  return new L4Router(specsOf(specs));
}

/** A connection: sni (undefined = none), offered alpn, client address. */
function conn(sni: string | undefined, alpn: string[] = [], clientIp = '10.1.2.3'): L4Query {
  return { sni, alpn, clientIp };
}

/** The name of the route the connection reaches ("none" when no route matches); explain() must agree. */
function reach(r: L4Router<string>, q: L4Query, listener = 'edge'): string {
  const m = r.match(listener, q);
  expect(r.explain(listener, q).match).toEqual(m);
  return m?.name ?? 'none';
}

/** A seeded PRNG (mulberry32), so shuffles and random tables are the same on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffle<X>(xs: readonly X[], seed: number): X[] {
  const out = [...xs];
  const rand = rng(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

// SPEC §7 precedence, one rule per row group, in the order the rules apply. In each row the
// expected winner is declared LAST, so declaration order never explains the result, and the
// routes differ only in the rule under test unless the row shows one rule beating the next.
const precedence: [string, Spec[], L4Query, string][] = [
  ['higher priority wins', [{ name: 'low', sni: ['db.example.com'] }, { name: 'high', sni: ['db.example.com'], priority: 1 }], conn('db.example.com'), 'high'],
  ['negative priority loses to the default 0', [{ name: 'neg', priority: -1 }, { name: 'zero' }], conn(undefined), 'zero'],
  ['priority beats sni strength', [{ name: 'exact', sni: ['db.example.com'] }, { name: 'catch-all', priority: 1 }], conn('db.example.com'), 'catch-all'],
  ['priority beats condition count', [{ name: 'two', alpn: ['h2'], clientIp: ['10.0.0.0/8'] }, { name: 'bare', priority: 1 }], conn(undefined, ['h2']), 'bare'],
  ['exact sni beats wildcard', [{ name: 'wild', sni: ['*.example.com'] }, { name: 'exact', sni: ['db.example.com'] }], conn('db.example.com'), 'exact'],
  ['wildcard sni beats regex', [{ name: 'regex', sni: ['~^db\\.example\\.com$'] }, { name: 'wild', sni: ['*.example.com'] }], conn('db.example.com'), 'wild'],
  ['regex sni beats no sni condition', [{ name: 'any' }, { name: 'regex', sni: ['~example'] }], conn('db.example.com'), 'regex'],
  ['exact sni beats no sni condition', [{ name: 'any' }, { name: 'exact', sni: ['db.example.com'] }], conn('db.example.com'), 'exact'],
  ['sni strength beats condition count', [{ name: 'conds', alpn: ['h2'], clientIp: ['10.0.0.0/8'] }, { name: 'wild', sni: ['*.example.com'] }], conn('db.example.com', ['h2']), 'wild'],
  ['exact beats wildcard even with fewer conditions', [{ name: 'wild', sni: ['*.example.com'], alpn: ['h2'], clientIp: ['10.0.0.0/8'] }, { name: 'exact', sni: ['db.example.com'] }], conn('db.example.com', ['h2']), 'exact'],
  ['a route with several patterns counts the strongest that matched (exact)', [{ name: 'wild', sni: ['*.example.com'] }, { name: 'both', sni: ['~example', 'db.example.com'] }], conn('db.example.com'), 'both'],
  ['a route with several patterns counts the strongest that matched (regex)', [{ name: 'both', sni: ['~example', 'db.example.com'], order: 0 }, { name: 'wild', sni: ['*.example.com'], order: 1 }], conn('other.example.com'), 'wild'],
  ['more conditions win (2 over 1)', [{ name: 'one', alpn: ['h2'] }, { name: 'two', alpn: ['h2'], clientIp: ['10.0.0.0/8'] }], conn(undefined, ['h2']), 'two'],
  ['one alpn condition beats none', [{ name: 'zero' }, { name: 'alpn', alpn: ['h2'] }], conn(undefined, ['h2']), 'alpn'],
  ['one clientIp condition beats none', [{ name: 'zero' }, { name: 'ip', clientIp: ['10.0.0.0/8'] }], conn(undefined), 'ip'],
  ['alpn and clientIp count the same: order decides', [{ name: 'ip', clientIp: ['10.0.0.0/8'], order: 0 }, { name: 'alpn', alpn: ['h2'], order: 1 }], conn(undefined, ['h2']), 'ip'],
  ['condition count breaks a tie between equal sni kinds', [{ name: 'plain', sni: ['*.example.com'] }, { name: 'narrow', sni: ['*.example.com'], clientIp: ['10.0.0.0/8'] }], conn('db.example.com'), 'narrow'],
  ['listing more alpn values does not count: order decides', [{ name: 'many', alpn: ['h2', 'http/1.1', 'x'], order: 0 }, { name: 'one', alpn: ['h2'], order: 1 }], conn(undefined, ['h2']), 'many'],
  ['listing more sni patterns does not count: order decides', [{ name: 'many', sni: ['a.test', 'db.example.com', 'c.test'], order: 0 }, { name: 'one', sni: ['db.example.com'], order: 1 }], conn('db.example.com'), 'many'],
  ['a narrower clientIp range does not count: order decides', [{ name: 'wide', clientIp: ['0.0.0.0/0'], order: 0 }, { name: 'narrow', clientIp: ['10.1.2.3/32'], order: 1 }], conn(undefined), 'wide'],
  ['earlier order wins when all else is equal', [{ name: 'later', order: 5 }, { name: 'earlier', order: 3 }], conn(undefined), 'earlier'],
  ['order, not array position, is the declaration order', [{ name: 'b', sni: ['x.test'], order: 2 }, { name: 'a', sni: ['x.test'], order: 1 }], conn('x.test'), 'a'],
  ['at equal order the name decides, so input order never does', [{ name: 'b', order: 0 }, { name: 'a', order: 0 }], conn(undefined), 'a'],
];

describe('precedence (SPEC §7)', () => {
  test.each(precedence)('%s', (_rule, specs, q, expected) => {
    expect(reach(router(specs), q)).toBe(expected);
  });

  test.each(precedence)('%s (routes declared the other way round)', (_rule, specs, q, expected) => {
    // The winner is now declared first: the result must not change (rows that set `order` keep it).
    const reversed = [...specs].reverse().map((s, i) => ({ ...s, order: s.order ?? i }));
    expect(reach(router(reversed), q)).toBe(expected);
  });

  test('the match says which sni kind decided', () => {
    const r = router([{ name: 'e', sni: ['a.example.com'] }, { name: 'w', sni: ['*.example.com'] }, { name: 'x', sni: ['~^x'] }, { name: 'any', priority: -1 }]);
    expect(r.match('edge', conn('a.example.com'))?.sni).toBe('exact');
    expect(r.match('edge', conn('b.example.com'))?.sni).toBe('wildcard');
    expect(r.match('edge', conn('x.test'))?.sni).toBe('regex');
    expect(r.match('edge', conn('y.test'))?.sni).toBe('any');
    expect(r.match('edge', conn(undefined))).toEqual({ name: 'any', value: 'any', sni: 'any' });
  });
});

describe('order independence', () => {
  const table: Spec[] = [
    { name: 'pg', sni: ['db.example.com', '*.db.example.com'], alpn: ['postgresql'], clientIp: ['10.0.0.0/8'] },
    { name: 'pg-any', sni: ['db.example.com', '*.db.example.com'] },
    { name: 'wild', sni: ['*.example.com'] },
    { name: 'regex', sni: ['~^db[0-9]+\\.example\\.com$'] },
    { name: 'regex-h2', sni: ['~\\.example\\.'], alpn: ['h2'] },
    { name: 'internal', clientIp: ['10.0.0.0/8', 'fd00::/8'] },
    { name: 'h2', alpn: ['h2', 'http/1.1'] },
    { name: 'vip', sni: ['*.example.com'], priority: 5, clientIp: ['192.0.2.0/24'] },
    { name: 'fallback', priority: -1 },
    { name: 'dup-a', sni: ['same.test'] },
    { name: 'dup-b', sni: ['same.test'] },
  ];
  const queries: L4Query[] = [
    conn('db.example.com', ['postgresql']),
    conn('db.example.com', ['postgresql'], '203.0.113.1'),
    conn('db.example.com', ['postgresql'], '192.0.2.1'),
    conn('r1.db.example.com', ['postgresql']),
    conn('db7.example.com'),
    conn('db7.example.com', ['h2'], '192.0.2.9'),
    conn('a.other.org', ['h2'], '203.0.113.1'),
    conn('x.example.net', ['h2'], '203.0.113.1'),
    conn(undefined, [], 'fd00::1'),
    conn(undefined, ['http/1.1'], '203.0.113.1'),
    conn(undefined, [], '203.0.113.1'),
    conn('same.test'),
  ];
  const winners = (specs: L4RouteSpec<string>[]) => {
    const r = new L4Router(specs);
    return queries.map((q) => r.match('edge', q)?.name ?? 'none');
  };
  const base = specsOf(table);
  const expected = winners(base);

  test('the table gives the expected winners', () => {
    expect(expected).toEqual(['pg', 'pg-any', 'vip', 'pg', 'wild', 'vip', 'h2', 'regex-h2', 'internal', 'h2', 'fallback', 'dup-a']);
  });

  test.each([1, 2, 3, 42, 1234, 99999])('shuffled with seed %i, the winners are the same', (seed) => {
    expect(winners(shuffle(base, seed))).toEqual(expected);
  });

  test('agrees with a brute-force reference on random tables and connections', () => {
    const rand = rng(7);
    const pick = <X>(xs: readonly X[]): X => xs[Math.floor(rand() * xs.length)];
    const some = <X>(xs: readonly X[], max: number): X[] => [...new Set(Array.from({ length: Math.floor(rand() * (max + 1)) }, () => pick(xs)))];
    const sniPatterns = ['a.example.com', 'b.example.com', '*.example.com', '*.a.example.com', '~^a', '~example\\.com$', 'x.test', '~^x\\.'];
    const alpns = ['h2', 'http/1.1', 'postgresql', 'mqtt'];
    const ranges = ['10.0.0.0/8', '10.1.0.0/16', '192.0.2.0/24', 'fd00::/8', '::1/128'];
    const names = ['a.example.com', 'b.example.com', 'c.example.com', 'q.a.example.com', 'x.test', 'y.test', 'A.EXAMPLE.COM.', undefined];
    const ips = ['10.1.2.3', '10.9.9.9', '192.0.2.5', '::ffff:10.1.2.3', 'fd00::5', '::1', '203.0.113.1'];
    const strength = (s: Spec, sni: string | undefined): number => {
      if (!s.sni?.length) return 0;
      if (sni === undefined) return -1;
      const n = sni.toLowerCase().replace(/\.$/, '');
      let best = -1;
      for (const p of s.sni) {
        if (p.startsWith('~')) best = Math.max(best, new RegExp(p.slice(1)).test(n) ? 1 : -1);
        else if (p.startsWith('*.')) {
          const suffix = p.slice(1); // ".example.com"
          const label = n.endsWith(suffix) ? n.slice(0, n.length - suffix.length) : '';
          best = Math.max(best, label !== '' && !label.includes('.') ? 2 : -1);
        }
        else best = Math.max(best, n === p ? 3 : -1);
      }
      return best;
    };
    const inRange = (ip: string, range: string): boolean => {
      // Enough for the table above: prefix comparison on the textual forms used.
      const v4 = ip.replace(/^::ffff:/, '');
      const table: Record<string, (a: string) => boolean> = {
        '10.0.0.0/8': (a) => a.startsWith('10.'),
        '10.1.0.0/16': (a) => a.startsWith('10.1.'),
        '192.0.2.0/24': (a) => a.startsWith('192.0.2.'),
        'fd00::/8': (a) => a.startsWith('fd'),
        '::1/128': (a) => a === '::1',
      };
      return table[range](v4);
    };
    for (let round = 0; round < 200; round++) {
      const table: Spec[] = Array.from({ length: 1 + Math.floor(rand() * 8) }, (_, i) => ({
        name: `r${i}`,
        sni: some(sniPatterns, 2),
        alpn: some(alpns, 2),
        clientIp: some(ranges, 2),
        priority: pick([-1, 0, 0, 0, 1]),
      }));
      const specs = specsOf(table);
      const r = new L4Router(shuffle(specs, round));
      for (let k = 0; k < 20; k++) {
        const q = conn(pick(names), some(alpns, 2), pick(ips));
        const ranked = table
          .map((s, order) => ({ s, order, st: strength(s, q.sni), conds: (s.alpn!.length > 0 ? 1 : 0) + (s.clientIp!.length > 0 ? 1 : 0) }))
          .filter(({ s, st }) => st >= 0 && (s.alpn!.length === 0 || q.alpn.some((p) => s.alpn!.includes(p))) && (s.clientIp!.length === 0 || s.clientIp!.some((c) => inRange(q.clientIp, c))))
          .sort((a, b) => (b.s.priority ?? 0) - (a.s.priority ?? 0) || b.st - a.st || b.conds - a.conds || a.order - b.order);
        const want = ranked[0];
        const got = r.match('edge', q);
        expect({ round, k, name: got?.name, sni: got?.sni }).toEqual({ round, k, name: want?.s.name, sni: want ? ['any', 'regex', 'wildcard', 'exact'][want.st] : undefined });
      }
    }
  });
});

describe('sni patterns', () => {
  const r = router([
    { name: 'exact', sni: ['shop.example.com'] },
    { name: 'wild', sni: ['*.example.com'] },
    { name: 'numbered', sni: ['~^db[0-9]+\\.example\\.org$'] },
    { name: 'unanchored', sni: ['~internal'] },
    { name: 'any', priority: -1 },
  ]);
  test.each([
    ['shop.example.com', 'exact'],
    ['Shop.Example.COM', 'exact'],
    ['shop.example.com.', 'exact'],
    ['a.example.com', 'wild'],
    ['A.EXAMPLE.COM.', 'wild'],
    ['a.b.example.com', 'any'],
    ['example.com', 'any'],
    ['.example.com', 'any'],
    ['xexample.com', 'any'],
    ['db12.example.org', 'numbered'],
    ['DB3.EXAMPLE.ORG', 'numbered'],
    ['db.example.org', 'any'],
    ['db1.example.org.evil', 'any'],
    ['a.internal.example.net', 'unanchored'],
    ['internal', 'unanchored'],
    ['', 'any'],
  ])('%s reaches %s', (sni, expected) => {
    expect(reach(r, conn(sni))).toBe(expected);
  });

  test('patterns given upper-case or fully qualified are normalised like names', () => {
    const r2 = router([{ name: 'a', sni: ['DB.Example.com.', '*.API.example.com'] }]);
    expect(reach(r2, conn('db.example.com'))).toBe('a');
    expect(reach(r2, conn('v1.api.example.com'))).toBe('a');
  });

  test('a regex is tested against the lower-cased sni, so an upper-case regex never matches', () => {
    const r2 = router([{ name: 'upper', sni: ['~^DB'] }, { name: 'lower', sni: ['~^db'] }]);
    expect(reach(r2, conn('DB.example.com'))).toBe('lower');
  });
});

describe('connections without SNI', () => {
  test('a route with sni conditions never matches; one without does', () => {
    const r = router([{ name: 'sni', sni: ['*.example.com'] }, { name: 'regex', sni: ['~.*'] }, { name: 'plain', priority: -5 }]);
    expect(reach(r, conn(undefined))).toBe('plain');
    expect(reach(r, conn(''))).toBe('plain');
    expect(reach(r, conn('a.example.com'))).toBe('sni');
  });

  test('with only sni routes, no connection without SNI matches', () => {
    const r = router([{ name: 'sni', sni: ['db.example.com'] }, { name: 'regex', sni: ['~.*'] }]);
    expect(reach(r, conn(undefined))).toBe('none');
  });
});

describe('alpn', () => {
  const r = router([{ name: 'web', alpn: ['h2', 'http/1.1'] }, { name: 'pg', alpn: ['postgresql'] }]);
  test.each<[string[], string]>([
    [['h2'], 'web'],
    [['http/1.1'], 'web'],
    [['foo', 'http/1.1'], 'web'],
    [['postgresql'], 'pg'],
    [['mqtt', 'postgresql'], 'pg'],
    [[], 'none'],
    [['H2'], 'none'],
    [['mqtt'], 'none'],
  ])('offering %j reaches %s', (alpn, expected) => {
    expect(reach(r, conn(undefined, alpn))).toBe(expected);
  });
});

describe('clientIp', () => {
  const r = router([{ name: 'lan', clientIp: ['10.0.0.0/8', 'fd00::/8', '192.0.2.7/32'] }, { name: 'other', priority: -1 }]);
  test.each([
    ['10.1.2.3', 'lan'],
    ['10.255.255.255', 'lan'],
    ['11.0.0.1', 'other'],
    ['192.0.2.7', 'lan'],
    ['192.0.2.8', 'other'],
    ['::ffff:10.1.2.3', 'lan'],
    ['::FFFF:10.1.2.3', 'lan'],
    ['::ffff:11.0.0.1', 'other'],
    ['fd00::1', 'lan'],
    ['FD12:3456::1', 'lan'],
    ['fe80::1', 'other'],
    ['fe80::1%eth0', 'other'],
    ['::1', 'other'],
    ['not-an-ip', 'other'],
    ['', 'other'],
  ])('client %s reaches %s', (ip, expected) => {
    expect(reach(r, conn(undefined, [], ip))).toBe(expected);
  });

  test('an IPv4-mapped IPv6 range matches both the IPv4 and the mapped client', () => {
    const r2 = router([{ name: 'mapped', clientIp: ['::ffff:10.0.0.0/104'] }]);
    expect(reach(r2, conn(undefined, [], '10.1.2.3'))).toBe('mapped');
    expect(reach(r2, conn(undefined, [], '::ffff:10.1.2.3'))).toBe('mapped');
    expect(reach(r2, conn(undefined, [], '11.1.2.3'))).toBe('none');
  });

  test('a bare address is a single-host range', () => {
    const r2 = router([{ name: 'one', clientIp: ['192.0.2.1', '2001:db8::1'] }]);
    expect(reach(r2, conn(undefined, [], '192.0.2.1'))).toBe('one');
    expect(reach(r2, conn(undefined, [], '2001:db8::1'))).toBe('one');
    expect(reach(r2, conn(undefined, [], '192.0.2.2'))).toBe('none');
  });
});

describe('listeners', () => {
  const r = router([
    { name: 'pg', listener: 'edge', sni: ['db.example.com'] },
    { name: 'web', listener: 'alpn-only', alpn: ['h2'] },
    { name: 'smtp', listener: 'mail' },
    { name: 'lan-mysql', listener: 'mysql', clientIp: ['10.0.0.0/8'] },
    { name: 'mysql', listener: 'mysql', priority: -1 },
    { name: 'pass', listener: 'https', sni: ['*.pass.example.com'] },
    { name: 'dns', listener: 'dns' },
  ]);

  test.each([
    ['edge', true],
    ['alpn-only', true],
    ['https', true],
    ['mail', false],
    ['mysql', false],
    ['dns', false],
    ['unknown', false],
  ])('needsHello(%s) is %s', (listener, expected) => {
    expect(r.needsHello(listener)).toBe(expected);
  });

  test('hasRoutes is true only for listeners some route names', () => {
    expect(['edge', 'mail', 'https', 'dns'].map((l) => r.hasRoutes(l))).toEqual([true, true, true, true]);
    expect(r.hasRoutes('unknown')).toBe(false);
  });

  test('routes of one listener never match on another', () => {
    expect(reach(r, conn('db.example.com'), 'mail')).toBe('smtp');
    expect(reach(r, conn(undefined), 'edge')).toBe('none');
    expect(reach(r, conn('db.example.com'), 'unknown')).toBe('none');
    expect(reach(r, conn(undefined, [], '10.0.0.1'), 'mysql')).toBe('lan-mysql');
    expect(reach(r, conn(undefined, [], '203.0.113.1'), 'mysql')).toBe('mysql');
  });

  test('routesOf lists a listener\'s specs in config order, whatever their precedence or input order', () => {
    const specs = specsOf([
      { name: 'a', listener: 'x', priority: -3 },
      { name: 'b', listener: 'y' },
      { name: 'c', listener: 'x', sni: ['c.test'], priority: 9 },
      { name: 'd', listener: 'x' },
    ]);
    const r2 = new L4Router(shuffle(specs, 5));
    expect(r2.routesOf('x').map((s) => s.name)).toEqual(['a', 'c', 'd']);
    expect(r2.routesOf('x')[1]).toBe(specs[2]);
    expect(r2.routesOf('y').map((s) => s.name)).toEqual(['b']);
    expect(r2.routesOf('none')).toEqual([]);
  });

  test('size counts every route of every listener', () => {
    expect(r.size).toBe(7);
    expect(new L4Router([]).size).toBe(0);
  });
});

describe('claimsName', () => {
  const r = router([
    { name: 'exact', listener: 'https', sni: ['db.example.com'], clientIp: ['10.0.0.0/8'] },
    { name: 'wild', listener: 'https', sni: ['*.pass.example.com'], alpn: ['h2'] },
    { name: 'regex', listener: 'https', sni: ['~^mq[0-9]+\\.'] },
    { name: 'plain', listener: 'edge' },
  ]);
  test.each([
    ['db.example.com', true],
    ['DB.Example.com.', true],
    ['db.example.com:443', true],
    ['a.pass.example.com', true],
    ['a.b.pass.example.com', false],
    ['pass.example.com', false],
    ['mq1.example.net', true],
    ['www.example.com', false],
    ['', false],
  ])('the https listener claims %j: %s (by sni alone, other conditions ignored)', (name, expected) => {
    expect(r.claimsName('https', name)).toBe(expected);
  });

  test('a listener whose routes have no sni conditions claims nothing', () => {
    expect(r.claimsName('edge', 'db.example.com')).toBe(false);
    expect(r.claimsName('unknown', 'db.example.com')).toBe(false);
  });
});

describe('explain', () => {
  const r = router([
    { name: 'pg', sni: ['db.example.com', '*.db.example.com'], alpn: ['postgresql'], clientIp: ['10.0.0.0/8'] },
    { name: 'wild', sni: ['*.example.com'] },
    { name: 'mq', alpn: ['mqtt'] },
    { name: 'lan', clientIp: ['10.0.0.0/8', 'fd00::/8'] },
    { name: 'vip', priority: 5, clientIp: ['192.0.2.0/24'] },
    { name: 'fallback', priority: -1 },
  ]);
  const reasons = (q: L4Query) => Object.fromEntries(r.explain('edge', q).rejected.map((x) => [x.route, x.reason]));

  test('lists every other route in config order with why it failed or was outranked', () => {
    const q = conn('x.example.org', ['h2'], '192.0.2.1');
    const e = r.explain('edge', q);
    expect(e.match).toEqual(r.match('edge', q));
    expect(e.match?.name).toBe('vip');
    expect(e.rejected).toEqual([
      { route: 'pg', reason: 'sni "x.example.org" is not db.example.com, *.db.example.com; alpn h2 offered, route wants postgresql; client 192.0.2.1 not in 10.0.0.0/8' },
      { route: 'wild', reason: 'sni "x.example.org" is not *.example.com' },
      { route: 'mq', reason: 'alpn h2 offered, route wants mqtt' },
      { route: 'lan', reason: 'client 192.0.2.1 not in 10.0.0.0/8, fd00::/8' },
      { route: 'fallback', reason: 'outranked by "vip" (priority 5 over -1)' },
    ]);
  });

  test('each failing condition on its own', () => {
    expect(reasons(conn('db.example.com', ['postgresql'], '203.0.113.1')).pg).toBe('client 203.0.113.1 not in 10.0.0.0/8');
    expect(reasons(conn('db.example.com', ['h2'])).pg).toBe('alpn h2 offered, route wants postgresql');
    expect(reasons(conn('db.example.com', [])).pg).toBe('no alpn offered, route wants postgresql');
    expect(reasons(conn('db.example.com', ['h2', 'http/1.1'])).pg).toBe('alpn h2, http/1.1 offered, route wants postgresql');
    expect(reasons(conn(undefined, ['postgresql'])).pg).toBe('no sni, route wants db.example.com, *.db.example.com');
    expect(reasons(conn('a.b.db.example.com', ['postgresql'])).pg).toBe('sni "a.b.db.example.com" is not db.example.com, *.db.example.com');
  });

  test('outranked by sni strength, by condition count and by order', () => {
    const r3 = router([{ name: 'plain', sni: ['*.example.com'] }, { name: 'narrow', sni: ['*.example.com'], alpn: ['h2'], clientIp: ['10.0.0.0/8'] }]);
    expect(r3.explain('edge', conn('a.example.com', ['h2'])).rejected).toEqual([{ route: 'plain', reason: 'outranked by "narrow" (2 alpn/clientIp conditions over 0)' }]);
    const r2 = router([
      { name: 'pg', sni: ['db.example.com'] },
      { name: 'wild', sni: ['*.example.com'] },
      { name: 'regex', sni: ['~example'] },
      { name: 'any' },
      { name: 'pg-late', sni: ['db.example.com'] },
    ]);
    expect(Object.fromEntries(r2.explain('edge', conn('db.example.com')).rejected.map((x) => [x.route, x.reason]))).toEqual({
      wild: 'outranked by "pg" (exact sni over wildcard)',
      regex: 'outranked by "pg" (exact sni over regex)',
      any: 'outranked by "pg" (exact sni over none)',
      'pg-late': 'outranked by "pg" (declared earlier)',
    });
    expect(Object.fromEntries(r2.explain('edge', conn('www.example.com')).rejected.map((x) => [x.route, x.reason]))).toMatchObject({
      regex: 'outranked by "wild" (wildcard sni over regex)',
      any: 'outranked by "wild" (wildcard sni over none)',
    });
  });

  test('with no match every route is rejected; an unknown listener rejects nothing', () => {
    const r2 = router([{ name: 'a', sni: ['a.test'] }, { name: 'b', clientIp: ['10.0.0.0/8'] }]);
    expect(r2.explain('edge', conn('b.test', [], '192.0.2.1'))).toEqual({
      match: undefined,
      rejected: [
        { route: 'a', reason: 'sni "b.test" is not a.test' },
        { route: 'b', reason: 'client 192.0.2.1 not in 10.0.0.0/8' },
      ],
    });
    expect(r2.explain('other', conn('a.test'))).toEqual({ match: undefined, rejected: [] });
  });
});

describe('scale', () => {
  test('a listener of 1,000 exact names matches each one, and falls back for unknown names', () => {
    const specs: L4RouteSpec<number>[] = Array.from({ length: 1000 }, (_, i) => ({
      name: `svc${i}`,
      listener: 'edge',
      sni: [`svc${i}.example.com`],
      alpn: [],
      clientIp: [],
      priority: 0,
      order: i,
      value: i,
    }));
    specs.push({ name: 'fallback', listener: 'edge', sni: [], alpn: [], clientIp: [], priority: -1, order: 1000, value: -1 });
    const r = new L4Router(shuffle(specs, 11));
    expect(r.size).toBe(1001);
    for (let i = 0; i < 1000; i++) {
      expect(r.match('edge', conn(`svc${i}.example.com`))).toEqual({ name: `svc${i}`, value: i, sni: 'exact' });
    }
    expect(r.match('edge', conn('SVC999.example.com.'))?.value).toBe(999);
    expect(r.match('edge', conn('svc1000.example.com'))?.name).toBe('fallback');
    expect(r.match('edge', conn(undefined))?.name).toBe('fallback');
    expect(r.claimsName('edge', 'svc500.example.com')).toBe(true);
    expect(r.claimsName('edge', 'svc5000.example.com')).toBe(false);
  });
});

describe('construction', () => {
  test.each<[string, Spec, RegExp]>([
    ['an invalid sni regex', { name: 'bad-re', sni: ['~('] }, /^route "bad-re": sni: invalid regular expression/],
    ['an invalid clientIp', { name: 'bad-ip', clientIp: ['10.0.0.0/33'] }, /^route "bad-ip": invalid clientIp "10\.0\.0\.0\/33"/],
    ['a clientIp that is no address', { name: 'bad-ip2', clientIp: ['nope/8'] }, /^route "bad-ip2": invalid clientIp/],
    ['a wildcard in the middle', { name: 'mid', sni: ['a.*.com'] }, /^route "mid": invalid sni pattern "a\.\*\.com"/],
  ])('throws an Error naming the route on %s', (_what, spec, message) => {
    expect(() => router([{ name: 'ok' }, spec])).toThrow(message);
  });

  test('the value given with the route comes back with the match', () => {
    const pool = { id: 'pg' };
    const r = new L4Router([{ name: 'pg', listener: 'edge', sni: [], alpn: [], clientIp: [], priority: 0, order: 0, value: pool }]);
    expect(r.match('edge', conn(undefined))?.value).toBe(pool);
  });

  test('match returns the same object for the same route and sni kind (no allocation per connection)', () => {
    const r = router([{ name: 'only' }]);
    expect(r.match('edge', conn(undefined))).toBe(r.match('edge', conn('x.test', ['h2'], '::1')));
  });
});

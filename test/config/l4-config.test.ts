// L4 configuration (SPEC §7): every mistake in listeners.tcp/udp, tcpRoutes, udpRoutes, tcp:// and
// udp:// pools and connect: tests is reported at file:line:col with its key path and a message that
// says what to do — through the loaders, the listener cross-check with waygate.yaml, and the real
// `waygate --check` run in a directory holding waygate.yaml and routes/.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkListeners, formatConfigError, parseRoutesText, parseStaticText } from '../../src/config/load.ts';
import type { LoadResult, RoutesConfig } from '../../src/config/load.ts';
import type { StaticConfig } from '../../src/config/schema.ts';
import { verifyRoutes } from '../../src/route/tests.ts';
import { runCli } from '../helpers.ts';

const FILE = 'routes/l4.yaml';

/** The formatted errors of one routes file made of these lines. */
function errors(...lines: string[]): string[] {
  const r = parseRoutesText(lines.join('\n') + '\n', FILE, {});
  if (r.ok) throw new Error('expected errors, got a valid routes file');
  return r.errors.map(formatConfigError);
}

function routes(...lines: string[]): RoutesConfig {
  const r = parseRoutesText(lines.join('\n') + '\n', FILE, {});
  if (!r.ok) throw new Error(r.errors.map(formatConfigError).join('\n'));
  return r.value;
}

function staticConfig(text: string): StaticConfig {
  const r = parseStaticText(text, 'waygate.yaml', {});
  if (!r.ok) throw new Error(r.errors.map(formatConfigError).join('\n'));
  return r.value;
}

function staticErrors(text: string): string[] {
  const r: LoadResult<StaticConfig> = parseStaticText(text, 'waygate.yaml', {});
  if (r.ok) throw new Error('expected errors, got a valid waygate.yaml');
  return r.errors.map(formatConfigError);
}

const WAYGATE = `listeners:
  https: { address: "127.0.0.1:0" }
  tcp:
    edge: { address: "127.0.0.1:0" }
    redis: { address: "127.0.0.1:0" }
  udp:
    dns: { address: "127.0.0.1:0" }
`;
const HTTPS_OFF = WAYGATE.replace('https: { address: "127.0.0.1:0" }', 'https: { address: "off" }');

const PG = ['pools:', '  pg: { targets: ["tcp://127.0.0.1:5432"] }', '  web: { targets: ["http://127.0.0.1:3000"] }', '  dns: { targets: ["udp://127.0.0.1:53"] }'];

describe('waygate.yaml: listeners.tcp and listeners.udp', () => {
  it('reads names, addresses and defaults', () => {
    const c = staticConfig(`listeners:\n  tcp:\n    edge: { address: ":5443", proxyProtocol: true, peekTimeout: 2s }\n    redis: { address: "127.0.0.1:6379" }\n  udp:\n    dns: { address: ":5353", sessionIdle: 10s }\n`);
    expect(c.listeners.tcp).toEqual({
      edge: { address: { host: '0.0.0.0', port: 5443 }, proxyProtocol: true, peekTimeout: 2000 },
      redis: { address: { host: '127.0.0.1', port: 6379 }, proxyProtocol: false, peekTimeout: 5000 },
    });
    expect(c.listeners.udp).toEqual({ dns: { address: { host: '0.0.0.0', port: 5353 }, sessionIdle: 10_000, maxSessions: 10_000 } });
  });

  it('a listeners.tcp entry named "https" is refused: that name is the shared HTTPS port in tcpRoutes', () => {
    expect(staticErrors('listeners:\n  tcp:\n    https: { address: ":5443" }\n')).toEqual([
      'waygate.yaml:3:5 listeners.tcp.https: "https" names the HTTPS listener in tcpRoutes; give this TCP listener another name',
    ]);
  });

  it('bad addresses, zero durations and keys of the other kind are located', () => {
    expect(staticErrors('listeners:\n  tcp:\n    edge: { address: "nope", peekTimeout: 0s, sessionIdle: 1s }\n  udp:\n    dns: { address: ":53", sessionIdle: 0s, maxSessions: 0, proxyProtocol: true }\n')).toEqual([
      'waygate.yaml:3:22 listeners.tcp.edge.address: expected HOST:PORT, :PORT, PORT, [IPv6]:PORT or off, got "nope"',
      'waygate.yaml:3:43 listeners.tcp.edge.peekTimeout: must be greater than 0s',
      'waygate.yaml:3:47 listeners.tcp.edge.sessionIdle: unknown key "sessionIdle"',
      'waygate.yaml:5:41 listeners.udp.dns.sessionIdle: must be greater than 0s',
      'waygate.yaml:5:58 listeners.udp.dns.maxSessions: must be at least 1',
      'waygate.yaml:5:61 listeners.udp.dns.proxyProtocol: unknown key "proxyProtocol"',
    ]);
  });
});

describe('routes files: L4 pools', () => {
  it('a tcp:// or udp:// target without a port', () => {
    expect(errors('pools:', '  pg: { targets: ["tcp://db.internal"] }', '  dns: { targets: [{ url: "udp://10.0.0.53" }] }')).toEqual([
      'routes/l4.yaml:2:19 pools.pg.targets[0]: a tcp:// target needs a port, such as tcp://10.0.0.21:5432, got "tcp://db.internal"',
      'routes/l4.yaml:3:27 pools.dns.targets[0].url: a udp:// target needs a port, such as udp://10.0.0.53:53, got "udp://10.0.0.53"',
    ]);
  });

  it('mixed schemes in one pool, at each target that differs from the first', () => {
    expect(errors('pools:', '  pg: { targets: ["tcp://127.0.0.1:5432", "udp://127.0.0.1:53", { url: "http://127.0.0.1:80" }] }')).toEqual([
      'routes/l4.yaml:2:43 pools.pg.targets[1]: a pool has one kind of target: tcp:// like its first, got udp://127.0.0.1:53',
      'routes/l4.yaml:2:65 pools.pg.targets[2]: a pool has one kind of target: tcp:// like its first, got http://127.0.0.1',
    ]);
  });

  it('sticky, h2, client and tls do not apply to a tcp:// pool', () => {
    expect(errors('pools:', '  pg:', '    targets: ["tcp://127.0.0.1:5432"]', '    sticky: { cookie: a }', '    h2: true', '    client: undici', '    tls: { verify: false }')).toEqual([
      'routes/l4.yaml:4:5 pools.pg.sticky: "sticky" does not apply to a tcp:// pool: cookie affinity is HTTP (ip-hash keeps a client on one target)',
      'routes/l4.yaml:5:5 pools.pg.h2: "h2" does not apply to a tcp:// pool: it carries bytes, not HTTP',
      'routes/l4.yaml:6:5 pools.pg.client: "client" does not apply to a tcp:// pool: it carries bytes, not HTTP',
      'routes/l4.yaml:7:5 pools.pg.tls: "tls" does not apply to a tcp:// pool: waygate does not originate TLS to L4 targets (tls: passthrough forwards the client\'s own)',
    ]);
  });

  it('healthCheck type: http on a tcp:// pool is one error, not a second one about its path', () => {
    expect(errors('pools:', '  pg:', '    targets: ["tcp://127.0.0.1:5432"]', '    healthCheck: { type: http, path: /health }')).toEqual([
      'routes/l4.yaml:4:26 pools.pg.healthCheck.type: type: http is for HTTP pools; a tcp:// pool checks with connect or send-expect',
    ]);
  });

  it('path and expectStatus belong to HTTP checks; send and expect to send-expect', () => {
    expect(errors('pools:', '  pg:', '    targets: ["tcp://127.0.0.1:5432"]', '    healthCheck: { path: /x, expectStatus: 200 }')).toEqual([
      'routes/l4.yaml:4:20 pools.pg.healthCheck.path: "path" is for type: http checks; a connect check has none',
      'routes/l4.yaml:4:30 pools.pg.healthCheck.expectStatus: "expectStatus" is for type: http checks; a connect check has no status (send-expect matches expect in the reply)',
    ]);
    expect(errors('pools:', '  pg:', '    targets: ["tcp://127.0.0.1:5432"]', '    healthCheck: { type: connect, expect: PONG }')).toEqual([
      'routes/l4.yaml:4:26 pools.pg.healthCheck.type: send and expect need type: send-expect',
    ]);
  });

  it('send-expect without expect', () => {
    expect(errors('pools:', '  pg:', '    targets: ["tcp://127.0.0.1:6379"]', '    healthCheck: { type: send-expect, send: "PING\\r\\n" }')).toEqual([
      'routes/l4.yaml:4:18 pools.pg.healthCheck: a send-expect check needs expect: the text the reply must contain (and usually send)',
    ]);
  });

  it('a udp:// pool: no connect check, send-expect needs send, no proxyProtocol, no onTargetDown', () => {
    expect(errors('pools:', '  dns:', '    targets: ["udp://127.0.0.1:53"]', '    healthCheck: { type: connect }')).toEqual([
      'routes/l4.yaml:4:26 pools.dns.healthCheck.type: UDP has no connection to open: a udp:// pool checks with send-expect',
    ]);
    expect(errors('pools:', '  dns:', '    targets: ["udp://127.0.0.1:53"]', '    healthCheck: { expect: pong }', '    proxyProtocol: v2', '    onTargetDown: close')).toEqual([
      'routes/l4.yaml:4:18 pools.dns.healthCheck: a UDP send-expect check needs send: a UDP target answers only what it is sent',
      'routes/l4.yaml:5:5 pools.dns.proxyProtocol: "proxyProtocol" does not apply to a udp:// pool: the PROXY protocol is sent on TCP connections',
      'routes/l4.yaml:6:5 pools.dns.onTargetDown: "onTargetDown" does not apply to a udp:// pool: a UDP session moves to another target with its next datagram',
    ]);
  });

  it('proxyProtocol on an h2 HTTP pool, and onTargetDown on an HTTP pool', () => {
    expect(errors('pools:', '  web:', '    targets: ["http://127.0.0.1:3000"]', '    h2: true', '    proxyProtocol: v1', '    onTargetDown: close')).toEqual([
      'routes/l4.yaml:5:20 pools.web.proxyProtocol: proxyProtocol on an HTTP pool needs the builtin HTTP/1.1 client (each client connection gets its own upstream connection); remove h2 and client: undici',
      'routes/l4.yaml:6:5 pools.web.onTargetDown: onTargetDown applies to tcp:// pools',
    ]);
  });

  it('the defaults of a valid L4 pool: connect checks for tcp://, send-expect for udp://', () => {
    const r = routes('pools:', '  pg:', '    targets: ["tcp://127.0.0.1:5432"]', '    healthCheck: { interval: 1s }', '  dns:', '    targets: ["udp://127.0.0.1:53"]', '    healthCheck: { send: ping, expect: pong }');
    expect(r.pools.get('pg')).toMatchObject({ kind: 'tcp', proxyProtocol: 'off', onTargetDown: 'keep', healthCheck: { type: 'connect', interval: 1000 } });
    expect(r.pools.get('dns')).toMatchObject({ kind: 'udp', healthCheck: { type: 'send-expect', send: 'ping', expect: 'pong' } });
    // An HTTP check still defaults to 200-399.
    expect(routes('pools:', '  web: { targets: ["http://127.0.0.1:1"], healthCheck: { path: /h } }').pools.get('web')!.healthCheck!.expectStatus).toEqual([[200, 399]]);
  });
});

describe('routes files: tcpRoutes and udpRoutes', () => {
  it('a tcpRoute on an http:// pool, an HTTP route on a tcp:// pool, a udpRoute on a tcp:// pool, a split of mixed kinds', () => {
    expect(errors(...PG, 'routes:', '  - { name: r, pool: pg }', 'tcpRoutes:', '  - { name: t, listener: edge, pool: web }', '  - { name: s, listener: edge, split: [{ pool: pg, weight: 1 }, { pool: web, weight: 1 }] }', 'udpRoutes:', '  - { name: u, listener: dns, pool: pg }')).toEqual([
      'routes/l4.yaml:6:22 routes[0].pool: an HTTP route needs a pool of http:// or https:// targets; pool "pg" has tcp:// targets',
      'routes/l4.yaml:8:38 tcpRoutes[0].pool: a tcpRoute needs a pool of tcp:// targets; pool "web" has http(s):// targets',
      'routes/l4.yaml:9:73 tcpRoutes[1].split[1].pool: a tcpRoute needs a pool of tcp:// targets; pool "web" has http(s):// targets',
      'routes/l4.yaml:11:37 udpRoutes[0].pool: a udpRoute needs a pool of udp:// targets; pool "pg" has tcp:// targets',
    ]);
  });

  it('an unknown pool is suggested among the pools of the right kind', () => {
    expect(errors(...PG, '  pgsql: { targets: ["http://127.0.0.1:1"] }', 'tcpRoutes:', '  - { name: t, listener: edge, pool: pgg }')).toEqual([
      'routes/l4.yaml:7:38 tcpRoutes[0].pool: unknown pool "pgg" (did you mean "pg"?)',
    ]);
  });

  it('a tcpRoute on https without sni; tls: none with sni', () => {
    expect(errors(...PG, 'tcpRoutes:', '  - { name: t, listener: https, pool: pg }', '  - { name: n, listener: edge, match: { sni: db.example.com }, tls: none, pool: pg }')).toEqual([
      'routes/l4.yaml:6:5 tcpRoutes[0].match: a tcpRoute on the https listener needs match.sni: connections whose SNI no tcpRoute matches are served as HTTP',
      'routes/l4.yaml:7:69 tcpRoutes[1].tls: tls: none forwards bytes as they come, without reading a ClientHello; matching sni or alpn needs tls: passthrough or terminate',
    ]);
  });

  it('an unknown key in a tcpRoute gets a suggestion; a udpRoute has no tls and no sni; SNI never carries a port', () => {
    expect(errors(...PG, 'tcpRoutes:', '  - { name: t, listener: edge, pool: pg, idletimeout: 5s }', '  - { name: p, listener: edge, match: { sni: "db.example.com:443" }, pool: pg }', 'udpRoutes:', '  - { name: u, listener: dns, pool: dns, tls: none, match: { sni: a.b } }')).toEqual([
      'routes/l4.yaml:6:42 tcpRoutes[0].idletimeout: unknown key "idletimeout" (did you mean "idleTimeout"?)',
      'routes/l4.yaml:7:46 tcpRoutes[1].match.sni: invalid SNI pattern "db.example.com:443": expected a name such as db.example.com, *.example.com or ~^db[0-9]+\\.example\\.com$ (SNI carries no port)',
      'routes/l4.yaml:9:42 udpRoutes[0].tls: unknown key "tls"',
      'routes/l4.yaml:9:62 udpRoutes[0].match.sni: unknown key "sni"',
    ]);
  });

  it('route names are one namespace across routes, tcpRoutes and udpRoutes', () => {
    expect(errors(...PG, 'routes:', '  - { name: app, pool: web }', 'tcpRoutes:', '  - { name: app, listener: edge, pool: pg }', 'udpRoutes:', '  - { name: app, listener: dns, pool: dns }')).toEqual([
      'routes/l4.yaml:8:13 tcpRoutes[0].name: duplicate route name "app" (first defined at routes/l4.yaml:6:5)',
      'routes/l4.yaml:10:13 udpRoutes[0].name: duplicate route name "app" (first defined at routes/l4.yaml:6:5)',
    ]);
  });

  it('tls defaults: passthrough when sni or alpn is matched, none otherwise', () => {
    const r = routes(...PG, 'tcpRoutes:', '  - { name: a, listener: edge, match: { sni: db.example.com }, pool: pg }', '  - { name: b, listener: edge, match: { alpn: h2 }, pool: pg }', '  - { name: c, listener: redis, pool: pg }');
    expect(r.tcpRoutes.map((x) => [x.name, x.tls])).toEqual([['a', 'passthrough'], ['b', 'passthrough'], ['c', 'none']]);
  });
});

describe('the listener cross-check with waygate.yaml', () => {
  const L4 = [...PG, 'tcpRoutes:', '  - { name: a, listener: egde, pool: pg }', '  - { name: b, listener: https, match: { sni: x.example.com }, pool: pg }', '  - { name: c, listener: dns, pool: pg }', 'udpRoutes:', '  - { name: d, listener: dsn, pool: dns }'];

  it('an unknown tcp or udp listener, with a suggestion and the names waygate.yaml has; a listener of the other kind says so', () => {
    expect(checkListeners(routes(...L4), staticConfig(WAYGATE)).map(formatConfigError)).toEqual([
      'routes/l4.yaml:6:26 tcpRoutes[0].listener: unknown tcp listener "egde" (did you mean "edge"?): waygate.yaml\'s listeners.tcp has edge, redis (or "https", the shared HTTPS port)',
      'routes/l4.yaml:8:26 tcpRoutes[2].listener: "dns" is a udp listener (listeners.udp); a tcpRoute needs one of listeners.tcp: edge, redis (or "https", the shared HTTPS port)',
      'routes/l4.yaml:10:26 udpRoutes[0].listener: unknown udp listener "dsn" (did you mean "dns"?): waygate.yaml\'s listeners.udp has dns',
    ]);
  });

  it('listener https while HTTPS is off; no L4 listeners at all', () => {
    expect(checkListeners(routes(...L4), staticConfig(HTTPS_OFF)).map(formatConfigError)).toEqual([
      'routes/l4.yaml:6:26 tcpRoutes[0].listener: unknown tcp listener "egde" (did you mean "edge"?): waygate.yaml\'s listeners.tcp has edge, redis',
      'routes/l4.yaml:7:26 tcpRoutes[1].listener: listener "https" is the shared HTTPS port, which is off (listeners.https.address in waygate.yaml, or --https off): no connection reaches it',
      'routes/l4.yaml:8:26 tcpRoutes[2].listener: "dns" is a udp listener (listeners.udp); a tcpRoute needs one of listeners.tcp: edge, redis',
      'routes/l4.yaml:10:26 udpRoutes[0].listener: unknown udp listener "dsn" (did you mean "dns"?): waygate.yaml\'s listeners.udp has dns',
    ]);
    expect(checkListeners(routes(...PG, 'tcpRoutes:', '  - { name: a, listener: edge, pool: pg }'), staticConfig('listeners: { https: { address: "off" } }')).map(formatConfigError)).toEqual([
      'routes/l4.yaml:6:26 tcpRoutes[0].listener: unknown tcp listener "edge": waygate.yaml has no listeners.tcp',
    ]);
  });

  it('a connect test names a listener of its kind, located at its listener key', () => {
    const r = routes(...PG, 'tcpRoutes:', '  - { name: a, listener: edge, pool: pg }', 'tests:', '  - { connect: "udp://x", listener: edge, expect: { route: a } }', '  - { connect: "tls://x", listener: edg, expect: { route: a } }');
    expect(verifyRoutes(r, staticConfig(WAYGATE))).toEqual([
      'routes/l4.yaml:8:37 tests[0].listener: "edge" is a tcp listener (listeners.tcp); a udp:// test needs one of listeners.udp: dns',
      'routes/l4.yaml:9:37 tests[1].listener: unknown tcp listener "edg" (did you mean "edge"?): waygate.yaml\'s listeners.tcp has edge, redis (or "https", the shared HTTPS port)',
    ]);
  });
});

describe('connect: tests', () => {
  const FILE_LINES = [
    'pools:',
    '  pg: { targets: ["tcp://127.0.0.1:5432"] }',
    '  pg2: { targets: ["tcp://127.0.0.1:5433"] }',
    '  dns: { targets: ["udp://127.0.0.1:53"] }',
    'tcpRoutes:',
    '  - { name: pg, listener: edge, match: { sni: [db.example.com, "*.db.example.com"], alpn: [postgresql] }, pool: pg }',
    '  - { name: any-db, listener: edge, match: { sni: "*.db.example.com" }, pool: pg2 }',
    '  - { name: cache, listener: redis, pool: pg2 }',
    'udpRoutes:',
    '  - { name: resolver, listener: dns, match: { clientIp: 10.0.0.0/8 }, pool: dns }',
    'tests:',
  ];
  const PASSING = [
    '  - { connect: "tls://db.example.com", listener: edge, alpn: [postgresql], expect: { route: pg, pool: pg } }',
    '  - { connect: "tls://eu.db.example.com", listener: edge, expect: { route: any-db, pool: pg2 } }',
    '  - { connect: "tls://db.example.com", listener: edge, expect: { route: null } }',
    '  - { connect: "tcp://10.0.0.1", listener: edge, expect: { route: null } }',
    '  - { connect: "tcp://10.0.0.1:6379", listener: redis, expect: { route: cache } }',
    '  - { connect: "udp://ns", listener: dns, clientIp: 10.1.1.1, expect: { route: resolver, pool: dns } }',
    '  - { connect: "udp://ns", listener: dns, clientIp: 192.168.1.1, expect: { route: null } }',
  ];

  it('pass when the L4 router agrees, route: null included (a connection that must be closed)', () => {
    expect(verifyRoutes(routes(...FILE_LINES, ...PASSING), staticConfig(WAYGATE))).toEqual([]);
  });

  it('a failing one names its location and what it expected', () => {
    const failing = [
      '  - { connect: "tls://eu.db.example.com", listener: edge, alpn: [h2], expect: { route: pg } }',
      '  - { connect: "tls://db.example.com", listener: edge, alpn: [postgresql], expect: { route: null } }',
      '  - { connect: "tls://other.example.com", listener: edge, expect: { pool: pg } }',
    ];
    expect(verifyRoutes(routes(...FILE_LINES, ...failing), staticConfig(WAYGATE))).toEqual([
      'routes/l4.yaml:12:5 tests[0]: expected route "pg", got "any-db"',
      'routes/l4.yaml:13:5 tests[1]: expected the connection to be closed (no route), got route "pg"',
      'routes/l4.yaml:14:5 tests[2]: expected pool "pg", got no route',
    ]);
  });

  it('malformed tests are reported at their keys', () => {
    expect(errors('tests:',
      '  - { connect: "tls://db.example.com", expect: { route: x } }',
      '  - { connect: "ftp://x", listener: edge, expect: { route: x } }',
      '  - { connect: "tcp://x", listener: edge, headers: { a: b }, expect: { status: 200 } }',
      '  - { request: "GET http://x/", listener: edge, expect: { route: null } }',
    )).toEqual([
      'routes/l4.yaml:2:5 tests[0]: a connect test needs listener: the listeners.tcp or listeners.udp name (or https) it connects to',
      'routes/l4.yaml:3:16 tests[1].connect: expected "tls://NAME", "tcp://HOST" or "udp://HOST" such as "tls://db.example.com", got "ftp://x"',
      'routes/l4.yaml:4:43 tests[2].headers: "headers" belongs to a request test',
      'routes/l4.yaml:4:70 tests[2].expect: expect needs route (null: the connection is closed) or pool',
      'routes/l4.yaml:4:72 tests[2].expect.status: "status" is for request tests; a connect test expects route and pool',
      'routes/l4.yaml:5:33 tests[3].listener: "listener" belongs to a connect test',
      'routes/l4.yaml:5:66 tests[3].expect.route: route: null is for connect tests (the connection is closed); an HTTP test expects a status such as 404',
    ]);
  });
});

describe('waygate --check in a directory with waygate.yaml and routes/', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  async function project(waygate: string, files: Record<string, string>): Promise<string> {
    const cwd = await mkdtemp(join(tmpdir(), 'waygate-l4-check-'));
    dirs.push(cwd);
    await writeFile(join(cwd, 'waygate.yaml'), waygate);
    await mkdir(join(cwd, 'routes'));
    for (const [name, text] of Object.entries(files)) await writeFile(join(cwd, 'routes', name), text);
    return cwd;
  }
  const PASSING_FILE = [
    'pools:',
    '  pg: { targets: ["tcp://127.0.0.1:5432"], healthCheck: { type: connect } }',
    '  dns: { targets: ["udp://127.0.0.1:53"], healthCheck: { send: ping, expect: pong } }',
    'tcpRoutes:',
    '  - { name: pg, listener: edge, match: { sni: db.example.com }, pool: pg }',
    '  - { name: tls-db, listener: https, match: { sni: tls.example.com }, pool: pg }',
    'udpRoutes:',
    '  - { name: dns, listener: dns, pool: dns }',
    'tests:',
    '  - { connect: "tls://db.example.com", listener: edge, expect: { route: pg, pool: pg } }',
    '  - { connect: "tls://nope.example.com", listener: edge, expect: { route: null } }',
    '  - { connect: "tls://tls.example.com", listener: https, expect: { route: tls-db } }',
    '  - { connect: "udp://ns", listener: dns, expect: { route: dns } }',
    '',
  ].join('\n');

  it('prints ok and exits 0 for a valid L4 setup whose connect: tests pass', async () => {
    const cwd = await project(WAYGATE, { 'l4.yaml': PASSING_FILE });
    const r = await runCli(['--check'], {}, cwd);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('ok\n');
    expect(r.code).toBe(0);
  });

  it('a failing connect: test exits 1 with its location and "expected route …"', async () => {
    const cwd = await project(WAYGATE, { 'l4.yaml': PASSING_FILE.replace('expect: { route: null } }', 'expect: { route: pg } }') });
    const r = await runCli(['--check'], {}, cwd);
    expect(r.code).toBe(1);
    expect(r.stdout.trim().split('\n')).toEqual(['routes/l4.yaml:11:5 tests[1]: expected route "pg", got no route: the connection is closed', '1 error']);
  });

  it('the listener cross-check: an unknown listener and https with HTTPS off (--https off too) exit 1', async () => {
    const cwd = await project(HTTPS_OFF, { 'l4.yaml': PASSING_FILE.replace('listener: edge, match', 'listener: edgy, match') });
    const r = await runCli(['--check'], {}, cwd);
    expect(r.code).toBe(1);
    expect(r.stdout.trim().split('\n')).toEqual([
      'routes/l4.yaml:5:27 tcpRoutes[0].listener: unknown tcp listener "edgy" (did you mean "edge"?): waygate.yaml\'s listeners.tcp has edge, redis',
      'routes/l4.yaml:6:31 tcpRoutes[1].listener: listener "https" is the shared HTTPS port, which is off (listeners.https.address in waygate.yaml, or --https off): no connection reaches it',
      'routes/l4.yaml:12:51 tests[2].listener: listener "https" is the shared HTTPS port, which is off (listeners.https.address in waygate.yaml, or --https off): no connection reaches it',
      '3 errors',
    ]);
    const flag = await runCli(['--check', '--https', 'off'], {}, await project(WAYGATE, { 'l4.yaml': PASSING_FILE }));
    expect(flag.code).toBe(1);
    expect(flag.stdout).toContain('routes/l4.yaml:6:31 tcpRoutes[1].listener: listener "https" is the shared HTTPS port, which is off');
  });

  it('schema errors across files and waygate.yaml errors are reported with file:line:col', async () => {
    const cwd = await project(WAYGATE, {
      'a.yaml': 'pools:\n  pg: { targets: ["tcp://127.0.0.1"] }\ntcpRoutes:\n  - { name: pg, listener: edge, pool: web }\n',
      'b.yaml': 'pools:\n  web: { targets: ["http://127.0.0.1:3000"], proxyProtocol: v2, h2: true }\nroutes:\n  - { name: pg, pool: web }\n',
    });
    const r = await runCli(['--check'], {}, cwd);
    expect(r.code).toBe(1);
    expect(r.stdout.trim().split('\n')).toEqual([
      'routes/a.yaml:2:19 pools.pg.targets[0]: a tcp:// target needs a port, such as tcp://10.0.0.21:5432, got "tcp://127.0.0.1"',
      'routes/b.yaml:2:61 pools.web.proxyProtocol: proxyProtocol on an HTTP pool needs the builtin HTTP/1.1 client (each client connection gets its own upstream connection); remove h2 and client: undici',
      'routes/b.yaml:4:13 routes[0].name: duplicate route name "pg" (first defined at routes/a.yaml:4:5)',
      '3 errors',
    ]);
    const bad = await runCli(['--check'], {}, await project('listeners:\n  tcp:\n    https: { address: ":5443" }\n', { 'l4.yaml': '' }));
    expect(bad.code).toBe(1);
    expect(bad.stdout.trim()).toBe('waygate.yaml:3:5 listeners.tcp.https: "https" names the HTTPS listener in tcpRoutes; give this TCP listener another name\n1 error');
  });
});

import { describe, expect, it } from 'vitest';
import { formatConfigError, parseRoutesFiles, parseRoutesText } from '../../src/config/load.ts';
import type { LoadResult, RoutesConfig } from '../../src/config/load.ts';

const POOLS = ['pools:', '  catalog:', '    targets: [http://127.0.0.1:3000]'];

/** The formatted errors of one routes/shop.yaml made of these lines. */
function errors(...lines: string[]): string[] {
  return errorsOf(parseRoutesText(lines.join('\n') + '\n', 'routes/shop.yaml', { SET: 'yes' }));
}

function errorsOf(r: LoadResult<RoutesConfig>): string[] {
  if (r.ok) throw new Error('expected errors, got a valid config');
  return r.errors.map(formatConfigError);
}

describe('routes file errors name file, line, column, key path and what was expected', () => {
  it('a misspelt pool gets a suggestion, pointing at the value', () => {
    expect(errors(...POOLS, 'routes:', '  - pool: catalog', '  - match: { path: /a }', '    pool: catalgo')).toEqual([
      'routes/shop.yaml:7:11 routes[1].pool: unknown pool "catalgo" (did you mean "catalog"?)',
    ]);
  });

  it('an unknown pool in a split is reported at that split entry, without a suggestion when nothing is close', () => {
    expect(errors(...POOLS, 'routes:', '  - split: [{pool: catalog, weight: 1}, {pool: zzz, weight: 1}]')).toEqual([
      'routes/shop.yaml:5:48 routes[0].split[1].pool: unknown pool "zzz"',
    ]);
  });

  it('an unknown key gets a suggestion, pointing at the key', () => {
    expect(errors('pools:', '  catalog:', '    tragets: [http://127.0.0.1:3000]')).toEqual([
      'routes/shop.yaml:3:5 pools.catalog.targets: missing required key "targets"',
      'routes/shop.yaml:3:5 pools.catalog.tragets: unknown key "tragets" (did you mean "targets"?)',
    ]);
  });

  it('an unknown key with nothing close gets no suggestion, at any depth', () => {
    expect(errors(...POOLS, '    sticky: { cookie: a, colour: blue }', 'frobnicate: 1')).toEqual([
      'routes/shop.yaml:4:26 pools.catalog.sticky.colour: unknown key "colour"',
      'routes/shop.yaml:5:1 frobnicate: unknown key "frobnicate"',
    ]);
  });

  it('a wrong type says what was expected and what was found', () => {
    expect(errors('pools:', '  catalog:', '    targets: http://127.0.0.1:3000', '    retries: two', '    h2: yes')).toEqual([
      'routes/shop.yaml:3:14 pools.catalog.targets: expected a list, got "http://127.0.0.1:3000"',
      'routes/shop.yaml:4:14 pools.catalog.retries: expected a number, got "two"',
      'routes/shop.yaml:5:9 pools.catalog.h2: expected true or false, got "yes"',
    ]);
  });

  it('client: an unknown value is listed with the choices; builtin with h2 says why not', () => {
    expect(errors(...POOLS, '    client: curl')).toEqual([
      'routes/shop.yaml:4:13 pools.catalog.client: expected one of builtin, undici, got "curl"',
    ]);
    expect(errors(...POOLS, '    h2: true', '    client: builtin')).toEqual([
      'routes/shop.yaml:5:13 pools.catalog.client: the builtin client speaks HTTP/1.1 only; an h2 pool is served by undici (remove "client" or set it to "undici")',
    ]);
  });

  it('a bad weight in a target object points at the weight', () => {
    expect(errors('pools:', '  catalog:', '    targets:', '      - url: http://127.0.0.1:1', '        weight: 0')).toEqual([
      'routes/shop.yaml:5:17 pools.catalog.targets[0].weight: must be at least 1',
    ]);
  });

  it('a target URL with a path is refused with the reason', () => {
    expect(errors('pools:', '  catalog:', '    targets: [http://127.0.0.1:3000/api]')).toEqual([
      'routes/shop.yaml:3:15 pools.catalog.targets[0]: a target URL is scheme://host[:port] only, without path, query or fragment (rewrite paths on the route with stripPrefix/rewritePath), got "http://127.0.0.1:3000/api"',
    ]);
  });

  it('a bad duration quotes the text', () => {
    expect(errors(...POOLS, '    timeouts: { connect: 5 seconds }')).toEqual([
      'routes/shop.yaml:4:26 pools.catalog.timeouts.connect: expected a duration such as 250ms, 5s, 1m or 1h, got "5 seconds"',
    ]);
  });

  it('a misspelt enum value gets a suggestion', () => {
    expect(errors(...POOLS, '    balance: least-conections')).toEqual([
      'routes/shop.yaml:4:14 pools.catalog.balance: expected one of round-robin, least-connections, ip-hash, random-two, got "least-conections" (did you mean "least-connections"?)',
    ]);
  });

  it('a bad regex in a header matcher points at its value', () => {
    expect(errors(...POOLS, 'routes:', '  - pool: catalog', '    match:', '      headers: { user-agent: "~(iphone" }')).toEqual([
      'routes/shop.yaml:7:30 routes[0].match.headers.user-agent: invalid regular expression: /(iphone/: Unterminated group',
    ]);
  });

  it('a bad path pattern gives the reason', () => {
    expect(errors(...POOLS, 'routes:', '  - pool: catalog', '    match: { path: "/a/*/b" }')).toEqual([
      'routes/shop.yaml:6:20 routes[0].match.path: invalid path pattern "/a/*/b": "*" is only allowed as the last segment, as in "/prefix/*"',
    ]);
  });

  it('a rewritePath with a space is refused (it would break the upstream request line)', () => {
    expect(errors(...POOLS, 'routes:', '  - pool: catalog', '    rewritePath: "/v2/a b"')).toEqual([
      'routes/shop.yaml:6:18 routes[0].rewritePath: rewritePath cannot contain spaces or control characters (percent-encode them)',
    ]);
  });

  it('a rewritePath parameter missing from match.path is refused, with a suggestion', () => {
    expect(errors(...POOLS, 'routes:', '  - pool: catalog', '    match: { path: /items/:id }', '    rewritePath: /v2/:idd')).toEqual([
      'routes/shop.yaml:7:18 routes[0].rewritePath: ":idd" is not a parameter of match.path "/items/:id" (did you mean ":id"?)',
    ]);
  });

  it('two actions on one route point at the second one', () => {
    expect(errors(...POOLS, 'routes:', '  - pool: catalog', '    redirect: { to: /x }')).toEqual([
      'routes/shop.yaml:6:5 routes[0].redirect: "redirect" cannot be combined with "pool": a route has exactly one of pool, split, redirect or respond',
    ]);
  });

  it('a route without an action points at the route', () => {
    expect(errors('routes:', '  - match: { path: /a }')).toEqual(['routes/shop.yaml:2:5 routes[0]: a route needs one of pool, split, redirect or respond']);
  });

  it('forwarding rewrites on a route that answers by itself are refused', () => {
    expect(errors('routes:', '  - respond: { body: hi }', '    stripPrefix: /a', '    responseHeaders: { set: { x-a: b } }')).toEqual([
      'routes/shop.yaml:3:5 routes[0].stripPrefix: "stripPrefix" does not apply to a respond route',
    ]);
  });

  it('hosts, header names, names and methods are checked', () => {
    expect(
      errors(
        'routes:',
        '  - name: "bad name"',
        '    respond: {}',
        '    match: { host: "shop.example.com:8080", methods: ["GE T"] }',
        '    requestHeaders: { set: { "x a": b } }',
      ),
    ).toEqual([
      'routes/shop.yaml:2:11 routes[0].name: invalid name "bad name": use letters, digits and "_.:-", starting with a letter or digit',
      'routes/shop.yaml:4:20 routes[0].match.host: invalid host "shop.example.com:8080": expected a host name such as shop.example.com or *.example.com (hosts are matched without the port)',
      'routes/shop.yaml:4:55 routes[0].match.methods[0]: invalid method "GE T"',
      'routes/shop.yaml:5:30 routes[0].requestHeaders.set["x a"]: invalid header name "x a"',
    ]);
  });

  it('header values with control characters are refused (a CR or LF would inject a header)', () => {
    const found = errors('routes:', '  - pool: p', '    requestHeaders: { set: { x-a: "one\\r\\nx-evil: 1" } }', '    responseHeaders: { add: { x-b: "tab\\tis fine, café too", x-c: "no 😀" } }');
    expect(found.filter((e) => !e.includes('unknown pool'))).toEqual([
      'routes/shop.yaml:3:35 routes[0].requestHeaders.set.x-a: invalid value for header "x-a": control characters such as CR, LF and NUL are not allowed',
      'routes/shop.yaml:4:67 routes[0].responseHeaders.add.x-c: invalid value for header "x-c": only Latin-1 characters can be sent in a header (percent-encode others)',
    ]);
  });

  it('tests need a "METHOD URL" request and at least one expectation', () => {
    expect(errors('tests:', '  - { request: "GET /relative", expect: { route: a } }', '  - { request: "GET http://a/", expect: {} }')).toEqual([
      'routes/shop.yaml:2:16 tests[0].request: expected "METHOD URL" such as "GET https://shop.example.com/api", got "GET /relative"',
      'routes/shop.yaml:3:41 tests[1].expect: expect needs at least one of route, pool, path, status, location, host',
    ]);
  });

  it('a duplicate route name names both places', () => {
    expect(errors('routes:', '  - name: home', '    respond: {}', '  - name: home', '    respond: {}')).toEqual([
      'routes/shop.yaml:4:11 routes[1].name: duplicate route name "home" (first defined at routes/shop.yaml:2:5)',
    ]);
  });

  it('a duplicate pool across two files names both files', () => {
    const r = parseRoutesFiles(
      [
        { file: 'routes/a.yaml', text: POOLS.join('\n') },
        { file: 'routes/b.yaml', text: ['# the same name again', ...POOLS].join('\n') },
      ],
      {},
    );
    expect(errorsOf(r)).toEqual(['routes/b.yaml:3:3 pools.catalog: duplicate pool "catalog" (first defined at routes/a.yaml:2:3)']);
  });

  it('a duplicate route name across two files names both files', () => {
    const r = parseRoutesFiles(
      [
        { file: 'routes/a.yaml', text: 'routes:\n  - name: home\n    respond: {}\n' },
        { file: 'routes/b.yaml', text: 'routes:\n  - respond: {}\n  - respond: {}\n    name: home\n' },
      ],
      {},
    );
    expect(errorsOf(r)).toEqual(['routes/b.yaml:4:11 routes[1].name: duplicate route name "home" (first defined at routes/a.yaml:2:5)']);
  });

  it('a default name like "shop[0]" cannot be given explicitly, so it never collides', () => {
    expect(errors('routes:', '  - name: "shop[0]"', '    respond: {}')).toEqual([
      'routes/shop.yaml:2:11 routes[0].name: invalid name "shop[0]": use letters, digits and "_.:-", starting with a letter or digit',
    ]);
  });

  it('a YAML syntax error is reported where the parser found it', () => {
    expect(errors('routes:', '  - pool: [catalog', '  - pool: x')).toEqual([
      'routes/shop.yaml:3:3 YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]',
    ]);
  });

  it('a key given twice in one map is a syntax error at the second', () => {
    expect(errors(...POOLS, '    retries: 1', '    retries: 2')).toEqual(['routes/shop.yaml:5:5 YAML syntax error: Map keys must be unique']);
  });

  it('a top level that is not a map is refused', () => {
    expect(errors('- pool: catalog')).toEqual(['routes/shop.yaml:1:1 expected a map with pools, routes and tests at the top level']);
  });

  it('an unset environment variable is reported at its value, and a malformed reference explained', () => {
    expect(errors(...POOLS, '    retries: ${RETRIES}', 'routes:', '  - respond: { body: "${SET} ${bad name}" }')).toEqual([
      'routes/shop.yaml:4:14 pools.catalog.retries: environment variable "RETRIES" is not set',
      'routes/shop.yaml:6:22 routes[0].respond.body: invalid variable reference "${bad name}": expected ${NAME} or ${NAME:-default}',
    ]);
  });

  it('upstream TLS needs cert and key together, sticky a cookie token and health checks an absolute path', () => {
    expect(errors(...POOLS, '    tls: { cert: c.pem }', '    sticky: { cookie: "a b" }', '    healthCheck: { path: health, interval: 0s }')).toEqual([
      'routes/shop.yaml:4:10 pools.catalog.tls: "cert" and "key" go together: "key" is missing',
      'routes/shop.yaml:5:23 pools.catalog.sticky.cookie: invalid cookie name "a b"',
      'routes/shop.yaml:6:26 pools.catalog.healthCheck.path: a health check path must start with "/"',
      'routes/shop.yaml:6:44 pools.catalog.healthCheck.interval: must be greater than 0s',
    ]);
  });

  it('a file with errors still defines its pool names, so other files do not get spurious unknown-pool errors', () => {
    const r = parseRoutesFiles(
      [
        { file: 'routes/a.yaml', text: 'pools:\n  catalog:\n    targets: []\n' },
        { file: 'routes/b.yaml', text: 'routes:\n  - pool: catalog\n' },
      ],
      {},
    );
    expect(errorsOf(r)).toEqual(['routes/a.yaml:3:14 pools.catalog.targets: must not be empty']);
  });
});

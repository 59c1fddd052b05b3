// The routes-file test runner (SPEC §3 tests:), on in-memory routes.
import { expect, test } from 'vitest';
import { parseRoutesText } from '../src/config/load.ts';
import { runRouteTests } from '../src/route/tests.ts';

const routes = (tests: string): string => `
pools:
  a: { targets: [http://127.0.0.1:1] }
  b: { targets: [http://127.0.0.1:2] }
routes:
  - { name: api, match: { path: /api/* }, pool: a, stripPrefix: /api }
  - { name: canary, match: { path: /canary }, split: [ { pool: a, weight: 9 }, { pool: b, weight: 1 } ] }
  - { name: moved, match: { path: /old/:x }, redirect: { to: "/new/:x" } }
tests:
${tests}`;

function run(tests: string): string[] {
  const r = parseRoutesText(routes(tests), 'r.yaml');
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return runRouteTests(r.value);
}

// Regression: `expect: { pool }` without `path` crashed the runner.
test('a test that checks only the pool passes and does not need a path', () => {
  expect(run('  - { request: "GET http://h/api/x", expect: { pool: a } }')).toEqual([]);
});

test('each kind of expectation fails with a located message', () => {
  const errors = run([
    '  - { request: "GET http://h/api/x", expect: { pool: b } }',
    '  - { request: "GET http://h/api/x", expect: { path: /api/x } }',
    '  - { request: "GET http://h/api/x", expect: { status: 200 } }',
    '  - { request: "GET http://h/old/1", expect: { location: /new/2 } }',
    '  - { request: "GET http://h/none", expect: { route: api } }',
  ].join('\n'));
  expect(errors).toEqual([
    'r.yaml:10:5 tests[0]: expected pool "b", got "a"',
    'r.yaml:11:5 tests[1]: expected upstream path "/api/x", got "/x"',
    'r.yaml:12:5 tests[2]: status is only known for respond, redirect and unmatched requests; route "api" forwards',
    'r.yaml:13:5 tests[3]: expected Location "/new/2", got "/new/1"',
    'r.yaml:14:5 tests[4]: expected route "api", got no route',
  ]);
});

test('a split passes for any of its pools', () => {
  expect(run('  - { request: "GET http://h/canary", expect: { pool: b } }')).toEqual([]);
});

// The runner reads the path as written (`new URL` would resolve %2e%2e and turn '\' into '/'),
// and refuses what the listener refuses, so a test cannot claim a route no request reaches.
test('a test request with an ambiguous path is reported as refused, unless security.ambiguousPaths is forward', () => {
  const r = parseRoutesText(routes('  - { request: "GET http://h/api/..%2Fadmin", expect: { route: api } }'), 'r.yaml');
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  expect(runRouteTests(r.value)).toEqual([expect.stringMatching(/^r\.yaml:10:5 tests\[0\]: the request path is refused: ambiguous path/)]);
  expect(runRouteTests(r.value, 'forward')).toEqual([]);
});

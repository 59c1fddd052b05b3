// Routes files and the wrk request mix for bench/run.ts.

const url = (p: number): string => `http://127.0.0.1:${p}`;

/** waygate as users run it: host/path/header routes, a pool of 3 targets with health checks. */
export function shopRoutes(up: number[]): string {
  return `# The benchmark's "realistic" routes: every bench request (Host: shop.example.com,
# x-client: web, GET /api/b100 or /api/b16k) takes the "api" route to the 3-target pool.
pools:
  shop-api:
    targets: [${up.map(url).join(', ')}]
    balance: round-robin
    healthCheck: { path: /health, interval: 5s, timeout: 2s, unhealthyAfter: 3, healthyAfter: 2 }
    timeouts: { connect: 2s, response: 30s }
    retries: 1
  shop-web:
    targets: [${url(up[0])}]
    healthCheck: { path: /health, interval: 5s }
  shop-beta:
    targets: [${url(up[1])}]
    healthCheck: { path: /health, interval: 5s }

routes:
  - name: ping
    match: { path: /ping, methods: [GET, HEAD] }
    respond: { status: 200, body: "pong\\n", headers: { content-type: text/plain } }
  - name: www-to-https
    match: { host: www.example.com }
    redirect: { to: "https://{host}{path}{query}", status: 308 }
  - name: api-beta
    match: { host: shop.example.com, path: /api/*, headers: { x-beta: "1" } }
    pool: shop-beta
  - name: api-mobile
    match: { host: shop.example.com, path: /api/*, headers: { x-client: mobile } }
    pool: shop-api
    requestHeaders: { set: { x-channel: mobile } }
  - name: api
    match: { host: [shop.example.com, api.example.com], path: /api/*, headers: { x-client: web } }
    pool: shop-api
    requestHeaders: { set: { x-channel: web }, remove: [x-debug] }
    responseHeaders: { remove: [x-powered-by] }
  - name: item
    match: { host: shop.example.com, path: /items/:id, methods: [GET, HEAD] }
    pool: shop-api
    rewritePath: /api/items/:id
  - name: admin
    match: { host: admin.example.com, path: /* }
    pool: shop-web
  - name: web
    match: { host: shop.example.com, path: /* }
    pool: shop-web

tests:
  - { request: "GET http://shop.example.com/api/b100", headers: { x-client: web }, expect: { route: api, pool: shop-api, path: /api/b100 } }
  - { request: "GET http://shop.example.com/api/b100", headers: { x-beta: "1" }, expect: { route: api-beta } }
  - { request: "GET http://shop.example.com/items/7", expect: { route: item, path: /api/items/7 } }
  - { request: "GET http://shop.example.com/", expect: { route: web } }
`;
}

/** Route i of the config-size tables (the same shapes as bench/router-scale.ts). */
function route(i: number): { path: string; sample: string; host?: string; header: boolean } {
  const kind = i % 4;
  const path = kind === 0 ? `/svc${i}/items/:id` : kind === 1 ? `/svc${i}/*` : kind === 2 ? `/svc${i}/exact` : `/svc${i}/a/:x/b`;
  const sample = kind === 0 ? `/svc${i}/items/${i}` : kind === 1 ? `/svc${i}/x` : kind === 2 ? `/svc${i}/exact` : `/svc${i}/a/${i}/b`;
  return { path, sample, host: i % 3 === 0 ? `h${i % 50}.example.com` : undefined, header: i % 5 === 0 };
}

/** n routes over `pools` pools of 2 targets each, all with health checks, plus a fallback. */
export function scaleRoutes(n: number, pools: number, up: number[]): string {
  const out = ['pools:'];
  for (let p = 0; p < pools; p++) {
    out.push(`  p${p}:`, `    targets: [${url(up[p % up.length])}, ${url(up[(p + 1) % up.length])}]`, '    healthCheck: { path: /health, interval: 5s }');
  }
  out.push('routes:');
  for (let i = 0; i < n; i++) {
    const r = route(i);
    const match = [`path: ${r.path}`];
    if (r.host !== undefined) match.push(`host: ${r.host}`);
    if (r.header) match.push(`headers: { x-v: "1" }`);
    out.push(`  - { name: r${i}, match: { ${match.join(', ')} }, pool: p${i % pools} }`);
  }
  out.push(`  - { name: fallback, match: { path: /* }, pool: p0 }`);
  return out.join('\n') + '\n';
}

/** A wrk script cycling through one request for each of routes 0..n-1 (present in every table). */
export function scaleMix(n: number): string {
  const reqs = Array.from({ length: n }, (_, i) => {
    const r = route(i);
    return `  reqs[${i + 1}] = wrk.format("GET", "${r.sample}", { ["Host"] = "${r.host ?? 'shop.example.com'}", ["x-v"] = "1" })`;
  });
  return `local reqs = {}\nlocal i = 0\ninit = function(args)\n${reqs.join('\n')}\nend\nrequest = function()\n  i = i % #reqs + 1\n  return reqs[i]\nend\n`;
}

/**
 * The middleware group's routes (issue 15): the bench request (Host shop.example.com, GET
 * /api/b100) plain, and under /local and /redis behind ipAllowList + a rateLimit that never
 * refuses at bench rates, so every request pays for the check and the take.
 */
export function middlewareRoutes(up: number[]): string {
  return `pools:
  shop-api:
    targets: [${up.map(url).join(', ')}]
    healthCheck: { path: /health, interval: 5s }
middlewares:
  office: { ipAllowList: { sourceRange: [127.0.0.0/8, "::1/128"] } }
  local-limit: { rateLimit: { average: 100000000, period: 1s, burst: 100000000, store: local } }
  shared-limit: { rateLimit: { average: 100000000, period: 1s, burst: 100000000, store: redis } }
routes:
  - name: plain
    match: { host: shop.example.com, path: /api/* }
    pool: shop-api
  - name: local
    match: { host: shop.example.com, path: /local/api/* }
    stripPrefix: /local
    middlewares: [office, local-limit]
    pool: shop-api
  - name: redis
    match: { host: shop.example.com, path: /redis/api/* }
    stripPrefix: /redis
    middlewares: [office, shared-limit]
    pool: shop-api
`;
}

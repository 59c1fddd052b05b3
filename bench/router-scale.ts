// Router lookup cost against table size: 10, 1,000 and 10,000 routes (issue 7's "cost does not
// grow with config size"). Usage: node bench/router-scale.ts
import { RequestView } from '../src/router/request-view.ts';
import { Router } from '../src/router/router.ts';
import type { RouteSpec } from '../src/router/router.ts';

function table(n: number): RouteSpec<number>[] {
  const specs: RouteSpec<number>[] = [];
  for (let i = 0; i < n; i++) {
    const kind = i % 4;
    const path = kind === 0 ? `/svc${i}/items/:id` : kind === 1 ? `/svc${i}/*` : kind === 2 ? `/svc${i}/exact` : `/svc${i}/a/:x/b`;
    specs.push({ name: `r${i}`, path, hosts: i % 3 === 0 ? [`h${i % 50}.example.com`] : undefined, headers: i % 5 === 0 ? { 'x-v': '1' } : undefined, priority: 0, order: i, value: i });
  }
  specs.push({ name: 'fallback', path: '/*', priority: 0, order: n, value: -1 });
  return specs;
}

for (const n of [10, 1000, 10000]) {
  const router = new Router(table(n));
  const views = Array.from({ length: 64 }, (_, k) => {
    const i = (k * 7919) % n;
    return new RequestView('GET', `h${i % 50}.example.com`, `/svc${i}/items/${k}`, '', { 'x-v': '1' });
  });
  for (let i = 0; i < 200_000; i++) router.match(views[i & 63]);
  const N = 1_000_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) router.match(views[i & 63]);
  const ns = Number(process.hrtime.bigint() - t0) / N;
  console.log(`${String(n).padStart(6)} routes: ${ns.toFixed(0)} ns per match`);
}

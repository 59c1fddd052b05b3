// The hot-path metric families must expose exactly what prom-client's own Counter and Histogram
// would for the same updates, in text and in the JSON the workers' aggregation reads.
import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client';
import type { Metric } from 'prom-client';
import { describe, expect, test } from 'vitest';
import { CounterFamily, HistogramFamily } from '../../src/observe/series.ts';

const BOUNDS = [0.001, 0.01, 0.1, 1];
const SAMPLES = [0.0005, 0.001, 0.002, 0.05, 0.5, 2, 30];

function both(): { ours: Registry; theirs: Registry } {
  const ours = new Registry();
  const c = new CounterFamily('x_requests_total', 'Requests.');
  const h = new HistogramFamily('x_duration_seconds', 'Duration.', BOUNDS);
  ours.registerMetric(c as unknown as Metric);
  ours.registerMetric(h as unknown as Metric);
  const theirs = new Registry();
  const pc = new Counter({ name: 'x_requests_total', help: 'Requests.', labelNames: ['route', 'code'], registers: [theirs] });
  const ph = new Histogram({ name: 'x_duration_seconds', help: 'Duration.', labelNames: ['route', 'pool'], buckets: BOUNDS, registers: [theirs] });
  for (const route of ['a', 'b"q']) {
    const ok = c.series({ route, code: '200' });
    const hs = h.series({ route, pool: 'p' });
    for (const v of SAMPLES) {
      ok.value++;
      pc.inc({ route, code: '200' });
      hs.observe(v);
      ph.observe({ route, pool: 'p' }, v);
    }
  }
  c.series({ route: 'a', code: '502' }).value++;
  pc.inc({ route: 'a', code: '502' });
  return { ours, theirs };
}

describe('CounterFamily and HistogramFamily', () => {
  test('print the same Prometheus text as prom-client for the same updates', async () => {
    const { ours, theirs } = both();
    const text = await ours.metrics();
    expect(text).toBe(await theirs.metrics());
    expect(text).toContain('x_duration_seconds_bucket{le="+Inf",route="a",pool="p"} 7');
    expect(text).toContain('x_duration_seconds_bucket{le="0.001",route="a",pool="p"} 2');
  });

  test('aggregate across workers like prom-client metrics do', async () => {
    const a = both();
    const b = both();
    const ours = await AggregatorRegistry.aggregate([await a.ours.getMetricsAsJSON(), await b.ours.getMetricsAsJSON()]).metrics();
    const theirs = await AggregatorRegistry.aggregate([await a.theirs.getMetricsAsJSON(), await b.theirs.getMetricsAsJSON()]).metrics();
    expect(ours).toBe(theirs);
    expect(ours).toContain('x_requests_total{route="a",code="200"} 14');
  });
});

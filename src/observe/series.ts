// Counter and histogram families for the per-request metrics, registered in prom-client's
// registry (its text exposition and the workers' aggregation read them through get()), but
// updated without prom-client's per-call work: a prom-client child's inc()/observe() hashes and
// validates its label object on every call. Here a label set is resolved once to a plain series
// object, and a request only bumps numbers on it.

type Labels = Record<string, string>;

/** One series of a counter: `value` is bumped in place. */
export interface CounterSeries {
  value: number;
}

/** The shape prom-client's registry reads from a metric (`Registry.registerMetric`). */
interface MetricData {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  values: { labels: Record<string, string | number>; value: number; metricName?: string }[];
  aggregator: 'sum';
}

/** Returns the series of one label set from `map`, made by `make` the first time (scrape and setup only, never per request). */
function seriesOf<S>(map: Map<string, { labels: Labels; s: S }>, labels: Labels, make: () => S): S {
  const key = JSON.stringify(labels);
  let e = map.get(key);
  if (e === undefined) {
    e = { labels, s: make() };
    map.set(key, e);
  }
  return e.s;
}

/** A counter family; series() returns the series of one label set, created at zero. */
export class CounterFamily {
  readonly aggregator = 'sum';
  readonly name: string;
  readonly help: string;
  readonly #series = new Map<string, { labels: Labels; s: CounterSeries }>();

  constructor(name: string, help: string) {
    this.name = name;
    this.help = help;
  }

  series(labels: Labels): CounterSeries {
    return seriesOf(this.#series, labels, () => ({ value: 0 }));
  }

  get(): MetricData {
    const values = [...this.#series.values()].map((e) => ({ labels: e.labels, value: e.s.value }));
    return { name: this.name, help: this.help, type: 'counter', values, aggregator: 'sum' };
  }
}

/** One series of a histogram: counts per bucket (not cumulative), sum and count. */
export class HistogramSeries {
  readonly #bounds: readonly number[];
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(bounds: readonly number[]) {
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length);
  }

  observe(v: number): void {
    const b = this.#bounds;
    for (let i = 0; i < b.length; i++) {
      if (v <= b[i]) {
        this.counts[i]++;
        break;
      }
    }
    this.sum += v;
    this.count++;
  }
}

/** A histogram family with fixed bucket bounds (ascending; +Inf implied). */
export class HistogramFamily {
  readonly aggregator = 'sum';
  readonly name: string;
  readonly help: string;
  readonly bounds: readonly number[];
  readonly #series = new Map<string, { labels: Labels; s: HistogramSeries }>();

  constructor(name: string, help: string, bounds: readonly number[]) {
    this.name = name;
    this.help = help;
    this.bounds = bounds;
  }

  series(labels: Labels): HistogramSeries {
    return seriesOf(this.#series, labels, () => new HistogramSeries(this.bounds));
  }

  get(): MetricData {
    const values: MetricData['values'] = [];
    const bucket = `${this.name}_bucket`;
    for (const { labels, s } of this.#series.values()) {
      let acc = 0;
      // `le` first, as prom-client's own histograms print it.
      for (let i = 0; i < this.bounds.length; i++) {
        acc += s.counts[i];
        values.push({ labels: { le: this.bounds[i], ...labels }, value: acc, metricName: bucket });
      }
      values.push({ labels: { le: '+Inf', ...labels }, value: s.count, metricName: bucket });
      values.push({ labels, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: 'histogram', values, aggregator: 'sum' };
  }
}

// Preloaded with --import by bench/slow-read.sh: every second, the event-loop delay (max, p99) and
// RSS of the process, as one line on stderr.
import { monitorEventLoopDelay } from 'node:perf_hooks';

const h = monitorEventLoopDelay({ resolution: 10 });
h.enable();
setInterval(() => {
  const ms = (ns) => (ns / 1e6).toFixed(0);
  process.stderr.write(`eld max=${ms(h.max)}ms p99=${ms(h.percentile(99))}ms rss=${(process.memoryUsage.rss() / 1048576).toFixed(0)}MB\n`);
  h.reset();
}, 1000).unref();

// compress never answers: it passes every request and shapes responses. The table's upstream
// answers small JSON, so with minBytes 0 the passing request comes back gzip-encoded.
import type { TableCase } from './case.ts';

/** compress: a request accepting gzip passes to the upstream (and its response is compressed). */
export const compressCase: TableCase = {
  kind: 'compress',
  async setup() {
    return { options: { encodings: ['gzip'], minBytes: '0b' }, close: async () => {} };
  },
  // A fixed Host: the table compares what two gateways on different ports forward for it.
  passes: { path: '/x', headers: { host: 'table.test', 'accept-encoding': 'gzip' } },
};

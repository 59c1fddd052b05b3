// inFlightLimit's entry in the shared middleware table. A refusal needs `amount` requests of
// the same key in flight at the moment the refused one arrives, which one request sent alone
// cannot show: the table checks that a request passes (and that routes without it are
// untouched); the refusals are test/middleware/in-flight-limit.test.ts and
// test/e2e/mw-rate-limit.test.ts (requests held open at a real upstream).
import type { TableCase } from './case.ts';

/** inFlightLimit: a request with nothing else in flight passes. */
export const inFlightLimitCase: TableCase = {
  kind: 'inFlightLimit',
  async setup() {
    return { options: { amount: 1, by: 'header:x-client' }, close: async () => {} };
  },
  passes: { path: '/x', headers: { host: 'table.test', 'x-client': 'table' } },
};

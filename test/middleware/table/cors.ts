// The cors entry of the shared middleware table: an actual request passes, a preflight is
// answered by the middleware itself.
import type { TableCase } from './case.ts';

const ORIGIN = 'https://app.table.test';

/** cors: a GET with an allowed Origin passes; a preflight gets 204 from waygate. */
export const corsCase: TableCase = {
  kind: 'cors',
  async setup() {
    return { options: { origins: [ORIGIN], methods: ['GET', 'POST'], headers: ['content-type'], maxAge: '1m' }, close: async () => {} };
  },
  // A fixed Host: the table compares what two gateways on different ports forward for it.
  passes: { path: '/x', headers: { host: 'table.test', origin: ORIGIN } },
  answered: { method: 'OPTIONS', path: '/x', headers: { host: 'table.test', origin: ORIGIN, 'access-control-request-method': 'POST' }, status: 204 },
};

// forwardAuth's entry in the shared middleware table: a real auth service that allows a request
// carrying the good token and answers 401 to any other.
import { startAuthService } from '../../auth-service.ts';
import type { TableCase } from './case.ts';

const GOOD = 'Bearer table-good';

/** forwardAuth: passes with the good token, 401 from the auth service without it. */
export const forwardAuthCase: TableCase = {
  kind: 'forwardAuth',
  async setup() {
    const auth = await startAuthService();
    auth.decide = (req) => (req.headers.authorization === GOOD ? 'allow' : 'deny401');
    return {
      options: { address: `${auth.url}/verify`, authResponseHeaders: ['x-user'], timeout: '2s' },
      close: () => auth.close(),
    };
  },
  // A fixed Host: the table compares what two gateways on different ports forward for it.
  passes: { path: '/x', headers: { host: 'table.test', authorization: GOOD } },
  answered: { path: '/x', headers: { host: 'table.test', authorization: 'Bearer wrong' }, status: 401 },
};

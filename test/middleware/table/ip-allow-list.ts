// The ipAllowList entry of the shared middleware table. Every table request comes from
// 127.0.0.1, which this gateway trusts as a proxy: a request whose x-forwarded-for names a
// client in sourceRange passes; one without it is the peer's own, 127.0.0.1, outside the range.
import type { TableCase } from './case.ts';

/** ipAllowList: a client in 10.0.0.0/8 (by x-forwarded-for) passes; 127.0.0.1 itself gets 403. */
export const ipAllowListCase: TableCase = {
  kind: 'ipAllowList',
  async setup() {
    return { options: { sourceRange: ['10.0.0.0/8', '2001:db8::/32'] }, config: { trustedProxies: ['127.0.0.1/32'] }, close: async () => {} };
  },
  passes: { path: '/x', headers: { host: 'table.test', 'x-forwarded-for': '10.1.2.3' } },
  answered: { path: '/x', headers: { host: 'table.test' }, status: 403 },
};

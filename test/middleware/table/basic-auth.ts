// The basicAuth entry of the shared middleware table: an htpasswd file made by the real
// `htpasswd -B`; the right password passes, no credentials get 401.
import { execFileSync } from 'node:child_process';
import type { TableCase } from './case.ts';

const USER = 'table';
const PASSWORD = 'table-password';

/** basicAuth: the right password passes; a request without credentials gets 401. */
export const basicAuthCase: TableCase = {
  kind: 'basicAuth',
  async setup() {
    // -C 4: the cheapest cost bcrypt allows, so the table does not wait on hashing.
    const line = execFileSync('htpasswd', ['-nbB', '-C', '4', USER, PASSWORD], { encoding: 'utf8' });
    return { options: { usersFile: 'htpasswd', realm: 'table' }, files: { htpasswd: line }, close: async () => {} };
  },
  passes: { path: '/x', headers: { host: 'table.test', authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}` } },
  answered: { path: '/x', headers: { host: 'table.test' }, status: 401 },
};

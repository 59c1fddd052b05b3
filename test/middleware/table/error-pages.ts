// The errorPages entry of the shared middleware table: it never answers by itself; its pages
// come from a real pool, so the case starts one.
import { startUpstream } from '../../helpers.ts';
import type { TableCase } from './case.ts';

/** errorPages: every request passes (a success is never replaced); it answers nothing itself. */
export const errorPagesCase: TableCase = {
  kind: 'errorPages',
  async setup() {
    const pages = await startUpstream((_req, res) => void res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<p>sorry</p>'));
    return {
      options: { status: ['500-504'], pool: 'table-pages', path: '/errors/{status}.html', timeout: '2s' },
      pools: { 'table-pages': { targets: [pages.url] } },
      close: () => pages.close(),
    };
  },
  // A fixed Host: the table compares what two gateways on different ports forward for it.
  passes: { path: '/x', headers: { host: 'table.test' } },
};

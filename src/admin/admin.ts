// Admin listener (SPEC §6): liveness and readiness now; status, reload, explain and metrics
// arrive with the operations work and plug into the same dispatch table.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';

/** What the admin endpoints read from the gateway. */
export interface AdminSource {
  /** True once routes are loaded and the listeners serve. */
  ready(): boolean;
}

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Creates the admin server (not yet listening). */
export function createAdminServer(src: AdminSource): Server {
  return createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return text(res, 405, 'method not allowed');
    switch (path) {
      case '/healthz':
        return text(res, 200, 'ok');
      case '/readyz':
        return src.ready() ? text(res, 200, 'ready') : text(res, 503, 'not ready');
      default:
        return text(res, 404, 'not found');
    }
  });
}

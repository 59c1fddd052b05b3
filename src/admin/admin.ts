// Admin listener (SPEC §6): liveness, readiness and metrics now; status, reload and explain
// arrive with the operations work and plug into the same dispatch table.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';

/** What the admin endpoints read from the gateway. */
export interface AdminSource {
  /** True once routes are loaded and the listeners serve. */
  ready(): boolean;
  /** Prometheus exposition. */
  metrics: { text(): Promise<string>; readonly contentType: string };
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
      case '/metrics':
        src.metrics.text().then(
          (body) => {
            res.writeHead(200, { 'content-type': src.metrics.contentType, 'content-length': Buffer.byteLength(body) });
            res.end(body);
          },
          (err: Error) => text(res, 500, `metrics failed: ${err.message}`),
        );
        return;
      default:
        return text(res, 404, 'not found');
    }
  });
}

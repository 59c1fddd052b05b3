// A target port that refuses connections, shared by the tests and the soak.
import { connect } from 'node:net';

/**
 * A loopback port that refuses connections, for targets that must refuse. Taken below the
 * ephemeral range (where no port-0 listener of a test running in parallel can land, as one did on a
 * port bound and released here, answering a "refused" target with 200); the first of the
 * candidates that refuses a connect right now.
 */
export async function closedPort(): Promise<number> {
  for (let port = 1; port < 1024; port++) {
    // Settles on the socket's 'close', so no handle of the check outlives it.
    const refused = await new Promise<boolean>((resolve) => {
      let code: string | undefined;
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => s.destroy());
      s.once('error', (err: NodeJS.ErrnoException) => (code = err.code));
      s.once('close', () => resolve(code === 'ECONNREFUSED'));
    });
    if (refused) return port;
  }
  throw new Error('no refusing port below 1024 on 127.0.0.1');
}

// The upstream host: a child process running every fault's servers (faults/*.ts), so the
// upstreams do not share an event loop with the load generator and the judge. It talks to the
// soak over IPC: `start` → `ready` with the pools; `stats` → open sockets (by server port) and fault counts;
// `close` ends it. It exits when the soak goes away.
import type { AddressInfo, Server, Socket } from 'node:net';
import { loadFaults } from './registry.ts';
import type { FaultContext, PoolSpec, SoakTimeouts } from './types.ts';
import { closedPort } from '../refusing-port.ts';

/** The soak's messages to the host. */
export type ToHost =
  | { type: 'start'; caFile: string; cert: string; key: string; timeouts: SoakTimeouts; dir: string }
  | { type: 'stats'; id: number }
  | { type: 'close' };

/** The host's messages to the soak. */
export type FromHost =
  | { type: 'ready'; pools: PoolSpec[] }
  | { type: 'failed'; error: string }
  | { type: 'stats'; id: number; sockets: number; byPort: Record<string, number>; hits: Record<string, number> };

const sockets = new Set<Socket>();
const servers: Server[] = [];
const hits: Record<string, number> = {};

function send(msg: FromHost): void {
  process.send?.(msg);
}

/** Ports a `stable` listener takes: below Linux's ephemeral range (32768+), where no port-0 socket lands. */
const STABLE_PORT_MIN = 20_000;
const STABLE_PORT_SPAN = 12_000;
const STABLE_PORT_TRIES = 20;

/** Binds `server` to a free stable port (a taken one is skipped). */
async function listenStable(server: Server): Promise<void> {
  for (let i = 0; ; i++) {
    const port = STABLE_PORT_MIN + Math.floor(Math.random() * STABLE_PORT_SPAN);
    const err = await new Promise<Error | undefined>((resolve) => {
      server.once('error', resolve);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', resolve);
        resolve(undefined);
      });
    });
    if (err === undefined) return;
    if (i >= STABLE_PORT_TRIES) throw err;
  }
}

async function listen(server: Server, opts: { stable?: boolean } = {}): Promise<number> {
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('error', () => {});
    s.once('close', () => sockets.delete(s));
  });
  // A misbehaving peer costs its own connection, here as in the gateway.
  server.on('clientError', (_err: unknown, s: Socket) => s.destroy());
  server.on('tlsClientError', () => {});
  server.on('sessionError', () => {});
  server.on('streamError', () => {});
  if (opts.stable === true) await listenStable(server);
  else await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  // After the bind: a stable port found taken is skipped, not an error.
  server.on('error', (err) => {
    process.stderr.write(`upstream host: server error: ${(err as Error).stack}\n`);
  });
  servers.push(server);
  return (server.address() as AddressInfo).port;
}


async function start(msg: Extract<ToHost, { type: 'start' }>): Promise<void> {
  const ctx: FaultContext = {
    tls: { cert: msg.cert, key: msg.key },
    caFile: msg.caFile,
    timeouts: msg.timeouts,
    dir: msg.dir,
    listen,
    closedPort,
    hit: (what) => void (hits[what] = (hits[what] ?? 0) + 1),
  };
  const pools: PoolSpec[] = [];
  for (const fault of await loadFaults()) {
    for (const p of await fault.start(ctx)) pools.push({ ...p, fault: fault.name });
  }
  send({ type: 'ready', pools });
}

process.on('message', (msg: ToHost) => {
  if (msg.type === 'start') {
    start(msg).catch((err: Error) => send({ type: 'failed', error: err.stack ?? String(err) }));
  } else if (msg.type === 'stats') {
    const byPort: Record<string, number> = {};
    for (const s of sockets) byPort[String(s.localPort ?? '?')] = (byPort[String(s.localPort ?? '?')] ?? 0) + 1;
    send({ type: 'stats', id: msg.id, sockets: sockets.size, byPort, hits });
  } else if (msg.type === 'close') {
    for (const s of sockets) s.destroy();
    for (const s of servers) s.close();
    process.disconnect?.();
  }
});
// Never outlive the soak.
process.on('disconnect', () => process.exit(0));

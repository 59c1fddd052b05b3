// Which task opened a client connection, by its local port: when a check finds a socket left in
// waygate, the report names the task at the other end. Every TCP connect in this process (net,
// tls, node:http agents, http2.connect) goes through net.Socket#connect, so it is wrapped once;
// each task runs in its own async context, which the wrapper reads. An agent's kept-alive socket
// carries the label of the task that opened it.
import { AsyncLocalStorage } from 'node:async_hooks';
import { Socket } from 'node:net';

const current = new AsyncLocalStorage<string>();
const byPort = new Map<number, string>();
let installed = false;

function install(): void {
  if (installed) return;
  installed = true;
  const connect = Socket.prototype.connect as (...args: unknown[]) => Socket;
  Socket.prototype.connect = function (this: Socket, ...args: unknown[]): Socket {
    const label = current.getStore();
    if (label !== undefined) {
      this.once('connect', () => {
        if (this.localPort !== undefined) byPort.set(this.localPort, label);
      });
    }
    return connect.apply(this, args);
  } as typeof Socket.prototype.connect;
}

/** Runs `fn` as the task `label`: the client sockets it connects are recorded under it. */
export function asTask<T>(label: string, fn: () => T): T {
  install();
  return current.run(label, fn);
}

/** The task that last connected from `port`, if any. */
export function taskOfPort(port: number): string | undefined {
  return byPort.get(port);
}

/**
 * Appends the task to each socket line ":LOCAL → :REMOTE STATE" whose local port is one of
 * `listeners` (the remote end is then one of this process's clients).
 */
export function nameClients(lines: readonly string[], listeners: readonly number[]): string[] {
  return lines.map((line) => {
    const m = /^:(\d+) → :(\d+)/.exec(line);
    if (m === null || !listeners.includes(Number(m[1]))) return line;
    const task = taskOfPort(Number(m[2]));
    return task === undefined ? line : `${line} (${task})`;
  });
}

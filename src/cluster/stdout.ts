// stdout shared by the primary and every worker of a cluster.
import { pino } from 'pino';
import type { DestinationStream } from 'pino';

/** Linux's PIPE_BUF: a write to a pipe up to this size is never interleaved with another process's. */
const PIPE_BUF = 4096;

/**
 * stdout for a process sharing it with others (the primary and every worker): sonic-boom joins
 * whole lines into writes of at most PIPE_BUF bytes, so under `docker logs` or any pipe no line
 * is cut by another process's write (the default, 16 KiB, can be).
 */
export function sharedStdout(): DestinationStream {
  return pino.destination({ dest: 1, sync: false, maxWrite: PIPE_BUF });
}

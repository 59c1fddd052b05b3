// pino loggers: one for the process (level from config), one for access lines (always at info
// when the access log is on, whatever the process level — like Traefik's separate access log).
import { pino } from 'pino';
import type { DestinationStream, Logger } from 'pino';

export type { Logger } from 'pino';

/** Log levels accepted by --log-level and `log.level`. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Options for the process and access loggers. */
export interface LoggerOptions {
  level: LogLevel;
  access: boolean;
  /** Where lines go; stdout (asynchronous, flushed on exit) when omitted. */
  destination?: DestinationStream;
}

/**
 * Returns the process logger, the access logger (undefined when the access log is off) and the
 * lifecycle logger, which writes at info whatever the level: the "listening" line (SPEC §1) and
 * drain/stop lines are what scripts and orchestrators wait for.
 */
export function createLoggers(o: LoggerOptions): { log: Logger; access: Logger | undefined; lifecycle: Logger } {
  const dest = o.destination ?? pino.destination({ dest: 1, sync: false });
  const base = { base: undefined, timestamp: pino.stdTimeFunctions.isoTime } as const;
  const log = pino({ ...base, level: o.level }, dest);
  const lifecycle = pino({ ...base, level: 'info' }, dest);
  const access = o.access ? lifecycle : undefined;
  return { log, access, lifecycle };
}

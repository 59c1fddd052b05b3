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

/** Returns the process logger and the access logger (undefined when the access log is off). */
export function createLoggers(o: LoggerOptions): { log: Logger; access: Logger | undefined } {
  const dest = o.destination ?? pino.destination({ dest: 1, sync: false });
  const base = { base: undefined, timestamp: pino.stdTimeFunctions.isoTime } as const;
  const log = pino({ ...base, level: o.level }, dest);
  const access = o.access ? pino({ ...base, level: 'info' }, dest) : undefined;
  return { log, access };
}

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

// One access-log line per request: the ISO timestamp is formatted once per millisecond, not per line.
let lastMs = 0;
let lastTime = '';
function cachedIsoTime(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastTime = `,"time":"${new Date(now).toISOString()}"`;
  }
  return lastTime;
}

/** How long a log line may wait in the buffer before it is written. */
const FLUSH_EVERY_MS = 250;

/**
 * Stdout written asynchronously in batches of at least 4 KiB (one write per ~15 access lines
 * instead of one per line), flushed every 250 ms so a quiet proxy's lines are not held back, and
 * synchronously at exit (pino's own exit hook).
 */
function bufferedStdout(): DestinationStream {
  const dest = pino.destination({ dest: 1, sync: false, minLength: 4096 });
  setInterval(() => dest.flush(), FLUSH_EVERY_MS).unref();
  return dest;
}

/**
 * Returns the process logger, the access logger (undefined when the access log is off) and the
 * lifecycle logger, which writes at info whatever the level: the "listening" line (SPEC §1) and
 * drain/stop lines are what scripts and orchestrators wait for.
 */
export function createLoggers(o: LoggerOptions): { log: Logger; access: AccessLogger | undefined; lifecycle: Logger } {
  const dest = o.destination ?? bufferedStdout();
  const base = { base: undefined, timestamp: cachedIsoTime } as const;
  const log = pino({ ...base, level: o.level }, dest);
  const lifecycle = pino({ ...base, level: 'info' }, dest);
  const access = o.access ? new JsonAccessLogger(dest, '') : undefined;
  return { log, access, lifecycle };
}

/** The access log: one JSON line per request, in the same format as the process log's lines. */
export interface AccessLogger {
  /** Writes one line: level 30, time, the bindings, the record's fields, then `msg`. */
  info(record: object, msg: string): void;
  /** Returns a logger whose lines also carry `bindings` (e.g. the worker id and pid). */
  child(bindings: Record<string, unknown>): AccessLogger;
}

/**
 * The access log without pino's general-purpose serializer: a request's record is a plain object
 * of strings and numbers, which V8's native JSON.stringify handles fastest. Measured: the access
 * log cost waygate 17% of its throughput through pino (median per-round ratio with it off).
 */
class JsonAccessLogger implements AccessLogger {
  readonly #dest: DestinationStream;
  readonly #bindings: string;

  constructor(dest: DestinationStream, bindings: string) {
    this.#dest = dest;
    this.#bindings = bindings;
  }

  info(record: object, msg: string): void {
    const body = JSON.stringify(record);
    const fields = body.length > 2 ? ',' + body.slice(1, -1) : '';
    this.#dest.write('{"level":30' + cachedIsoTime() + this.#bindings + fields + ',"msg":' + JSON.stringify(msg) + '}\n');
  }

  child(bindings: Record<string, unknown>): AccessLogger {
    const body = JSON.stringify(bindings);
    return new JsonAccessLogger(this.#dest, this.#bindings + (body.length > 2 ? ',' + body.slice(1, -1) : ''));
  }
}

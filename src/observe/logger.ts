// pino loggers: one for the process (level from config), one for access lines (always at info
// when the access log is on, whatever the process level — like Traefik's separate access log).
import { pino } from 'pino';
import type { DestinationStream, Logger } from 'pino';

export type { Logger } from 'pino';

/** Log levels accepted by --log-level and `log.level`. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The --log-level flag (waygate and waygate proxy): the level, or the error line for a bad one. */
export function logLevelFlag(value: string): LogLevel | { error: string } {
  if ((LOG_LEVELS as readonly string[]).includes(value)) return value as LogLevel;
  return { error: `--log-level: expected one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(value)}` };
}

/** Options for the process and access loggers. */
export interface LoggerOptions {
  level: LogLevel;
  access: boolean;
  /**
   * Where lines go, one write per line. When omitted: stdout, asynchronously, with access lines
   * joined into writes of up to 16 KiB (see LineBatch), flushed every 250 ms, before any
   * process-log line, on flush(), and at exit.
   */
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

/** How long a log line may wait in a buffer before it is written. */
const FLUSH_EVERY_MS = 250;

/** Bytes of access lines per write to stdout. */
const BATCH_BYTES = 16_384;

/**
 * Stdout written asynchronously by sonic-boom once BATCH_BYTES are pending (or on flush()); what
 * is pending at exit is written synchronously by pino's exit hook.
 */
function asyncStdout(): ReturnType<typeof pino.destination> {
  return pino.destination({ dest: 1, sync: false, minLength: BATCH_BYTES, maxWrite: 4 * BATCH_BYTES });
}

/**
 * Access lines joined in memory before they reach the destination. sonic-boom's own buffering
 * measures the UTF-8 length of its whole pending buffer on every write (a flattened string of up
 * to 16 KiB per access line); here a line costs an array push and the byte length of itself.
 */
class LineBatch {
  readonly #dest: DestinationStream;
  readonly #max: number;
  #lines: string[] = [];
  #bytes = 0;

  constructor(dest: DestinationStream, maxBytes: number) {
    this.#dest = dest;
    this.#max = maxBytes;
  }

  add(line: string): void {
    this.#lines.push(line);
    this.#bytes += Buffer.byteLength(line);
    if (this.#bytes >= this.#max) this.flush();
  }

  /** Hands the pending lines to the destination as one write. */
  flush(): void {
    if (this.#lines.length === 0) return;
    const data = this.#lines.length === 1 ? this.#lines[0] : this.#lines.join('');
    this.#lines = [];
    this.#bytes = 0;
    this.#dest.write(data);
  }
}

/**
 * Returns the process logger, the access logger (undefined when the access log is off) and the
 * lifecycle logger, which writes at info whatever the level: the "listening" line (SPEC §1) and
 * drain/stop lines are what scripts and orchestrators wait for.
 */
export function createLoggers(o: LoggerOptions): Loggers {
  if (o.destination !== undefined) {
    const d = o.destination;
    return make(o, d, (line) => d.write(line), () => {});
  }
  const raw = asyncStdout();
  const batch = o.access ? new LineBatch(raw, BATCH_BYTES) : undefined;
  // Process-log lines keep their place after the access lines logged before them.
  const dest: DestinationStream = batch === undefined ? raw : {
    write(line: string): void {
      batch.flush();
      raw.write(line);
    },
  };
  // A quiet proxy's lines are not held back: whatever is pending goes out every 250 ms.
  setInterval(() => {
    batch?.flush();
    raw.flush();
  }, FLUSH_EVERY_MS).unref();
  // At exit, everything synchronously and in order. After the first flushSync stdout's buffer is
  // empty (or an asynchronous write is in flight), so the batch, always under minLength, stays
  // in the buffer instead of starting a write, and the second flushSync writes it.
  const beforeExit = (): void => {
    try {
      raw.flushSync();
      batch?.flush();
      raw.flushSync();
    } catch {
      // not open yet, or destroyed: nothing can be written through it
    }
  };
  return make(o, dest, batch === undefined ? (line) => raw.write(line) : (line) => batch.add(line), beforeExit);
}

/** What createLoggers returns. */
export interface Loggers {
  log: Logger;
  access: AccessLogger | undefined;
  lifecycle: Logger;
  /** For a process 'exit' listener registered before createLoggers: writes what is pending. */
  beforeExit: () => void;
}

function make(o: LoggerOptions, dest: DestinationStream, accessWrite: (line: string) => void, beforeExit: () => void): Loggers {
  const base = { base: undefined, timestamp: cachedIsoTime } as const;
  const log = pino({ ...base, level: o.level }, dest);
  const lifecycle = pino({ ...base, level: 'info' }, dest);
  const access = o.access ? new JsonAccessLogger(accessWrite, '') : undefined;
  return { log, access, lifecycle, beforeExit };
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
  readonly #write: (line: string) => void;
  readonly #bindings: string;

  constructor(write: (line: string) => void, bindings: string) {
    this.#write = write;
    this.#bindings = bindings;
  }

  info(record: object, msg: string): void {
    const body = JSON.stringify(record);
    const fields = body.length > 2 ? ',' + body.slice(1, -1) : '';
    this.#write('{"level":30' + cachedIsoTime() + this.#bindings + fields + ',"msg":' + JSON.stringify(msg) + '}\n');
  }

  child(bindings: Record<string, unknown>): AccessLogger {
    const body = JSON.stringify(bindings);
    return new JsonAccessLogger(this.#write, this.#bindings + (body.length > 2 ? ',' + body.slice(1, -1) : ''));
  }
}

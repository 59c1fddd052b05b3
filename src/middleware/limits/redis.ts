// Token buckets in Redis (SPEC §8 `store: redis`), shared by every replica that uses the same
// Redis. One check is ONE Lua script run atomically by Redis (EVALSHA, defined with ioredis's
// defineCommand, which falls back to EVAL after a Redis restart flushed its script cache), so
// concurrent takes from any number of replicas never admit more than the bucket holds. The
// script reads Redis's own TIME: the replicas' clocks never matter. A bucket's key expires when
// it would be full again (a missing key IS a full bucket), so idle keys cost Redis nothing.
//
// Failing fast matters more than waiting: no offline queue (a command while disconnected fails
// at once), no resend after a reconnect, and a command timeout (`redis.timeout`). ioredis
// reconnects by itself with a capped backoff. Up/down flips are reported once each.
import { Redis } from 'ioredis';
import type { Logger } from '../../observe/logger.ts';
import type { BucketSpec, TakeResult, TokenBuckets } from './stores.ts';

/**
 * KEYS[1]: the bucket. ARGV: burst, periodMs, average. Returns {allowed (0|1), remaining,
 * resetMs}. The unit arithmetic of bucket.ts: one token is periodMs units, one ms adds average.
 * A refusal writes nothing (the stored level and time still give the same level later).
 * string.format('%.0f') writes integers exactly (Redis before 7 formats numbers with 14 digits).
 */
export const TAKE_SCRIPT = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local period = tonumber(ARGV[2])
local average = tonumber(ARGV[3])
local cap = tonumber(ARGV[1]) * period
local level = cap
local s = redis.call('HMGET', KEYS[1], 'l', 't')
if s[1] then
  local elapsed = now - tonumber(s[2])
  if elapsed < 0 then elapsed = 0 end
  level = math.min(cap, tonumber(s[1]) + elapsed * average)
end
if level < period then
  return {0, 0, math.ceil((period - level) / average)}
end
level = level - period
local full = math.ceil((cap - level) / average)
redis.call('HSET', KEYS[1], 'l', string.format('%.0f', level), 't', string.format('%.0f', now))
redis.call('PEXPIRE', KEYS[1], full)
return {1, math.floor(level / period), full}
`;

/** The reconnect backoff: 50 ms, doubling, at most 2 s (a Redis back up is noticed within 2 s). */
const RECONNECT_MIN_MS = 50;
const RECONNECT_MAX_MS = 2_000;
/** A connect attempt that hangs (a black-holed address) gives up after this. */
const CONNECT_TIMEOUT_MS = 2_000;
/** Connection errors while Redis stays down are logged at most this often. */
const ERROR_LOG_EVERY_MS = 10_000;

/** The Redis key of one bucket. */
export function bucketKey(prefix: string, specId: string, key: string): string {
  return `${prefix}rl:${specId}:${key}`;
}

/** What a RedisLimits is made with (waygate.yaml `redis`, and its reporting callbacks). */
export interface RedisLimitsOptions {
  readonly url: string;
  /** Longest wait for one check, ms. */
  readonly timeout: number;
  readonly keyPrefix: string;
  readonly log: Logger;
  /** Called on each flip: true when Redis became usable, false when it stopped being. */
  onState(up: boolean): void;
}

type TakeCommand = (key: string, burst: number, periodMs: number, average: number) => Promise<[number, number, number]>;

/** One connection to the configured Redis and the bucket sets that use it. */
export class RedisLimits {
  readonly #o: RedisLimitsOptions;
  readonly #client: Redis;
  readonly #take: TakeCommand;
  #up: boolean | undefined;
  #closed = false;
  #lastErrorLog = -Infinity;
  /** Settled by the first 'ready' or the first failure: checks before either wait for it. */
  #first: Promise<void>;
  #settleFirst!: () => void;

  constructor(o: RedisLimitsOptions) {
    this.#o = o;
    this.#first = new Promise<void>((r) => (this.#settleFirst = r));
    this.#client = new Redis(o.url, {
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      // A command in flight when the connection drops fails at once rather than wait for a reconnect.
      maxRetriesPerRequest: 0,
      commandTimeout: o.timeout,
      connectTimeout: CONNECT_TIMEOUT_MS,
      retryStrategy: (times) => Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** Math.min(times, 16)),
      lazyConnect: false,
    });
    this.#client.defineCommand('waygateTake', { numberOfKeys: 1, lua: TAKE_SCRIPT });
    const c = this.#client as unknown as { waygateTake: TakeCommand };
    this.#take = c.waygateTake.bind(this.#client);
    this.#client.on('ready', () => this.#flip(true));
    this.#client.on('close', () => this.#flip(false));
    // Without a listener ioredis prints every failed connect; the flip says what matters.
    this.#client.on('error', (err: Error) => {
      const now = Date.now();
      if (now - this.#lastErrorLog < ERROR_LOG_EVERY_MS) return;
      this.#lastErrorLog = now;
      o.log.warn({ err: err.message }, 'redis connection error');
    });
  }

  #flip(up: boolean): void {
    // Our own disconnect at close is no outage.
    if (this.#up === up || this.#closed) return;
    // Never up yet and now failing: still a flip (from unknown) worth one line and a gauge.
    this.#up = up;
    this.#settleFirst();
    if (up) this.#o.log.info({ redis: redactedUrl(this.#o.url) }, 'redis for rate limits is up');
    else this.#o.log.warn({ redis: redactedUrl(this.#o.url) }, 'redis for rate limits is down');
    this.#o.onState(up);
  }

  /** The bucket set of `spec` in Redis. */
  buckets(spec: BucketSpec): TokenBuckets {
    const prefix = this.#o.keyPrefix;
    const take = this.#take;
    return {
      take: async (key: string): Promise<TakeResult> => {
        // Just started: the first checks wait for the first connection (up to the timeout)
        // instead of failing because it has not happened yet. Later, a down Redis fails fast.
        if (this.#up === undefined) await this.#firstOrTimeout();
        const [allowed, remaining, resetMs] = await take(bucketKey(prefix, spec.id, key), spec.burst, spec.periodMs, spec.average);
        return { allowed: allowed === 1, remaining, resetMs };
      },
      // Knowing means a round trip: /explain says "unknown".
      peek: () => undefined,
    };
  }

  #firstOrTimeout(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((r) => (timer = setTimeout(r, this.#o.timeout)));
    return Promise.race([this.#first, late]).finally(() => clearTimeout(timer));
  }

  /** Closes the connection (no reconnect after this). */
  async close(): Promise<void> {
    this.#closed = true;
    // quit() waits for Redis to answer; with Redis down that would hang on the timeout.
    this.#client.disconnect(false);
    this.#settleFirst();
  }
}

/** The URL without its password, for log lines. */
function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return 'redis';
  }
}

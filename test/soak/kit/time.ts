// Waiting without fixed sleeps where an event exists, and without outliving a task: every wait
// ends early when the task's signal is aborted.

/** Resolves after `ms`, or as soon as `signal` is aborted. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Resolves with `p`'s value, or with `fallback` after `ms` or when `signal` is aborted. */
export async function within<T, F>(p: Promise<T>, ms: number, fallback: F, signal?: AbortSignal): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const late = new Promise<F>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
    onAbort = (): void => resolve(fallback);
    if (signal?.aborted === true) resolve(fallback);
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
  }
}

/** Polls `probe` every `every` ms until it returns true or `ms` have passed; resolves with the last result. */
export async function pollUntil(probe: () => Promise<boolean>, ms: number, every = 200): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await probe()) return true;
    if (Date.now() >= end) return false;
    await sleep(every);
  }
}

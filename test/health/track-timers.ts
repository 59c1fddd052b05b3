// Counts the timers a piece of code creates and leaves pending (the probes must leave none).
import { vi } from 'vitest';

/**
 * Records the timers created through the global setTimeout until restore(); `live` holds those
 * neither fired nor cleared. (getActiveResourcesInfo() cannot see unref()ed timers.)
 */
export function trackTimers(): { live: Set<unknown>; created: () => number; restore(): void } {
  const live = new Set<unknown>();
  let created = 0;
  const realSet = globalThis.setTimeout;
  const realClear = globalThis.clearTimeout;
  const set = vi.spyOn(globalThis, 'setTimeout').mockImplementation(((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const t = realSet(() => {
      live.delete(t);
      fn(...args);
    }, ms);
    live.add(t);
    created++;
    return t;
  }) as unknown as typeof setTimeout);
  const clear = vi.spyOn(globalThis, 'clearTimeout').mockImplementation((t) => {
    live.delete(t);
    realClear(t);
  });
  return { live, created: () => created, restore: () => { set.mockRestore(); clear.mockRestore(); } };
}

// Target state outlives config (ARCHITECTURE rule 5): a reload looks targets up here by
// (pool, url), so a target that stays keeps its health, counters and pooled connections.
import { Target, targetKey } from './target.ts';

/** Keeps every configured target across reloads, keyed by pool name and URL. */
export class TargetRegistry {
  readonly #targets = new Map<string, Target>();

  /** Returns the existing target for (pool, url) with its weight updated, or a new one. */
  obtain(pool: string, url: string, weight: number): Target {
    const key = targetKey(pool, url);
    let t = this.#targets.get(key);
    if (t === undefined) {
      t = new Target(pool, url, weight);
      this.#targets.set(key, t);
    } else {
      t.weight = weight;
    }
    return t;
  }

  /**
   * Forgets every target not in `keep` and closes its connections once its in-flight requests
   * are done (undici's close waits for them). Returns the targets removed.
   */
  retain(keep: ReadonlySet<Target>): Target[] {
    const removed: Target[] = [];
    for (const [key, t] of this.#targets) {
      if (!keep.has(t)) {
        this.#targets.delete(key);
        removed.push(t);
        void t.close();
      }
    }
    return removed;
  }

  /** True when (pool, url) is already known. */
  has(pool: string, url: string): boolean {
    return this.#targets.has(targetKey(pool, url));
  }

  /** Every target currently known. */
  all(): IterableIterator<Target> {
    return this.#targets.values();
  }

  /** Closes every connection pool; resolves when all are closed. */
  async closeAll(): Promise<void> {
    await Promise.all([...this.#targets.values()].map((t) => t.close()));
    this.#targets.clear();
  }
}

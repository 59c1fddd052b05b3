// Watches the certs directory so renewed certificates are served without a restart.
//
// fs.watch alone is not enough: it watches an inode, and the directory can be replaced under its
// name (Kubernetes swaps the `..data` symlink of a secret volume; an operator re-points a `certs`
// symlink; certbot re-points live/ links into archive/). So there are three sources, all feeding
// one debounce: fs.watch on the dir (re-created when the dir's identity changes), fs.watch on the
// parent for the dir's own name, and a slow poll comparing a fingerprint of the tree, which also
// covers subdirectories and filesystems where inotify is silent (NFS, some container mounts).
import { statSync, watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

/** Quiet time that ends a burst of changes (certbot and kubelet write several files). */
export const DEFAULT_CERT_DEBOUNCE_MS = 250;
/** How often the fingerprint poll runs. */
export const DEFAULT_CERT_POLL_MS = 2000;
const FINGERPRINT_DEPTH = 4;

/** Extra knobs for watchCertsDir. */
export interface WatchCertsOptions {
  /** Fingerprint poll period in ms (default 2000). */
  pollMs?: number;
}

/** A string that changes when any file under `dir` changes (name, inode, size, mtime; symlinks followed); "missing" when `dir` is gone. */
async function fingerprint(dir: string, depth = 0): Promise<string> {
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch {
    return depth === 0 ? 'missing' : '';
  }
  const parts: string[] = [];
  for (const name of names) {
    // Dotfiles are skipped (our own temp files, .waygate-secret); Kubernetes' ..data swap still
    // shows, through the top-level symlinks that now resolve to other files.
    if (name.startsWith('.')) continue;
    const p = join(dir, name);
    try {
      const s = await stat(p);
      parts.push(`${p}\t${s.ino}\t${s.size}\t${s.mtimeMs}`);
      if (s.isDirectory() && depth < FINGERPRINT_DEPTH) parts.push(await fingerprint(p, depth + 1));
    } catch {
      parts.push(`${p}\tdangling`);
    }
  }
  return parts.join('\n');
}

/** The directory's identity ("dev:ino", symlinks followed); undefined when it is not a directory now. */
function identity(dir: string): string | undefined {
  try {
    const s = statSync(dir);
    return s.isDirectory() ? `${s.dev}:${s.ino}` : undefined;
  } catch {
    return undefined;
  }
}

/** Watches `dir` (fs.watch) and calls `onChange` once per burst of changes (debounced, default 250 ms); close() stops it. Survives the dir being replaced (Kubernetes secret volumes swap a symlink) — fall back to polling or re-watching if needed. */
export function watchCertsDir(dir: string, onChange: () => void, debounceMs: number = DEFAULT_CERT_DEBOUNCE_MS, options: WatchCertsOptions = {}): { close(): void } {
  const abs = resolve(dir);
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let dirWatcher: FSWatcher | undefined;
  let parentWatcher: FSWatcher | undefined;
  let watchedId: string | undefined;
  let lastPrint: string | undefined;
  // Bumped by every fire: a poll that started before it compares against a stale fingerprint.
  let generation = 0;
  let polling = false;

  const kick = (): void => {
    if (closed) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(fire, debounceMs);
    timer.unref();
  };

  /** Watches the directory now under `abs` if that is not the one watched; returns whether it changed. */
  const rewatch = (): boolean => {
    const id = identity(abs);
    if (id === watchedId && (dirWatcher || id === undefined)) return false;
    dirWatcher?.close();
    dirWatcher = undefined;
    watchedId = id;
    if (id === undefined) return true;
    try {
      const w = watch(abs, { persistent: false }, kick);
      w.on('error', () => {
        // The watched inode went away (dir deleted or unmounted): drop it; rewatch finds the next one.
        w.close();
        if (dirWatcher === w) dirWatcher = undefined;
        kick();
      });
      dirWatcher = w;
    } catch {
      // Not watchable right now (e.g. removed between stat and watch): the poll retries.
    }
    return true;
  };

  const fire = (): void => {
    timer = undefined;
    const gen = ++generation;
    rewatch();
    void fingerprint(abs).then((print) => {
      if (closed) return;
      if (gen === generation) lastPrint = print;
      onChange();
    });
  };

  const poll = async (): Promise<void> => {
    if (closed || timer || polling) return;
    polling = true;
    const gen = generation;
    const replaced = rewatch();
    const print = await fingerprint(abs);
    polling = false;
    if (closed || timer || gen !== generation) return;
    if (lastPrint === undefined) lastPrint = print;
    else if (replaced || print !== lastPrint) kick();
  };

  rewatch();
  const parent = dirname(abs);
  if (parent !== abs) {
    try {
      parentWatcher = watch(parent, { persistent: false }, (_event, name) => {
        if (name === basename(abs)) kick();
      });
      parentWatcher.on('error', () => {
        parentWatcher?.close();
        parentWatcher = undefined;
      });
    } catch {
      // An unwatchable parent only costs the fast path for a replaced dir; the poll still sees it.
    }
  }
  void fingerprint(abs).then((print) => {
    if (generation === 0 && lastPrint === undefined) lastPrint = print;
  });
  const interval = setInterval(() => void poll(), options.pollMs ?? DEFAULT_CERT_POLL_MS);
  interval.unref();

  return {
    close(): void {
      closed = true;
      if (timer) clearTimeout(timer);
      clearInterval(interval);
      dirWatcher?.close();
      parentWatcher?.close();
    },
  };
}

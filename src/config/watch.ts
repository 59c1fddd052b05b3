// What the routes watcher compares: only the top-level *.yaml / *.yml files are routes (SPEC §2),
// so activity elsewhere in the directory (a certs or secrets subdirectory, editor swap files)
// must not trigger a reload.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** Returns a fingerprint (names, sizes, modification times) of the routes files in `dir`; "" when unreadable. */
export async function routesFingerprint(dir: string): Promise<string> {
  try {
    const names = (await readdir(dir)).filter((n) => !n.startsWith('.') && /\.ya?ml$/.test(n)).sort();
    const parts = await Promise.all(names.map(async (n) => {
      const s = await stat(join(dir, n));
      return `${n}:${s.size}:${s.mtimeMs}`;
    }));
    return parts.join('|');
  } catch {
    return '';
  }
}

// watchCertsDir: one call per burst, and it keeps working when the directory is replaced the way
// Kubernetes and operators replace it. Every test awaits the call it expects; the "no extra
// call" checks wait well past the debounce (they can only fail, never flake into passing).
import { mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { watchCertsDir } from '../../../src/server/tls/index.ts';
import { removeDirs, tempDir } from './fixtures.ts';

const dirs: string[] = [];
const watchers: { close(): void }[] = [];

afterEach(async () => {
  for (const w of watchers.splice(0)) w.close();
  await removeDirs(dirs.splice(0));
});

/** Counts onChange calls; `next()` resolves at the next call after it is asked. */
function counter(): { onChange: () => void; count: () => number; next: () => Promise<void> } {
  let n = 0;
  let waiters: (() => void)[] = [];
  return {
    onChange: () => {
      n++;
      const w = waiters;
      waiters = [];
      for (const r of w) r();
    },
    count: () => n,
    next: () => new Promise<void>((r) => waiters.push(r)),
  };
}

async function fresh(): Promise<string> {
  const d = await tempDir('waygate-watch-');
  dirs.push(d);
  return d;
}

const DEBOUNCE = 150;

describe('watchCertsDir', () => {
  it('calls onChange once for a burst of writes, and again for a later change', async () => {
    const dir = await fresh();
    const c = counter();
    // A fast poll too: it must not add calls for changes the watcher already reported.
    watchers.push(watchCertsDir(dir, c.onChange, DEBOUNCE, { pollMs: 40 }));
    await sleep(100); // let the initial fingerprint settle
    const first = c.next();
    for (const name of ['a.crt', 'a.key', 'b.crt', 'b.key', 'default.crt']) await writeFile(join(dir, name), `${name}\n`);
    await rm(join(dir, 'b.key'));
    await first;
    await sleep(DEBOUNCE * 4);
    expect(c.count()).toBe(1);

    const second = c.next();
    await writeFile(join(dir, 'a.crt'), 'renewed\n');
    await second;
    expect(c.count()).toBe(2);
  });

  it('follows a symlinked dir re-pointed to a new directory (operator or Kubernetes-style swap)', async () => {
    const root = await fresh();
    await mkdir(join(root, 'v1'));
    await mkdir(join(root, 'v2'));
    await symlink(join(root, 'v1'), join(root, 'certs'));
    const c = counter();
    // A poll far longer than the test: only the watchers can report these changes.
    watchers.push(watchCertsDir(join(root, 'certs'), c.onChange, DEBOUNCE, { pollMs: 60_000 }));

    const swapped = c.next();
    await writeFile(join(root, 'v2', 'tls.crt'), 'v2\n');
    await symlink(join(root, 'v2'), join(root, 'certs.tmp'));
    await rename(join(root, 'certs.tmp'), join(root, 'certs')); // atomic re-point
    await swapped;

    // The watcher now follows v2: a write there is seen, a write in the old v1 is not.
    const inNew = c.next();
    await writeFile(join(root, 'v2', 'tls.key'), 'key\n');
    await inNew;
    const n = c.count();
    await writeFile(join(root, 'v1', 'old.crt'), 'old\n');
    await sleep(DEBOUNCE * 4);
    expect(c.count()).toBe(n);
  });

  it("sees a Kubernetes secret volume update (..data symlink swapped under the dir's own symlinks)", async () => {
    const dir = await fresh();
    await mkdir(join(dir, '..2026_01'));
    await writeFile(join(dir, '..2026_01', 'tls.crt'), 'one\n');
    await symlink('..2026_01', join(dir, '..data'));
    await symlink('..data/tls.crt', join(dir, 'tls.crt'));
    const c = counter();
    watchers.push(watchCertsDir(dir, c.onChange, DEBOUNCE, { pollMs: 60_000 }));

    const updated = c.next();
    await mkdir(join(dir, '..2026_02'));
    await writeFile(join(dir, '..2026_02', 'tls.crt'), 'two\n');
    await symlink('..2026_02', join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    await rm(join(dir, '..2026_01'), { recursive: true });
    await updated;
  });

  it('recovers when the dir is deleted and created again, and sees changes in subdirectories by polling', async () => {
    const root = await fresh();
    const dir = join(root, 'certs');
    await mkdir(dir);
    const c = counter();
    watchers.push(watchCertsDir(dir, c.onChange, DEBOUNCE, { pollMs: 100 }));
    await sleep(50);

    const gone = c.next();
    await rm(dir, { recursive: true });
    await gone;
    const back = c.next();
    await mkdir(join(dir, 'live', 'example.com'), { recursive: true });
    await back;
    // Settle, then a change two levels down, which fs.watch on the dir does not report.
    await sleep(DEBOUNCE * 2);
    const deep = c.next();
    await writeFile(join(dir, 'live', 'example.com', 'fullchain.pem'), 'chain\n');
    await deep;
  });

  it('stops calling after close()', async () => {
    const dir = await fresh();
    const c = counter();
    const w = watchCertsDir(dir, c.onChange, DEBOUNCE, { pollMs: 50 });
    watchers.push(w);
    await sleep(50);
    const first = c.next();
    await writeFile(join(dir, 'a.crt'), 'a\n');
    await first;
    w.close();
    await writeFile(join(dir, 'b.crt'), 'b\n');
    await sleep(DEBOUNCE * 4);
    expect(c.count()).toBe(1);
  });
});

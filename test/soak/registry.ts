// The soak's registries: every file in clients/ is a client behaviour, every file in faults/ an
// upstream fault. A later capability (middlewares, ACME, the dashboard) adds its own by adding
// files there; L4 (faults/l4.ts, clients/tcp-*.ts) also taught setup.ts its listeners and routes
// and checks.ts its counters. Files load in name order, so a seed picks the same sequence for a
// given set of files.
import { readdir } from 'node:fs/promises';
import type { ClientBehaviour, UpstreamFault } from './types.ts';

const HERE = new URL('.', import.meta.url);

async function loadDir<T>(dir: string, valid: (x: unknown) => x is T): Promise<T[]> {
  const url = new URL(`${dir}/`, HERE);
  const files = (await readdir(url)).filter((f) => f.endsWith('.ts')).sort();
  const out: T[] = [];
  for (const f of files) {
    const mod = (await import(new URL(f, url).href)) as { default?: unknown };
    const items = Array.isArray(mod.default) ? mod.default : [mod.default];
    for (const item of items) {
      if (!valid(item)) throw new Error(`test/soak/${dir}/${f}: the default export is not a valid entry`);
      out.push(item);
    }
  }
  return out;
}

function isBehaviour(x: unknown): x is ClientBehaviour {
  const b = x as ClientBehaviour | undefined;
  return typeof b?.name === 'string' && typeof b.weight === 'number' && typeof b.plan === 'function';
}

function isFault(x: unknown): x is UpstreamFault {
  const f = x as UpstreamFault | undefined;
  return typeof f?.name === 'string' && typeof f.start === 'function';
}

/** Every client behaviour in clients/, in file order. */
export async function loadBehaviours(): Promise<ClientBehaviour[]> {
  const list = await loadDir('clients', isBehaviour);
  const names = new Set<string>();
  for (const b of list) {
    if (names.has(b.name)) throw new Error(`two client behaviours are called ${b.name}`);
    names.add(b.name);
  }
  return list;
}

/** Every upstream fault in faults/, in file order. */
export async function loadFaults(): Promise<UpstreamFault[]> {
  return loadDir('faults', isFault);
}

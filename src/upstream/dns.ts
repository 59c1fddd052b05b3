// DNS discovery (SPEC §3 `discovery: dns`): a pool's target host names are re-resolved every
// `dnsRefresh` and every address becomes a target — how Docker Compose `--scale` and Kubernetes
// headless Services publish replicas. A failed lookup keeps the last good answer.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { originOf } from '../config/net-fields.ts';

/** Resolves a host name to all its addresses (IPv4 and IPv6); rejects on failure. */
export type Resolver = (host: string) => Promise<string[]>;

/** The system resolver (getaddrinfo: /etc/hosts, Docker's and Kubernetes' DNS), every address. */
export const systemResolver: Resolver = async (host) => {
  const all = await lookup(host, { all: true, verbatim: true });
  return [...new Set(all.map((a) => a.address))];
};

/** Expands a configured target URL into one URL per resolved address (IPv6 bracketed). */
export function expandTarget(url: string, addresses: readonly string[]): string[] {
  return addresses.map((a) => {
    const v = new URL(url);
    v.hostname = isIP(a) === 6 ? `[${a}]` : a;
    return originOf(v);
  });
}

interface Entry {
  addresses: string[] | undefined;
  refresh: number;
  timer: NodeJS.Timeout | undefined;
  error: string | undefined;
}

/** Keeps the addresses of the host names pools discover, refreshed on timers. */
export class DnsDiscovery {
  readonly #resolve: Resolver;
  readonly #onChange: () => void;
  readonly #onError: (host: string, err: string) => void;
  readonly #hosts = new Map<string, Entry>();
  #stopped = false;

  /** `onChange` runs when any host's address set changed; `onError` when a lookup failed (the last good set stays). */
  constructor(resolve: Resolver, onChange: () => void, onError: (host: string, err: string) => void) {
    this.#resolve = resolve;
    this.#onChange = onChange;
    this.#onError = onError;
  }

  /** Returns the addresses last resolved for `host` (sorted), or undefined before any success. */
  addresses(host: string): readonly string[] | undefined {
    return this.#hosts.get(host)?.addresses;
  }

  /**
   * Makes the watched set exactly `hosts` (name → refresh ms): resolves new names now (resolving
   * when every new name has an answer or a failure), keeps the others' timers, drops the rest.
   */
  async sync(hosts: ReadonlyMap<string, number>): Promise<void> {
    for (const [host, e] of this.#hosts) {
      if (!hosts.has(host)) {
        clearTimeout(e.timer);
        this.#hosts.delete(host);
      }
    }
    const fresh: Promise<void>[] = [];
    for (const [host, refresh] of hosts) {
      const e = this.#hosts.get(host);
      if (e !== undefined) {
        e.refresh = refresh;
        continue;
      }
      const entry: Entry = { addresses: undefined, refresh, timer: undefined, error: undefined };
      this.#hosts.set(host, entry);
      fresh.push(this.#refresh(host, entry, false));
    }
    await Promise.all(fresh);
  }

  async #refresh(host: string, e: Entry, notify: boolean): Promise<void> {
    try {
      const next = [...(await this.#resolve(host))].sort();
      if (next.length === 0) throw new Error('no addresses');
      const changed = e.addresses === undefined || next.join(',') !== e.addresses.join(',');
      e.addresses = next;
      e.error = undefined;
      if (changed && notify && this.#hosts.get(host) === e) this.#onChange();
    } catch (err) {
      e.error = (err as Error).message;
      this.#onError(host, e.error);
    }
    if (this.#stopped || this.#hosts.get(host) !== e) return;
    e.timer = setTimeout(() => void this.#refresh(host, e, true), e.refresh);
    e.timer.unref();
  }

  /** Stops every refresh timer. */
  stop(): void {
    this.#stopped = true;
    for (const e of this.#hosts.values()) clearTimeout(e.timer);
  }
}

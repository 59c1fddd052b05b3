// ipAllowList (SPEC §8): the client address — after `trustedProxies` and the PROXY protocol,
// as MiddlewareRequest.clientIp has it — must be in `sourceRange`, or the answer is 403. It runs
// on every request of its routes, so the hot path is one Map lookup: BlockList.check allocates a
// SocketAddress per call, so its verdicts are remembered per address (bounded).
import { BlockList, isIP } from 'node:net';
import { z } from 'zod';
import { strict } from '../config/fields.ts';
import { ipRange } from '../config/net-fields.ts';
import type { Answer, Explained, Middleware, MiddlewareKind, MiddlewareRequest, RequestFacts, Verdict } from './types.ts';

/** Verdicts remembered per middleware; the oldest goes first when full. */
export const VERDICT_ENTRIES = 4096;
const RANGES_SHOWN = 5;
// The longest address text worth remembering (IPv6 with an IPv4 tail is 45); anything longer is
// checked (and refused) without taking room in the map.
const MAX_ADDRESS_CHARS = 64;

const FORBIDDEN: Answer = Object.freeze({
  status: 403,
  headers: Object.freeze(['content-type', 'text/plain; charset=utf-8']),
  body: 'forbidden',
  rejection: true,
});

const options = strict({
  sourceRange: z
    .array(ipRange(), { error: (iss) => (iss.code === 'invalid_type' ? 'expected a list of IP addresses or CIDR ranges, such as [10.0.0.0/8, "2001:db8::/32"]' : undefined) })
    .min(1, 'list at least one IP address or CIDR range, such as 10.0.0.0/8 (an empty list would refuse every client)'),
});

type Options = z.output<typeof options>;

/** One "ip/prefix" range as a BlockList of its own (for /explain's "which range"). */
function blockListOf(ranges: readonly string[]): BlockList {
  const list = new BlockList();
  for (const range of ranges) {
    const slash = range.indexOf('/');
    const ip = range.slice(0, slash);
    list.addSubnet(ip, Number(range.slice(slash + 1)), isIP(ip) === 4 ? 'ipv4' : 'ipv6');
  }
  return list;
}

/** True when `ip` is in `list`; false for anything that is not an address ("" when unknown). */
function contains(list: BlockList, ip: string): boolean {
  // A zone ("fe80::1%eth0") names the interface, not the address; ranges carry none.
  const zone = ip.indexOf('%');
  const bare = zone < 0 ? ip : ip.slice(0, zone);
  const family = isIP(bare);
  // BlockList matches an IPv4-mapped IPv6 address (::ffff:10.1.2.3) against IPv4 ranges itself.
  return family !== 0 && list.check(bare, family === 4 ? 'ipv4' : 'ipv6');
}

class IpAllowList implements Middleware {
  readonly name: string;
  readonly kind = 'ipAllowList' as const;
  readonly #ranges: readonly string[];
  readonly #all: BlockList;
  readonly #each: readonly BlockList[];
  readonly #verdicts = new Map<string, boolean>();

  constructor(name: string, o: Options) {
    this.name = name;
    this.#ranges = o.sourceRange;
    this.#all = blockListOf(o.sourceRange);
    this.#each = o.sourceRange.map((r) => blockListOf([r]));
  }

  request(r: MiddlewareRequest): Verdict {
    const ip = r.clientIp;
    let allowed = this.#verdicts.get(ip);
    if (allowed === undefined) {
      allowed = contains(this.#all, ip);
      if (ip.length > MAX_ADDRESS_CHARS) return allowed ? undefined : FORBIDDEN;
      if (this.#verdicts.size >= VERDICT_ENTRIES) this.#verdicts.delete(this.#verdicts.keys().next().value!);
      this.#verdicts.set(ip, allowed);
    }
    return allowed ? undefined : FORBIDDEN;
  }

  explain(r: RequestFacts): Explained {
    const ip = r.clientIp;
    const at = this.#each.findIndex((list) => contains(list, ip));
    if (at >= 0) return { result: 'passes', why: `the client ${ip} is in ${this.#ranges[at]}` };
    const shown = this.#ranges.slice(0, RANGES_SHOWN).join(', ') + (this.#ranges.length > RANGES_SHOWN ? ', …' : '');
    return { result: 'rejects', status: 403, why: `the client ${ip === '' ? '(unknown address)' : ip} is in none of sourceRange (${shown})` };
  }

  describe(): Record<string, unknown> {
    return { sourceRange: [...this.#ranges] };
  }
}

/** The ipAllowList middleware kind. */
export const ipAllowList: MiddlewareKind<typeof options> = {
  kind: 'ipAllowList',
  options,
  build: (o, deps) => new IpAllowList(deps.name, o),
};

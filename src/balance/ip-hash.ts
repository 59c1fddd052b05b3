// Consistent hashing on the client address (SPEC §4): a ring of virtual nodes hashed from each
// target's url, ketama-style. A client maps to the first point clockwise of hash(ip). Because a
// target's points depend only on its own url and weight, removing a target moves only its clients
// (to the next point clockwise) and adding one takes about 1/N of the clients, all to the new target.
// The hash is unseeded, so every replica and every restart maps a client to the same target.
import type { Balanceable, BalanceContext, Eligible, Policy } from './policy.ts';

/** Points per unit of weight: ketama's 160 keeps an equal-weight target's share within ~±8% (1 σ). */
export const VNODES_PER_WEIGHT = 160;

/**
 * Upper bound on ring points (8 bytes each: 512 KiB per pool). Above it (total weight > 409) every
 * target's point count is scaled down by the same factor, which keeps the weight ratios; a target
 * keeps a prefix of its points (point k is hash(url#k)), so the reshuffle stays small.
 */
export const MAX_RING_POINTS = 65_536;

// Dual-stack listeners report IPv4 clients as "::ffff:a.b.c.d"; hashing the IPv4 part makes such a
// client map like it does on an IPv4 listener (and on a replica with a different listener setup).
const V4_MAPPED_PREFIX = '::ffff:';

/** FNV-1a (32-bit) over the UTF-16 code units of `s` from `start`, then murmur3's fmix32: returns an unsigned 32-bit hash. */
function hash32(s: string, start: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // FNV-1a alone barely changes the high bits when only the last character differs ("url#1",
  // "url#2"), which would cluster a target's points; fmix32 spreads every input bit over all 32.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Unsigned 32-bit hash of a client address, IPv4-mapped IPv6 hashed as its IPv4 form. */
function hashClient(ip: string): number {
  const mapped = ip.startsWith(V4_MAPPED_PREFIX) && ip.includes('.', V4_MAPPED_PREFIX.length);
  return hash32(ip, mapped ? V4_MAPPED_PREFIX.length : 0);
}

/** Consistent-hash policy: `pick` returns the first eligible target clockwise of hash(ctx.clientIp) on the ring, undefined when none is eligible (or the list is empty). */
export function ipHash<T extends Balanceable>(targets: readonly T[]): Policy<T> {
  const n = targets.length;
  let totalWeight = 0;
  for (const t of targets) totalWeight += t.weight;
  const perWeight = Math.min(VNODES_PER_WEIGHT, MAX_RING_POINTS / Math.max(totalWeight, 1));
  const counts = targets.map((t) => Math.max(1, Math.round(t.weight * perWeight)));

  // Equal hashes are ordered by url, not by position in the list, so replicas whose config lists
  // the targets in another order still build the same ring.
  const byUrl = targets.map((_, i) => i).sort((a, b) => (targets[a].url < targets[b].url ? -1 : targets[a].url > targets[b].url ? 1 : a - b));
  // One sortable number per point: hash in the high bits, url rank in the low 21 (< 2^53, exact).
  const RANK_BITS = 2 ** 21;
  let size = 0;
  for (const c of counts) size += c;
  const keys = new Float64Array(size);
  let p = 0;
  for (let rank = 0; rank < n; rank++) {
    const i = byUrl[rank];
    const url = targets[i].url;
    for (let k = 0; k < counts[i]; k++) keys[p++] = hash32(`${url}#${k}`, 0) * RANK_BITS + rank;
  }
  keys.sort();
  const points = new Uint32Array(size);
  const owners = new Uint32Array(size);
  for (let j = 0; j < size; j++) {
    points[j] = Math.floor(keys[j] / RANK_BITS);
    owners[j] = byUrl[keys[j] % RANK_BITS];
  }

  // Which targets this pick has already asked `eligible` about: visited[i] === epoch. Bumping the
  // epoch resets it in O(1), so the clockwise walk allocates nothing per pick.
  const visited = new Uint32Array(n);
  let epoch = 0;

  return {
    pick(ctx: BalanceContext, eligible: Eligible<T>): T | undefined {
      if (size === 0) return undefined;
      const h = hashClient(ctx.clientIp);
      // First point >= h; past the last point the ring wraps to the first.
      let lo = 0;
      let hi = size;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (points[mid] < h) lo = mid + 1;
        else hi = mid;
      }
      let j = lo === size ? 0 : lo;
      epoch = (epoch + 1) >>> 0;
      if (epoch === 0) {
        visited.fill(0);
        epoch = 1;
      }
      // Skipping an ineligible target's points is exactly "the ring without it", so its clients
      // go where they would if it were removed, and come back when it is eligible again.
      let asked = 0;
      for (let step = 0; step < size; step++) {
        const i = owners[j];
        if (visited[i] !== epoch) {
          visited[i] = epoch;
          if (eligible(targets[i])) return targets[i];
          if (++asked === n) return undefined;
        }
        j = j + 1 === size ? 0 : j + 1;
      }
      return undefined;
    },
  };
}

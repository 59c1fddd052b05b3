// The balancing policies by the name `balance:` uses in a routes file (SPEC §3).
import { ipHash } from './ip-hash.ts';
import { leastConnections } from './least-connections.ts';
import type { PolicyFactory } from './policy.ts';
import { randomTwo } from './random-two.ts';
import { roundRobin } from './round-robin.ts';

/** Every policy factory keyed by its `balance:` name; the config schema's enum should be its keys. */
export const POLICIES: Record<'round-robin' | 'least-connections' | 'ip-hash' | 'random-two', PolicyFactory> = {
  'round-robin': roundRobin,
  'least-connections': leastConnections,
  'ip-hash': ipHash,
  'random-two': randomTwo,
};

/** A `balance:` name: one of the keys of POLICIES. */
export type BalanceName = keyof typeof POLICIES;

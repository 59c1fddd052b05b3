// Every middleware kind, by its key in a routes file (SPEC §8). The config schema, the chain
// builder and the shared test table all read this one list.
import { basicAuth } from './basic-auth.ts';
import { compress } from './compress.ts';
import { cors } from './cors.ts';
import { errorPages } from './error-pages.ts';
import { forwardAuth } from './forward-auth.ts';
import { inFlightLimit } from './in-flight-limit.ts';
import { ipAllowList } from './ip-allow-list.ts';
import { rateLimit } from './rate-limit.ts';
import type { KindName, MiddlewareKind } from './types.ts';

/** The kinds, in the order the SPEC lists them. */
export const KINDS = { rateLimit, inFlightLimit, ipAllowList, basicAuth, forwardAuth, compress, cors, errorPages } as const satisfies Record<KindName, MiddlewareKind>;

/** The kind names, as a list. */
export const KIND_NAMES = Object.keys(KINDS) as KindName[];

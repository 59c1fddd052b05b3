// A leaf module: the method sets both the forwarder and the upstream clients read, so neither
// imports the other for them.

/**
 * RFC 9110 §9.2.2 idempotent methods, as SPEC §4 lists them: the ones a failed attempt may be
 * sent again for (the forwarder's retries, and its permission for a client's stale-connection replay).
 */
export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

// One entry of the shared middleware table (ARCHITECTURE rule 1): every kind supplies a case in
// this folder, and test/middleware/table.test.ts runs the same checks on each — a request it
// lets through reaches the upstream; a request it answers gets that answer with no internals in
// it; a route of the same gateway without the middleware is untouched.
import type { KindName } from '../../../src/middleware/types.ts';

/** What a case needs running beside waygate (an auth service, a Redis). */
export interface CaseSetup {
  /** The middleware's options as YAML-able data; pools it needs go in `pools`. */
  readonly options: Record<string, unknown>;
  /** Extra pools for the routes file (errorPages' pool), by name. */
  readonly pools?: Record<string, unknown>;
  /** Files the options name, relative path → contents, written into the test's working directory. */
  readonly files?: Record<string, string>;
  /** Extra waygate.yaml settings, applied to the static config before start (redis). */
  readonly config?: Record<string, unknown>;
  close(): Promise<void>;
}

/** A request of the table: sent to the route that lists the middleware. */
export interface CaseRequest {
  readonly method?: string;
  readonly path?: string;
  readonly headers?: Record<string, string>;
}

/** One kind's entry. */
export interface TableCase {
  readonly kind: KindName;
  /** Starts what the middleware talks to and returns its options. */
  setup(): Promise<CaseSetup>;
  /** A request the middleware lets through to the upstream. */
  readonly passes: CaseRequest;
  /** A request it answers itself, and the status it answers with; omitted for kinds that never answer (compress). */
  readonly answered?: CaseRequest & { readonly status: number };
}

// The routing table in force, as the request path sees it: built by runtime.ts, swapped whole on
// reload, read by the listeners, the upgrade handler and /explain.
import type { Router } from '../router/router.ts';
import type { RouteAction } from './actions.ts';

/** A route as the request path needs it. */
export interface CompiledRoute {
  readonly name: string;
  readonly action: RouteAction;
}

/** The routing table in force; swapped whole on reload, captured by each request at its start. */
export interface Runtime {
  readonly router: Router<CompiledRoute>;
  readonly version: number;
}

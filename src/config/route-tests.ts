// The `tests:` list of a routes file (SPEC §3): requests with the route, pool or response they
// must get. Only their shape is validated here; running them belongs to --check and reload.
import { z } from 'zod';
import { headerMap, nonEmpty, status, strict, text } from './fields.ts';

// "METHOD URL": what a user would type into curl, kept on one line for readable test lists.
const REQUEST_RE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (https?:\/\/\S+)$/;

const expectSchema = strict({
  route: nonEmpty().optional(),
  pool: nonEmpty().optional(),
  path: nonEmpty().optional(),
  status: status().optional(),
  location: nonEmpty().optional(),
  host: nonEmpty().optional(),
}).refine((e) => Object.keys(e).length > 0, 'expect needs at least one of route, pool, path, status, location, host');

/** The schema of one routes-file test: a request and what it must get. */
export const routeTestSchema = strict({
  request: z.string().transform((s, ctx) => {
    const m = REQUEST_RE.exec(s.trim());
    if (m === null || !URL.canParse(m[2])) {
      ctx.addIssue({ code: 'custom', message: `expected "METHOD URL" such as "GET https://shop.example.com/api", got ${JSON.stringify(s)}` });
      return z.NEVER;
    }
    return { method: m[1].toUpperCase(), url: m[2] };
  }),
  headers: headerMap().default({}),
  cookies: z.record(z.string(), text()).default({}),
  expect: expectSchema,
});

/** A validated routes-file test; `request` is split into method (upper-cased) and absolute URL. */
export type RouteTestConfig = z.output<typeof routeTestSchema>;

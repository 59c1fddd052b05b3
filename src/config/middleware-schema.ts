// SPEC §8 in the routes file: `middlewares:` maps a name to exactly one kind key and that kind's
// options. Each kind's options schema lives beside its code (src/middleware/<kind>.ts); this file
// only assembles them, so zod paths locate every mistake at file:line:col and an unknown kind
// gets "did you mean" like any other unknown key.
import { z } from 'zod';
import { KINDS, KIND_NAMES } from '../middleware/kinds.ts';
import type { KindName } from '../middleware/types.ts';
import { strict } from './fields.ts';

type KindShape = { [K in KindName]: z.ZodOptional<(typeof KINDS)[K]['options']> };

const shape = Object.fromEntries(KIND_NAMES.map((k) => [k, KINDS[k].options.optional()])) as unknown as KindShape;

/** A middleware as validated: its kind and that kind's options, defaults filled. */
export type MiddlewareConfig = { [K in KindName]: { kind: K; options: z.output<(typeof KINDS)[K]['options']> } }[KindName];

/**
 * The schema of one entry of `middlewares:`. "Exactly one kind" is checked on the raw map, before
 * strict() — so a misspelt kind gets its "did you mean" alone, not a second error saying no kind
 * is there.
 */
export const middlewareSchema = z
  .preprocess((raw, ctx) => {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return raw;
    const keys = Object.keys(raw);
    if (keys.length === 0) ctx.addIssue({ code: 'custom', message: `a middleware needs exactly one kind: ${KIND_NAMES.join(', ')}`, input: raw });
    const kinds = keys.filter((k) => (KIND_NAMES as string[]).includes(k));
    for (const extra of kinds.slice(1)) {
      ctx.addIssue({ code: 'custom', path: [extra], params: { at: 'key' }, message: `"${extra}" cannot be combined with "${kinds[0]}": a middleware has exactly one kind (define two middlewares and list both)`, input: raw });
    }
    return raw;
  }, strict(shape))
  .transform((m): MiddlewareConfig => {
    const kind = KIND_NAMES.find((k) => m[k] !== undefined)!;
    return { kind, options: m[kind] } as MiddlewareConfig;
  });

import { Type, type Static } from '@sinclair/typebox'

/** PostgreSQL's integer: ids beyond it are a client mistake (400), not a database error. */
const MAX_ID = 2147483647

// At least one visible character and no control characters (C0, DEL, C1: Unicode's Cc), spelled as
// ranges so that clients without Unicode property escapes (Swagger UI) read it alike.
const NAME_PATTERN = '^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$'

export const ResourceIdParamsSchema = Type.Object({
  id: Type.Integer({ minimum: 1, maximum: MAX_ID, description: 'The resource id' }),
})

export const ResourceListQuerySchema = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'Most resources in one page' }),
  after: Type.Integer({ minimum: 0, maximum: MAX_ID, default: 0, description: 'Only resources with an id above this (the cursor)' }),
})

export const ResourceNameSchema = Type.Object(
  {
    name: Type.String({
      minLength: 1,
      maxLength: 255,
      pattern: NAME_PATTERN,
      description: '1 to 255 characters, no control characters; surrounding spaces are trimmed. Unique per owner.',
      examples: ['my-resource'],
    }),
  },
  { additionalProperties: false },
)
export type ResourceName = Static<typeof ResourceNameSchema>

export const OwnerSchema = Type.Object(
  {
    id: Type.Integer(),
    subject: Type.String({ description: 'The `sub` of the owner\'s tokens' }),
    name: Type.String({ description: 'The owner\'s display name, as of their last write' }),
  },
  { additionalProperties: false },
)

export const ResourceSchema = Type.Object(
  { id: Type.Integer(), name: Type.String(), owner: OwnerSchema },
  { additionalProperties: false, description: 'A named resource and its owner' },
)
export type Resource = Static<typeof ResourceSchema>

export const ResourceListSchema = Type.Object(
  {
    resources: Type.Array(ResourceSchema),
    next: Type.Union([Type.String({ format: 'uri' }), Type.Null()], {
      description: 'The URL of the next page (also in the Link header), or null on the last page',
    }),
  },
  { additionalProperties: false },
)

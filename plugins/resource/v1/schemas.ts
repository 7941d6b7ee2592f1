import { Type, type Static } from '@sinclair/typebox'
import { UNSAFE_CHARACTERS } from '#src/lib/text.js'
import { DEFAULT_PAGE_SIZE, MAX_NAME_LENGTH, MAX_PAGE_SIZE, MAX_RESOURCE_ID } from './contract.js'

// At least one visible character, and none that could rewrite a terminal or reorder what a reader sees.
const NAME_PATTERN = `^[^${UNSAFE_CHARACTERS}]*[^\\s${UNSAFE_CHARACTERS}][^${UNSAFE_CHARACTERS}]*$`

export const ResourceIdParamsSchema = Type.Object({
  id: Type.Integer({ minimum: 1, maximum: MAX_RESOURCE_ID, description: 'The resource id' }),
})

// Optional, with defaults: a plain GET lists the first page. (Left required, the document would say a client must send
// them, and a validating proxy in front of the server would refuse a GET without them.)
export const ResourceListQuerySchema = Type.Object({
  limit: Type.Optional(Type.Integer({
    minimum: 1,
    maximum: MAX_PAGE_SIZE,
    default: DEFAULT_PAGE_SIZE,
    description: 'Most resources in one page',
  })),
  after: Type.Optional(Type.Integer({
    minimum: 0,
    maximum: MAX_RESOURCE_ID,
    default: 0,
    description: 'Only resources with an id above this (the cursor)',
  })),
})

export const ResourceNameSchema = Type.Object(
  {
    name: Type.String({
      minLength: 1,
      maxLength: MAX_NAME_LENGTH,
      pattern: NAME_PATTERN,
      description: '1 to 255 characters, no control characters or bidirectional marks; surrounding spaces are '
        + 'trimmed. Unique per owner.',
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
export type Owner = Static<typeof OwnerSchema>

export const ResourceSchema = Type.Object(
  { id: Type.Integer(), name: Type.String(), owner: OwnerSchema },
  { additionalProperties: false, description: 'A named resource and its owner' },
)
export type Resource = Static<typeof ResourceSchema>

export const ResourceListSchema = Type.Object(
  {
    resources: Type.Array(ResourceSchema),
    // A type array rather than a union (anyOf) of a string and null: fast-json-stringify serializes it by the value's
    // type, where an anyOf has it run an ajv validation of `next` on every page (and make an ajv at start): 1.1 µs of
    // a 10-item page's 3.5 (measured alone), and about 8 ms of every start (profiled).
    next: Type.Unsafe<string | null>({
      type: ['string', 'null'],
      format: 'uri',
      description: 'The URL of the next page (also in the Link header), or null on the last page',
    }),
  },
  { additionalProperties: false },
)
export type ResourceList = Static<typeof ResourceListSchema>

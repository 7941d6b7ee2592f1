import { Type } from '@sinclair/typebox'

export const GreetingSchema = Type.Object(
  { message: Type.String({ examples: ['Hello alice'] }) },
  { additionalProperties: false, description: 'A greeting' },
)

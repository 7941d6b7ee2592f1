import { Type } from '@sinclair/typebox'

export const GreetingQuerySchema = Type.Object({
  name: Type.Optional(Type.String({ maxLength: 255, description: 'Who to greet; the world when empty or absent' })),
})

export const GreetingSchema = Type.Object(
  { message: Type.String({ examples: ['Hello Bob'] }) },
  { additionalProperties: false, description: 'A greeting' },
)

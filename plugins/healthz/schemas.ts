import { Type } from '@sinclair/typebox'

export const HealthSchema = Type.Object(
  { status: Type.Literal('OK') },
  { additionalProperties: false, description: 'The process answers' },
)

export const ReadinessSchema = Type.Object(
  {
    status: Type.Literal('OK'),
    checks: Type.Array(Type.Object(
      { name: Type.String(), status: Type.Literal('OK') },
      { additionalProperties: false },
    )),
  },
  { additionalProperties: false, description: 'Ready: every check passed' },
)

import { integer, pgTable, text, uniqueIndex, varchar } from 'drizzle-orm/pg-core'

/** The people and clients that own resources, keyed by the token subject that identifies them. */
export const owners = pgTable('owners', {
  id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
  subject: text('subject').notNull().unique(),
  name: text('name').notNull(),
})

export const resources = pgTable(
  'resources',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    ownerId: integer('owner_id')
      .notNull()
      .references(() => owners.id, { onDelete: 'cascade' }),
    name: varchar('name', { length: 255 }).notNull(),
  },
  (table) => [uniqueIndex('resources_owner_id_name_unique').on(table.ownerId, table.name)],
)

import { integer, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core'

/** The people and clients that own resources, keyed by the token subject that identifies them. */
export const owners = sqliteTable('owners', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  subject: text('subject').notNull().unique(),
  name: text('name').notNull(),
})

export const resources = sqliteTable(
  'resources',
  {
    // AUTOINCREMENT so that the id of a deleted resource is never handed out again.
    id: integer('id').primaryKey({ autoIncrement: true }),
    ownerId: integer('owner_id')
      .notNull()
      .references(() => owners.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
  },
  (table) => [uniqueIndex('resources_owner_id_name_unique').on(table.ownerId, table.name)],
)

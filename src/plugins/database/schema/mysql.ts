import { customType, int, mysqlTable, uniqueIndex, varbinary } from 'drizzle-orm/mysql-core'

/**
 * Text compared code point by code point, as SQLite's BINARY and PostgreSQL's deterministic collations compare it:
 * `Name` and `name` differ, and so do `é` composed and decomposed. Spelled out on the column, so that neither the
 * server's nor the database's default character set (latin1, or a case-insensitive utf8mb4 collation) decides.
 * utf8mb4_bin pads with spaces when comparing, so `a` equals `a `: harmless for names, which are trimmed first.
 */
const exactText = customType<{ data: string, config: { length: number } }>({
  dataType: (config) => `varchar(${String(config?.length ?? 255)}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`,
})

/**
 * The people and clients that own resources, keyed by the token subject that identifies them. The subject is bytes:
 * no collation could make `alice ` another owner than `alice` on both MySQL and MariaDB, and an owner row is whose
 * resources a caller may change. 1024 bytes is four times the 255 characters OpenID Connect allows a `sub`.
 */
export const owners = mysqlTable('owners', {
  id: int('id').primaryKey().autoincrement(),
  subject: varbinary('subject', { length: 1024 }).notNull().unique(),
  name: exactText('name', { length: 255 }).notNull(),
})

export const resources = mysqlTable(
  'resources',
  {
    id: int('id').primaryKey().autoincrement(),
    ownerId: int('owner_id')
      .notNull()
      .references(() => owners.id, { onDelete: 'cascade' }),
    name: exactText('name', { length: 255 }).notNull(),
  },
  (table) => [uniqueIndex('resources_owner_id_name_unique').on(table.ownerId, table.name)],
)

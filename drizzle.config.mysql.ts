import { defineConfig } from 'drizzle-kit'

export default defineConfig({
  dialect: 'mysql',
  schema: './src/plugins/database/schema/mysql.ts',
  out: './drizzle/mysql',
})

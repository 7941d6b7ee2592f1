import { defineConfig } from 'drizzle-kit'

export default defineConfig({
  dialect: 'sqlite',
  schema: './src/plugins/database/schema/sqlite.ts',
  out: './drizzle/sqlite',
})

import t from 'tap'
import { describeDatabase, parseDatabaseUrl } from '#src/plugins/database/url.js'

t.test('database URIs', async (t) => {
  const cwd = '/srv/app'
  t.same(parseDatabaseUrl(':memory:', cwd), { dialect: 'sqlite', file: ':memory:' })
  t.same(parseDatabaseUrl('sqlite::memory:', cwd), { dialect: 'sqlite', file: ':memory:' })
  t.same(parseDatabaseUrl('data/x.sqlite', cwd), { dialect: 'sqlite', file: '/srv/app/data/x.sqlite' })
  t.same(parseDatabaseUrl('/var/x.sqlite', cwd), { dialect: 'sqlite', file: '/var/x.sqlite' })
  t.same(parseDatabaseUrl('sqlite:data/x.sqlite', cwd), { dialect: 'sqlite', file: '/srv/app/data/x.sqlite' })
  t.same(parseDatabaseUrl('sqlite:/var/x.sqlite', cwd), { dialect: 'sqlite', file: '/var/x.sqlite' })
  t.same(parseDatabaseUrl('sqlite:///rel.sqlite', cwd), { dialect: 'sqlite', file: '/srv/app/rel.sqlite' }, 'SQLAlchemy relative')
  t.same(parseDatabaseUrl('sqlite:////abs/x.sqlite', cwd), { dialect: 'sqlite', file: '/abs/x.sqlite' }, 'SQLAlchemy absolute')
  t.same(parseDatabaseUrl('SQLite:x.db', cwd), { dialect: 'sqlite', file: '/srv/app/x.db' },
    'scheme is case-insensitive')
  t.same(parseDatabaseUrl('C:\\data\\x.db', cwd).dialect, 'sqlite', 'a drive letter is a path, not a scheme')
  t.same(parseDatabaseUrl('postgres://u:p@db:5432/app', cwd), { dialect: 'postgres', url: 'postgres://u:p@db:5432/app' })
  t.same(parseDatabaseUrl('postgresql://db/app', cwd), { dialect: 'postgres', url: 'postgresql://db/app' })
  t.same(parseDatabaseUrl('postgres:///app?host=/run/postgresql', cwd).dialect, 'postgres', 'socket via host parameter')
  t.same(parseDatabaseUrl('mysql://u:p@db:3306/app', cwd), { dialect: 'mysql', url: 'mysql://u:p@db:3306/app' })
  t.same(parseDatabaseUrl('mariadb://db/app', cwd), { dialect: 'mysql', url: 'mariadb://db/app' }, 'mariadb: too')
  t.same(parseDatabaseUrl('MySQL://[::1]/app', cwd).dialect, 'mysql', 'an IPv6 host')
})

t.test('bad database URIs say what is wrong', async (t) => {
  t.throws(() => parseDatabaseUrl(''), /empty/)
  t.throws(() => parseDatabaseUrl('   '), /empty/)
  t.throws(() => parseDatabaseUrl('oracle://db/app'), /unsupported database URI scheme 'oracle:'/)
  t.throws(() => parseDatabaseUrl('mysql://'), /names no host|malformed/)
  t.throws(() => parseDatabaseUrl('mysql://db'), /names no database/)
  t.throws(() => parseDatabaseUrl('mysql://db/'), /names no database/)
  t.throws(() => parseDatabaseUrl('mysql://db/a/b'), /names no database/)
  t.throws(() => parseDatabaseUrl('mysql://db/app?multipleStatements=true'), /takes no query parameters/)
  t.throws(() => parseDatabaseUrl('mariadb://[bad/app'), /malformed/)
  t.throws(() => parseDatabaseUrl('sqlite://host/x'), /takes no host/)
  t.throws(() => parseDatabaseUrl('sqlite:'), /names no file/)
  t.throws(() => parseDatabaseUrl('postgres://'), /names no host|malformed/)
  t.throws(() => parseDatabaseUrl('postgres://[bad'), /malformed/)
})

t.test('database descriptions never carry the password', async (t) => {
  t.equal(describeDatabase({ dialect: 'sqlite', file: '/x/y.sqlite' }), 'sqlite:/x/y.sqlite')
  const described = describeDatabase({ dialect: 'postgres', url: 'postgres://app:s3cret@db:5432/app?sslmode=require&password=s3cret' })
  t.notMatch(described, /s3cret/)
  t.match(described, /^postgres:\/\/app:\*\*\*@db:5432\/app\?/)
  t.equal(describeDatabase({ dialect: 'mysql', url: 'mariadb://app:s3cret@db:3306/app' }), 'mariadb://app:***@db:3306/app')
})

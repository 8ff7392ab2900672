// `npm run migrate` (server/migrate-main.ts), the migrate role, as a real
// child process: against SQLite in a data directory and against a real
// PostgreSQL, where several at once apply each migration once (advisory
// lock). It prints the schema version, never the database URL, and exits 1
// with the reason when it cannot migrate.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import pg from 'pg';

import { MIGRATIONS as PG_MIGRATIONS } from '../prompts/store/postgres/db.ts';
import { MIGRATIONS as SQLITE_MIGRATIONS } from '../prompts/store/sqlite/db.ts';
import { startCluster, type PgCluster } from './postgres-cluster.ts';
import { tempDir } from './store-helpers.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };

interface Run { code: number; stdout: string; stderr: string }

/** Runs what `npm run migrate` runs (the script's node command), with this environment on top of a clean one. */
function migrate(env: Record<string, string>): Promise<Run> {
  const [node, ...args] = pkg.scripts['migrate']!.split(/\s+/);
  assert.equal(node, 'node');
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SOFTSERVE_')));
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: ROOT, env: { ...clean, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

describe('npm run migrate: SQLite', () => {
  const dir = tempDir('migrate');
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('creates and migrates the database in the data directory, prints the version, exits 0; again: nothing to do', async () => {
    for (let i = 0; i < 2; i++) {
      const r = await migrate({ SOFTSERVE_DATA_DIR: dir });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`SQLite in .* is at schema version ${SQLITE_MIGRATIONS.length} \\(this build's latest: ${SQLITE_MIGRATIONS.length}\\)`));
    }
    const db = new Database(join(dir, 'softserve.db'), { readonly: true });
    try {
      assert.equal(db.pragma('user_version', { simple: true }), SQLITE_MIGRATIONS.length);
    } finally {
      db.close();
    }
  });
});

describe('npm run migrate: PostgreSQL', () => {
  let cluster: PgCluster | undefined;
  before(async () => {
    cluster = await startCluster();
  }, { timeout: 180_000 });
  after(async () => {
    await cluster?.stop();
  });

  it('three at once: each migration applied once, every one prints the version and exits 0, no password printed', async () => {
    const url = await cluster!.createDatabase();
    const password = new URL(url).password;
    const runs = await Promise.all([0, 1, 2].map(() => migrate({ SOFTSERVE_DATABASE_URL: url })));
    for (const r of runs) {
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`PostgreSQL \\(SOFTSERVE_DATABASE_URL\\) is at schema version ${PG_MIGRATIONS.length} \\(this build's latest: ${PG_MIGRATIONS.length}\\)`));
      assert.ok(!(r.stdout + r.stderr).includes(password), 'the database password was printed');
    }
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const applied = await client.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
      assert.deepEqual(applied.rows.map((r) => r.version), PG_MIGRATIONS.map((m) => m.version));
      // A database migrated by a newer build is refused, not touched.
      await client.query("INSERT INTO schema_migrations (version, description) VALUES ($1, 'from a newer build')", [PG_MIGRATIONS.length + 1]);
    } finally {
      await client.end();
    }
    const refused = await migrate({ SOFTSERVE_DATABASE_URL: url });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, new RegExp(`^softserve: migrate failed: database schema version ${PG_MIGRATIONS.length + 1} is newer than this build knows \\(${PG_MIGRATIONS.length}\\)`));
    assert.equal(refused.stdout, '');
  });

  it('a database it cannot reach: exit 1 with the reason, the URL not echoed', async () => {
    const url = cluster!.url('no_such_database');
    const r = await migrate({ SOFTSERVE_DATABASE_URL: url });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^softserve: migrate failed: .*no_such_database/);
    assert.ok(!r.stderr.includes(new URL(url).password));
  });
});

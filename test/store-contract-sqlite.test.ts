// The store contract (store-contract.ts) on the SQLite store, each test in a
// fresh temporary data directory; and the SQLite-only promise that older
// databases upgrade.

import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';

import { MIGRATIONS, migrate, schemaVersion } from '../prompts/store/sqlite/db.ts';
import { SqliteStore } from '../prompts/store/sqlite/index.ts';
import { storeContract } from './store-contract.ts';
import { tempDir } from './store-helpers.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

storeContract('sqlite', async () => {
  const dir = tempDir('store-contract');
  dirs.push(dir);
  return SqliteStore.open({ dataDir: dir });
});

// Databases made before the jobs table joined the migrations (schema version
// 4; the table created, or not, by the old server/training/jobs-db.ts) open
// and upgrade to the same schema, their rows kept.
describe('sqlite: upgrading a version-4 database', () => {
  const OLD_JOBS_TABLE = `CREATE TABLE training_jobs (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE, task_name TEXT NOT NULL,
    task_created_at TEXT NOT NULL, prompt_name TEXT NOT NULL, ensemble_name TEXT,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    options TEXT NOT NULL, examples TEXT NOT NULL, validation TEXT, num_examples INTEGER NOT NULL, progress TEXT,
    history TEXT NOT NULL DEFAULT '[]', result TEXT, error TEXT, cancel_requested INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0, events TEXT NOT NULL DEFAULT '[]', created_at TEXT NOT NULL,
    started_at TEXT, finished_at TEXT, updated_at TEXT NOT NULL) STRICT`;

  function version4(withJobs: boolean): string {
    const dir = tempDir('store-upgrade');
    dirs.push(dir);
    const db = new Database(join(dir, 'softserve.db'));
    migrate(db, MIGRATIONS.slice(0, 4));
    db.exec(`INSERT INTO tenants VALUES ('ten_1', 'acme', '2026-01-01T00:00:00.000Z');
      INSERT INTO tasks (tenant_id, name, labels, template, scoring, created_at) VALUES ('ten_1', 'sentiment', '["n","p"]', '{text}', '{"type":"head","pooling":"last"}', '2026-01-01T00:00:00.000Z');`);
    if (withJobs) {
      db.exec(OLD_JOBS_TABLE);
      db.exec(`INSERT INTO training_jobs (id, tenant_id, task_name, task_created_at, prompt_name, state, options, examples, num_examples, created_at, updated_at)
        VALUES ('job_old', 'ten_1', 'sentiment', '2026-01-01T00:00:00.000Z', 'p', 'queued', '{}', '[]', 2, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')`);
    }
    db.close();
    return dir;
  }

  for (const withJobs of [true, false]) {
    it(`upgrades one ${withJobs ? 'with an old jobs table and a job in it' : 'without a jobs table'}`, async () => {
      const s = SqliteStore.open({ dataDir: version4(withJobs) });
      try {
        assert.equal(schemaVersion(s.db), MIGRATIONS.length);
        const columns = (s.db.prepare('PRAGMA table_info(training_jobs)').all() as Array<{ name: string }>).map((c) => c.name);
        for (const c of ['task_deleted_at', 'train_ms', 'memory']) assert.ok(columns.includes(c), c);
        if (!withJobs) await s.jobs.insert({ id: 'job_old', tenant_id: 'ten_1', task_name: 'sentiment', task_created_at: '2026-01-01T00:00:00.000Z', prompt_name: 'p', ensemble_name: null, state: 'queued', options: '{}', examples: '[]', validation: null, num_examples: 2, created_at: '2026-01-01T00:00:00.000Z' });
        assert.deepEqual([(await s.jobs.get('job_old'))?.state, (await s.jobs.get('job_old'))?.train_ms], ['queued', 0]);
        await s.tasks.delete('ten_1', 'sentiment');
        assert.equal(await s.jobs.taskDeleted('job_old'), true, 'the trigger binds the job to its task');
      } finally {
        await s.close();
      }
    });
  }
});

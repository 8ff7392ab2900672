// The SQLite store's database: tenants, API keys (hashed), admin keys, tenant
// quotas, tasks, prompt versions, ensembles and training jobs, in one file
// opened through better-sqlite3. Tensors live beside it in content-addressed
// files (tensor-files.ts); a prompt_versions row names its file by hash and is
// only ever inserted after that file is durable.
//
// Schema changes are migrations appended to MIGRATIONS (never edit a shipped
// one); PRAGMA user_version records how many have run. Each runs in its own
// transaction, so a crash mid-migration leaves the previous version intact.

import Database from 'better-sqlite3';

export type Db = Database.Database;

export interface Migration {
  /** 1-based, contiguous. */
  version: number;
  description: string;
  sql: string;
  /** Steps SQL alone cannot say (columns added only where missing); runs in the same transaction, after `sql`. */
  up?: (db: Db) => void;
}

// The training jobs table was first created outside these migrations (CREATE
// TABLE IF NOT EXISTS at every start, columns added where missing), so a
// database at version 4 may or may not have it, with or without the later
// columns: migration 5 brings either to the same schema.
const JOBS_ADDED_COLUMNS: Array<[string, string]> = [
  ['task_deleted_at', 'TEXT'],
  ['train_ms', 'INTEGER NOT NULL DEFAULT 0'],
  ['memory', 'TEXT'],
];

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    description: 'tenants, api keys, tasks, prompts, prompt versions, ensembles',
    sql: `
      CREATE TABLE tenants (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        created_at  TEXT NOT NULL
      ) STRICT;

      CREATE TABLE api_keys (
        id          TEXT PRIMARY KEY,
        tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        key_hash    TEXT NOT NULL UNIQUE,
        prefix      TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        revoked_at  TEXT
      ) STRICT;
      CREATE INDEX api_keys_tenant ON api_keys(tenant_id);

      CREATE TABLE tasks (
        id          INTEGER PRIMARY KEY,
        tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        labels      TEXT NOT NULL,  -- JSON array of label names, in class order
        template    TEXT NOT NULL,
        scoring     TEXT NOT NULL,  -- JSON: {type:'verbalizer',label_words} | {type:'head',pooling}
        created_at  TEXT NOT NULL,
        UNIQUE (tenant_id, name)
      ) STRICT;

      CREATE TABLE prompts (
        id            INTEGER PRIMARY KEY,
        task_id       INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
        name          TEXT NOT NULL,
        next_version  INTEGER NOT NULL DEFAULT 1,
        created_at    TEXT NOT NULL,
        UNIQUE (task_id, name)
      ) STRICT;

      CREATE TABLE prompt_versions (
        id                  INTEGER PRIMARY KEY,
        prompt_id           INTEGER NOT NULL REFERENCES prompts(id) ON DELETE CASCADE,
        version             INTEGER NOT NULL,
        kind                TEXT NOT NULL CHECK (kind IN ('soft', 'ptuning', 'prefix')),
        num_virtual_tokens  INTEGER NOT NULL,
        has_head            INTEGER NOT NULL,
        tensor_hash         TEXT NOT NULL,
        tensor_bytes        INTEGER NOT NULL,
        model_dims          TEXT NOT NULL,  -- JSON: the model dimensions it was validated against
        source              TEXT NOT NULL,  -- 'peft' | 'json' | 'training'
        source_dtype        TEXT,
        peft_config         TEXT,           -- the uploaded adapter_config.json, for export
        created_at          TEXT NOT NULL,
        UNIQUE (prompt_id, version)
      ) STRICT;
      CREATE INDEX prompt_versions_hash ON prompt_versions(tensor_hash);

      CREATE TABLE ensembles (
        id          INTEGER PRIMARY KEY,
        task_id     INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        UNIQUE (task_id, name)
      ) STRICT;

      CREATE TABLE ensemble_members (
        ensemble_id  INTEGER NOT NULL REFERENCES ensembles(id) ON DELETE CASCADE,
        position     INTEGER NOT NULL,
        prompt_name  TEXT NOT NULL,
        version      INTEGER,  -- NULL: the prompt's latest version at request time
        PRIMARY KEY (ensemble_id, position)
      ) STRICT;
    `,
  },
  {
    version: 2,
    description: 'admin keys made by the server on first run (hashes only; see prompts/admin-keys.ts)',
    sql: `
      CREATE TABLE admin_keys (
        id          TEXT PRIMARY KEY,
        key_hash    TEXT NOT NULL UNIQUE,
        prefix      TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        revoked_at  TEXT
      ) STRICT;
    `,
  },
  {
    version: 3,
    description: 'per-tenant admission weight and limits (server/tenant-quotas.ts)',
    sql: `
      CREATE TABLE tenant_quotas (
        tenant_id   TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
        weight      REAL NOT NULL DEFAULT 1 CHECK (weight > 0),
        limits      TEXT NOT NULL DEFAULT '{}',  -- JSON: {maxConcurrency?, maxRows?, maxTokens?}
        updated_at  TEXT NOT NULL
      ) STRICT;
    `,
  },
  {
    version: 4,
    description: 'prompt version provenance (training method, held-out accuracy, teacher, init); an ensemble\'s vote mode',
    sql: `
      ALTER TABLE prompt_versions ADD COLUMN provenance TEXT;  -- JSON, or NULL (uploads)
      ALTER TABLE ensembles ADD COLUMN vote TEXT;              -- 'majority' | 'mean_probability' | 'weighted', or NULL (majority)
    `,
  },
  {
    version: 5,
    description: 'training jobs (the table server/training/jobs-db.ts used to create outside the migrations); a job is bound to its task row',
    sql: `
      CREATE TABLE IF NOT EXISTS training_jobs (
        id                TEXT PRIMARY KEY,
        tenant_id         TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        task_name         TEXT NOT NULL,
        task_created_at   TEXT NOT NULL,  -- the task as it was at submit (a re-created task is another task)
        prompt_name       TEXT NOT NULL,
        ensemble_name     TEXT,
        state             TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
        options           TEXT NOT NULL,  -- JSON, the API's snake_case options after defaults
        examples          TEXT NOT NULL,  -- JSON [[text, label index], ...]
        validation        TEXT,           -- JSON, same form, or NULL (held out from examples)
        num_examples      INTEGER NOT NULL,
        progress          TEXT,           -- JSON: the latest progress report
        history           TEXT NOT NULL DEFAULT '[]',  -- JSON: held-out evaluations
        result            TEXT,           -- JSON: published prompt versions and ensemble
        error             TEXT,           -- JSON {code, message}
        cancel_requested  INTEGER NOT NULL DEFAULT 0,
        attempts          INTEGER NOT NULL DEFAULT 0,
        events            TEXT NOT NULL DEFAULT '[]',  -- JSON: lifecycle notes (restarts, cancel)
        created_at        TEXT NOT NULL,
        started_at        TEXT,
        finished_at       TEXT,
        updated_at        TEXT NOT NULL
      ) STRICT;
      CREATE INDEX IF NOT EXISTS training_jobs_tenant ON training_jobs(tenant_id, created_at);
      CREATE INDEX IF NOT EXISTS training_jobs_state ON training_jobs(state, created_at);
    `,
    up: (db) => {
      const have = new Set((db.prepare('PRAGMA table_info(training_jobs)').all() as Array<{ name: string }>).map((c) => c.name));
      for (const [name, type] of JOBS_ADDED_COLUMNS) if (!have.has(name)) db.exec(`ALTER TABLE training_jobs ADD COLUMN ${name} ${type}`);
      // Deleting a task marks its unfinished jobs in the same transaction, so a
      // task re-created under the same name (even one reusing the row id) is
      // never mistaken for it.
      db.exec(`
        CREATE TRIGGER IF NOT EXISTS training_jobs_task_deleted AFTER DELETE ON tasks
        BEGIN
          UPDATE training_jobs SET task_deleted_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
          WHERE tenant_id = OLD.tenant_id AND task_name = OLD.name AND task_deleted_at IS NULL
            AND state IN ('queued', 'running');
        END;`);
    },
  },
  {
    version: 6,
    description: 'training job leases: the runner that claimed a running job (a token per claim) and until when its claim holds unless renewed',
    sql: `
      ALTER TABLE training_jobs ADD COLUMN lease_owner TEXT;       -- "<runner>/<claim nonce>", NULL unless running
      ALTER TABLE training_jobs ADD COLUMN lease_expires_at TEXT;  -- ISO time; past it another runner may take the job
    `,
  },
];

export interface OpenDbOptions {
  readonly?: boolean;
}

/**
 * Opens (creating if needed) the database file and brings its schema up to
 * date. WAL journal, synchronous=FULL (a committed transaction survives power
 * loss, not only a killed process), foreign keys on.
 */
export function openDb(file: string, opts: OpenDbOptions = {}): Db {
  const db = new Database(file, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false });
  if (!opts.readonly) {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
  }
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  if (!opts.readonly) migrate(db);
  return db;
}

export function schemaVersion(db: Db): number {
  return db.pragma('user_version', { simple: true }) as number;
}

export function migrate(db: Db, migrations: Migration[] = MIGRATIONS): void {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration ${i} has version ${m.version}; versions must be 1..n in order`);
  });
  const current = schemaVersion(db);
  if (current > migrations.length) {
    throw new Error(`database schema version ${current} is newer than this build knows (${migrations.length})`);
  }
  for (const m of migrations.slice(current)) {
    db.transaction(() => {
      db.exec(m.sql);
      m.up?.(db);
      db.pragma(`user_version = ${m.version}`);
    }).immediate();
  }
}

// The metadata database: tenants, API keys (hashed), tasks, prompt versions and
// ensembles, in one SQLite file opened through better-sqlite3. Tensors live
// beside it in content-addressed files (tensor-files.ts); a prompt_versions row
// names its file by hash and is only ever inserted after that file is durable.
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
}

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
      db.pragma(`user_version = ${m.version}`);
    }).immediate();
  }
}

// The PostgreSQL store's schema and connection: one pg Pool, versioned
// migrations, transactions.
//
// Schema changes are migrations appended to MIGRATIONS (never edit a shipped
// one); the table schema_migrations records which have run. They are applied
// at open under a session-level advisory lock, so replicas starting together
// do not race: the first applies them, the others wait and then find nothing
// to do. Each migration runs in its own transaction.
//
// Tensors live in the database (table tensors, keyed by the sha256 of their
// bytes), so replicas need no shared disk. prompt_versions.tensor_hash is a
// foreign key: a version row can never name a tensor that is absent.
//
// Text that is compared or ordered (names, ids, ISO timestamps) is COLLATE
// "C": byte order, the same order SQLite gives, whatever the database's locale.

import pg from 'pg';

import { SoftserveError } from '../../../kernels/errors.ts';
import { CATALOG_NOTIFY_SQL } from './notify-triggers.ts';

export type Queryable = pg.Pool | pg.PoolClient;

/** Longest wait for a new connection: a database that is down or unreachable fails fast, not after the OS's TCP timeout. */
export const CONNECT_TIMEOUT_MS = 5_000;
/** Longest any one statement may run on the server (SET statement_timeout on every pooled connection). */
export const STATEMENT_TIMEOUT_MS = 30_000;

/** Pool settings: bounded connects and statements, TCP keepalive so a silently dead peer is noticed. */
export function poolConfig(url: string, max: number): pg.PoolConfig {
  return {
    connectionString: url, max, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, statement_timeout: STATEMENT_TIMEOUT_MS,
    keepAlive: true, keepAliveInitialDelayMillis: 10_000,
  };
}

export interface Migration {
  /** 1-based, contiguous. */
  version: number;
  description: string;
  sql: string;
}

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    description: 'tenants, keys, admin keys, quotas, tasks, tensors, prompts, prompt versions, ensembles, training jobs',
    sql: `
      CREATE TABLE tenants (
        id          TEXT COLLATE "C" PRIMARY KEY,
        name        TEXT COLLATE "C" NOT NULL UNIQUE,
        created_at  TEXT COLLATE "C" NOT NULL
      );

      CREATE TABLE api_keys (
        id          TEXT COLLATE "C" PRIMARY KEY,
        tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        key_hash    TEXT COLLATE "C" NOT NULL UNIQUE,
        prefix      TEXT NOT NULL,
        created_at  TEXT COLLATE "C" NOT NULL,
        revoked_at  TEXT COLLATE "C"
      );
      CREATE INDEX api_keys_tenant ON api_keys(tenant_id);

      CREATE TABLE admin_keys (
        id          TEXT COLLATE "C" PRIMARY KEY,
        key_hash    TEXT COLLATE "C" NOT NULL UNIQUE,
        prefix      TEXT NOT NULL,
        created_at  TEXT COLLATE "C" NOT NULL,
        revoked_at  TEXT COLLATE "C"
      );

      CREATE TABLE tenant_quotas (
        tenant_id   TEXT COLLATE "C" PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
        weight      DOUBLE PRECISION NOT NULL DEFAULT 1 CHECK (weight > 0),
        limits      TEXT NOT NULL DEFAULT '{}',  -- JSON: {maxConcurrency?, maxRows?, maxTokens?}
        updated_at  TEXT NOT NULL
      );

      CREATE TABLE tasks (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        name        TEXT COLLATE "C" NOT NULL,
        labels      TEXT NOT NULL,  -- JSON array of label names, in class order
        template    TEXT NOT NULL,
        scoring     TEXT NOT NULL,  -- JSON: {type:'verbalizer',label_words} | {type:'head',pooling}
        created_at  TEXT COLLATE "C" NOT NULL,
        UNIQUE (tenant_id, name)
      );

      -- Prompt tensors, content-addressed: the key is the sha256 of the bytes,
      -- checked again on every read.
      CREATE TABLE tensors (
        hash        TEXT COLLATE "C" PRIMARY KEY CHECK (hash ~ '^[0-9a-f]{64}$'),
        bytes       BYTEA NOT NULL,
        created_at  TEXT NOT NULL
      );

      CREATE TABLE prompts (
        id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        task_id       BIGINT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
        name          TEXT COLLATE "C" NOT NULL,
        next_version  INTEGER NOT NULL DEFAULT 1,  -- version numbers are never reused
        created_at    TEXT COLLATE "C" NOT NULL,
        UNIQUE (task_id, name)
      );

      CREATE TABLE prompt_versions (
        id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        prompt_id           BIGINT NOT NULL REFERENCES prompts(id) ON DELETE CASCADE,
        version             INTEGER NOT NULL,
        kind                TEXT NOT NULL CHECK (kind IN ('soft', 'ptuning', 'prefix')),
        num_virtual_tokens  INTEGER NOT NULL,
        has_head            BOOLEAN NOT NULL,
        tensor_hash         TEXT COLLATE "C" NOT NULL REFERENCES tensors(hash),
        tensor_bytes        INTEGER NOT NULL,
        model_dims          TEXT NOT NULL,  -- JSON: the model dimensions it was validated against
        source              TEXT NOT NULL,  -- 'peft' | 'json' | 'training'
        source_dtype        TEXT,
        peft_config         TEXT,           -- the uploaded adapter_config.json, for export
        provenance          TEXT,           -- JSON, or NULL (uploads)
        created_at          TEXT COLLATE "C" NOT NULL,
        UNIQUE (prompt_id, version)
      );
      CREATE INDEX prompt_versions_hash ON prompt_versions(tensor_hash);

      CREATE TABLE ensembles (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        task_id     BIGINT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
        name        TEXT COLLATE "C" NOT NULL,
        vote        TEXT,  -- 'majority' | 'mean_probability' | 'weighted', or NULL (majority)
        created_at  TEXT COLLATE "C" NOT NULL,
        UNIQUE (task_id, name)
      );

      CREATE TABLE ensemble_members (
        ensemble_id  BIGINT NOT NULL REFERENCES ensembles(id) ON DELETE CASCADE,
        position     INTEGER NOT NULL,
        prompt_name  TEXT COLLATE "C" NOT NULL,
        version      INTEGER,  -- NULL: the prompt's latest version at request time
        PRIMARY KEY (ensemble_id, position)
      );

      CREATE TABLE training_jobs (
        id                TEXT COLLATE "C" PRIMARY KEY,
        tenant_id         TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        task_name         TEXT COLLATE "C" NOT NULL,
        task_created_at   TEXT NOT NULL,  -- the task as it was at submit (a re-created task is another task)
        prompt_name       TEXT NOT NULL,
        ensemble_name     TEXT,
        state             TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
        options           TEXT NOT NULL,  -- JSON, the API's snake_case options after defaults
        examples          TEXT NOT NULL,  -- JSON [[text, label index], ...]
        validation        TEXT,           -- JSON, same form, or NULL (held out from examples)
        num_examples      INTEGER NOT NULL,
        progress          TEXT,
        history           TEXT NOT NULL DEFAULT '[]',
        result            TEXT,
        error             TEXT,
        cancel_requested  INTEGER NOT NULL DEFAULT 0,
        attempts          INTEGER NOT NULL DEFAULT 0,
        events            TEXT NOT NULL DEFAULT '[]',
        created_at        TEXT COLLATE "C" NOT NULL,
        started_at        TEXT COLLATE "C",
        finished_at       TEXT COLLATE "C",
        updated_at        TEXT COLLATE "C" NOT NULL,
        task_deleted_at   TEXT,  -- set with the task's deletion: never publish into a task re-created later
        train_ms          BIGINT NOT NULL DEFAULT 0,
        memory            TEXT
      );
      CREATE INDEX training_jobs_tenant ON training_jobs(tenant_id, created_at);
      CREATE INDEX training_jobs_state ON training_jobs(state, created_at);
    `,
  },
  {
    version: 2,
    description: 'training job leases: the runner that claimed a running job (a token per claim) and until when its claim holds unless renewed',
    sql: `
      ALTER TABLE training_jobs ADD COLUMN lease_owner TEXT;               -- "<runner>/<claim nonce>", NULL unless running
      ALTER TABLE training_jobs ADD COLUMN lease_expires_at TIMESTAMPTZ;  -- the database's clock: trainers on other machines agree on it
    `,
  },
  {
    version: 3,
    description: 'catalog change notifications (NOTIFY softserve_catalog) from triggers',
    sql: CATALOG_NOTIFY_SQL,
  },
];

/** The advisory lock key the migrations run under (any constant; this one spells "softserv"). */
const MIGRATION_LOCK = 0x736f667473657276n;

export async function schemaVersion(db: Queryable): Promise<number> {
  const r = await db.query<{ v: number | null }>(`SELECT MAX(version)::int AS v FROM schema_migrations`);
  return r.rows[0]?.v ?? 0;
}

/**
 * Brings the schema up to date. Holds the advisory lock on one connection
 * for the whole run; the lock is released in every case (and by PostgreSQL
 * itself should this process die holding it).
 */
export async function migrate(pool: pg.Pool, migrations: Migration[] = MIGRATIONS): Promise<void> {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration ${i} has version ${m.version}; versions must be 1..n in order`);
  });
  const client = await pool.connect();
  try {
    // Waiting for another process's migrations (and a long migration) is not a stuck statement.
    await client.query('SET statement_timeout = 0');
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK.toString()]);
    try {
      await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`);
      const current = await schemaVersion(client);
      if (current > migrations.length) {
        throw new Error(`database schema version ${current} is newer than this build knows (${migrations.length})`);
      }
      for (const m of migrations.slice(current)) {
        await client.query('BEGIN');
        try {
          await client.query(m.sql);
          await client.query('INSERT INTO schema_migrations (version, description) VALUES ($1, $2)', [m.version, m.description]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK');
          throw err;
        }
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK.toString()]);
      await client.query('RESET statement_timeout');
    }
  } finally {
    client.release();
  }
}

/** A PostgreSQL error's SQLSTATE (23505 unique violation, 23503 foreign key violation), if it is one. */
export function sqlState(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err && typeof (err as { code: unknown }).code === 'string' && !(err instanceof SoftserveError)
    ? (err as { code: string }).code
    : undefined;
}

export const UNIQUE_VIOLATION = '23505';
export const FOREIGN_KEY_VIOLATION = '23503';
export const SERIALIZATION_FAILURE = '40001';
export const DEADLOCK_DETECTED = '40P01';

/**
 * Runs `fn` in one transaction on one pooled connection: COMMIT when it
 * resolves, ROLLBACK when it throws (nothing half-written). Read committed;
 * the callers lock the rows they depend on (FOR UPDATE / FOR KEY SHARE).
 */
export async function inTransaction<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    let result: T;
    try {
      result = await fn(client);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    }
    return result;
  } finally {
    client.release();
  }
}

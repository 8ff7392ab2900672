// Which backend the configuration asks for: PostgreSQL when a database URL is
// set (SOFTSERVE_DATABASE_URL), otherwise SQLite in the data directory (the
// default: `npm start` needs nothing else). Composition only; the backends
// live in ./sqlite/ and ./postgres/.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import type { Store } from './index.ts';
import type { StoreLogger } from './sqlite/context.ts';
import { SqliteStore } from './sqlite/index.ts';

export interface BackendConfig {
  dataDir: string;
  databaseUrl: string | null;
  logger?: StoreLogger;
}

export async function openBackend(c: BackendConfig): Promise<Store> {
  const logger = c.logger ? { logger: c.logger } : {};
  if (c.databaseUrl) {
    // Loaded only when asked for: a SQLite deployment never loads the PostgreSQL client.
    const { PostgresStore } = await import('./postgres/index.ts');
    return PostgresStore.open({ url: c.databaseUrl, ...logger });
  }
  return SqliteStore.open({ dataDir: c.dataDir, ...logger });
}

export interface SchemaState {
  backend: 'postgresql' | 'sqlite';
  /** The schema version the database is at now. */
  version: number;
  /** The newest version this build knows (its last migration). */
  latest: number;
}

/**
 * Brings the configured backend's schema up to date and nothing else (the
 * `migrate` role, server/migrate-main.ts): the same migrations a store applies
 * when it opens, under the same advisory lock on PostgreSQL, without the
 * store's start-up sweep, so it can run while replicas of the previous
 * build serve.
 */
export async function migrateBackend(c: Pick<BackendConfig, 'dataDir' | 'databaseUrl'>): Promise<SchemaState> {
  if (c.databaseUrl) {
    const pg = (await import('pg')).default;
    const { MIGRATIONS, migrate, schemaVersion } = await import('./postgres/db.ts');
    // A database that does not answer fails the run instead of hanging it (the migrations themselves may take long).
    const pool = new pg.Pool({ connectionString: c.databaseUrl, max: 1, connectionTimeoutMillis: 10_000 });
    // A connection that drops while idle must fail the run, not crash it with an unhandled 'error' event.
    pool.on('error', () => {});
    try {
      await migrate(pool);
      return { backend: 'postgresql', version: await schemaVersion(pool), latest: MIGRATIONS.length };
    } finally {
      await pool.end();
    }
  }
  const { MIGRATIONS, openDb, schemaVersion } = await import('./sqlite/db.ts');
  mkdirSync(c.dataDir, { recursive: true });
  const db = openDb(join(c.dataDir, 'softserve.db'));
  try {
    return { backend: 'sqlite', version: schemaVersion(db), latest: MIGRATIONS.length };
  } finally {
    db.close();
  }
}

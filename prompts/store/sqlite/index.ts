// The SQLite store: one database file (softserve.db, migrations in db.ts) and
// a directory of content-addressed tensor files, under one data directory
// owned by one process at a time. Each entity store is its own file; they
// share the handle through SqliteContext. Opening migrates the schema and
// sweeps what an interrupted write left.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import type { Store, SweepReport } from '../index.ts';
import { SqliteContext, type StoreLogger } from './context.ts';
import { openDb, type Db } from './db.ts';
import { SqliteEnsembleStore } from './ensembles.ts';
import { SqliteJobStore } from './jobs.ts';
import { SqliteKeyStore } from './keys.ts';
import { SqlitePromptVersionStore } from './prompt-versions.ts';
import { SqliteQuotaStore } from './quotas.ts';
import { SqliteTaskStore } from './tasks.ts';
import { SqliteTenantStore } from './tenants.ts';
import { TensorFiles } from './tensor-files.ts';

export type { StoreLogger } from './context.ts';

export interface SqliteStoreOptions {
  dataDir: string;
  logger?: StoreLogger;
}

export class SqliteStore implements Store {
  readonly tenants: SqliteTenantStore;
  readonly keys: SqliteKeyStore;
  readonly quotas: SqliteQuotaStore;
  readonly tasks: SqliteTaskStore;
  readonly prompts: SqlitePromptVersionStore;
  readonly ensembles: SqliteEnsembleStore;
  readonly jobs: SqliteJobStore;
  /** The database handle (for tests and maintenance; callers use the entity stores). */
  readonly db: Db;
  readonly files: TensorFiles;
  readonly dataDir: string;
  /** What the sweep at open found and removed. */
  readonly openSweep: SweepReport;
  private closed = false;

  /** Synchronous: opening a local file needs no wait (a network backend's open is async). */
  static open(opts: SqliteStoreOptions): SqliteStore {
    return new SqliteStore(opts);
  }

  private constructor(opts: SqliteStoreOptions) {
    this.dataDir = opts.dataDir;
    mkdirSync(opts.dataDir, { recursive: true });
    this.db = openDb(join(opts.dataDir, 'softserve.db'));
    this.files = new TensorFiles(join(opts.dataDir, 'tensors'));
    const c = new SqliteContext(this.db, this.files, opts.logger);
    this.tenants = new SqliteTenantStore(c);
    this.keys = new SqliteKeyStore(c);
    this.quotas = new SqliteQuotaStore(c);
    this.tasks = new SqliteTaskStore(c);
    this.prompts = new SqlitePromptVersionStore(c);
    this.ensembles = new SqliteEnsembleStore(c);
    this.jobs = new SqliteJobStore(c);
    this.openSweep = this.prompts.sweepSync();
  }

  /** Opens the database file alone (no sweep), e.g. for the CLI's admin key rotation while a server runs. */
  static openKeysOnly(dataDir: string): { keys: SqliteKeyStore; close(): void } {
    const db = openDb(join(dataDir, 'softserve.db'));
    const c = new SqliteContext(db, new TensorFiles(join(dataDir, 'tensors')));
    return { keys: new SqliteKeyStore(c), close: () => db.close() };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}

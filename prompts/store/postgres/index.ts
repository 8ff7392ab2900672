// The PostgreSQL store: every entity store over one database reached through
// a pg Pool, the prompt tensors in the database too (content-addressed), so
// serve processes on several machines need no shared disk. Opening applies
// the migrations (db.ts) under an advisory lock and sweeps tensors an
// interrupted delete left.
//
// Several processes may share one database: triggers (notify-triggers.ts)
// announce every catalog change, and notify.ts's listener invalidates each
// process's caches. A lost database is STORE_UNAVAILABLE (unavailable.ts).

import pg from 'pg';

import type { Store, SweepReport } from '../index.ts';
import { PgContext, type StoreLogger } from './context.ts';
import { migrate, poolConfig } from './db.ts';
import { PgEnsembleStore } from './ensembles.ts';
import { PgJobStore } from './jobs.ts';
import { PgKeyStore } from './keys.ts';
import { PgPromptVersionStore } from './prompt-versions.ts';
import { PgQuotaStore } from './quotas.ts';
import { PgTaskStore } from './tasks.ts';
import { PgTenantStore } from './tenants.ts';
import { mapUnavailable } from './unavailable.ts';

export interface PostgresStoreOptions {
  /** postgres://user:password@host:port/database */
  url: string;
  /** Pool size (default 10). */
  maxConnections?: number;
  logger?: StoreLogger;
}

export class PostgresStore implements Store {
  readonly tenants: PgTenantStore;
  readonly keys: PgKeyStore;
  readonly quotas: PgQuotaStore;
  readonly tasks: PgTaskStore;
  readonly prompts: PgPromptVersionStore;
  readonly ensembles: PgEnsembleStore;
  readonly jobs: PgJobStore;
  readonly pool: pg.Pool;
  /** What the sweep at open found and removed. */
  openSweep: SweepReport = { removedTemps: 0, removedOrphans: 0, missing: [], unknownFiles: [] };
  private closed = false;

  static async open(opts: PostgresStoreOptions): Promise<PostgresStore> {
    const store = new PostgresStore(opts);
    try {
      await migrate(store.pool);
      store.openSweep = await store.prompts.sweep();
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  private constructor(opts: PostgresStoreOptions) {
    this.pool = new pg.Pool(poolConfig(opts.url, opts.maxConnections ?? 10));
    // An idle pooled connection that drops (database restart) must not crash the process: the next query reconnects.
    this.pool.on('error', (err) => opts.logger?.warn({ err: err.message }, 'idle PostgreSQL connection lost'));
    // Nor one lost while checked out (mid-transaction): pg emits 'error' on the client as well as failing
    // its query, and the pool listens only to idle clients. The caller sees the failed query; the pool
    // drops the client when it is released.
    this.pool.on('connect', (client) => { client.on('error', (err) => opts.logger?.warn({ err: err.message }, 'PostgreSQL connection lost while in use')); });
    const c = new PgContext(this.pool, opts.logger);
    this.tenants = mapUnavailable(new PgTenantStore(c));
    this.keys = mapUnavailable(new PgKeyStore(c));
    this.quotas = mapUnavailable(new PgQuotaStore(c));
    this.tasks = mapUnavailable(new PgTaskStore(c));
    this.prompts = mapUnavailable(new PgPromptVersionStore(c));
    this.ensembles = mapUnavailable(new PgEnsembleStore(c));
    this.jobs = mapUnavailable(new PgJobStore(c));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}

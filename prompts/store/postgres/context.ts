// What the PostgreSQL entity stores share: the pool, row lookups that speak
// the store's error codes, and the removal of tensors no version names any
// more (with the listeners that drop decoded copies from caches).

import type pg from 'pg';

import { SoftserveError } from '../../../kernels/errors.ts';
import { VERSION_SELECT, versionNotFound, type SqlTaskRow, type SqlVersionRow, type StoreLogger } from '../sql-rows.ts';
import { FOREIGN_KEY_VIOLATION, inTransaction, sqlState, type Queryable } from './db.ts';

export { hashKey, now, sha256Hex, storedVersionFromRow, taskFromRow, VERSION_SELECT, versionFromRow, type StoreLogger } from '../sql-rows.ts';
/** BIGINT ids come back as strings (pg does not narrow int8); they are only ever passed back as parameters. */
export type TaskRow = SqlTaskRow<string>;
export type VersionRow = SqlVersionRow<string, boolean>;

/** Row lock a lookup takes inside a write: KEY SHARE keeps the row from being deleted until the transaction ends. */
export type Lock = '' | 'FOR KEY SHARE' | 'FOR UPDATE';

export class PgContext {
  private readonly removedListeners: Array<(hash: string) => void> = [];

  constructor(readonly pool: pg.Pool, readonly logger?: StoreLogger) {}

  tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, fn);
  }

  async requireTenant(db: Queryable, tenantId: string, lock: Lock = ''): Promise<void> {
    const r = await db.query(`SELECT 1 FROM tenants WHERE id = $1 ${lock}`, [tenantId]);
    if (r.rowCount === 0) throw new SoftserveError('NOT_FOUND', `no tenant ${JSON.stringify(tenantId)}`);
  }

  async taskRow(db: Queryable, tenantId: string, name: string, lock: Lock = ''): Promise<TaskRow> {
    const r = await db.query<TaskRow>(`SELECT * FROM tasks WHERE tenant_id = $1 AND name = $2 ${lock}`, [tenantId, name]);
    const row = r.rows[0];
    if (!row) throw new SoftserveError('NOT_FOUND', `no task ${JSON.stringify(name)}`);
    return row;
  }

  async versionRow(db: Queryable, tenantId: string, taskName: string, name: string, version?: number | null): Promise<VersionRow> {
    const t = await this.taskRow(db, tenantId, taskName);
    const r = version === undefined || version === null
      ? await db.query<VersionRow>(`${VERSION_SELECT} WHERE p.task_id = $1 AND p.name = $2 ORDER BY v.version DESC LIMIT 1`, [t.id, name])
      : await db.query<VersionRow>(`${VERSION_SELECT} WHERE p.task_id = $1 AND p.name = $2 AND v.version = $3`, [t.id, name, version]);
    const row = r.rows[0];
    if (!row) {
      throw versionNotFound(taskName, name, version);
    }
    return row;
  }

  onTensorRemoved(listener: (hash: string) => void): void {
    this.removedListeners.push(listener);
  }

  /**
   * After the rows naming them were deleted (committed): removes the tensors
   * no version names any more, one statement each. A version inserted
   * meanwhile by another transaction holds a key-share lock on its tensor, so
   * the delete then fails its foreign key check: that tensor is in use and
   * stays. Returns how many were removed.
   */
  async removeIfUnreferenced(hashes: Iterable<string>): Promise<number> {
    let removed = 0;
    for (const h of new Set(hashes)) {
      try {
        const r = await this.pool.query(
          'DELETE FROM tensors t WHERE t.hash = $1 AND NOT EXISTS (SELECT 1 FROM prompt_versions v WHERE v.tensor_hash = t.hash)', [h]);
        if (r.rowCount === 0) continue;
      } catch (err) {
        if (sqlState(err) === FOREIGN_KEY_VIOLATION) continue;
        // The rows are gone; a tensor left behind is removed by the next sweep.
        this.logger?.warn({ hash: h, err: (err as Error).message }, 'could not remove an unreferenced tensor');
        continue;
      }
      removed++;
      for (const l of this.removedListeners) l(h);
    }
    return removed;
  }
}

// What the SQLite entity stores share: one database handle with its prepared
// statements, the tensor files, and the bookkeeping that removes a tensor file
// only when no row and no in-flight read or write uses it.

import type { Statement } from 'better-sqlite3';

import { SoftserveError } from '../../../kernels/errors.ts';
import { VERSION_SELECT, versionNotFound, type SqlTaskRow, type SqlVersionRow, type StoreLogger } from '../sql-rows.ts';
import type { Db } from './db.ts';
import type { TensorFiles } from './tensor-files.ts';

export { hashKey, now, sha256Hex, storedVersionFromRow, taskFromRow, VERSION_SELECT, versionFromRow, type StoreLogger } from '../sql-rows.ts';
export type TaskRow = SqlTaskRow<number>;
export type VersionRow = SqlVersionRow<number, number>;

export class SqliteContext {
  /** Prepared statements by SQL text: preparing costs more than running on the hot paths (auth, resolve). */
  private readonly statements = new Map<string, Statement>();
  /** Hashes in use by an in-flight write or read: their files are not removed. */
  private readonly pins = new Map<string, number>();
  /** Hashes whose removal waits for their last pin to go. */
  private readonly removeWhenUnpinned = new Set<string>();
  private readonly removedListeners: Array<(hash: string) => void> = [];

  constructor(readonly db: Db, readonly files: TensorFiles, readonly logger?: StoreLogger) {}

  sql(source: string): Statement {
    let stmt = this.statements.get(source);
    if (!stmt) {
      stmt = this.db.prepare(source);
      this.statements.set(source, stmt);
    }
    return stmt;
  }

  /** Runs `fn` in one IMMEDIATE transaction (the write lock taken up front: no upgrade deadlocks). */
  tx<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  requireTenant(tenantId: string): void {
    if (!this.sql('SELECT 1 FROM tenants WHERE id = ?').get(tenantId)) throw new SoftserveError('NOT_FOUND', `no tenant ${JSON.stringify(tenantId)}`);
  }

  taskRow(tenantId: string, name: string): TaskRow {
    const r = this.sql('SELECT * FROM tasks WHERE tenant_id = ? AND name = ?').get(tenantId, name) as TaskRow | undefined;
    if (!r) throw new SoftserveError('NOT_FOUND', `no task ${JSON.stringify(name)}`);
    return r;
  }

  versionRow(tenantId: string, taskName: string, name: string, version?: number | null): VersionRow {
    const t = this.taskRow(tenantId, taskName);
    const r = (version === undefined || version === null
      ? this.sql(`${VERSION_SELECT} WHERE p.task_id = ? AND p.name = ? ORDER BY v.version DESC LIMIT 1`).get(t.id, name)
      : this.sql(`${VERSION_SELECT} WHERE p.task_id = ? AND p.name = ? AND v.version = ?`).get(t.id, name, version)) as VersionRow | undefined;
    if (!r) {
      throw versionNotFound(taskName, name, version);
    }
    return r;
  }

  onTensorRemoved(listener: (hash: string) => void): void {
    this.removedListeners.push(listener);
  }

  pin(hash: string): void {
    this.pins.set(hash, (this.pins.get(hash) ?? 0) + 1);
  }

  pinned(hash: string): boolean {
    return this.pins.has(hash);
  }

  unpin(hash: string): void {
    const n = (this.pins.get(hash) ?? 1) - 1;
    if (n > 0) {
      this.pins.set(hash, n);
      return;
    }
    this.pins.delete(hash);
    if (this.removeWhenUnpinned.delete(hash)) this.removeIfUnreferenced([hash]);
  }

  /**
   * After rows went away: removes the files no row names any more. The check
   * and the unlink happen in one synchronous step (see TensorFiles.removeSync).
   */
  removeIfUnreferenced(hashes: Iterable<string>): void {
    const stillUsed = this.sql('SELECT 1 FROM prompt_versions WHERE tensor_hash = ? LIMIT 1');
    for (const h of new Set(hashes)) {
      if (stillUsed.get(h)) continue;
      if (this.pins.has(h)) {
        this.removeWhenUnpinned.add(h);
        continue;
      }
      for (const l of this.removedListeners) l(h);
      try {
        this.files.removeSync(h);
      } catch (err) {
        // The row is gone; a file left behind is swept at the next open.
        this.logger?.warn({ hash: h, err: (err as Error).message }, 'could not remove an unreferenced tensor file');
      }
    }
  }
}

// What the PostgreSQL entity stores share: the pool, row lookups that speak
// the store's error codes, and the removal of tensors no version names any
// more (with the listeners that drop decoded copies from caches).

import { createHash } from 'node:crypto';
import type pg from 'pg';

import { SoftserveError } from '../../../kernels/errors.ts';
import type { ModelDims, PromptKind } from '../../kinds.ts';
import type { PromptSource, PromptVersionInfo, Scoring, StoredPromptVersion, Task } from '../index.ts';
import { FOREIGN_KEY_VIOLATION, inTransaction, sqlState, type Queryable } from './db.ts';

export interface StoreLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** BIGINT ids come back as strings (pg does not narrow int8); they are only ever passed back as parameters. */
export interface TaskRow { id: string; tenant_id: string; name: string; labels: string; template: string; scoring: string; created_at: string }
export interface VersionRow {
  id: string; prompt_id: string; version: number; kind: PromptKind; num_virtual_tokens: number; has_head: boolean;
  tensor_hash: string; tensor_bytes: number; model_dims: string; source: PromptSource; source_dtype: string | null;
  peft_config: string | null; provenance: string | null; created_at: string; prompt_name: string; task_name: string;
}

export const VERSION_SELECT = `
  SELECT v.*, p.name AS prompt_name, t.name AS task_name
  FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id JOIN tasks t ON t.id = p.task_id`;

export function now(): string {
  return new Date().toISOString();
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

export function taskFromRow(r: TaskRow): Task {
  const sc = JSON.parse(r.scoring) as { type: string; label_words?: string[]; pooling?: 'last' | 'mean' };
  const scoring: Scoring = sc.type === 'head' ? { type: 'head', pooling: sc.pooling ?? 'last' } : { type: 'verbalizer', labelWords: sc.label_words ?? [] };
  return { tenantId: r.tenant_id, name: r.name, labels: JSON.parse(r.labels) as string[], template: r.template, scoring, createdAt: r.created_at };
}

export function versionFromRow(r: VersionRow): PromptVersionInfo {
  return {
    task: r.task_name, name: r.prompt_name, version: r.version, kind: r.kind, numVirtualTokens: r.num_virtual_tokens,
    hasHead: r.has_head, tensorHash: r.tensor_hash, tensorBytes: r.tensor_bytes, source: r.source,
    sourceDtype: r.source_dtype, provenance: r.provenance ? JSON.parse(r.provenance) as Record<string, unknown> : null, createdAt: r.created_at,
  };
}

export function storedVersionFromRow(r: VersionRow): StoredPromptVersion {
  return {
    ...versionFromRow(r),
    modelDims: JSON.parse(r.model_dims) as ModelDims,
    peftConfig: r.peft_config ? JSON.parse(r.peft_config) as Record<string, unknown> : null,
  };
}

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
      throw new SoftserveError('NOT_FOUND', version == null
        ? `no prompt ${JSON.stringify(name)} in task ${JSON.stringify(taskName)}`
        : `no version ${version} of prompt ${JSON.stringify(name)} in task ${JSON.stringify(taskName)}`);
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

// Prompt versions in PostgreSQL, their tensors in the tensors table.
//
// A put writes the tensor (keyed by its sha256) and the version row in ONE
// transaction, so a version is whole or absent; the foreign key from
// prompt_versions to tensors means no committed row can name a missing
// tensor. Deleting removes the rows, commits, then removes the tensors no
// version names any more (context.ts); an interrupted removal leaves only an
// unreferenced tensor, which sweep() removes.

import { SoftserveError } from '../../../kernels/errors.ts';
import type { FsckReport, PromptInfo, PromptVersionInfo, PromptVersionStore, PromptVersionWrite, StoredPromptVersion, SweepReport } from '../index.ts';
import { now, sha256Hex, storedVersionFromRow, VERSION_SELECT, type PgContext, type VersionRow } from './context.ts';
import { promptInfos } from '../sql-rows.ts';
import type { Queryable } from './db.ts';

/**
 * Makes the tensor present and locked until the caller's transaction ends:
 * the upsert's row lock keeps a concurrent removal from deleting it before
 * the version row naming it commits.
 */
async function putTensor(db: Queryable, bytes: Uint8Array): Promise<string> {
  const hash = sha256Hex(bytes);
  await db.query(`INSERT INTO tensors (hash, bytes, created_at) VALUES ($1, $2, $3)
    ON CONFLICT (hash) DO UPDATE SET hash = excluded.hash`, [hash, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), now()]);
  return hash;
}

/** Inserts a version and its tensor inside the caller's transaction (also used by JobStore.publish). */
export async function insertVersion(c: PgContext, db: Queryable, tenantId: string, taskName: string, name: string, w: PromptVersionWrite): Promise<PromptVersionInfo> {
  // Locked: the task cannot be deleted before this commits (or is already gone: NOT_FOUND).
  const t = await c.taskRow(db, tenantId, taskName, 'FOR KEY SHARE');
  const hash = await putTensor(db, w.bytes);
  const createdAt = now();
  // One statement makes the prompt or takes its next number, with the prompt row locked: concurrent puts get distinct versions.
  const p = await db.query<{ id: string; version: number }>(`
    INSERT INTO prompts (task_id, name, next_version, created_at) VALUES ($1, $2, 2, $3)
    ON CONFLICT (task_id, name) DO UPDATE SET next_version = prompts.next_version + 1
    RETURNING id, next_version - 1 AS version`, [t.id, name, createdAt]);
  const { id: promptId, version } = p.rows[0]!;
  await db.query(`INSERT INTO prompt_versions
    (prompt_id, version, kind, num_virtual_tokens, has_head, tensor_hash, tensor_bytes, model_dims, source, source_dtype, peft_config, provenance, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`, [
    promptId, version, w.kind, w.numVirtualTokens, w.hasHead, hash, w.bytes.byteLength,
    JSON.stringify(w.modelDims), w.source, w.sourceDtype ?? null,
    w.peftConfig ? JSON.stringify(w.peftConfig) : null, w.provenance ? JSON.stringify(w.provenance) : null, createdAt]);
  return {
    task: taskName, name, version, kind: w.kind, numVirtualTokens: w.numVirtualTokens, hasHead: w.hasHead,
    tensorHash: hash, tensorBytes: w.bytes.byteLength, source: w.source, sourceDtype: w.sourceDtype ?? null,
    provenance: w.provenance ?? null, createdAt,
  };
}

export class PgPromptVersionStore implements PromptVersionStore {
  constructor(private readonly c: PgContext) {}

  async put(tenantId: string, task: string, name: string, write: PromptVersionWrite): Promise<PromptVersionInfo> {
    return this.c.tx((db) => insertVersion(this.c, db, tenantId, task, name, write));
  }

  async list(tenantId: string, task: string): Promise<PromptInfo[]> {
    const t = await this.c.taskRow(this.c.pool, tenantId, task);
    const rows = (await this.c.pool.query<VersionRow>(`${VERSION_SELECT} WHERE p.task_id = $1 ORDER BY p.name, v.version`, [t.id])).rows;
    const created = new Map((await this.c.pool.query<{ name: string; created_at: string }>('SELECT name, created_at FROM prompts WHERE task_id = $1', [t.id])).rows.map((r) => [r.name, r.created_at]));
    return promptInfos(task, rows, created);
  }

  async get(tenantId: string, task: string, name: string, version?: number | null): Promise<StoredPromptVersion> {
    return storedVersionFromRow(await this.c.versionRow(this.c.pool, tenantId, task, name, version));
  }

  private async ensemblesUsing(db: Queryable, taskId: string, name: string, version?: number): Promise<string[]> {
    const r = version === undefined
      ? await db.query<{ name: string }>(`SELECT DISTINCT e.name FROM ensemble_members m JOIN ensembles e ON e.id = m.ensemble_id WHERE e.task_id = $1 AND m.prompt_name = $2 ORDER BY e.name`, [taskId, name])
      : await db.query<{ name: string }>(`SELECT DISTINCT e.name FROM ensemble_members m JOIN ensembles e ON e.id = m.ensemble_id WHERE e.task_id = $1 AND m.prompt_name = $2 AND m.version = $3 ORDER BY e.name`, [taskId, name, version]);
    return r.rows.map((x) => x.name);
  }

  async delete(tenantId: string, task: string, name: string): Promise<void> {
    const hashes = await this.c.tx(async (db) => {
      // The task row locked: no ensemble of it is made or changed while we decide.
      const t = await this.c.taskRow(db, tenantId, task, 'FOR UPDATE');
      const p = (await db.query<{ id: string }>('SELECT id FROM prompts WHERE task_id = $1 AND name = $2 FOR UPDATE', [t.id, name])).rows[0];
      if (!p) throw new SoftserveError('NOT_FOUND', `no prompt ${JSON.stringify(name)} in task ${JSON.stringify(task)}`);
      const users = await this.ensemblesUsing(db, t.id, name);
      if (users.length > 0) throw new SoftserveError('CONFLICT', `prompt ${JSON.stringify(name)} is used by ensemble(s) ${users.join(', ')}; delete them first`, { ensembles: users });
      const hs = await db.query<{ h: string }>('SELECT tensor_hash AS h FROM prompt_versions WHERE prompt_id = $1', [p.id]);
      await db.query('DELETE FROM prompts WHERE id = $1', [p.id]);
      return hs.rows.map((r) => r.h);
    });
    await this.c.removeIfUnreferenced(hashes);
  }

  async deleteVersion(tenantId: string, task: string, name: string, version: number): Promise<void> {
    const hashes = await this.c.tx(async (db) => {
      const t = await this.c.taskRow(db, tenantId, task, 'FOR UPDATE');
      const r = await this.c.versionRow(db, tenantId, task, name, version);
      await db.query('SELECT 1 FROM prompts WHERE id = $1 FOR UPDATE', [r.prompt_id]);
      const pinnedBy = await this.ensemblesUsing(db, t.id, name, version);
      if (pinnedBy.length > 0) throw new SoftserveError('CONFLICT', `version ${version} of ${JSON.stringify(name)} is pinned by ensemble(s) ${pinnedBy.join(', ')}`, { ensembles: pinnedBy });
      const left = (await db.query<{ n: number }>('SELECT COUNT(*)::int AS n FROM prompt_versions WHERE prompt_id = $1', [r.prompt_id])).rows[0]!.n;
      if (left === 1) {
        const users = await this.ensemblesUsing(db, t.id, name);
        if (users.length > 0) throw new SoftserveError('CONFLICT', `version ${version} is the last of ${JSON.stringify(name)}, which ensemble(s) ${users.join(', ')} use`, { ensembles: users });
        await db.query('DELETE FROM prompts WHERE id = $1', [r.prompt_id]);
      } else {
        await db.query('DELETE FROM prompt_versions WHERE id = $1', [r.id]);
      }
      return [r.tensor_hash];
    });
    await this.c.removeIfUnreferenced(hashes);
  }

  /** The bytes as stored, checked against their hash (a mismatch is PROMPT_FILE_CORRUPT, never served). */
  async readTensor(hash: string): Promise<Uint8Array> {
    const r = await this.c.pool.query<{ bytes: Buffer }>('SELECT bytes FROM tensors WHERE hash = $1', [hash]);
    const row = r.rows[0];
    if (!row) throw new SoftserveError('NOT_FOUND', `no tensor ${JSON.stringify(hash)}`, { hash });
    const got = sha256Hex(row.bytes);
    if (got !== hash) throw new SoftserveError('PROMPT_FILE_CORRUPT', `tensor ${hash} hashes to ${got}`, { hash });
    return row.bytes;
  }

  onTensorRemoved(listener: (hash: string) => void): void {
    this.c.onTensorRemoved(listener);
  }

  /** Removes tensors no version names (left by an interrupted delete). Nothing else can be left: a put is one transaction. */
  async sweep(): Promise<SweepReport> {
    const orphans = (await this.c.pool.query<{ hash: string }>(
      'SELECT t.hash FROM tensors t WHERE NOT EXISTS (SELECT 1 FROM prompt_versions v WHERE v.tensor_hash = t.hash)')).rows.map((r) => r.hash);
    const removedOrphans = await this.c.removeIfUnreferenced(orphans);
    if (removedOrphans > 0) this.c.logger?.info({ removedOrphans }, 'swept tensors no prompt version names');
    return { removedTemps: 0, removedOrphans, missing: [], unknownFiles: [] };
  }

  async fsck(check: (bytes: Uint8Array, version: StoredPromptVersion) => void): Promise<FsckReport> {
    const rows = (await this.c.pool.query<VersionRow>(VERSION_SELECT)).rows;
    const stored = new Set((await this.c.pool.query<{ hash: string }>('SELECT hash FROM tensors')).rows.map((r) => r.hash));
    const referenced = new Set(rows.map((r) => r.tensor_hash));
    const missing = [...referenced].filter((h) => !stored.has(h));
    const orphans = [...stored].filter((h) => !referenced.has(h));
    const corrupt = new Set<string>();
    for (const r of rows) {
      if (!stored.has(r.tensor_hash) || corrupt.has(r.tensor_hash)) continue;
      try {
        check(await this.readTensor(r.tensor_hash), storedVersionFromRow(r));
      } catch {
        corrupt.add(r.tensor_hash);
      }
    }
    return { rows: rows.length, files: stored.size, missing, orphans, temps: [], corrupt: [...corrupt] };
  }
}

// Prompt versions in SQLite, their tensors in content-addressed files.
//
// Durability: a version's tensor file is written (fsync, rename, fsync dir)
// *before* the one transaction that inserts its row; deleting removes the row
// first and the file after. A crash at any point leaves each version whole or
// absent, never a row without its file; what it can leave is an unreferenced
// file or a temp file, which the sweep at open removes.

import { SoftserveError } from '../../../kernels/errors.ts';
import type { FsckReport, PromptInfo, PromptVersionInfo, PromptVersionStore, PromptVersionWrite, StoredPromptVersion, SweepReport } from '../index.ts';
import { now, storedVersionFromRow, VERSION_SELECT, type SqliteContext, type VersionRow } from './context.ts';
import { promptInfos } from '../sql-rows.ts';
import { sha256Hex } from './tensor-files.ts';

/** Inserts a version row for an already durable tensor (inside the caller's transaction). */
export function insertVersion(c: SqliteContext, tenantId: string, taskName: string, name: string, w: PromptVersionWrite, hash: string): PromptVersionInfo {
  // The task may have gone while the file was written.
  const t = c.taskRow(tenantId, taskName);
  const createdAt = now();
  let prompt = c.sql('SELECT id, next_version FROM prompts WHERE task_id = ? AND name = ?').get(t.id, name) as { id: number; next_version: number } | undefined;
  if (!prompt) {
    const res = c.sql('INSERT INTO prompts (task_id, name, next_version, created_at) VALUES (?, ?, 1, ?)').run(t.id, name, createdAt);
    prompt = { id: Number(res.lastInsertRowid), next_version: 1 };
  }
  const version = prompt.next_version;
  c.sql(`INSERT INTO prompt_versions
    (prompt_id, version, kind, num_virtual_tokens, has_head, tensor_hash, tensor_bytes, model_dims, source, source_dtype, peft_config, provenance, created_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
    prompt.id, version, w.kind, w.numVirtualTokens, w.hasHead ? 1 : 0, hash, w.bytes.byteLength,
    JSON.stringify(w.modelDims), w.source, w.sourceDtype ?? null,
    w.peftConfig ? JSON.stringify(w.peftConfig) : null, w.provenance ? JSON.stringify(w.provenance) : null, createdAt);
  c.sql('UPDATE prompts SET next_version = ? WHERE id = ?').run(version + 1, prompt.id);
  return {
    task: taskName, name, version, kind: w.kind, numVirtualTokens: w.numVirtualTokens, hasHead: w.hasHead,
    tensorHash: hash, tensorBytes: w.bytes.byteLength, source: w.source, sourceDtype: w.sourceDtype ?? null,
    provenance: w.provenance ?? null, createdAt,
  };
}

/**
 * Writes the tensors durably, then runs `commit` (one transaction) with their
 * hashes pinned so no concurrent delete removes a file about to be named. A
 * failed commit leaves files no row names: removed at once.
 */
export async function withDurableTensors<T>(c: SqliteContext, writes: PromptVersionWrite[], commit: (hashes: string[]) => T): Promise<T> {
  const hashes = writes.map((w) => sha256Hex(w.bytes));
  hashes.forEach((h) => c.pin(h));
  try {
    for (const w of writes) await c.files.write(w.bytes);
    return c.tx(() => commit(hashes));
  } finally {
    hashes.forEach((h) => c.unpin(h));
    c.removeIfUnreferenced(hashes);
  }
}

export class SqlitePromptVersionStore implements PromptVersionStore {
  constructor(private readonly c: SqliteContext) {}

  async put(tenantId: string, task: string, name: string, write: PromptVersionWrite): Promise<PromptVersionInfo> {
    this.c.taskRow(tenantId, task);
    return withDurableTensors(this.c, [write], ([hash]) => insertVersion(this.c, tenantId, task, name, write, hash!));
  }

  async list(tenantId: string, task: string): Promise<PromptInfo[]> {
    const t = this.c.taskRow(tenantId, task);
    const rows = this.c.sql(`${VERSION_SELECT} WHERE p.task_id = ? ORDER BY p.name, v.version`).all(t.id) as VersionRow[];
    const created = new Map((this.c.sql('SELECT name, created_at FROM prompts WHERE task_id = ?').all(t.id) as Array<{ name: string; created_at: string }>).map((r) => [r.name, r.created_at]));
    return promptInfos(task, rows, created);
  }

  async get(tenantId: string, task: string, name: string, version?: number | null): Promise<StoredPromptVersion> {
    return storedVersionFromRow(this.c.versionRow(tenantId, task, name, version));
  }

  private ensemblesUsing(taskId: number, name: string, version?: number): string[] {
    const rows = (version === undefined
      ? this.c.sql(`SELECT DISTINCT e.name FROM ensemble_members m JOIN ensembles e ON e.id = m.ensemble_id WHERE e.task_id = ? AND m.prompt_name = ?`).all(taskId, name)
      : this.c.sql(`SELECT DISTINCT e.name FROM ensemble_members m JOIN ensembles e ON e.id = m.ensemble_id WHERE e.task_id = ? AND m.prompt_name = ? AND m.version = ?`).all(taskId, name, version)) as Array<{ name: string }>;
    return rows.map((r) => r.name);
  }

  async delete(tenantId: string, task: string, name: string): Promise<void> {
    const hashes = this.c.tx(() => {
      const t = this.c.taskRow(tenantId, task);
      const p = this.c.sql('SELECT id FROM prompts WHERE task_id = ? AND name = ?').get(t.id, name) as { id: number } | undefined;
      if (!p) throw new SoftserveError('NOT_FOUND', `no prompt ${JSON.stringify(name)} in task ${JSON.stringify(task)}`);
      const users = this.ensemblesUsing(t.id, name);
      if (users.length > 0) throw new SoftserveError('CONFLICT', `prompt ${JSON.stringify(name)} is used by ensemble(s) ${users.join(', ')}; delete them first`, { ensembles: users });
      const hs = this.c.sql('SELECT tensor_hash AS h FROM prompt_versions WHERE prompt_id = ?').all(p.id) as Array<{ h: string }>;
      this.c.sql('DELETE FROM prompts WHERE id = ?').run(p.id);
      return hs.map((r) => r.h);
    });
    this.c.removeIfUnreferenced(hashes);
  }

  async deleteVersion(tenantId: string, task: string, name: string, version: number): Promise<void> {
    const hashes = this.c.tx(() => {
      const r = this.c.versionRow(tenantId, task, name, version);
      const t = this.c.taskRow(tenantId, task);
      const pinnedBy = this.ensemblesUsing(t.id, name, version);
      if (pinnedBy.length > 0) throw new SoftserveError('CONFLICT', `version ${version} of ${JSON.stringify(name)} is pinned by ensemble(s) ${pinnedBy.join(', ')}`, { ensembles: pinnedBy });
      const left = (this.c.sql('SELECT COUNT(*) AS n FROM prompt_versions WHERE prompt_id = ?').get(r.prompt_id) as { n: number }).n;
      if (left === 1) {
        const users = this.ensemblesUsing(t.id, name);
        if (users.length > 0) throw new SoftserveError('CONFLICT', `version ${version} is the last of ${JSON.stringify(name)}, which ensemble(s) ${users.join(', ')} use`, { ensembles: users });
        this.c.sql('DELETE FROM prompts WHERE id = ?').run(r.prompt_id);
      } else {
        this.c.sql('DELETE FROM prompt_versions WHERE id = ?').run(r.id);
      }
      return [r.tensor_hash];
    });
    this.c.removeIfUnreferenced(hashes);
  }

  async readTensor(hash: string): Promise<Uint8Array> {
    this.c.pin(hash);
    try {
      return await this.c.files.read(hash);
    } finally {
      this.c.unpin(hash);
    }
  }

  onTensorRemoved(listener: (hash: string) => void): void {
    this.c.onTensorRemoved(listener);
  }

  private referencedHashes(): Set<string> {
    const rows = this.c.sql('SELECT DISTINCT tensor_hash AS h FROM prompt_versions').all() as Array<{ h: string }>;
    return new Set(rows.map((r) => r.h));
  }

  /** Removes what a crash can leave: temp files, and finished files no row names. Runs at open, before anything is served. */
  sweepSync(): SweepReport {
    const { files, logger } = this.c;
    const scan = files.scan();
    const referenced = this.referencedHashes();
    for (const t of scan.temps) files.removeTempSync(t);
    let removedOrphans = 0;
    for (const h of scan.files) {
      if (!referenced.has(h) && !this.c.pinned(h)) {
        files.removeSync(h, false);
        removedOrphans++;
      }
    }
    if (scan.temps.length > 0 || removedOrphans > 0) files.syncDir();
    const missing = [...referenced].filter((h) => !scan.files.has(h));
    if (missing.length > 0) logger?.error({ missing }, 'prompt rows name tensor files that are absent');
    if (scan.unknown.length > 0) logger?.warn({ unknown: scan.unknown }, 'unexpected files in the tensor directory (left alone)');
    const report = { removedTemps: scan.temps.length, removedOrphans, missing, unknownFiles: scan.unknown };
    if (report.removedTemps > 0 || removedOrphans > 0) logger?.info(report, 'swept leftovers of an interrupted write');
    return report;
  }

  async sweep(): Promise<SweepReport> {
    return this.sweepSync();
  }

  async fsck(check: (bytes: Uint8Array, version: StoredPromptVersion) => void): Promise<FsckReport> {
    const scan = this.c.files.scan();
    const rows = this.c.sql(VERSION_SELECT).all() as VersionRow[];
    const referenced = new Set(rows.map((r) => r.tensor_hash));
    const missing = [...referenced].filter((h) => !scan.files.has(h));
    const orphans = [...scan.files].filter((h) => !referenced.has(h));
    const corrupt = new Set<string>();
    for (const r of rows) {
      if (!scan.files.has(r.tensor_hash)) continue;
      try {
        check(await this.c.files.read(r.tensor_hash), storedVersionFromRow(r));
      } catch {
        corrupt.add(r.tensor_hash);
      }
    }
    return { rows: rows.length, files: scan.files.size, missing, orphans, temps: scan.temps, corrupt: [...corrupt] };
  }
}

// What the two SQL backends (sqlite/, postgres/) share: the columns their
// tables have in common and how those rows become the store's types. Only the
// id type (SQLite INTEGER, PostgreSQL BIGINT read as a string) and has_head
// (0/1 against boolean) differ, so the row shapes take them as parameters.

import { createHash } from 'node:crypto';

import { SoftserveError } from '../../kernels/errors.ts';

import type { Pooling } from '../../models/pooling.ts';
import type { ModelDims, PromptKind } from '../kinds.ts';
import type { PromptInfo, PromptSource, PromptVersionInfo, Scoring, StoredPromptVersion, Task } from './index.ts';

export interface StoreLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface SqlTaskRow<Id> { id: Id; tenant_id: string; name: string; labels: string; template: string; scoring: string; created_at: string }
export interface SqlVersionRow<Id, Flag> {
  id: Id; prompt_id: Id; version: number; kind: PromptKind; num_virtual_tokens: number; has_head: Flag;
  tensor_hash: string; tensor_bytes: number; model_dims: string; source: PromptSource; source_dtype: string | null;
  peft_config: string | null; provenance: string | null; created_at: string; prompt_name: string; task_name: string;
}

/** A version row with its prompt's and task's names (both backends' tables have these columns). */
export const VERSION_SELECT = `
  SELECT v.*, p.name AS prompt_name, t.name AS task_name
  FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id JOIN tasks t ON t.id = p.task_id`;

export function now(): string {
  return new Date().toISOString();
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** API keys are stored and looked up by their sha256, never as themselves. */
export function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

export function taskFromRow(r: SqlTaskRow<unknown>): Task {
  const sc = JSON.parse(r.scoring) as { type: string; label_words?: string[]; pooling?: Pooling };
  const scoring: Scoring = sc.type === 'head' ? { type: 'head', pooling: sc.pooling ?? 'last' } : { type: 'verbalizer', labelWords: sc.label_words ?? [] };
  return { tenantId: r.tenant_id, name: r.name, labels: JSON.parse(r.labels) as string[], template: r.template, scoring, createdAt: r.created_at };
}

export function versionFromRow(r: SqlVersionRow<unknown, number | boolean>): PromptVersionInfo {
  return {
    task: r.task_name, name: r.prompt_name, version: r.version, kind: r.kind, numVirtualTokens: r.num_virtual_tokens,
    hasHead: r.has_head === true || r.has_head === 1, tensorHash: r.tensor_hash, tensorBytes: r.tensor_bytes, source: r.source,
    sourceDtype: r.source_dtype, provenance: r.provenance ? JSON.parse(r.provenance) as Record<string, unknown> : null, createdAt: r.created_at,
  };
}

export function storedVersionFromRow(r: SqlVersionRow<unknown, number | boolean>): StoredPromptVersion {
  return {
    ...versionFromRow(r),
    modelDims: JSON.parse(r.model_dims) as ModelDims,
    peftConfig: r.peft_config ? JSON.parse(r.peft_config) as Record<string, unknown> : null,
  };
}

/** A task's prompts from its version rows (ordered by name, then version) and each prompt's creation time. */
export function promptInfos(task: string, rows: readonly SqlVersionRow<unknown, number | boolean>[], createdAt: ReadonlyMap<string, string>): PromptInfo[] {
  const byName = new Map<string, PromptInfo>();
  for (const r of rows) {
    let info = byName.get(r.prompt_name);
    if (!info) {
      info = { task, name: r.prompt_name, latestVersion: 0, versions: [], createdAt: createdAt.get(r.prompt_name) ?? r.created_at };
      byName.set(r.prompt_name, info);
    }
    info.versions.push(versionFromRow(r));
    info.latestVersion = Math.max(info.latestVersion, r.version);
  }
  return [...byName.values()];
}

/** The NOT_FOUND both backends answer for a missing prompt or version (another tenant's reads the same). */
export function versionNotFound(taskName: string, name: string, version: number | null | undefined): SoftserveError {
  return new SoftserveError('NOT_FOUND', version == null
    ? `no prompt ${JSON.stringify(name)} in task ${JSON.stringify(taskName)}`
    : `no version ${version} of prompt ${JSON.stringify(name)} in task ${JSON.stringify(taskName)}`);
}

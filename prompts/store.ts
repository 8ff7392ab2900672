// The prompt store: tenants and their API keys, tasks, prompt versions,
// ensembles. The HTTP routes, the classify path and the training worker all
// go through this one API, and every call that touches a tenant's things takes
// the tenant id: another tenant's task, prompt or ensemble is NOT_FOUND, the
// same answer as for one that does not exist.
//
// Durability: a prompt's tensors are written as a content-addressed file
// (fsync, rename, fsync dir) *before* the one transaction that inserts its row;
// deleting removes the row first and the file after. A crash at any point
// leaves each prompt whole or absent, and never a row without its file; what
// it can leave is an unreferenced file or a temp file, which the sweep at
// open removes. One process owns a data directory at a time.

import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import type { Statement } from 'better-sqlite3';

import { SoftserveError } from '../kernels/errors.ts';
import type { ModelSpec } from '../models/spec.ts';
import { openDb, type Db } from './db.ts';
import {
  DEFAULT_PROMPT_LIMITS, decodePromptFile, encodePromptFile, modelDims, sameDims, validatePromptTensors,
  type ModelDims, type PromptKind, type PromptLimits, type PromptTensors,
} from './kinds.ts';
import { checkPromptFitsTemplate, labelTokenId, parseTemplate, softPlacement, type Tokenizes } from './template.ts';
import { exportPeft, importPeft, type PeftFiles } from './peft.ts';
import { PromptResidency, type ResidencyStats } from './residency.ts';
import { TensorFiles, sha256Hex } from './tensor-files.ts';
import { parseVoteMode, type VoteMode } from './vote.ts';

// --- public types ------------------------------------------------------------

export interface Tenant {
  id: string;
  name: string;
  createdAt: string;
}

export interface ApiKeyInfo {
  id: string;
  tenantId: string;
  /** The key's first characters, to tell keys apart; the key itself is never stored. */
  prefix: string;
  createdAt: string;
  revokedAt: string | null;
}

export type Scoring =
  | { type: 'verbalizer'; labelWords: string[] }
  | { type: 'head'; pooling: 'last' | 'mean' };

export interface TaskDefinition {
  name: string;
  /** Class names, in class order. */
  labels: string[];
  /** Contains `{text}` exactly once. */
  template: string;
  scoring: Scoring;
}

export interface Task extends TaskDefinition {
  tenantId: string;
  createdAt: string;
}

export type PromptSource = 'peft' | 'json' | 'training';

export interface PromptVersionInfo {
  task: string;
  name: string;
  version: number;
  kind: PromptKind;
  numVirtualTokens: number;
  hasHead: boolean;
  /** sha256 of the stored tensor file (identical tensors, identical hash). */
  tensorHash: string;
  tensorBytes: number;
  source: PromptSource;
  /** dtype of the upload (F32/F16/BF16); stored as F32 regardless. */
  sourceDtype: string | null;
  /**
   * Where a trained version came from (snake_case JSON, shown as is by the
   * API): method, seed, held-out accuracy (the weight of a weighted vote),
   * teacher (distillation), init prompt (transfer). Null for uploads.
   */
  provenance: Record<string, unknown> | null;
  createdAt: string;
}

export interface PromptInfo {
  task: string;
  name: string;
  latestVersion: number;
  versions: PromptVersionInfo[];
  createdAt: string;
}

export interface EnsembleMember {
  prompt: string;
  /** A pinned version; absent or null: the prompt's latest version when used. */
  version?: number | null;
}

export interface EnsembleInfo {
  task: string;
  name: string;
  members: EnsembleMember[];
  /** The ensemble's vote mode; null: majority (a request's `vote` overrides either). */
  vote: VoteMode | null;
  createdAt: string;
}

/** What a classify request names: one prompt (optionally a version), an ensemble, or neither. */
export interface PromptSelector {
  prompt?: string;
  version?: number;
  ensemble?: string;
}

export interface ResolvedPrompt extends PromptVersionInfo {
  /** Shared with the residency cache: read, never write. */
  tensors: PromptTensors;
}

export interface ResolvedTask {
  task: Task;
  /** The ensemble's name when one was asked for. */
  ensemble: string | null;
  /** The named ensemble's stored vote mode (null: none stored, or no ensemble). */
  vote: VoteMode | null;
  /** One entry per row the request will run: a single prompt, N ensemble members, or none (no prompt). */
  members: ResolvedPrompt[];
}

export interface PromptWriteMeta {
  source: PromptSource;
  sourceDtype?: string | null;
  /** adapter_config.json as uploaded (kept for export). */
  peftConfig?: Record<string, unknown> | null;
  /** Run inside the write's transaction; a throw aborts the write (a training job checks its task is still the one it trained for). */
  precondition?: () => void;
  /** See PromptVersionInfo.provenance. */
  provenance?: Record<string, unknown> | null;
}

export interface StoreLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface StoreOptions {
  dataDir: string;
  spec: ModelSpec;
  limits?: Partial<PromptLimits>;
  /** Most members an ensemble may have (default 16). */
  maxEnsembleSize?: number;
  /** Byte bound of the resident prompt cache (default 256 MiB). */
  cacheBytes?: number;
  registry?: Registry;
  logger?: StoreLogger;
  /** The model's tokenizer: with it, label words whose scored tokens collide are refused at task creation. */
  tokenizer?: Tokenizes;
}

export interface SweepReport {
  removedTemps: number;
  removedOrphans: number;
  /** Hashes some row names whose file is absent (must never happen). */
  missing: string[];
  unknownFiles: string[];
}

export interface FsckReport {
  rows: number;
  files: number;
  missing: string[];
  orphans: string[];
  temps: string[];
  /** Files that do not hash to their name or do not decode as their rows say. */
  corrupt: string[];
}

// --- names and definitions ------------------------------------------------------

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
// C0, DEL, C1 controls, and the Unicode line/paragraph separators.
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
// eslint-disable-next-line no-control-regex
const TEMPLATE_CONTROL_RE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;

/** Names of tenants, tasks, prompts, ensembles: 1-64 of [A-Za-z0-9._-], starting alphanumeric. */
export function validateName(what: string, name: unknown): string {
  if (typeof name !== 'string') throw new SoftserveError('INVALID_NAME', `${what} name must be a string, got ${name === null ? 'null' : typeof name}`);
  if (!NAME_RE.test(name)) {
    const why = /[/\\]/.test(name) ? 'contains a path separator'
      : CONTROL_RE.test(name) ? 'contains a control character'
      : name.length === 0 ? 'is empty'
      : name.length > 64 ? 'is longer than 64 characters'
      : 'may only use letters, digits, ".", "_" and "-", starting with a letter or digit';
    throw new SoftserveError('INVALID_NAME', `${what} name ${JSON.stringify(name)} ${why}`, { name });
  }
  return name;
}

function invalidTask(message: string): never {
  throw new SoftserveError('INVALID_TASK', message);
}

function checkLabelText(what: string, s: unknown, max = 128): string {
  if (typeof s !== 'string') throw new SoftserveError('BAD_REQUEST', `${what} must be a string`);
  if (s.length === 0 || s.length > max) invalidTask(`${what} must be 1-${max} characters, got ${s.length}`);
  if (CONTROL_RE.test(s)) invalidTask(`${what} ${JSON.stringify(s)} contains a control character`);
  return s;
}

/**
 * Label words whose scored tokens collide make two classes score the same
 * logit for every input (every answer a tie): refused. Without a tokenizer,
 * only words equal after trimming (which always collide) are caught.
 */
function checkLabelWordsDistinct(words: string[], tok: Tokenizes | undefined): void {
  const seen = new Map<string | number, number>();
  words.forEach((w, i) => {
    const key = tok ? labelTokenId(w, tok) : w.trim();
    const j = seen.get(key);
    if (j !== undefined) {
      const how = words[j]!.trim() === w.trim() ? 'are the same word' : `both score the token ${JSON.stringify(tok!.decode([key as number]))}`;
      throw new SoftserveError('AMBIGUOUS_LABEL_WORDS', `label words ${j} (${JSON.stringify(words[j])}) and ${i} (${JSON.stringify(w)}) ${how}: their classes would always score alike; a label word scores its first token`, { labels: [j, i] });
    }
    seen.set(key, i);
  });
}

export function validateTaskDefinition(def: TaskDefinition, spec: ModelSpec, limits: PromptLimits, tok?: Tokenizes): TaskDefinition {
  validateName('task', def.name);
  if (!Array.isArray(def.labels)) throw new SoftserveError('BAD_REQUEST', 'labels must be an array of strings');
  if (def.labels.length < 2 || def.labels.length > limits.maxLabels) invalidTask(`a task needs 2-${limits.maxLabels} labels, got ${def.labels.length}`);
  const labels = def.labels.map((l, i) => checkLabelText(`label ${i}`, l));
  if (new Set(labels).size !== labels.length) invalidTask('labels must be distinct');
  if (typeof def.template !== 'string') throw new SoftserveError('BAD_REQUEST', 'template must be a string');
  if (def.template.length > 8192) invalidTask(`template is ${def.template.length} characters; the limit is 8192`);
  if (TEMPLATE_CONTROL_RE.test(def.template)) invalidTask('template contains a control character');
  const slots = def.template.split('{text}').length - 1;
  if (slots !== 1) invalidTask(`template must contain the {text} slot exactly once, found ${slots}`);
  const pieces = parseTemplate(def.template);
  softPlacement(def.template, pieces, limits.maxVirtualTokens);
  const hasMask = pieces.some((p) => p.kind === 'mask');
  if (hasMask && spec.maskTokenId === null) invalidTask(`template has {mask}, but this ${spec.family} model has no mask token`);
  const sc = def.scoring as unknown;
  if (typeof sc !== 'object' || sc === null) throw new SoftserveError('BAD_REQUEST', 'scoring must be an object');
  const scoring = sc as Record<string, unknown>;
  let out: Scoring;
  if (scoring.type === 'verbalizer') {
    const words = scoring.labelWords;
    if (!Array.isArray(words)) throw new SoftserveError('BAD_REQUEST', 'a verbalizer needs label_words, one string per label');
    if (words.length !== labels.length) invalidTask(`verbalizer has ${words.length} label words for ${labels.length} labels`);
    if (!spec.hasLmHead) invalidTask('the loaded model has no LM head: score this task with a linear head');
    if (!spec.causal && !hasMask) invalidTask(`a verbalizer on a masked LM reads the {mask} slot: add {mask} to the template (e.g. "{text} It was {mask}.")`);
    out = { type: 'verbalizer', labelWords: words.map((w, i) => checkLabelText(`label word ${i}`, w)) };
    checkLabelWordsDistinct(out.labelWords, tok);
  } else if (scoring.type === 'head') {
    const pooling = scoring.pooling ?? 'last';
    if (pooling !== 'last' && pooling !== 'mean') invalidTask(`head pooling must be "last" or "mean", got ${JSON.stringify(pooling)}`);
    out = { type: 'head', pooling };
  } else {
    throw new SoftserveError('BAD_REQUEST', `scoring.type must be "verbalizer" or "head", got ${JSON.stringify(scoring.type)}`);
  }
  return { name: def.name, labels, template: def.template, scoring: out };
}

// --- rows -----------------------------------------------------------------------

interface TaskRow { id: number; tenant_id: string; name: string; labels: string; template: string; scoring: string; created_at: string }
interface VersionRow {
  id: number; prompt_id: number; version: number; kind: PromptKind; num_virtual_tokens: number; has_head: number;
  tensor_hash: string; tensor_bytes: number; model_dims: string; source: PromptSource; source_dtype: string | null;
  peft_config: string | null; provenance: string | null; created_at: string; prompt_name: string; task_name: string;
}

interface EnsembleRow { id: number; name: string; vote: string | null; created_at: string }

function now(): string {
  return new Date().toISOString();
}

function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

function taskFromRow(r: TaskRow): Task {
  const sc = JSON.parse(r.scoring) as { type: string; label_words?: string[]; pooling?: 'last' | 'mean' };
  const scoring: Scoring = sc.type === 'head' ? { type: 'head', pooling: sc.pooling ?? 'last' } : { type: 'verbalizer', labelWords: sc.label_words ?? [] };
  return { tenantId: r.tenant_id, name: r.name, labels: JSON.parse(r.labels) as string[], template: r.template, scoring, createdAt: r.created_at };
}

function versionFromRow(r: VersionRow): PromptVersionInfo {
  return {
    task: r.task_name, name: r.prompt_name, version: r.version, kind: r.kind, numVirtualTokens: r.num_virtual_tokens,
    hasHead: r.has_head === 1, tensorHash: r.tensor_hash, tensorBytes: r.tensor_bytes, source: r.source,
    sourceDtype: r.source_dtype, provenance: r.provenance ? JSON.parse(r.provenance) as Record<string, unknown> : null, createdAt: r.created_at,
  };
}

const VERSION_SELECT = `
  SELECT v.*, p.name AS prompt_name, t.name AS task_name
  FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id JOIN tasks t ON t.id = p.task_id`;

// --- the store -------------------------------------------------------------------

export class PromptStore {
  readonly db: Db;
  readonly files: TensorFiles;
  readonly residency: PromptResidency;
  readonly spec: ModelSpec;
  readonly limits: PromptLimits;
  readonly maxEnsembleSize: number;
  readonly dataDir: string;
  /** What the sweep at open found and removed. */
  readonly openSweep: SweepReport;
  private readonly dims: ModelDims;
  private readonly logger?: StoreLogger;
  private readonly tokenizer?: Tokenizes;
  /** Hashes in use by an in-flight write or read: their files are not removed. */
  private readonly pins = new Map<string, number>();
  /** Hashes whose removal waits for their last pin to go. */
  private readonly removeWhenUnpinned = new Set<string>();
  private closed = false;
  /** Prepared statements by SQL text: preparing costs more than running on the hot paths (auth, resolve). */
  private readonly statements = new Map<string, Statement>();

  static open(opts: StoreOptions): PromptStore {
    return new PromptStore(opts);
  }

  private constructor(opts: StoreOptions) {
    this.dataDir = opts.dataDir;
    this.spec = opts.spec;
    this.dims = modelDims(opts.spec);
    this.limits = { ...DEFAULT_PROMPT_LIMITS, ...(opts.limits ?? {}) };
    this.maxEnsembleSize = opts.maxEnsembleSize ?? 16;
    if (opts.logger) this.logger = opts.logger;
    if (opts.tokenizer) this.tokenizer = opts.tokenizer;
    mkdirSync(opts.dataDir, { recursive: true });
    this.db = openDb(join(opts.dataDir, 'softserve.db'));
    this.files = new TensorFiles(join(opts.dataDir, 'tensors'));
    this.residency = new PromptResidency({ maxBytes: opts.cacheBytes ?? 256 * 1024 * 1024, ...(opts.registry ? { registry: opts.registry } : {}) });
    this.openSweep = this.sweep();
  }

  private sql(source: string): Statement {
    let stmt = this.statements.get(source);
    if (!stmt) {
      stmt = this.db.prepare(source);
      this.statements.set(source, stmt);
    }
    return stmt;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  // --- maintenance --------------------------------------------------------------

  private referencedHashes(): Set<string> {
    const rows = this.sql('SELECT DISTINCT tensor_hash AS h FROM prompt_versions').all() as Array<{ h: string }>;
    return new Set(rows.map((r) => r.h));
  }

  /**
   * Removes what a crash can leave: temp files, and finished files no row
   * names. Runs at open, before anything is served.
   */
  sweep(): SweepReport {
    const scan = this.files.scan();
    const referenced = this.referencedHashes();
    for (const t of scan.temps) this.files.removeTempSync(t);
    let removedOrphans = 0;
    for (const h of scan.files) {
      if (!referenced.has(h) && !this.pins.has(h)) {
        this.files.removeSync(h, false);
        removedOrphans++;
      }
    }
    if (scan.temps.length > 0 || removedOrphans > 0) this.files.syncDir();
    const missing = [...referenced].filter((h) => !scan.files.has(h));
    if (missing.length > 0) this.logger?.error({ missing }, 'prompt rows name tensor files that are absent');
    if (scan.unknown.length > 0) this.logger?.warn({ unknown: scan.unknown }, 'unexpected files in the tensor directory (left alone)');
    const report = { removedTemps: scan.temps.length, removedOrphans, missing, unknownFiles: scan.unknown };
    if (report.removedTemps > 0 || removedOrphans > 0) this.logger?.info(report, 'swept leftovers of an interrupted write');
    return report;
  }

  /** Checks that the database and the files agree, without changing anything. */
  async fsck(): Promise<FsckReport> {
    const scan = this.files.scan();
    const rows = this.sql(VERSION_SELECT).all() as VersionRow[];
    const referenced = new Set(rows.map((r) => r.tensor_hash));
    const missing = [...referenced].filter((h) => !scan.files.has(h));
    const orphans = [...scan.files].filter((h) => !referenced.has(h));
    const corrupt = new Set<string>();
    for (const r of rows) {
      if (!scan.files.has(r.tensor_hash)) continue;
      try {
        const bytes = await this.files.read(r.tensor_hash);
        decodePromptFile(bytes, JSON.parse(r.model_dims) as ModelDims, r.kind, r.num_virtual_tokens, r.has_head === 1);
      } catch {
        corrupt.add(r.tensor_hash);
      }
    }
    return { rows: rows.length, files: scan.files.size, missing, orphans, temps: scan.temps, corrupt: [...corrupt] };
  }

  cacheStats(): ResidencyStats {
    return this.residency.stats();
  }

  private pin(hash: string): void {
    this.pins.set(hash, (this.pins.get(hash) ?? 0) + 1);
  }

  private unpin(hash: string): void {
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
  private removeIfUnreferenced(hashes: Iterable<string>): void {
    const stillUsed = this.sql('SELECT 1 FROM prompt_versions WHERE tensor_hash = ? LIMIT 1');
    for (const h of new Set(hashes)) {
      if (stillUsed.get(h)) continue;
      if (this.pins.has(h)) {
        this.removeWhenUnpinned.add(h);
        continue;
      }
      this.residency.forget(h);
      try {
        this.files.removeSync(h);
      } catch (err) {
        // The row is gone; a file left behind is swept at the next open.
        this.logger?.warn({ hash: h, err: (err as Error).message }, 'could not remove an unreferenced tensor file');
      }
    }
  }

  // --- tenants and keys -------------------------------------------------------------

  createTenant(name: string): { tenant: Tenant; apiKey: string; key: ApiKeyInfo } {
    validateName('tenant', name);
    const tenant: Tenant = { id: `ten_${randomBytes(8).toString('hex')}`, name, createdAt: now() };
    return this.db.transaction(() => {
      if (this.sql('SELECT 1 FROM tenants WHERE name = ?').get(name)) {
        throw new SoftserveError('CONFLICT', `a tenant named ${JSON.stringify(name)} already exists`);
      }
      this.sql('INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)').run(tenant.id, tenant.name, tenant.createdAt);
      const { apiKey, key } = this.insertKey(tenant.id);
      return { tenant, apiKey, key };
    }).immediate();
  }

  listTenants(): Tenant[] {
    const rows = this.sql('SELECT id, name, created_at FROM tenants ORDER BY created_at, id').all() as Array<{ id: string; name: string; created_at: string }>;
    return rows.map((r) => ({ id: r.id, name: r.name, createdAt: r.created_at }));
  }

  getTenant(id: string): Tenant {
    const r = this.sql('SELECT id, name, created_at FROM tenants WHERE id = ?').get(id) as { id: string; name: string; created_at: string } | undefined;
    if (!r) throw new SoftserveError('NOT_FOUND', `no tenant ${JSON.stringify(id)}`);
    return { id: r.id, name: r.name, createdAt: r.created_at };
  }

  /** Deletes a tenant with its keys, tasks, prompts and ensembles. */
  async deleteTenant(id: string): Promise<void> {
    const hashes = this.db.transaction(() => {
      this.getTenant(id);
      const hs = this.sql(`
        SELECT v.tensor_hash AS h FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id
        JOIN tasks t ON t.id = p.task_id WHERE t.tenant_id = ?`).all(id) as Array<{ h: string }>;
      this.sql('DELETE FROM tenants WHERE id = ?').run(id);
      return hs.map((r) => r.h);
    }).immediate();
    this.removeIfUnreferenced(hashes);
  }

  private insertKey(tenantId: string): { apiKey: string; key: ApiKeyInfo } {
    const apiKey = `ss_${randomBytes(32).toString('base64url')}`;
    const key: ApiKeyInfo = { id: `key_${randomBytes(6).toString('hex')}`, tenantId, prefix: apiKey.slice(0, 10), createdAt: now(), revokedAt: null };
    this.sql('INSERT INTO api_keys (id, tenant_id, key_hash, prefix, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(key.id, tenantId, hashKey(apiKey), key.prefix, key.createdAt);
    return { apiKey, key };
  }

  /** A new key for a tenant; the key itself is returned once and only its hash kept. */
  createApiKey(tenantId: string): { apiKey: string; key: ApiKeyInfo } {
    return this.db.transaction(() => {
      this.getTenant(tenantId);
      return this.insertKey(tenantId);
    }).immediate();
  }

  listApiKeys(tenantId: string): ApiKeyInfo[] {
    this.getTenant(tenantId);
    const rows = this.sql('SELECT id, tenant_id, prefix, created_at, revoked_at FROM api_keys WHERE tenant_id = ? ORDER BY created_at, id').all(tenantId) as Array<{ id: string; tenant_id: string; prefix: string; created_at: string; revoked_at: string | null }>;
    return rows.map((r) => ({ id: r.id, tenantId: r.tenant_id, prefix: r.prefix, createdAt: r.created_at, revokedAt: r.revoked_at }));
  }

  revokeApiKey(tenantId: string, keyId: string): void {
    const res = this.sql('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND tenant_id = ? AND revoked_at IS NULL').run(now(), keyId, tenantId);
    if (res.changes === 0) throw new SoftserveError('NOT_FOUND', `no active key ${JSON.stringify(keyId)} for tenant ${JSON.stringify(tenantId)}`);
  }

  /** The tenant an API key belongs to, or null (unknown or revoked). */
  authenticate(apiKey: string): Tenant | null {
    if (typeof apiKey !== 'string' || apiKey.length === 0 || apiKey.length > 512) return null;
    const r = this.sql(`
      SELECT t.id, t.name, t.created_at FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
      WHERE k.key_hash = ? AND k.revoked_at IS NULL`).get(hashKey(apiKey)) as { id: string; name: string; created_at: string } | undefined;
    return r ? { id: r.id, name: r.name, createdAt: r.created_at } : null;
  }

  // --- tasks -------------------------------------------------------------------------

  createTask(tenantId: string, def: TaskDefinition): Task {
    const d = validateTaskDefinition(def, this.spec, this.limits, this.tokenizer);
    const scoring = d.scoring.type === 'head' ? { type: 'head', pooling: d.scoring.pooling } : { type: 'verbalizer', label_words: d.scoring.labelWords };
    const createdAt = now();
    this.db.transaction(() => {
      this.getTenant(tenantId);
      if (this.sql('SELECT 1 FROM tasks WHERE tenant_id = ? AND name = ?').get(tenantId, d.name)) {
        throw new SoftserveError('CONFLICT', `task ${JSON.stringify(d.name)} already exists`);
      }
      this.sql('INSERT INTO tasks (tenant_id, name, labels, template, scoring, created_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(tenantId, d.name, JSON.stringify(d.labels), d.template, JSON.stringify(scoring), createdAt);
    }).immediate();
    return { ...d, tenantId, createdAt };
  }

  listTasks(tenantId: string): Task[] {
    const rows = this.sql('SELECT * FROM tasks WHERE tenant_id = ? ORDER BY name').all(tenantId) as TaskRow[];
    return rows.map(taskFromRow);
  }

  private taskRow(tenantId: string, name: string): TaskRow {
    validateName('task', name);
    const r = this.sql('SELECT * FROM tasks WHERE tenant_id = ? AND name = ?').get(tenantId, name) as TaskRow | undefined;
    if (!r) throw new SoftserveError('NOT_FOUND', `no task ${JSON.stringify(name)}`);
    return r;
  }

  getTask(tenantId: string, name: string): Task {
    return taskFromRow(this.taskRow(tenantId, name));
  }

  /** Deletes a task with all its prompts and ensembles. */
  async deleteTask(tenantId: string, name: string): Promise<void> {
    const hashes = this.db.transaction(() => {
      const t = this.taskRow(tenantId, name);
      const hs = this.sql('SELECT v.tensor_hash AS h FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id WHERE p.task_id = ?').all(t.id) as Array<{ h: string }>;
      this.sql('DELETE FROM tasks WHERE id = ?').run(t.id);
      return hs.map((r) => r.h);
    }).immediate();
    this.removeIfUnreferenced(hashes);
  }

  // --- prompts -------------------------------------------------------------------------

  private checkAgainstTask(task: Task, t: PromptTensors): void {
    if (task.scoring.type === 'head' && !t.head) {
      throw new SoftserveError('INVALID_TASK', `task ${JSON.stringify(task.name)} scores with a linear head: the prompt must carry one (weight [${task.labels.length}, ${this.spec.hiddenSize}])`);
    }
    if (task.scoring.type === 'verbalizer' && t.head) {
      throw new SoftserveError('INVALID_TASK', `task ${JSON.stringify(task.name)} scores with a verbalizer: the prompt carries a linear head it would not use`);
    }
    validatePromptTensors(this.spec, t, this.limits, task.scoring.type === 'head' ? task.labels.length : undefined);
    checkPromptFitsTemplate(softPlacement(task.template, parseTemplate(task.template), Number.MAX_SAFE_INTEGER), t.numVirtualTokens, t.kind);
  }

  /**
   * Adds a version of prompt `name` (creating the prompt at version 1). The
   * tensors are validated against the model and the task, made durable, and
   * only then recorded. Returns the new version.
   */
  async putPrompt(tenantId: string, taskName: string, name: string, tensors: PromptTensors, meta: PromptWriteMeta): Promise<PromptVersionInfo> {
    validateName('prompt', name);
    const task = this.getTask(tenantId, taskName);
    this.checkAgainstTask(task, tensors);
    const bytes = encodePromptFile(this.dims, tensors);
    const hash = sha256Hex(bytes);
    this.pin(hash);
    try {
      await this.files.write(bytes);
      return this.db.transaction((): PromptVersionInfo => {
        // The task may have gone while the file was written.
        const t = this.taskRow(tenantId, taskName);
        meta.precondition?.();
        const createdAt = now();
        let prompt = this.sql('SELECT id, next_version FROM prompts WHERE task_id = ? AND name = ?').get(t.id, name) as { id: number; next_version: number } | undefined;
        if (!prompt) {
          const res = this.sql('INSERT INTO prompts (task_id, name, next_version, created_at) VALUES (?, ?, 1, ?)').run(t.id, name, createdAt);
          prompt = { id: Number(res.lastInsertRowid), next_version: 1 };
        }
        const version = prompt.next_version;
        this.sql(`INSERT INTO prompt_versions
          (prompt_id, version, kind, num_virtual_tokens, has_head, tensor_hash, tensor_bytes, model_dims, source, source_dtype, peft_config, provenance, created_at)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
          prompt.id, version, tensors.kind, tensors.numVirtualTokens, tensors.head ? 1 : 0, hash, bytes.byteLength,
          JSON.stringify(this.dims), meta.source, meta.sourceDtype ?? null,
          meta.peftConfig ? JSON.stringify(meta.peftConfig) : null, meta.provenance ? JSON.stringify(meta.provenance) : null, createdAt);
        this.sql('UPDATE prompts SET next_version = ? WHERE id = ?').run(version + 1, prompt.id);
        return {
          task: taskName, name, version, kind: tensors.kind, numVirtualTokens: tensors.numVirtualTokens, hasHead: !!tensors.head,
          tensorHash: hash, tensorBytes: bytes.byteLength, source: meta.source, sourceDtype: meta.sourceDtype ?? null,
          provenance: meta.provenance ?? null, createdAt,
        };
      }).immediate();
    } finally {
      this.unpin(hash);
      // A failed transaction leaves the file unreferenced: remove it now rather than at the next open.
      this.removeIfUnreferenced([hash]);
    }
  }

  /** Validates PEFT files against the model and the task, then stores them as a new version. */
  async putPeftPrompt(tenantId: string, taskName: string, name: string, files: PeftFiles): Promise<PromptVersionInfo> {
    validateName('prompt', name);
    const task = this.getTask(tenantId, taskName);
    const imported = importPeft(files, this.spec, this.limits, task.scoring.type === 'head' ? task.labels.length : undefined);
    return this.putPrompt(tenantId, taskName, name, imported.tensors, { source: 'peft', sourceDtype: imported.sourceDtype, peftConfig: imported.config });
  }

  listPrompts(tenantId: string, taskName: string): PromptInfo[] {
    const t = this.taskRow(tenantId, taskName);
    const rows = this.sql(`${VERSION_SELECT} WHERE p.task_id = ? ORDER BY p.name, v.version`).all(t.id) as VersionRow[];
    const created = new Map((this.sql('SELECT name, created_at FROM prompts WHERE task_id = ?').all(t.id) as Array<{ name: string; created_at: string }>).map((r) => [r.name, r.created_at]));
    const byName = new Map<string, PromptInfo>();
    for (const r of rows) {
      let info = byName.get(r.prompt_name);
      if (!info) {
        info = { task: taskName, name: r.prompt_name, latestVersion: 0, versions: [], createdAt: created.get(r.prompt_name) ?? r.created_at };
        byName.set(r.prompt_name, info);
      }
      info.versions.push(versionFromRow(r));
      info.latestVersion = Math.max(info.latestVersion, r.version);
    }
    return [...byName.values()];
  }

  getPrompt(tenantId: string, taskName: string, name: string): PromptInfo {
    validateName('prompt', name);
    const info = this.listPrompts(tenantId, taskName).find((p) => p.name === name);
    if (!info) throw new SoftserveError('NOT_FOUND', `no prompt ${JSON.stringify(name)} in task ${JSON.stringify(taskName)}`);
    return info;
  }

  private versionRow(tenantId: string, taskName: string, name: string, version?: number | null): VersionRow {
    const t = this.taskRow(tenantId, taskName);
    validateName('prompt', name);
    if (version !== undefined && version !== null && (!Number.isSafeInteger(version) || version < 1)) {
      throw new SoftserveError('BAD_REQUEST', `version must be a positive integer, got ${JSON.stringify(version)}`);
    }
    const r = (version === undefined || version === null
      ? this.sql(`${VERSION_SELECT} WHERE p.task_id = ? AND p.name = ? ORDER BY v.version DESC LIMIT 1`).get(t.id, name)
      : this.sql(`${VERSION_SELECT} WHERE p.task_id = ? AND p.name = ? AND v.version = ?`).get(t.id, name, version)) as VersionRow | undefined;
    if (!r) {
      throw new SoftserveError('NOT_FOUND', version == null
        ? `no prompt ${JSON.stringify(name)} in task ${JSON.stringify(taskName)}`
        : `no version ${version} of prompt ${JSON.stringify(name)} in task ${JSON.stringify(taskName)}`);
    }
    return r;
  }

  getPromptVersion(tenantId: string, taskName: string, name: string, version?: number | null): PromptVersionInfo {
    return versionFromRow(this.versionRow(tenantId, taskName, name, version));
  }

  private async loadRow(r: VersionRow): Promise<ResolvedPrompt> {
    const dims = JSON.parse(r.model_dims) as ModelDims;
    if (!sameDims(dims, this.dims)) {
      throw new SoftserveError('PROMPT_SHAPE_MISMATCH', `prompt ${JSON.stringify(r.prompt_name)} version ${r.version} was stored for a model with ${JSON.stringify(dims)}; the loaded model has ${JSON.stringify(this.dims)}`, { expected: this.dims, got: dims });
    }
    const hash = r.tensor_hash;
    this.pin(hash);
    try {
      const tensors = await this.residency.get(hash, async () =>
        decodePromptFile(await this.files.read(hash), dims, r.kind, r.num_virtual_tokens, r.has_head === 1));
      return { ...versionFromRow(r), tensors };
    } finally {
      this.unpin(hash);
    }
  }

  /** A prompt version's tensors (latest when `version` is absent), through the residency cache. */
  async getPromptTensors(tenantId: string, taskName: string, name: string, version?: number | null): Promise<ResolvedPrompt> {
    return this.loadRow(this.versionRow(tenantId, taskName, name, version));
  }

  /** PEFT files for a prompt version: what PeftModel.from_pretrained loads. */
  async exportPrompt(tenantId: string, taskName: string, name: string, version?: number | null): Promise<{ info: PromptVersionInfo; config: Uint8Array; model: Uint8Array }> {
    const r = this.versionRow(tenantId, taskName, name, version);
    const loaded = await this.loadRow(r);
    const storedConfig = r.peft_config ? JSON.parse(r.peft_config) as Record<string, unknown> : null;
    const { config, model } = exportPeft(loaded.tensors, this.spec, { storedConfig });
    return { info: versionFromRow(r), config, model };
  }

  private ensemblesUsing(taskId: number, name: string, version?: number): string[] {
    const rows = (version === undefined
      ? this.sql(`SELECT DISTINCT e.name FROM ensemble_members m JOIN ensembles e ON e.id = m.ensemble_id WHERE e.task_id = ? AND m.prompt_name = ?`).all(taskId, name)
      : this.sql(`SELECT DISTINCT e.name FROM ensemble_members m JOIN ensembles e ON e.id = m.ensemble_id WHERE e.task_id = ? AND m.prompt_name = ? AND m.version = ?`).all(taskId, name, version)) as Array<{ name: string }>;
    return rows.map((r) => r.name);
  }

  /** Deletes every version of a prompt. Refused (CONFLICT) while an ensemble uses it. */
  async deletePrompt(tenantId: string, taskName: string, name: string): Promise<void> {
    const hashes = this.db.transaction(() => {
      const t = this.taskRow(tenantId, taskName);
      validateName('prompt', name);
      const p = this.sql('SELECT id FROM prompts WHERE task_id = ? AND name = ?').get(t.id, name) as { id: number } | undefined;
      if (!p) throw new SoftserveError('NOT_FOUND', `no prompt ${JSON.stringify(name)} in task ${JSON.stringify(taskName)}`);
      const users = this.ensemblesUsing(t.id, name);
      if (users.length > 0) throw new SoftserveError('CONFLICT', `prompt ${JSON.stringify(name)} is used by ensemble(s) ${users.join(', ')}; delete them first`, { ensembles: users });
      const hs = this.sql('SELECT tensor_hash AS h FROM prompt_versions WHERE prompt_id = ?').all(p.id) as Array<{ h: string }>;
      this.sql('DELETE FROM prompts WHERE id = ?').run(p.id);
      return hs.map((r) => r.h);
    }).immediate();
    this.removeIfUnreferenced(hashes);
  }

  /**
   * Deletes one version. Refused while an ensemble pins it, or when it is the
   * last version and an ensemble uses the prompt. Version numbers are never
   * reused while the prompt exists.
   */
  async deletePromptVersion(tenantId: string, taskName: string, name: string, version: number): Promise<void> {
    const hashes = this.db.transaction(() => {
      const r = this.versionRow(tenantId, taskName, name, version);
      const t = this.taskRow(tenantId, taskName);
      const pinnedBy = this.ensemblesUsing(t.id, name, version);
      if (pinnedBy.length > 0) throw new SoftserveError('CONFLICT', `version ${version} of ${JSON.stringify(name)} is pinned by ensemble(s) ${pinnedBy.join(', ')}`, { ensembles: pinnedBy });
      const left = (this.sql('SELECT COUNT(*) AS n FROM prompt_versions WHERE prompt_id = ?').get(r.prompt_id) as { n: number }).n;
      if (left === 1) {
        const users = this.ensemblesUsing(t.id, name);
        if (users.length > 0) throw new SoftserveError('CONFLICT', `version ${version} is the last of ${JSON.stringify(name)}, which ensemble(s) ${users.join(', ')} use`, { ensembles: users });
        this.sql('DELETE FROM prompts WHERE id = ?').run(r.prompt_id);
      } else {
        this.sql('DELETE FROM prompt_versions WHERE id = ?').run(r.id);
      }
      return [r.tensor_hash];
    }).immediate();
    this.removeIfUnreferenced(hashes);
  }

  // --- ensembles ---------------------------------------------------------------------

  createEnsemble(tenantId: string, taskName: string, name: string, members: EnsembleMember[], opts: { vote?: VoteMode | null } = {}): EnsembleInfo {
    validateName('ensemble', name);
    const vote = opts.vote === undefined || opts.vote === null ? null : parseVoteMode(opts.vote);
    if (!Array.isArray(members) || members.length < 1 || members.length > this.maxEnsembleSize) {
      throw new SoftserveError('INVALID_INPUT', `an ensemble needs 1-${this.maxEnsembleSize} members, got ${Array.isArray(members) ? members.length : 'none'}`);
    }
    const clean: EnsembleMember[] = members.map((m, i) => {
      if (typeof m !== 'object' || m === null) throw new SoftserveError('BAD_REQUEST', `member ${i} must be {prompt, version?}`);
      validateName('prompt', m.prompt);
      const v = m.version ?? null;
      if (v !== null && (!Number.isSafeInteger(v) || v < 1)) throw new SoftserveError('BAD_REQUEST', `member ${i}: version must be a positive integer`);
      return v === null ? { prompt: m.prompt } : { prompt: m.prompt, version: v };
    });
    // One vote per prompt: "p1" beside {p1, version 2} is p1 twice once v2 is its latest.
    const seen = new Set<string>();
    for (const m of clean) {
      if (seen.has(m.prompt)) throw new SoftserveError('DUPLICATE_ENSEMBLE_MEMBER', `ensemble members must be distinct prompts: "${m.prompt}" is listed twice (it would vote twice)`, { prompt: m.prompt });
      seen.add(m.prompt);
    }
    const createdAt = now();
    this.db.transaction(() => {
      const t = this.taskRow(tenantId, taskName);
      if (this.sql('SELECT 1 FROM ensembles WHERE task_id = ? AND name = ?').get(t.id, name)) {
        throw new SoftserveError('CONFLICT', `ensemble ${JSON.stringify(name)} already exists`);
      }
      for (const m of clean) {
        try {
          this.versionRow(tenantId, taskName, m.prompt, m.version);
        } catch (err) {
          if (err instanceof SoftserveError && err.code === 'NOT_FOUND') throw new SoftserveError('INVALID_INPUT', `ensemble member: ${err.message}`);
          throw err;
        }
      }
      const res = this.sql('INSERT INTO ensembles (task_id, name, vote, created_at) VALUES (?, ?, ?, ?)').run(t.id, name, vote, createdAt);
      const ins = this.sql('INSERT INTO ensemble_members (ensemble_id, position, prompt_name, version) VALUES (?, ?, ?, ?)');
      clean.forEach((m, i) => ins.run(res.lastInsertRowid, i, m.prompt, m.version ?? null));
    }).immediate();
    return { task: taskName, name, members: clean, vote, createdAt };
  }

  private ensembleFromRow(taskName: string, e: EnsembleRow): EnsembleInfo {
    const ms = this.sql('SELECT prompt_name, version FROM ensemble_members WHERE ensemble_id = ? ORDER BY position').all(e.id) as Array<{ prompt_name: string; version: number | null }>;
    return { task: taskName, name: e.name, createdAt: e.created_at, vote: e.vote as VoteMode | null, members: ms.map((m) => (m.version === null ? { prompt: m.prompt_name } : { prompt: m.prompt_name, version: m.version })) };
  }

  listEnsembles(tenantId: string, taskName: string): EnsembleInfo[] {
    const t = this.taskRow(tenantId, taskName);
    const rows = this.sql('SELECT id, name, vote, created_at FROM ensembles WHERE task_id = ? ORDER BY name').all(t.id) as EnsembleRow[];
    return rows.map((e) => this.ensembleFromRow(taskName, e));
  }

  getEnsemble(tenantId: string, taskName: string, name: string): EnsembleInfo {
    const t = this.taskRow(tenantId, taskName);
    validateName('ensemble', name);
    const e = this.sql('SELECT id, name, vote, created_at FROM ensembles WHERE task_id = ? AND name = ?').get(t.id, name) as EnsembleRow | undefined;
    if (!e) throw new SoftserveError('NOT_FOUND', `no ensemble ${JSON.stringify(name)} in task ${JSON.stringify(taskName)}`);
    return this.ensembleFromRow(taskName, e);
  }

  deleteEnsemble(tenantId: string, taskName: string, name: string): void {
    this.db.transaction(() => {
      const t = this.taskRow(tenantId, taskName);
      validateName('ensemble', name);
      const res = this.sql('DELETE FROM ensembles WHERE task_id = ? AND name = ?').run(t.id, name);
      if (res.changes === 0) throw new SoftserveError('NOT_FOUND', `no ensemble ${JSON.stringify(name)} in task ${JSON.stringify(taskName)}`);
    }).immediate();
  }

  // --- the classify path -------------------------------------------------------------

  /**
   * Everything a classify request needs: the task (labels, template, scoring)
   * and the tensors of each row it will run: the named prompt (a version, or
   * the latest), every member of the named ensemble, or none when neither is
   * named (zero-shot, verbalizer tasks only). Tensors come through the
   * residency cache. Unknown or another tenant's: NOT_FOUND.
   */
  async resolve(tenantId: string, taskName: string, selector: PromptSelector = {}): Promise<ResolvedTask> {
    const rows: VersionRow[] = [];
    let ensemble: string | null = null;
    let vote: VoteMode | null = null;
    // Read every row in one transaction so an ensemble resolves to one consistent snapshot.
    const task = this.db.transaction((): Task => {
      const t = this.getTask(tenantId, taskName);
      if (selector.ensemble !== undefined && selector.prompt !== undefined) {
        throw new SoftserveError('BAD_REQUEST', 'name a prompt or an ensemble, not both');
      }
      if (selector.ensemble !== undefined) {
        const e = this.getEnsemble(tenantId, taskName, selector.ensemble);
        ensemble = e.name;
        vote = e.vote;
        for (const m of e.members) rows.push(this.versionRow(tenantId, taskName, m.prompt, m.version));
      } else if (selector.prompt !== undefined) {
        rows.push(this.versionRow(tenantId, taskName, selector.prompt, selector.version));
      } else if (selector.version !== undefined) {
        throw new SoftserveError('BAD_REQUEST', 'a version needs a prompt name');
      } else if (t.scoring.type === 'head') {
        throw new SoftserveError('INVALID_INPUT', `task ${JSON.stringify(taskName)} scores with a linear head, which lives with a prompt: name a prompt or an ensemble`);
      }
      return t;
    })();
    const members = await Promise.all(rows.map((r) => this.loadRow(r)));
    return { task, ensemble, vote, members };
  }
}

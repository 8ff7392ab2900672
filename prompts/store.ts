// PromptStore: the prompt service over a storage backend (prompts/store/,
// interface Store; SQLite by default). The HTTP routes, the classify path and
// the training manager go through it. It owns the domain rules the backend
// does not: names and task definitions are validated (validation.ts), tensors
// are checked against the model and their task and encoded before the backend
// keeps them, selectors are resolved to prompt versions, and decoded tensors
// are held in the residency cache (residency.ts). Every call that touches a
// tenant's things takes the tenant id: another tenant's task, prompt or
// ensemble is NOT_FOUND, the same answer as one that does not exist.

import type { Registry } from 'prom-client';

import { SoftserveError } from '../kernels/errors.ts';
import type { ModelSpec } from '../models/spec.ts';
import {
  DEFAULT_PROMPT_LIMITS, decodePromptFile, encodePromptFile, modelDims, sameDims,
  type ModelDims, type PromptLimits, type PromptTensors,
} from './kinds.ts';
import { CatalogCache, selectorKey, type CachedResolution, type CatalogEvent } from './catalog-cache.ts';
import { exportPeft, importPeft, type PeftFiles } from './peft.ts';
import { PromptResidency, type ResidencyStats } from './residency.ts';
import type { Tokenizes } from './template.ts';
import { checkPromptAgainstTask, checkVersion, validateName, validateTaskDefinition } from './validation.ts';
import { parseVoteMode, type VoteMode } from './vote.ts';
import type {
  ApiKeyInfo, EnsembleInfo, EnsembleMember, FsckReport, JobFields, NewApiKey, PromptInfo, PromptSource, PromptVersionInfo,
  PromptVersionWrite, Store, StoredPromptVersion, Task, TaskDefinition, Tenant,
} from './store/index.ts';
import { countQueries, QueryCounter } from './store/query-count.ts';
import { SqliteStore, type StoreLogger } from './store/sqlite/index.ts';

export type * from './store/index.ts';
export type { StoreLogger } from './store/sqlite/index.ts';
export { validateName, validateTaskDefinition } from './validation.ts';

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
  /** See PromptVersionInfo.provenance. */
  provenance?: Record<string, unknown> | null;
}

export interface PromptServiceOptions {
  spec: ModelSpec;
  limits?: Partial<PromptLimits>;
  /** Most members an ensemble may have (default 16). */
  maxEnsembleSize?: number;
  /** Byte bound of the resident prompt cache (default 256 MiB). */
  cacheBytes?: number;
  registry?: Registry;
  /** The model's tokenizer: with it, label words whose scored tokens collide are refused at task creation. */
  tokenizer?: Tokenizes;
  /** Most entries per catalog cache map (keys, tasks, resolutions; default 10,000). */
  catalogEntries?: number;
}

export interface StoreOptions extends PromptServiceOptions {
  dataDir: string;
  logger?: StoreLogger;
}

/** One trained prompt a job publishes. */
export interface TrainedMember {
  name: string;
  tensors: PromptTensors;
  provenance: Record<string, unknown>;
}

export class PromptStore<B extends Store = Store> {
  /** The storage backend, its calls counted (softserve_store_queries_total). */
  readonly backend: B;
  /** Calls into the backend so far. */
  readonly queries: QueryCounter;
  /** Keys, tasks and resolutions the classify path reads; every write below invalidates it. */
  readonly catalog: CatalogCache;
  readonly residency: PromptResidency;
  readonly spec: ModelSpec;
  readonly limits: PromptLimits;
  readonly maxEnsembleSize: number;
  private readonly dims: ModelDims;
  private readonly tokenizer?: Tokenizes;

  /** The SQLite store in `dataDir` (migrated, swept) with the service over it. */
  static open(opts: StoreOptions): PromptStore<SqliteStore> {
    return new PromptStore(SqliteStore.open({ dataDir: opts.dataDir, ...(opts.logger ? { logger: opts.logger } : {}) }), opts);
  }

  constructor(backend: B, opts: PromptServiceOptions) {
    this.queries = new QueryCounter(opts.registry);
    this.backend = countQueries(backend, this.queries);
    this.catalog = new CatalogCache(opts.catalogEntries !== undefined ? { maxEntries: opts.catalogEntries } : {});
    this.spec = opts.spec;
    this.dims = modelDims(opts.spec);
    this.limits = { ...DEFAULT_PROMPT_LIMITS, ...(opts.limits ?? {}) };
    this.maxEnsembleSize = opts.maxEnsembleSize ?? 16;
    if (opts.tokenizer) this.tokenizer = opts.tokenizer;
    this.residency = new PromptResidency({ maxBytes: opts.cacheBytes ?? 256 * 1024 * 1024, ...(opts.registry ? { registry: opts.registry } : {}) });
    this.backend.prompts.onTensorRemoved((hash) => this.residency.forget(hash));
  }

  async close(): Promise<void> {
    await this.backend.close();
  }

  /** Checks that the stored rows and tensors agree, without changing anything. */
  async fsck(): Promise<FsckReport> {
    return this.backend.prompts.fsck((bytes, v) => { decodePromptFile(bytes, v.modelDims, v.kind, v.numVirtualTokens, v.hasHead); });
  }

  cacheStats(): ResidencyStats {
    return this.residency.stats();
  }

  // --- tenants and keys -------------------------------------------------------------

  async createTenant(name: string): Promise<{ tenant: Tenant; apiKey: string; key: ApiKeyInfo }> {
    validateName('tenant', name);
    return this.backend.tenants.create(name);
  }

  listTenants(): Promise<Tenant[]> {
    return this.backend.tenants.list();
  }

  getTenant(id: string): Promise<Tenant> {
    return this.backend.tenants.get(id);
  }

  /** Deletes a tenant with its keys, tasks, prompts, ensembles and jobs. */
  deleteTenant(id: string): Promise<void> {
    return this.afterWrite(this.backend.tenants.delete(id), { entity: 'tenant', tenantId: id });
  }

  /** A new key for a tenant; the key itself is returned once and only its hash kept. */
  createApiKey(tenantId: string): Promise<NewApiKey> {
    return this.backend.keys.create(tenantId);
  }

  listApiKeys(tenantId: string): Promise<ApiKeyInfo[]> {
    return this.backend.keys.list(tenantId);
  }

  revokeApiKey(tenantId: string, keyId: string): Promise<void> {
    return this.afterWrite(this.backend.keys.revoke(tenantId, keyId), { entity: 'key', tenantId });
  }

  /** The tenant an API key belongs to, or null (unknown or revoked). */
  async authenticate(apiKey: string): Promise<Tenant | null> {
    const id = CatalogCache.keyId(apiKey);
    const hit = this.catalog.tenantForKey(id);
    if (hit) return hit;
    const generation = this.catalog.generation;
    const tenant = await this.backend.keys.authenticate(apiKey);
    if (tenant) this.catalog.putTenantForKey(id, tenant, generation);
    return tenant;
  }

  private readonly writeListeners: Array<(event: CatalogEvent) => void> = [];

  /** Called after every write of this process, with what it may have changed (other processes' caches must forget it too). */
  onWrite(listener: (event: CatalogEvent) => void): void {
    this.writeListeners.push(listener);
  }

  /** Waits for a write, then (committed or not) forgets what it may have changed. */
  private async afterWrite<T>(write: Promise<T>, event: CatalogEvent): Promise<T> {
    try {
      return await write;
    } finally {
      this.catalog.invalidate(event);
      for (const listener of this.writeListeners) listener(event);
    }
  }

  // --- tasks -------------------------------------------------------------------------

  async createTask(tenantId: string, def: TaskDefinition): Promise<Task> {
    const d = validateTaskDefinition(def, this.spec, this.limits, this.tokenizer);
    return this.afterWrite(this.backend.tasks.create(tenantId, d), { entity: 'task', tenantId, task: d.name });
  }

  listTasks(tenantId: string): Promise<Task[]> {
    return this.backend.tasks.list(tenantId);
  }

  async getTask(tenantId: string, name: string): Promise<Task> {
    const hit = this.catalog.task(tenantId, name);
    if (hit) return hit;
    validateName('task', name);
    const generation = this.catalog.generation;
    const task = await this.backend.tasks.get(tenantId, name);
    this.catalog.putTask(task, generation);
    return task;
  }

  /** Deletes a task with all its prompts and ensembles. */
  async deleteTask(tenantId: string, name: string): Promise<void> {
    validateName('task', name);
    return this.afterWrite(this.backend.tasks.delete(tenantId, name), { entity: 'task', tenantId, task: name });
  }

  // --- prompts -------------------------------------------------------------------------

  private encode(tensors: PromptTensors, meta: PromptWriteMeta): PromptVersionWrite {
    return {
      bytes: encodePromptFile(this.dims, tensors), kind: tensors.kind, numVirtualTokens: tensors.numVirtualTokens, hasHead: !!tensors.head,
      modelDims: this.dims, source: meta.source, sourceDtype: meta.sourceDtype ?? null, peftConfig: meta.peftConfig ?? null, provenance: meta.provenance ?? null,
    };
  }

  /**
   * Adds a version of prompt `name` (creating the prompt at version 1). The
   * tensors are validated against the model and the task, made durable, and
   * only then recorded. Returns the new version.
   */
  async putPrompt(tenantId: string, taskName: string, name: string, tensors: PromptTensors, meta: PromptWriteMeta): Promise<PromptVersionInfo> {
    validateName('prompt', name);
    const task = await this.getTask(tenantId, taskName);
    checkPromptAgainstTask(task, tensors, this.spec, this.limits);
    return this.afterWrite(this.backend.prompts.put(tenantId, taskName, name, this.encode(tensors, meta)), { entity: 'prompt', tenantId, task: taskName, prompt: name });
  }

  /** Validates PEFT files against the model and the task, then stores them as a new version. */
  async putPeftPrompt(tenantId: string, taskName: string, name: string, files: PeftFiles): Promise<PromptVersionInfo> {
    validateName('prompt', name);
    const task = await this.getTask(tenantId, taskName);
    const imported = importPeft(files, this.spec, this.limits, task.scoring.type === 'head' ? task.labels.length : undefined);
    return this.putPrompt(tenantId, taskName, name, imported.tensors, { source: 'peft', sourceDtype: imported.sourceDtype, peftConfig: imported.config });
  }

  /**
   * Publishes a training job's prompts (and its ensemble) and marks the job
   * succeeded, in one store operation; NOT_FOUND (nothing written) when its task was deleted since submit.
   */
  async publishTrained(jobId: string, tenantId: string, taskName: string, members: TrainedMember[], ensemble: string | null,
    finish: (versions: PromptVersionInfo[]) => { fields: JobFields; event: Record<string, unknown> }, lease?: string): Promise<PromptVersionInfo[]> {
    const task = await this.getTask(tenantId, taskName);
    const writes = members.map((m) => {
      validateName('prompt', m.name);
      checkPromptAgainstTask(task, m.tensors, this.spec, this.limits);
      return { name: m.name, write: this.encode(m.tensors, { source: 'training', provenance: m.provenance }) };
    });
    return this.afterWrite(this.backend.jobs.publish(jobId, { members: writes, ensemble, finish, ...(lease !== undefined ? { lease } : {}) }), { entity: 'task', tenantId, task: taskName });
  }

  async listPrompts(tenantId: string, taskName: string): Promise<PromptInfo[]> {
    validateName('task', taskName);
    return this.backend.prompts.list(tenantId, taskName);
  }

  async getPrompt(tenantId: string, taskName: string, name: string): Promise<PromptInfo> {
    validateName('prompt', name);
    const info = (await this.listPrompts(tenantId, taskName)).find((p) => p.name === name);
    if (!info) throw new SoftserveError('NOT_FOUND', `no prompt ${JSON.stringify(name)} in task ${JSON.stringify(taskName)}`);
    return info;
  }

  private async storedVersion(tenantId: string, taskName: string, name: string, version?: number | null): Promise<StoredPromptVersion> {
    validateName('task', taskName);
    validateName('prompt', name);
    checkVersion(version);
    return this.backend.prompts.get(tenantId, taskName, name, version);
  }

  async getPromptVersion(tenantId: string, taskName: string, name: string, version?: number | null): Promise<PromptVersionInfo> {
    const { modelDims: _d, peftConfig: _p, ...info } = await this.storedVersion(tenantId, taskName, name, version);
    return info;
  }

  private async load(v: StoredPromptVersion): Promise<ResolvedPrompt> {
    if (!sameDims(v.modelDims, this.dims)) {
      throw new SoftserveError('PROMPT_SHAPE_MISMATCH', `prompt ${JSON.stringify(v.name)} version ${v.version} was stored for a model with ${JSON.stringify(v.modelDims)}; the loaded model has ${JSON.stringify(this.dims)}`, { expected: this.dims, got: v.modelDims });
    }
    const tensors = await this.residency.get(v.tensorHash, async () =>
      decodePromptFile(await this.backend.prompts.readTensor(v.tensorHash), v.modelDims, v.kind, v.numVirtualTokens, v.hasHead));
    const { modelDims: _d, peftConfig: _p, ...info } = v;
    return { ...info, tensors };
  }

  /** A prompt version's tensors (latest when `version` is absent), through the residency cache. */
  async getPromptTensors(tenantId: string, taskName: string, name: string, version?: number | null): Promise<ResolvedPrompt> {
    return this.load(await this.storedVersion(tenantId, taskName, name, version));
  }

  /** PEFT files for a prompt version: what PeftModel.from_pretrained loads. */
  async exportPrompt(tenantId: string, taskName: string, name: string, version?: number | null): Promise<{ info: PromptVersionInfo; config: Uint8Array; model: Uint8Array }> {
    const v = await this.storedVersion(tenantId, taskName, name, version);
    const loaded = await this.load(v);
    const { config, model } = exportPeft(loaded.tensors, this.spec, { storedConfig: v.peftConfig });
    const { tensors: _t, ...info } = loaded;
    return { info, config, model };
  }

  /** Deletes every version of a prompt. Refused (CONFLICT) while an ensemble uses it. */
  async deletePrompt(tenantId: string, taskName: string, name: string): Promise<void> {
    validateName('task', taskName);
    validateName('prompt', name);
    return this.afterWrite(this.backend.prompts.delete(tenantId, taskName, name), { entity: 'prompt', tenantId, task: taskName, prompt: name });
  }

  /**
   * Deletes one version. Refused while an ensemble pins it, or when it is the
   * last version and an ensemble uses the prompt. Version numbers are never
   * reused while the prompt exists.
   */
  async deletePromptVersion(tenantId: string, taskName: string, name: string, version: number): Promise<void> {
    validateName('task', taskName);
    validateName('prompt', name);
    checkVersion(version);
    return this.afterWrite(this.backend.prompts.deleteVersion(tenantId, taskName, name, version), { entity: 'prompt', tenantId, task: taskName, prompt: name });
  }

  // --- ensembles ---------------------------------------------------------------------

  async createEnsemble(tenantId: string, taskName: string, name: string, members: EnsembleMember[], opts: { vote?: VoteMode | null } = {}): Promise<EnsembleInfo> {
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
    validateName('task', taskName);
    return this.afterWrite(this.backend.ensembles.create(tenantId, taskName, name, clean, vote), { entity: 'task', tenantId, task: taskName });
  }

  async listEnsembles(tenantId: string, taskName: string): Promise<EnsembleInfo[]> {
    validateName('task', taskName);
    return this.backend.ensembles.list(tenantId, taskName);
  }

  async getEnsemble(tenantId: string, taskName: string, name: string): Promise<EnsembleInfo> {
    validateName('task', taskName);
    validateName('ensemble', name);
    return this.backend.ensembles.get(tenantId, taskName, name);
  }

  async deleteEnsemble(tenantId: string, taskName: string, name: string): Promise<void> {
    validateName('task', taskName);
    validateName('ensemble', name);
    return this.afterWrite(this.backend.ensembles.delete(tenantId, taskName, name), { entity: 'task', tenantId, task: taskName });
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
    const key = selectorKey(selector);
    let r = this.catalog.resolution(tenantId, taskName, key);
    if (!r) {
      const generation = this.catalog.generation;
      r = await this.resolveVersions(tenantId, taskName, selector);
      this.catalog.putResolution(tenantId, taskName, key, r, generation);
    }
    const members = await Promise.all(r.versions.map((v) => this.load(v)));
    return { task: r.task, ensemble: r.ensemble, vote: r.vote, members };
  }

  /** The store reads behind `resolve`: the task and the prompt versions a selector names. */
  private async resolveVersions(tenantId: string, taskName: string, selector: PromptSelector): Promise<CachedResolution> {
    const task = await this.getTask(tenantId, taskName);
    let ensemble: string | null = null;
    let vote: VoteMode | null = null;
    let versions: StoredPromptVersion[] = [];
    if (selector.ensemble !== undefined && selector.prompt !== undefined) {
      throw new SoftserveError('BAD_REQUEST', 'name a prompt or an ensemble, not both');
    }
    if (selector.ensemble !== undefined) {
      const e = await this.getEnsemble(tenantId, taskName, selector.ensemble);
      ensemble = e.name;
      vote = e.vote;
      // A member cannot vanish meanwhile: deleting a prompt an ensemble uses is refused.
      versions = await Promise.all(e.members.map((m) => this.storedVersion(tenantId, taskName, m.prompt, m.version)));
    } else if (selector.prompt !== undefined) {
      versions = [await this.storedVersion(tenantId, taskName, selector.prompt, selector.version)];
    } else if (selector.version !== undefined) {
      throw new SoftserveError('BAD_REQUEST', 'a version needs a prompt name');
    } else if (task.scoring.type === 'head') {
      throw new SoftserveError('INVALID_INPUT', `task ${JSON.stringify(taskName)} scores with a linear head, which lives with a prompt: name a prompt or an ensemble`);
    }
    return { task, ensemble, vote, versions };
  }
}

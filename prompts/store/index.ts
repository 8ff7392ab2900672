// The storage seam: what softserve keeps (tenants, keys, quotas, tasks, prompt
// versions with their tensors, ensembles, training jobs) behind one
// asynchronous interface per entity. SQLite (./sqlite/) is the first
// implementation; another backend (PostgreSQL, the fleet issue) implements
// these same interfaces and passes the same contract suite
// (test/store-contract.ts).
//
// The rules every implementation keeps:
// - Every method returns a Promise; a refusal is a rejected Promise carrying a
//   SoftserveError with a stable code (NOT_FOUND, CONFLICT, INVALID_INPUT,
//   NOT_FOUND).
// - Tenant isolation: every method that touches a tenant's things takes the
//   tenant id; another tenant's task, prompt, ensemble, key or job is
//   NOT_FOUND, the same answer as one that does not exist.
// - Atomicity: a method is all or nothing. A prompt version's tensor is
//   durable before the row naming it is visible; a failed write leaves no row.
// - Domain rules (name syntax, task definitions against the model, tensors
//   against the task, resolution, the decoded-tensor cache) are NOT here: they
//   live above the store, in prompts/store.ts (PromptStore, the service).

import { randomBytes } from 'node:crypto';

import type { Pooling } from '../../models/pooling.ts';
import type { ModelDims, PromptKind } from '../kinds.ts';
import type { VoteMode } from '../vote.ts';

// --- entities --------------------------------------------------------------------

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

/** A key made now: `apiKey` is returned this once, only its hash is kept. */
export interface NewApiKey {
  apiKey: string;
  key: ApiKeyInfo;
}

export interface StoredAdminKey {
  id: string;
  /** The key's first characters, to tell keys apart. */
  prefix: string;
  createdAt: string;
}

/** A tenant's admission settings: weight in the fair share and limit overrides (server/tenant-quotas.ts). */
export interface StoredQuota {
  weight: number;
  limits: { maxConcurrency?: number; maxRows?: number; maxTokens?: number };
}

export type Scoring =
  | { type: 'verbalizer'; labelWords: string[] }
  | { type: 'head'; pooling: Pooling };

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
  /** sha256 of the stored tensor bytes (identical tensors, identical hash). */
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

/** A version as stored, with what decoding and export need. */
export interface StoredPromptVersion extends PromptVersionInfo {
  /** The model dimensions the tensors were validated against. */
  modelDims: ModelDims;
  /** adapter_config.json as uploaded (for export), or null. */
  peftConfig: Record<string, unknown> | null;
}

export interface PromptInfo {
  task: string;
  name: string;
  latestVersion: number;
  versions: PromptVersionInfo[];
  createdAt: string;
}

/** A new prompt version as the store receives it: encoded tensor bytes plus what describes them. */
export interface PromptVersionWrite {
  /** The encoded tensor file (prompts/kinds.ts encodePromptFile); its sha256 becomes tensorHash. */
  bytes: Uint8Array;
  kind: PromptKind;
  numVirtualTokens: number;
  hasHead: boolean;
  modelDims: ModelDims;
  source: PromptSource;
  sourceDtype?: string | null;
  peftConfig?: Record<string, unknown> | null;
  provenance?: Record<string, unknown> | null;
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

export interface SweepReport {
  removedTemps: number;
  removedOrphans: number;
  /** Hashes some row names whose tensor is absent (must never happen). */
  missing: string[];
  unknownFiles: string[];
}

export interface FsckReport {
  rows: number;
  files: number;
  missing: string[];
  orphans: string[];
  temps: string[];
  /** Tensors that do not hash to their name or do not decode as their rows say. */
  corrupt: string[];
}

export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const FINAL_STATES: readonly JobState[] = ['succeeded', 'failed', 'cancelled'];

/** A training job as stored (snake_case: the JSON columns are shown by server/training/views.ts). */
export interface JobRow {
  id: string;
  tenant_id: string;
  task_name: string;
  task_created_at: string;
  prompt_name: string;
  ensemble_name: string | null;
  state: JobState;
  options: string;
  /** Empty in rows read by get/list (read with `examples`). */
  examples: string;
  validation: string | null;
  num_examples: number;
  progress: string | null;
  history: string;
  result: string | null;
  error: string | null;
  cancel_requested: number;
  attempts: number;
  events: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  updated_at: string;
  /** Set when the job's task is deleted: the job must never publish into a task of the same name created later. */
  task_deleted_at: string | null;
  /** Training time of this job's attempts so far (for the tenant's time quota). */
  train_ms: number;
  /** JSON {estimate_mb, limit_mb, peak_growth_mb}: the memory budget and what the job used. */
  memory: string | null;
  /** The lease token of the runner that claimed the running job ("<runner>/<nonce>", one per claim); null otherwise. */
  lease_owner: string | null;
  /** ISO time the lease ends unless renewed (the database's clock); null when not running. */
  lease_expires_at: string | null;
}

export type NewJob = Omit<JobRow, 'progress' | 'history' | 'result' | 'error' | 'cancel_requested' | 'attempts' | 'events' | 'started_at' | 'finished_at' | 'updated_at' | 'task_deleted_at' | 'train_ms' | 'memory' | 'lease_owner' | 'lease_expires_at'> & { memory?: string | null };
/** Fields a caller may write; the lease columns are written only by claim, heartbeat, release and publish. */
export type JobFields = Partial<Omit<JobRow, 'id' | 'lease_owner' | 'lease_expires_at'>>;

/** A job claimed by a runner: the row as it now is (running, attempts counted) and the lease token its later writes must show. */
export interface JobClaim {
  job: JobRow;
  lease: string;
}

/** What a heartbeat found: whether the lease is still this runner's, and what the API asked meanwhile. */
export interface LeaseState {
  held: boolean;
  cancelRequested: boolean;
  taskDeleted: boolean;
}

/** One trained prompt to publish (see JobStore.publish). */
export interface PublishMember {
  name: string;
  write: PromptVersionWrite;
}

export interface PublishRequest {
  members: PublishMember[];
  /** Made from the members (latest versions) unless one by that name exists already. */
  ensemble: string | null;
  /** The job's final fields and lifecycle event, from the versions just written (a pure function: it runs inside the transaction). */
  finish(versions: PromptVersionInfo[]): { fields: JobFields; event: Record<string, unknown> };
  /** The runner's lease token (JobClaim.lease): publish refuses (CONFLICT) unless the job is still held by it. */
  lease?: string;
}

// --- the interfaces -------------------------------------------------------------------

export interface TenantStore {
  /** CONFLICT when the name is taken. Makes the tenant's first API key. */
  create(name: string): Promise<{ tenant: Tenant } & NewApiKey>;
  list(): Promise<Tenant[]>;
  /** NOT_FOUND when absent. */
  get(id: string): Promise<Tenant>;
  /** Deletes the tenant with its keys, quota, tasks, prompts (and their tensors), ensembles and jobs. NOT_FOUND when absent. */
  delete(id: string): Promise<void>;
}

export interface KeyStore {
  /** NOT_FOUND for an unknown tenant. */
  create(tenantId: string): Promise<NewApiKey>;
  list(tenantId: string): Promise<ApiKeyInfo[]>;
  /** NOT_FOUND unless the key is the tenant's and active. */
  revoke(tenantId: string, keyId: string): Promise<void>;
  /** The tenant an API key belongs to, or null (unknown, revoked, malformed). On the classify hot path: one indexed lookup. */
  authenticate(apiKey: string): Promise<Tenant | null>;
  /** The active stored admin key, if any (at most one). */
  activeAdminKey(): Promise<StoredAdminKey | null>;
  /** Revokes every active stored admin key and makes a new one. */
  rotateAdminKey(): Promise<{ apiKey: string; key: StoredAdminKey }>;
  /** Makes an admin key when none is active (atomically: two starts cannot both make one); null when one exists. */
  ensureAdminKey(): Promise<{ apiKey: string; key: StoredAdminKey } | null>;
  /** Whether `token` is the active stored admin key (compared by hash). */
  isAdminKey(token: string): Promise<boolean>;
}

export interface QuotaStore {
  /** Every stored quota (tenants without one use the defaults). */
  list(): Promise<Array<{ tenantId: string; quota: StoredQuota }>>;
  /** Replaces a tenant's quota. NOT_FOUND for an unknown tenant. */
  put(tenantId: string, quota: StoredQuota): Promise<void>;
}

export interface TaskStore {
  /** `def` is already validated. NOT_FOUND for an unknown tenant, CONFLICT when the name is taken. */
  create(tenantId: string, def: TaskDefinition): Promise<Task>;
  /** By name. */
  list(tenantId: string): Promise<Task[]>;
  get(tenantId: string, name: string): Promise<Task>;
  /** With its prompts, ensembles and tensors; marks the task's unfinished jobs task-deleted in the same step. */
  delete(tenantId: string, name: string): Promise<void>;
}

export interface PromptVersionStore {
  /**
   * Adds a version of prompt `name` (making the prompt at version 1); the
   * tensor is durable before the row is visible. NOT_FOUND when the task is
   * gone (also if it went while the tensor was written).
   */
  put(tenantId: string, task: string, name: string, write: PromptVersionWrite): Promise<PromptVersionInfo>;
  /** The task's prompts by name, versions ascending. NOT_FOUND for an unknown task. */
  list(tenantId: string, task: string): Promise<PromptInfo[]>;
  /** One version (the latest when `version` is null/absent). NOT_FOUND when absent. */
  get(tenantId: string, task: string, name: string, version?: number | null): Promise<StoredPromptVersion>;
  /** Every version. CONFLICT while an ensemble uses the prompt. */
  delete(tenantId: string, task: string, name: string): Promise<void>;
  /** One version; the last one takes the prompt with it. CONFLICT while an ensemble pins it (or uses the prompt, for the last). */
  deleteVersion(tenantId: string, task: string, name: string, version: number): Promise<void>;
  /** A tensor by content hash, as written. NOT_FOUND when no longer stored. */
  readTensor(hash: string): Promise<Uint8Array>;
  /** Called with each hash whose tensor is removed (so caches of decoded tensors can drop it). */
  onTensorRemoved(listener: (hash: string) => void): void;
  /** Removes what an interrupted write can leave. */
  sweep(): Promise<SweepReport>;
  /** Checks rows against tensors without changing anything; `check` throws for bytes that do not decode as their row says. */
  fsck(check: (bytes: Uint8Array, version: StoredPromptVersion) => void): Promise<FsckReport>;
}

export interface EnsembleStore {
  /**
   * `members` are already checked (distinct, well-formed). CONFLICT when the
   * name is taken; INVALID_INPUT when a member prompt/version does not exist.
   */
  create(tenantId: string, task: string, name: string, members: EnsembleMember[], vote: VoteMode | null): Promise<EnsembleInfo>;
  list(tenantId: string, task: string): Promise<EnsembleInfo[]>;
  get(tenantId: string, task: string, name: string): Promise<EnsembleInfo>;
  delete(tenantId: string, task: string, name: string): Promise<void>;
}

export interface JobStore {
  insert(job: NewJob): Promise<void>;
  get(id: string): Promise<JobRow | undefined>;
  /** Another tenant's job: undefined. */
  getForTenant(tenantId: string, id: string): Promise<JobRow | undefined>;
  /** Newest first. */
  list(tenantId: string, task?: string, limit?: number): Promise<JobRow[]>;
  /** A job's examples and validation set (JSON), read only when it runs. */
  examples(id: string): Promise<{ examples: string; validation: string | null } | undefined>;
  /** Jobs queued or running (of one tenant, or all). */
  countActive(tenantId?: string): Promise<number>;
  countByState(): Promise<{ queued: number; running: number }>;
  /** The next job to run, fair across tenants (the tenant whose last job started longest ago first), skipping `exclude`. */
  nextQueued(exclude?: readonly string[]): Promise<JobRow | undefined>;
  queuedTenants(): Promise<string[]>;
  /** Training time (ms) of the tenant's attempts that ended after `sinceIso`, and when the oldest of them ended. */
  trainingTime(tenantId: string, sinceIso: string): Promise<{ ms: number; oldest: string | null }>;
  running(): Promise<JobRow[]>;
  /** Updates the given fields; false when the row is gone (its tenant was deleted). */
  update(id: string, fields: JobFields): Promise<boolean>;
  /** Moves a job between states only if it is in one of `from` (compare-and-set). */
  transition(id: string, from: JobState[], fields: JobFields & { state: JobState }): Promise<boolean>;
  appendEvent(id: string, event: Record<string, unknown>): Promise<void>;
  /** Whether the job's task was deleted after the job was submitted (or the job is gone). */
  taskDeleted(id: string): Promise<boolean>;
  /**
   * Leases (docs/TRAINING.md, "Trainers and leases"). claim takes the next
   * queued job (fair as nextQueued, skipping `exclude`) in ONE transaction:
   * state running, attempts + 1, started_at, lease_owner a fresh token
   * "<owner>/<nonce>", lease_expires_at now + leaseMs. Concurrent claimers
   * (other processes, other machines) never get the same job.
   */
  claim(owner: string, leaseMs: number, exclude?: readonly string[]): Promise<JobClaim | undefined>;
  /**
   * Renews the lease to now + leaseMs and writes `fields` (progress, history),
   * only while the job is running under `lease`. held false: the lease was
   * lost (it expired and was taken back, or the job ended or is gone); the
   * runner must stop and write nothing more.
   */
  heartbeat(id: string, lease: string, leaseMs: number, fields?: JobFields): Promise<LeaseState>;
  /** Running jobs whose lease has expired (every running job when `all`: a single-process store's start). */
  expired(all?: boolean): Promise<JobRow[]>;
  /**
   * Ends a leased run in one step: moves the job from running to
   * `fields.state` (clearing the lease) and appends `event`, only while the job
   * is running under `lease` (null: a row with no lease) and, with
   * `onlyIfExpired`, only if that lease has expired. false: nothing changed.
   */
  release(id: string, lease: string | null, fields: JobFields & { state: JobState }, event: Record<string, unknown>, onlyIfExpired?: boolean): Promise<boolean>;
  /**
   * Publishes a running job's trained prompts in ONE step: writes each
   * member's version, makes the ensemble (unless it exists), and moves the
   * job to succeeded with `finish`'s fields and event. NOT_FOUND (nothing
   * written) when the job's task was deleted since submit; CONFLICT when the
   * job is no longer running, or (with `req.lease`) no longer held by that
   * lease: a job is published at most once, by the runner that holds it.
   */
  publish(jobId: string, req: PublishRequest): Promise<PromptVersionInfo[]>;
}

/** One backend: every entity store over one database. */
export interface Store {
  readonly tenants: TenantStore;
  readonly keys: KeyStore;
  readonly quotas: QuotaStore;
  readonly tasks: TaskStore;
  readonly prompts: PromptVersionStore;
  readonly ensembles: EnsembleStore;
  readonly jobs: JobStore;
  close(): Promise<void>;
}

/** A runner's token for one claim of a job: "<owner>/<nonce>", fresh per claim so a later claim by the same runner is told apart. */
export function newLeaseToken(owner: string): string {
  return `${owner}/${randomBytes(6).toString('base64url')}`;
}

export function newJobId(): string {
  return `job_${randomBytes(12).toString('base64url')}`;
}

// Every setting of the server, in one place: the SOFTSERVE_* environment is
// read once at start (`loadSettings`) into one object with three parts: the
// HTTP/storage/prompt limits (`server`), the model, engine, batching and
// admission settings (`serving`) and training (`training`). Each variable is
// read through one `EnvReader`, so a bad value fails the start with a message
// that names the variable. The README's configuration table documents every
// variable (test/config.test.ts checks it lists each one read here).

import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';

import { parseExecutionProvider, type ExecutionProvider } from '../kernels/session.ts';
import { DEFAULT_TENANT_LIMITS, type AdmissionConfig } from './admission.ts';
import { DEFAULT_CLASSIFY_LIMITS, type ClassifyLimits } from './classify.ts';
import { DEFAULT_HTTP_LIMITS, type HttpLimits } from './http-limits.ts';
import { BATCH_POLICIES, DEFAULT_SCHEDULER_CONFIG, type BatchPolicy, type SchedulerConfig } from './scheduler.ts';

/** Reads SOFTSERVE_* variables: unset or empty means the default; anything else must parse, or the start fails naming the variable. */
export class EnvReader {
  constructor(private readonly env: NodeJS.ProcessEnv) {}

  private raw(name: string): string | undefined {
    const v = this.env[name];
    return v === undefined || v === '' ? undefined : v;
  }

  private fail(name: string, what: string, raw: string): never {
    throw new Error(`${name} must be ${what}, got ${JSON.stringify(raw)}`);
  }

  string(name: string, fallback: string): string {
    return this.raw(name) ?? fallback;
  }

  /** A secret or token: null when unset; at least `minLength` characters when set. */
  secret(name: string, minLength: number): string | null {
    const raw = this.raw(name);
    if (raw === undefined) return null;
    if (raw.length < minLength) throw new Error(`${name} must be at least ${minLength} characters`);
    return raw;
  }

  /** A URL with one of `protocols` (e.g. 'postgres:'), or null when unset. The value is never echoed: it may hold a password. */
  url(name: string, protocols: readonly string[]): string | null {
    const raw = this.raw(name);
    if (raw === undefined) return null;
    let ok = false;
    try {
      ok = protocols.includes(new URL(raw).protocol);
    } catch {
      ok = false;
    }
    if (!ok) throw new Error(`${name} must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`);
    return raw;
  }

  int(name: string, fallback: number, bounds: { min?: number; max?: number } = {}): number {
    const raw = this.raw(name);
    if (raw === undefined) return fallback;
    const { min = 0, max = Number.MAX_SAFE_INTEGER } = bounds;
    const v = Number(raw);
    if (!Number.isSafeInteger(v) || v < min || v > max) this.fail(name, max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer in [${min}, ${max}]`, raw);
    return v;
  }

  /** A duration in seconds; fractions allowed (0.5 = 500 ms), at most ten years. */
  seconds(name: string, fallback: number, min = 0): number {
    const raw = this.raw(name);
    if (raw === undefined) return fallback;
    const v = Number(raw);
    if (!Number.isFinite(v) || v < min || v > 10 * 365 * 86400) this.fail(name, `a number of seconds >= ${min}`, raw);
    return v;
  }

  /** `1` turns a default-off switch on; anything else leaves it off. */
  on(name: string): boolean {
    return this.raw(name) === '1';
  }

  /** `off`, `0`, `false` or `no` (any case) turn a default-on switch off. */
  notOff(name: string): boolean {
    return !['off', '0', 'false', 'no'].includes((this.raw(name) ?? '').toLowerCase());
  }

  oneOf<T extends string>(name: string, values: readonly T[], fallback: T): T {
    const raw = this.raw(name);
    if (raw === undefined) return fallback;
    if (!(values as readonly string[]).includes(raw)) this.fail(name, values.length === 3 ? `${values[0]}, ${values[1]} or ${values[2]}` : `one of ${values.join(', ')}`, raw);
    return raw as T;
  }
}

// ---- HTTP, storage and prompt limits ----

export interface ServerConfig {
  /** SOFTSERVE_HOST (default 127.0.0.1). */
  host: string;
  /** SOFTSERVE_PORT (default 8080; 0 picks a free port). */
  port: number;
  /** SOFTSERVE_ADMIN_KEY: manages tenants. Unset: the admin API answers 403. */
  adminKey: string | null;
  /** SOFTSERVE_DATA_DIR: the database file and tensor files (default ./data). */
  dataDir: string;
  /** SOFTSERVE_DATABASE_URL: postgres://… puts all state in PostgreSQL instead of SQLite in dataDir (default unset: SQLite). */
  databaseUrl: string | null;
  /** SOFTSERVE_MAX_JSON_BYTES: largest JSON request body (default 8 MiB). */
  maxJsonBytes: number;
  /** SOFTSERVE_MAX_JSON_DEPTH: deepest nesting of a JSON body, refused before parsing (default 32). */
  maxJsonDepth: number;
  /** SOFTSERVE_MAX_UPLOAD_BYTES: largest file in a multipart upload (default 64 MiB; lowered at start to what the loaded model's largest legal prompt needs). */
  maxUploadBytes: number;
  /** SOFTSERVE_MAX_VIRTUAL_TOKENS: longest prompt accepted (default 256). */
  maxVirtualTokens: number;
  /** SOFTSERVE_MAX_SAFETENSORS_HEADER_BYTES: largest safetensors JSON header in an upload (default 64 KiB). */
  maxSafetensorsHeaderBytes: number;
  /** SOFTSERVE_MAX_ADAPTER_CONFIG_BYTES: largest adapter_config.json (default 64 KiB). */
  maxAdapterConfigBytes: number;
  /** SOFTSERVE_MAX_LABELS: most labels a task may have (default 256). */
  maxLabels: number;
  /** SOFTSERVE_MAX_ENSEMBLE_SIZE: most prompts in an ensemble (default 16). */
  maxEnsembleSize: number;
  /** SOFTSERVE_PROMPT_CACHE_BYTES: byte bound of resident prompt tensors (default 256 MiB). */
  promptCacheBytes: number;
  /** SOFTSERVE_METRICS_TOKEN: when set, GET /metrics needs `Authorization: Bearer <it>`. */
  metricsToken: string | null;
  /** SOFTSERVE_METRICS_TENANT_LABEL: how tenants appear in metric labels: hash (default), id, none. */
  metricsTenantLabel: TenantLabelMode;
}

export type TenantLabelMode = 'hash' | 'id' | 'none';

export const DEFAULT_CONFIG: ServerConfig = {
  host: '127.0.0.1',
  port: 8080,
  adminKey: null,
  dataDir: './data',
  databaseUrl: null,
  maxJsonBytes: 8 * 1024 * 1024,
  maxJsonDepth: 32,
  maxUploadBytes: 64 * 1024 * 1024,
  maxVirtualTokens: 256,
  maxSafetensorsHeaderBytes: 64 * 1024,
  maxAdapterConfigBytes: 64 * 1024,
  maxLabels: 256,
  maxEnsembleSize: 16,
  promptCacheBytes: 256 * 1024 * 1024,
  metricsToken: null,
  metricsTenantLabel: 'hash',
};

export const TENANT_LABEL_MODES: readonly TenantLabelMode[] = ['hash', 'id', 'none'];

export function loadConfig(env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const e = new EnvReader(env);
  const d = DEFAULT_CONFIG;
  return {
    host: e.string('SOFTSERVE_HOST', d.host),
    port: e.int('SOFTSERVE_PORT', d.port, { min: 0, max: 65535 }),
    adminKey: e.secret('SOFTSERVE_ADMIN_KEY', 16),
    dataDir: e.string('SOFTSERVE_DATA_DIR', d.dataDir),
    databaseUrl: e.url('SOFTSERVE_DATABASE_URL', ['postgres:', 'postgresql:']),
    maxJsonBytes: e.int('SOFTSERVE_MAX_JSON_BYTES', d.maxJsonBytes, { min: 1024 }),
    maxJsonDepth: e.int('SOFTSERVE_MAX_JSON_DEPTH', d.maxJsonDepth, { min: 2 }),
    maxUploadBytes: e.int('SOFTSERVE_MAX_UPLOAD_BYTES', d.maxUploadBytes, { min: 1024 }),
    maxVirtualTokens: e.int('SOFTSERVE_MAX_VIRTUAL_TOKENS', d.maxVirtualTokens, { min: 1 }),
    maxSafetensorsHeaderBytes: e.int('SOFTSERVE_MAX_SAFETENSORS_HEADER_BYTES', d.maxSafetensorsHeaderBytes, { min: 1024 }),
    maxAdapterConfigBytes: e.int('SOFTSERVE_MAX_ADAPTER_CONFIG_BYTES', d.maxAdapterConfigBytes, { min: 1024 }),
    maxLabels: e.int('SOFTSERVE_MAX_LABELS', d.maxLabels, { min: 2 }),
    maxEnsembleSize: e.int('SOFTSERVE_MAX_ENSEMBLE_SIZE', d.maxEnsembleSize, { min: 1 }),
    promptCacheBytes: e.int('SOFTSERVE_PROMPT_CACHE_BYTES', d.promptCacheBytes, { min: 1 }),
    metricsToken: e.secret('SOFTSERVE_METRICS_TOKEN', 16),
    metricsTenantLabel: e.oneOf('SOFTSERVE_METRICS_TENANT_LABEL', TENANT_LABEL_MODES, d.metricsTenantLabel),
  };
}

/** The prompt limits the store enforces, from the server config. */
export function promptLimits(c: ServerConfig): { maxVirtualTokens: number; maxSafetensorsHeaderBytes: number; maxAdapterConfigBytes: number; maxLabels: number } {
  return {
    maxVirtualTokens: c.maxVirtualTokens,
    maxSafetensorsHeaderBytes: c.maxSafetensorsHeaderBytes,
    maxAdapterConfigBytes: c.maxAdapterConfigBytes,
    maxLabels: c.maxLabels,
  };
}

// ---- model, engine, batching, classify limits, admission, connections ----

export interface ServingConfig {
  /** SOFTSERVE_MODEL_DIR: a Hugging Face checkpoint directory (default: ../shared/models/stories260k beside the repository). */
  modelDir: string;
  /** SOFTSERVE_EXECUTION_PROVIDER: cpu (default), cuda or webgpu. */
  executionProvider: ExecutionProvider;
  /** SOFTSERVE_INTRA_OP_THREADS: onnxruntime threads (default: onnxruntime's choice, all cores). */
  intraOpThreads?: number;
  /** SOFTSERVE_ORT_SPIN=1: let onnxruntime's threads spin-wait between runs (default off: on a small machine they take the cores the HTTP thread needs). */
  spinWait: boolean;
  /** SOFTSERVE_BATCH_MAX_TOKENS, _MAX_ROWS, _MAX_WAIT_MS, _TARGET_MS, SOFTSERVE_QUEUE_MAX_ROWS, _MAX_TOKENS, _MAX_TENANT_ROWS, SOFTSERVE_DRR_QUANTUM,
   *  SOFTSERVE_BATCH_POLICY (cross-tenant | per-tenant | single; the last two for benchmarks). */
  scheduler: SchedulerConfig;
  /** SOFTSERVE_MAX_INPUTS, SOFTSERVE_MAX_INPUT_CHARS, SOFTSERVE_MAX_TEXT_TOKENS, SOFTSERVE_DEADLINE_MS, SOFTSERVE_MAX_PROMPTS. */
  classify: ClassifyLimits;
  /** SOFTSERVE_ADMIT_* and SOFTSERVE_TENANT_MAX_*: admission budgets (server/admission.ts). */
  admission: AdmissionConfig;
  /** SOFTSERVE_MAX_CONNECTIONS and the HTTP timeouts (server/http-limits.ts). */
  http: HttpLimits;
  /** SOFTSERVE_DRAIN_TIMEOUT_MS: longest SIGTERM waits for in-flight work (default 30000). */
  drainTimeoutMs: number;
  /** SOFTSERVE_LOG_LEVEL (default info). */
  logLevel: string;
  /**
   * SOFTSERVE_FRONT_WORKERS: K HTTP front processes (node:cluster) sharing the
   * port and feeding this process's one inference worker (server/cluster/).
   * 0 = one process does everything. Default: 0 on the CPU provider (the
   * engine needs the cores; see docs/BENCHMARKS.md), else one per spare core
   * up to 8.
   */
  frontWorkers: number;
}

export const DEFAULT_MODEL_DIR = fileURLToPath(new URL('../../shared/models/stories260k', import.meta.url));

export function loadServingConfig(env: NodeJS.ProcessEnv = process.env): ServingConfig {
  const e = new EnvReader(env);
  const s = DEFAULT_SCHEDULER_CONFIG;
  const c = DEFAULT_CLASSIFY_LIMITS;
  const h = DEFAULT_HTTP_LIMITS;
  const t = DEFAULT_TENANT_LIMITS;
  const scheduler: SchedulerConfig = {
    maxBatchTokens: e.int('SOFTSERVE_BATCH_MAX_TOKENS', s.maxBatchTokens, { min: 1 }),
    maxBatchRows: e.int('SOFTSERVE_BATCH_MAX_ROWS', s.maxBatchRows, { min: 1 }),
    targetBatchMs: e.int('SOFTSERVE_BATCH_TARGET_MS', s.targetBatchMs, { min: 0 }),
    maxWaitMs: e.int('SOFTSERVE_BATCH_MAX_WAIT_MS', s.maxWaitMs, { min: 0 }),
    maxQueueRows: e.int('SOFTSERVE_QUEUE_MAX_ROWS', s.maxQueueRows, { min: 1 }),
    maxQueueTokens: e.int('SOFTSERVE_QUEUE_MAX_TOKENS', s.maxQueueTokens, { min: 1 }),
    maxTenantQueueRows: e.int('SOFTSERVE_QUEUE_MAX_TENANT_ROWS', s.maxTenantQueueRows, { min: 1 }),
    quantumTokens: e.int('SOFTSERVE_DRR_QUANTUM', s.quantumTokens, { min: 1 }),
    policy: e.oneOf<BatchPolicy>('SOFTSERVE_BATCH_POLICY', BATCH_POLICIES, s.policy),
  };
  const admission: AdmissionConfig = {
    // The admission budget defaults to the queue bounds: what is admitted can always be queued.
    maxRows: e.int('SOFTSERVE_ADMIT_MAX_ROWS', scheduler.maxQueueRows, { min: 1 }),
    maxTokens: e.int('SOFTSERVE_ADMIT_MAX_TOKENS', scheduler.maxQueueTokens, { min: 1 }),
    reservePercent: e.int('SOFTSERVE_ADMIT_RESERVE_PERCENT', 25, { min: 0, max: 90 }),
    refusalDelayMs: e.int('SOFTSERVE_REFUSAL_DELAY_MS', 1000, { min: 0, max: 30_000 }),
    tenant: {
      maxConcurrency: e.int('SOFTSERVE_TENANT_MAX_CONCURRENCY', t.maxConcurrency, { min: 1 }),
      maxRows: e.int('SOFTSERVE_TENANT_MAX_ROWS', t.maxRows, { min: 1 }),
      maxTokens: e.int('SOFTSERVE_TENANT_MAX_TOKENS', t.maxTokens, { min: 1 }),
    },
  };
  const http: HttpLimits = {
    maxConnections: e.int('SOFTSERVE_MAX_CONNECTIONS', h.maxConnections, { min: 1 }),
    headersTimeoutMs: e.int('SOFTSERVE_HEADERS_TIMEOUT_MS', h.headersTimeoutMs, { min: 100 }),
    requestTimeoutMs: e.int('SOFTSERVE_REQUEST_TIMEOUT_MS', h.requestTimeoutMs, { min: 100 }),
    keepAliveTimeoutMs: e.int('SOFTSERVE_KEEPALIVE_TIMEOUT_MS', h.keepAliveTimeoutMs, { min: 100 }),
  };
  // Node requires headersTimeout <= requestTimeout.
  http.headersTimeoutMs = Math.min(http.headersTimeoutMs, http.requestTimeoutMs);
  const config: ServingConfig = {
    modelDir: e.string('SOFTSERVE_MODEL_DIR', DEFAULT_MODEL_DIR),
    executionProvider: parseExecutionProvider(e.string('SOFTSERVE_EXECUTION_PROVIDER', 'cpu')),
    scheduler,
    classify: {
      maxInputs: e.int('SOFTSERVE_MAX_INPUTS', c.maxInputs, { min: 1 }),
      maxInputChars: e.int('SOFTSERVE_MAX_INPUT_CHARS', c.maxInputChars, { min: 1 }),
      maxTextTokens: e.int('SOFTSERVE_MAX_TEXT_TOKENS', c.maxTextTokens, { min: 1 }),
      deadlineMs: e.int('SOFTSERVE_DEADLINE_MS', c.deadlineMs, { min: 1 }),
      maxPrompts: e.int('SOFTSERVE_MAX_PROMPTS', c.maxPrompts, { min: 1 }),
    },
    admission,
    http,
    spinWait: e.on('SOFTSERVE_ORT_SPIN'),
    drainTimeoutMs: e.int('SOFTSERVE_DRAIN_TIMEOUT_MS', 30000, { min: 1 }),
    logLevel: e.string('SOFTSERVE_LOG_LEVEL', 'info'),
    frontWorkers: 0,
  };
  const defaultFronts = config.executionProvider === 'cpu' ? 0 : Math.min(8, Math.max(1, availableParallelism() - 2));
  config.frontWorkers = e.int('SOFTSERVE_FRONT_WORKERS', defaultFronts, { min: 0, max: 64 });
  const threads = e.int('SOFTSERVE_INTRA_OP_THREADS', 0, { min: 1 });
  if (threads > 0) config.intraOpThreads = threads;
  return config;
}

// ---- training ----

export interface TrainingConfig {
  /**
   * SOFTSERVE_TRAINING=off: this serve process runs no training runner. With
   * PostgreSQL the job API still queues, lists and cancels (trainer processes,
   * `npm run trainer`, run the jobs); with SQLite nothing else could run them,
   * so submits answer 503.
   */
  enabled: boolean;
  /** SOFTSERVE_TRAINING_THREADS: onnxruntime intra-op threads of the training session (default 1). */
  intraOpThreads: number;
  /** SOFTSERVE_TRAINING_NICE: niceness of the training thread, 0-19 (default 10; a thread cannot be raised above the process's own priority). */
  niceness: number;
  /** SOFTSERVE_TRAINING_MAX_BYTES: largest JSONL upload or JSON job body (default 32 MiB). */
  maxUploadBytes: number;
  /** SOFTSERVE_TRAINING_MAX_EXAMPLES: most examples in one job (default 100000). */
  maxExamples: number;
  /** SOFTSERVE_TRAINING_MAX_TEXT_CHARS: longest example text (default 4000). */
  maxTextChars: number;
  /** SOFTSERVE_TRAINING_MAX_ACTIVE_PER_TENANT: queued + running jobs per tenant (default 4). */
  maxActivePerTenant: number;
  /** SOFTSERVE_TRAINING_MAX_ACTIVE: queued + running jobs in all (default 64). */
  maxActive: number;
  /** SOFTSERVE_TRAINING_MAX_ATTEMPTS: runs a job gets across server restarts before it is failed (default 3). */
  maxAttempts: number;
  /** How often a running job's progress is written to the database (ms). */
  progressIntervalMs: number;
  /**
   * SOFTSERVE_TRAINING_MEMORY_MB: a job's memory ceiling (default 2048): its
   * estimated peak is checked against it at submit (422 TRAINING_MEMORY_BUDGET),
   * and the process's RSS growth over the pre-job baseline is sampled while it
   * runs; a job that goes over is stopped (failed, TRAINING_MEMORY_LIMIT).
   */
  memoryMb: number;
  /** SOFTSERVE_TRAINING_MAX_BATCH_TOKENS: batch_size x tokens per row, at most (default 16384). */
  maxBatchTokens: number;
  /** SOFTSERVE_TRAINING_MEMORY_SAMPLE_MS: how often the running job's memory is sampled (default 100). */
  memorySampleMs: number;
  /**
   * SOFTSERVE_TRAINING_TENANT_SECONDS: training time one tenant may use within
   * the window (default 21600 = 6 h; 0 = no limit). Over it, submits get 429
   * TRAINING_TIME_QUOTA and a running job is stopped.
   */
  tenantSeconds: number;
  /** SOFTSERVE_TRAINING_TENANT_WINDOW_SECONDS: the window of that quota (default 86400 = 24 h). */
  tenantWindowSeconds: number;
  /** SOFTSERVE_TRAINING_LEASE_MS: how long a runner's claim on a job holds without a heartbeat; then another runner may retrain it (default 30000). */
  leaseMs: number;
  /** SOFTSERVE_TRAINING_HEARTBEAT_MS: how often a runner renews its lease (default 5000; at most a third of the lease). */
  heartbeatMs: number;
  /** SOFTSERVE_TRAINING_POLL_MS: how often an idle runner on a shared database looks for queued or abandoned jobs (default 2000). */
  pollMs: number;
  /** SOFTSERVE_TRAINER_PORT: a trainer process's /healthz and /metrics listener on SOFTSERVE_HOST (default 8081; 0: any free port). */
  trainerPort: number;
}

export const DEFAULT_TRAINING_CONFIG: TrainingConfig = {
  enabled: true,
  intraOpThreads: 1,
  niceness: 10,
  maxUploadBytes: 32 * 1024 * 1024,
  maxExamples: 100000,
  maxTextChars: 4000,
  maxActivePerTenant: 4,
  maxActive: 64,
  maxAttempts: 3,
  progressIntervalMs: 1000,
  memoryMb: 2048,
  maxBatchTokens: 16384,
  memorySampleMs: 100,
  tenantSeconds: 6 * 3600,
  tenantWindowSeconds: 24 * 3600,
  leaseMs: 30000,
  heartbeatMs: 5000,
  pollMs: 2000,
  trainerPort: 8081,
};

export function loadTrainingConfig(env: NodeJS.ProcessEnv = process.env): TrainingConfig {
  const e = new EnvReader(env);
  const d = DEFAULT_TRAINING_CONFIG;
  return {
    enabled: e.notOff('SOFTSERVE_TRAINING'),
    intraOpThreads: e.int('SOFTSERVE_TRAINING_THREADS', d.intraOpThreads, { min: 1, max: 256 }),
    niceness: e.int('SOFTSERVE_TRAINING_NICE', d.niceness, { min: 0, max: 19 }),
    maxUploadBytes: e.int('SOFTSERVE_TRAINING_MAX_BYTES', d.maxUploadBytes, { min: 1024 }),
    maxExamples: e.int('SOFTSERVE_TRAINING_MAX_EXAMPLES', d.maxExamples, { min: 2 }),
    maxTextChars: e.int('SOFTSERVE_TRAINING_MAX_TEXT_CHARS', d.maxTextChars, { min: 1 }),
    maxActivePerTenant: e.int('SOFTSERVE_TRAINING_MAX_ACTIVE_PER_TENANT', d.maxActivePerTenant, { min: 1 }),
    maxActive: e.int('SOFTSERVE_TRAINING_MAX_ACTIVE', d.maxActive, { min: 1 }),
    maxAttempts: e.int('SOFTSERVE_TRAINING_MAX_ATTEMPTS', d.maxAttempts, { min: 1 }),
    progressIntervalMs: d.progressIntervalMs,
    memoryMb: e.int('SOFTSERVE_TRAINING_MEMORY_MB', d.memoryMb, { min: 1 }),
    maxBatchTokens: e.int('SOFTSERVE_TRAINING_MAX_BATCH_TOKENS', d.maxBatchTokens, { min: 1 }),
    memorySampleMs: e.int('SOFTSERVE_TRAINING_MEMORY_SAMPLE_MS', d.memorySampleMs, { min: 10, max: 60000 }),
    tenantSeconds: e.seconds('SOFTSERVE_TRAINING_TENANT_SECONDS', d.tenantSeconds),
    tenantWindowSeconds: e.seconds('SOFTSERVE_TRAINING_TENANT_WINDOW_SECONDS', d.tenantWindowSeconds, 1),
    leaseMs: e.int('SOFTSERVE_TRAINING_LEASE_MS', d.leaseMs, { min: 300, max: 3_600_000 }),
    heartbeatMs: e.int('SOFTSERVE_TRAINING_HEARTBEAT_MS', d.heartbeatMs, { min: 50, max: 1_200_000 }),
    pollMs: e.int('SOFTSERVE_TRAINING_POLL_MS', d.pollMs, { min: 50, max: 600_000 }),
    trainerPort: e.int('SOFTSERVE_TRAINER_PORT', d.trainerPort, { max: 65535 }),
  };
}

// ---- all of it ----

export interface Settings {
  server: ServerConfig;
  serving: ServingConfig;
  training: TrainingConfig;
}

/** Every setting, read once at start. */
export function loadSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  return { server: loadConfig(env), serving: loadServingConfig(env), training: loadTrainingConfig(env) };
}

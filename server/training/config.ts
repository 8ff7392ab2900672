// Training settings, from the environment (read once at start).

export interface TrainingConfig {
  /** SOFTSERVE_TRAINING=off disables the job API (503) and the worker. */
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
};

function int(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new Error(`${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(raw)}`);
  return v;
}

/** A duration in seconds; fractions allowed (0.5 = 500 ms). */
function seconds(env: NodeJS.ProcessEnv, name: string, fallback: number, min = 0): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < min || v > 10 * 365 * 86400) throw new Error(`${name} must be a number of seconds >= ${min}, got ${JSON.stringify(raw)}`);
  return v;
}

export function loadTrainingConfig(env: NodeJS.ProcessEnv = process.env): TrainingConfig {
  const d = DEFAULT_TRAINING_CONFIG;
  const flag = (env.SOFTSERVE_TRAINING ?? '').toLowerCase();
  return {
    enabled: !['off', '0', 'false', 'no'].includes(flag),
    intraOpThreads: int(env, 'SOFTSERVE_TRAINING_THREADS', d.intraOpThreads, 1, 256),
    niceness: int(env, 'SOFTSERVE_TRAINING_NICE', d.niceness, 0, 19),
    maxUploadBytes: int(env, 'SOFTSERVE_TRAINING_MAX_BYTES', d.maxUploadBytes, 1024),
    maxExamples: int(env, 'SOFTSERVE_TRAINING_MAX_EXAMPLES', d.maxExamples, 2),
    maxTextChars: int(env, 'SOFTSERVE_TRAINING_MAX_TEXT_CHARS', d.maxTextChars, 1),
    maxActivePerTenant: int(env, 'SOFTSERVE_TRAINING_MAX_ACTIVE_PER_TENANT', d.maxActivePerTenant, 1),
    maxActive: int(env, 'SOFTSERVE_TRAINING_MAX_ACTIVE', d.maxActive, 1),
    maxAttempts: int(env, 'SOFTSERVE_TRAINING_MAX_ATTEMPTS', d.maxAttempts, 1),
    progressIntervalMs: d.progressIntervalMs,
    memoryMb: int(env, 'SOFTSERVE_TRAINING_MEMORY_MB', d.memoryMb, 1),
    maxBatchTokens: int(env, 'SOFTSERVE_TRAINING_MAX_BATCH_TOKENS', d.maxBatchTokens, 1),
    memorySampleMs: int(env, 'SOFTSERVE_TRAINING_MEMORY_SAMPLE_MS', d.memorySampleMs, 10, 60000),
    tenantSeconds: seconds(env, 'SOFTSERVE_TRAINING_TENANT_SECONDS', d.tenantSeconds),
    tenantWindowSeconds: seconds(env, 'SOFTSERVE_TRAINING_TENANT_WINDOW_SECONDS', d.tenantWindowSeconds, 1),
  };
}

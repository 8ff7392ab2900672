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
};

function int(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new Error(`${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(raw)}`);
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
  };
}

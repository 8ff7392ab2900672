// Model, engine, batching and classify settings, from the environment. (HTTP,
// storage and prompt limits are in config.ts.)

import { fileURLToPath } from 'node:url';
import { parseExecutionProvider, type ExecutionProvider } from '../kernels/session.ts';
import { BATCH_POLICIES, DEFAULT_SCHEDULER_CONFIG, type BatchPolicy, type SchedulerConfig } from './scheduler.ts';
import { DEFAULT_CLASSIFY_LIMITS, type ClassifyLimits } from './classify.ts';
import { loadAdmissionConfig, type AdmissionConfig } from './admission.ts';
import { loadHttpLimits, type HttpLimits } from './http-limits.ts';

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
}

export const DEFAULT_MODEL_DIR = fileURLToPath(new URL('../../shared/models/stories260k', import.meta.url));

function int(env: NodeJS.ProcessEnv, name: string, fallback: number, min = 1): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isSafeInteger(v) || v < min) throw new Error(`${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  return v;
}

function batchPolicy(raw: string | undefined): BatchPolicy {
  if (raw === undefined || raw === '') return DEFAULT_SCHEDULER_CONFIG.policy;
  if ((BATCH_POLICIES as readonly string[]).includes(raw)) return raw as BatchPolicy;
  throw new Error(`SOFTSERVE_BATCH_POLICY must be one of ${BATCH_POLICIES.join(', ')}, got ${JSON.stringify(raw)}`);
}

export function loadServingConfig(env: NodeJS.ProcessEnv = process.env): ServingConfig {
  const s = DEFAULT_SCHEDULER_CONFIG;
  const c = DEFAULT_CLASSIFY_LIMITS;
  const config: ServingConfig = {
    modelDir: env.SOFTSERVE_MODEL_DIR || DEFAULT_MODEL_DIR,
    executionProvider: parseExecutionProvider(env.SOFTSERVE_EXECUTION_PROVIDER || 'cpu'),
    scheduler: {
      maxBatchTokens: int(env, 'SOFTSERVE_BATCH_MAX_TOKENS', s.maxBatchTokens),
      maxBatchRows: int(env, 'SOFTSERVE_BATCH_MAX_ROWS', s.maxBatchRows),
      targetBatchMs: int(env, 'SOFTSERVE_BATCH_TARGET_MS', s.targetBatchMs, 0),
      maxWaitMs: int(env, 'SOFTSERVE_BATCH_MAX_WAIT_MS', s.maxWaitMs, 0),
      maxQueueRows: int(env, 'SOFTSERVE_QUEUE_MAX_ROWS', s.maxQueueRows),
      maxQueueTokens: int(env, 'SOFTSERVE_QUEUE_MAX_TOKENS', s.maxQueueTokens),
      maxTenantQueueRows: int(env, 'SOFTSERVE_QUEUE_MAX_TENANT_ROWS', s.maxTenantQueueRows),
      quantumTokens: int(env, 'SOFTSERVE_DRR_QUANTUM', s.quantumTokens),
      policy: batchPolicy(env.SOFTSERVE_BATCH_POLICY),
    },
    classify: {
      maxInputs: int(env, 'SOFTSERVE_MAX_INPUTS', c.maxInputs),
      maxInputChars: int(env, 'SOFTSERVE_MAX_INPUT_CHARS', c.maxInputChars),
      maxTextTokens: int(env, 'SOFTSERVE_MAX_TEXT_TOKENS', c.maxTextTokens),
      deadlineMs: int(env, 'SOFTSERVE_DEADLINE_MS', c.deadlineMs),
      maxPrompts: int(env, 'SOFTSERVE_MAX_PROMPTS', c.maxPrompts),
    },
    admission: loadAdmissionConfig(env, { maxRows: int(env, 'SOFTSERVE_QUEUE_MAX_ROWS', s.maxQueueRows), maxTokens: int(env, 'SOFTSERVE_QUEUE_MAX_TOKENS', s.maxQueueTokens) }),
    http: loadHttpLimits(env),
    spinWait: env.SOFTSERVE_ORT_SPIN === '1',
    drainTimeoutMs: int(env, 'SOFTSERVE_DRAIN_TIMEOUT_MS', 30000),
    logLevel: env.SOFTSERVE_LOG_LEVEL || 'info',
  };
  if (env.SOFTSERVE_INTRA_OP_THREADS) config.intraOpThreads = int(env, 'SOFTSERVE_INTRA_OP_THREADS', 1);
  return config;
}

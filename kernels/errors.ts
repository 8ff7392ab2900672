// Every error softserve raises, in one place: a stable code, the HTTP status a
// client sees, and a message written at the point of failure. Lower layers
// (kernels, models, prompts) throw these; the server maps `status` directly, so
// a new failure mode is one line here, not a new branch in every route.

export const ERROR_STATUS = {
  // 400: the request itself is malformed
  BAD_REQUEST: 400,
  INVALID_JSON: 400,
  INVALID_NAME: 400,
  INVALID_SAFETENSORS: 400,
  INVALID_ADAPTER_CONFIG: 400,
  INVALID_JSONL: 400,
  INVALID_MULTIPART: 400,
  /** A JSON body nested deeper than SOFTSERVE_MAX_JSON_DEPTH (refused before parsing). */
  JSON_TOO_DEEP: 400,
  /** An ensemble vote mode that does not exist. */
  INVALID_VOTE_MODE: 400,
  /** min_agreement outside [0, 1]. */
  INVALID_MIN_AGREEMENT: 400,
  // 401/403: authentication
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  // 404: unknown, or not yours (indistinguishable on purpose)
  NOT_FOUND: 404,
  // 409: conflicts with existing state
  CONFLICT: 409,
  // 413: over a configured limit
  PAYLOAD_TOO_LARGE: 413,
  // 415: a body in a format the route does not take
  UNSUPPORTED_MEDIA_TYPE: 415,
  // 422: well-formed but invalid against the loaded model or task
  UNSUPPORTED_PEFT_TYPE: 422,
  PROMPT_SHAPE_MISMATCH: 422,
  PROMPT_DTYPE_UNSUPPORTED: 422,
  PROMPT_NOT_FINITE: 422,
  PROMPT_TOO_LONG: 422,
  INVALID_TASK: 422,
  /** A template's {soft:a-b} slots: reversed or empty, past the virtual-token limit, overlapping, gapped, malformed. */
  INVALID_TEMPLATE: 422,
  /** Two label words score the same token, so their classes could never differ. */
  AMBIGUOUS_LABEL_WORDS: 422,
  /** A prompt's length differs from the number of virtual tokens the task's {soft:a-b} slots place. */
  PROMPT_TEMPLATE_MISMATCH: 422,
  /** An ensemble (or a request's prompts list) names one prompt twice: a double vote. */
  DUPLICATE_ENSEMBLE_MEMBER: 422,
  INVALID_INPUT: 422,
  /** Training examples with bad rows (each listed in details.errors with its line or index). */
  INVALID_EXAMPLES: 422,
  /** A training job whose estimated peak memory is over SOFTSERVE_TRAINING_MEMORY_MB (or its batch over the batch-token bound). */
  TRAINING_MEMORY_BUDGET: 422,
  /** A weighted vote over a member without a recorded held-out accuracy. */
  VOTE_WEIGHT_UNKNOWN: 422,
  // 429/503/504: load and lifecycle
  OVERLOADED: 429,
  /** A tenant at its training limits: jobs queued or running, or training time in the window. */
  TRAINING_QUEUE_LIMIT: 429,
  TRAINING_TIME_QUOTA: 429,
  /** Admission: a per-tenant limit (concurrency, rows, tokens in flight); details.limit names it. */
  TENANT_LIMIT: 429,
  /** Admission: over its fair share while the rest of the capacity is reserved for tenants within theirs. */
  FAIR_SHARE_EXCEEDED: 429,
  NOT_READY: 503,
  DRAINING: 503,
  /** The inference worker thread died; it restarts by itself (see /readyz). */
  INFERENCE_WORKER_RESTARTING: 503,
  DEADLINE_EXCEEDED: 504,
  // 500: the server's own files or runtime; never the client's fault
  MODEL_FILE_MISSING: 500,
  MODEL_FILE_INVALID: 500,
  MODEL_CONFIG_INVALID: 500,
  MODEL_ARCHITECTURE_UNSUPPORTED: 500,
  MODEL_TENSOR_MISSING: 500,
  MODEL_TENSOR_SHAPE: 500,
  EXECUTION_PROVIDER_UNAVAILABLE: 500,
  ENGINE_INPUT_INVALID: 500,
  PROMPT_FILE_CORRUPT: 500,
  INTERNAL: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class SoftserveError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra machine-readable facts (expected vs got, file, tensor, line...). */
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'SoftserveError';
    this.code = code;
    this.status = ERROR_STATUS[code];
    if (details !== undefined) this.details = details;
  }
}

export function isSoftserveError(err: unknown): err is SoftserveError {
  return err instanceof SoftserveError;
}

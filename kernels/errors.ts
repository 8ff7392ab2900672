// Every error softserve raises, in one place: a stable code, a message written
// at the point of failure, and optional machine-readable details. Lower layers
// (kernels, models, prompts) throw these; they know nothing of HTTP: the server
// maps each code to a status and headers (server/errors.ts), the way TEI's
// router maps its core errors. A new failure mode is one line here and one in
// that map.

/** Every code, grouped by what went wrong (the HTTP status each gets is server/errors.ts' business). */
const CODES = {
  // the request itself is malformed
  BAD_REQUEST: true,
  INVALID_JSON: true,
  INVALID_NAME: true,
  INVALID_SAFETENSORS: true,
  INVALID_ADAPTER_CONFIG: true,
  INVALID_JSONL: true,
  INVALID_MULTIPART: true,
  /** A JSON body nested deeper than SOFTSERVE_MAX_JSON_DEPTH (refused before parsing). */
  JSON_TOO_DEEP: true,
  /** An ensemble vote mode that does not exist. */
  INVALID_VOTE_MODE: true,
  /** min_agreement outside [0, 1]. */
  INVALID_MIN_AGREEMENT: true,
  // authentication
  UNAUTHORIZED: true,
  FORBIDDEN: true,
  // unknown, or not yours (indistinguishable on purpose)
  NOT_FOUND: true,
  // conflicts with existing state
  CONFLICT: true,
  // over a configured limit
  PAYLOAD_TOO_LARGE: true,
  // a body in a format the route does not take
  UNSUPPORTED_MEDIA_TYPE: true,
  // well-formed but invalid against the loaded model or task
  UNSUPPORTED_PEFT_TYPE: true,
  PROMPT_SHAPE_MISMATCH: true,
  PROMPT_DTYPE_UNSUPPORTED: true,
  PROMPT_NOT_FINITE: true,
  PROMPT_TOO_LONG: true,
  INVALID_TASK: true,
  /** A template's {soft:a-b} slots: reversed or empty, past the virtual-token limit, overlapping, gapped, malformed. */
  INVALID_TEMPLATE: true,
  /** Two label words score the same token, so their classes could never differ. */
  AMBIGUOUS_LABEL_WORDS: true,
  /** A prompt's length differs from the number of virtual tokens the task's {soft:a-b} slots place. */
  PROMPT_TEMPLATE_MISMATCH: true,
  /** An ensemble (or a request's prompts list) names one prompt twice: a double vote. */
  DUPLICATE_ENSEMBLE_MEMBER: true,
  INVALID_INPUT: true,
  /** Training examples with bad rows (each listed in details.errors with its line or index). */
  INVALID_EXAMPLES: true,
  /** A training job whose estimated peak memory is over SOFTSERVE_TRAINING_MEMORY_MB (or its batch over the batch-token bound). */
  TRAINING_MEMORY_BUDGET: true,
  /** A weighted vote over a member without a recorded held-out accuracy. */
  VOTE_WEIGHT_UNKNOWN: true,
  // load and lifecycle
  OVERLOADED: true,
  /** A tenant at its training limits: jobs queued or running, or training time in the window. */
  TRAINING_QUEUE_LIMIT: true,
  TRAINING_TIME_QUOTA: true,
  /** Admission: a per-tenant limit (concurrency, rows, tokens in flight); details.limit names it. */
  TENANT_LIMIT: true,
  /** Admission: over its fair share while the rest of the capacity is reserved for tenants within theirs. */
  FAIR_SHARE_EXCEEDED: true,
  NOT_READY: true,
  DRAINING: true,
  /** The inference worker thread died; it restarts by itself (see /readyz). */
  INFERENCE_WORKER_RESTARTING: true,
  DEADLINE_EXCEEDED: true,
  /** The database (PostgreSQL) cannot be reached now; what is cached is still served. */
  STORE_UNAVAILABLE: true,
  // the server's own files or runtime; never the client's fault
  MODEL_FILE_MISSING: true,
  MODEL_FILE_INVALID: true,
  MODEL_CONFIG_INVALID: true,
  MODEL_ARCHITECTURE_UNSUPPORTED: true,
  MODEL_TENSOR_MISSING: true,
  MODEL_TENSOR_SHAPE: true,
  EXECUTION_PROVIDER_UNAVAILABLE: true,
  ENGINE_INPUT_INVALID: true,
  PROMPT_FILE_CORRUPT: true,
  INTERNAL: true,
} as const satisfies Record<string, true>;

export type ErrorCode = keyof typeof CODES;

/** Every error code, in declaration order. */
export const ERROR_CODES = Object.keys(CODES) as ErrorCode[];

/** Whether a string (say, one that crossed a thread boundary) is one of our codes. */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(CODES, code);
}

export class SoftserveError extends Error {
  readonly code: ErrorCode;
  /** Extra machine-readable facts (expected vs got, file, tensor, line...). */
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'SoftserveError';
    this.code = code;
    if (details !== undefined) this.details = details;
  }
}

export function isSoftserveError(err: unknown): err is SoftserveError {
  return err instanceof SoftserveError;
}

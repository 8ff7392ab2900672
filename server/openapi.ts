// The OpenAPI document served at /openapi.json. docs/API.md is the prose
// version; keep the two in step (test/openapi.test.ts checks every route the
// server answers is listed here).

import { PRODUCT_VERSION } from './info.ts';

type Json = Record<string, unknown>;

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: Json): Json => ({ 'application/json': { schema } });
const ok = (description: string, schema?: Json): Json => (schema ? { description, content: json(schema) } : { description });
const errors = (...statuses: number[]): Json =>
  Object.fromEntries(statuses.map((s) => [String(s), { description: ERROR_TEXT[s] ?? 'error', content: json(ref('Error')) }]));

const ERROR_TEXT: Record<number, string> = {
  400: 'malformed request', 401: 'missing or unknown key', 403: 'wrong kind of key', 404: 'unknown, or not yours',
  409: 'conflict', 413: 'over a limit', 415: 'unsupported media type', 422: 'invalid against the model or task',
  429: 'overloaded (see Retry-After)', 503: 'not ready or draining', 504: 'deadline exceeded',
};

const name = (what: string): Json => ({ name: what, in: 'path', required: true, schema: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' } });
const version: Json = { name: 'version', in: 'path', required: true, schema: { oneOf: [{ type: 'integer', minimum: 1 }, { type: 'string', enum: ['latest'] }] } };

const schemas: Record<string, Json> = {
  Error: {
    type: 'object', required: ['error'],
    properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' }, request_id: { type: 'string', description: 'the X-Request-Id of the answer; quote it to find the server log line' }, details: { type: 'object' } } } },
  },
  Tenant: { type: 'object', properties: { id: { type: 'string' }, name: { type: 'string' }, created_at: { type: 'string', format: 'date-time' } } },
  QuotaPatch: {
    type: 'object',
    properties: {
      weight: { type: 'number', exclusiveMinimum: true, minimum: 0, maximum: 1000, description: 'share of the main admission budget relative to other active tenants (default 1)' },
      limits: { type: 'object', properties: Object.fromEntries(['max_concurrency', 'max_rows', 'max_tokens'].map((k) => [k, { type: 'integer', minimum: 1, nullable: true, description: 'null: the server default' }])) },
    },
  },
  Quota: {
    type: 'object',
    properties: {
      id: { type: 'string' }, weight: { type: 'number' },
      limits: { type: 'object', properties: { max_concurrency: { type: 'integer' }, max_rows: { type: 'integer' }, max_tokens: { type: 'integer' } } },
      overrides: { type: 'object' },
      in_flight: { type: 'object', properties: { rows: { type: 'integer' }, tokens: { type: 'integer' }, requests: { type: 'integer' } } },
    },
  },
  Key: { type: 'object', properties: { id: { type: 'string' }, prefix: { type: 'string' }, created_at: { type: 'string' }, revoked_at: { type: 'string', nullable: true } } },
  NewKey: { type: 'object', properties: { api_key: { type: 'string', description: 'shown once' }, key: ref('Key') } },
  Task: {
    type: 'object', required: ['name', 'labels', 'template', 'scoring'],
    properties: {
      name: { type: 'string' },
      labels: { type: 'array', items: { type: 'string' }, minItems: 2 },
      template: { type: 'string', description: 'contains {text} once; may contain {mask} (masked LMs) and {soft} / {soft:a-b} (where virtual tokens go; default: first)' },
      scoring: {
        oneOf: [
          { type: 'object', required: ['type', 'label_words'], properties: { type: { enum: ['verbalizer'] }, label_words: { type: 'array', items: { type: 'string' } } } },
          { type: 'object', required: ['type'], properties: { type: { enum: ['head'] }, pooling: { enum: ['last', 'mean'] } } },
        ],
      },
      created_at: { type: 'string' },
    },
  },
  JsonPrompt: {
    type: 'object', required: ['name', 'kind', 'tensor'],
    properties: {
      name: { type: 'string' }, kind: { enum: ['soft', 'ptuning', 'prefix'] },
      tensor: { type: 'array', description: '[P][H] for soft/ptuning, [L][2][KV][P][D] for prefix', items: {} },
      head: { type: 'object', properties: { weight: { type: 'array', items: {} }, bias: { type: 'array', items: { type: 'number' } } } },
    },
  },
  PromptVersion: {
    type: 'object',
    properties: {
      task: { type: 'string' }, name: { type: 'string' }, version: { type: 'integer' }, kind: { enum: ['soft', 'ptuning', 'prefix'] },
      num_virtual_tokens: { type: 'integer' }, has_head: { type: 'boolean' }, tensor_sha256: { type: 'string' }, tensor_bytes: { type: 'integer' },
      source: { enum: ['peft', 'json', 'training'] }, source_dtype: { type: 'string', nullable: true }, created_at: { type: 'string' },
      provenance: {
        type: 'object', nullable: true, additionalProperties: true,
        description: 'trained versions: job, method, seed, init, held_out_accuracy (a weighted vote\'s weight), held_out_examples; distill: student, gold_weight, teacher {ensemble, members}; transfer: init_from {prompt, version, task?}. null for uploads',
      },
    },
  },
  Prompt: { type: 'object', properties: { task: { type: 'string' }, name: { type: 'string' }, latest_version: { type: 'integer' }, versions: { type: 'array', items: ref('PromptVersion') } } },
  Ensemble: {
    type: 'object',
    properties: {
      task: { type: 'string' }, name: { type: 'string' }, members: { type: 'array', items: { type: 'object', properties: { prompt: { type: 'string' }, version: { type: 'integer', nullable: true } } } },
      vote: { enum: ['majority', 'mean_probability', 'weighted'], description: 'the ensemble\'s vote mode (default majority); a request\'s vote overrides it' },
    },
  },
  Info: {
    type: 'object',
    properties: {
      product: { type: 'object', properties: { name: { type: 'string' }, version: { type: 'string' } } },
      model: {
        type: 'object',
        properties: {
          name: { type: 'string', description: 'the model directory\'s name' }, family: { enum: ['llama', 'gpt2', 'bert', 'roberta'] }, model_type: { type: 'string' },
          hidden_size: { type: 'integer' }, num_layers: { type: 'integer' }, num_heads: { type: 'integer' }, num_kv_heads: { type: 'integer' },
          head_dim: { type: 'integer' }, vocab_size: { type: 'integer' }, max_positions: { type: 'integer' },
        },
      },
      execution_provider: { enum: ['cpu', 'cuda', 'webgpu'] },
      limits: {
        type: 'object',
        properties: {
          max_inputs: { type: 'integer' }, max_input_chars: { type: 'integer' }, max_text_tokens: { type: 'integer' },
          max_virtual_tokens: { type: 'integer' }, max_labels: { type: 'integer' }, max_ensemble_size: { type: 'integer' },
          max_prompts: { type: 'integer' }, deadline_ms: { type: 'integer' }, max_json_bytes: { type: 'integer' }, max_upload_bytes: { type: 'integer' },
          batch: { type: 'object', properties: { max_rows: { type: 'integer' }, max_tokens: { type: 'integer' }, max_wait_ms: { type: 'integer' } } },
        },
      },
    },
  },
  PromptInspection: {
    type: 'object',
    properties: {
      task: { type: 'string' }, prompt: { type: 'string' }, version: { type: 'integer' }, kind: { enum: ['soft', 'ptuning', 'prefix'] }, num_virtual_tokens: { type: 'integer' },
      tokens: {
        type: 'array', description: 'soft and ptuning prompts: one entry per virtual token',
        items: {
          type: 'object',
          properties: {
            index: { type: 'integer' }, norm: { type: 'number' },
            nearest: { type: 'array', items: { type: 'object', properties: { id: { type: 'integer' }, token: { type: 'string' }, similarity: { type: 'number', description: 'cosine similarity to the token\'s input embedding' } } } },
          },
        },
      },
      layers: {
        type: 'array', description: 'prefix prompts: one entry per layer',
        items: {
          type: 'object',
          properties: {
            layer: { type: 'integer' }, key_norm: { type: 'number', description: 'mean over prefix positions of the keys\' L2 norm (all key/value heads)' }, value_norm: { type: 'number' },
            key_norms: { type: 'array', items: { type: 'number' } }, value_norms: { type: 'array', items: { type: 'number' } },
          },
        },
      },
    },
  },
  ClassifyRequest: {
    type: 'object', required: ['inputs'], additionalProperties: false,
    properties: {
      inputs: { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1, description: 'at most SOFTSERVE_MAX_INPUTS, each at most SOFTSERVE_MAX_INPUT_CHARS' },
      prompt: { type: 'string' }, version: { type: 'integer', minimum: 1 }, ensemble: { type: 'string' },
      prompts: { type: 'array', items: { oneOf: [{ type: 'string' }, { type: 'object', properties: { name: { type: 'string' }, version: { type: 'integer' } } }] } },
      deadline_ms: { type: 'integer', minimum: 1, description: 'shorter than the server default only' },
      vote: { enum: ['majority', 'mean_probability', 'weighted'], description: 'multi-prompt calls: how the members\' answers are reduced (default: the ensemble\'s mode, else majority); 400 INVALID_VOTE_MODE otherwise' },
      min_agreement: { type: 'number', minimum: 0, maximum: 1, description: 'multi-prompt calls: abstain (label null) on inputs whose agreement is below this; 400 INVALID_MIN_AGREEMENT outside [0, 1]' },
    },
  },
  ClassifyResponse: {
    type: 'object',
    properties: {
      task: { type: 'string' },
      prompt: { type: 'object', nullable: true, properties: { name: { type: 'string' }, version: { type: 'integer' } } },
      ensemble: { type: 'string', nullable: true },
      results: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            label: { type: 'string', nullable: true, description: 'null when the ensemble abstained (agreement below min_agreement)' },
            score: { type: 'number', description: 'probability of label (ensemble: mean over members)' },
            agreement: { type: 'number', description: 'multi-prompt calls: fraction of members whose own answer is the winning label' },
            abstained: { type: 'boolean', description: 'present (true) when the answer was withheld' },
            scores: { type: 'object', additionalProperties: { type: 'number' } },
            votes: { type: 'array', items: { type: 'object', properties: { prompt: { type: 'string' }, version: { type: 'integer' }, label: { type: 'string' }, score: { type: 'number' } } } },
          },
        },
      },
      batch_ids: { type: 'array', items: { type: 'integer' }, description: 'the forward passes this request rode in' },
      usage: { type: 'object', properties: { rows: { type: 'integer' }, tokens: { type: 'integer' }, truncated_inputs: { type: 'integer' } } },
      timing: { type: 'object', properties: { queue_ms: { type: 'number' }, inference_ms: { type: 'number' }, tokenize_ms: { type: 'number' } } },
    },
  },
};

const paths: Record<string, Json> = {
  '/healthz': { get: { summary: 'The process is up', security: [], responses: { 200: ok('up') } } },
  '/readyz': { get: { summary: 'Model loaded, warm-up run, not draining', security: [], responses: { 200: ok('ready'), ...errors(503) } } },
  '/metrics': { get: { summary: 'Prometheus metrics (text format)', security: [], responses: { 200: { description: 'metrics', content: { 'text/plain': { schema: { type: 'string' } } } } } } },
  '/info': { get: { summary: 'The model, the execution provider, the product version and every limit a client must respect', security: [], responses: { 200: ok('server information', ref('Info')) } } },
  '/openapi.json': { get: { summary: 'This document', security: [], responses: { 200: ok('OpenAPI 3') } } },
  '/v1/tenants': {
    post: { summary: 'Create a tenant (admin); the API key is shown once', requestBody: { content: json({ type: 'object', required: ['name'], properties: { name: { type: 'string' } } }) }, responses: { 201: ok('tenant and key', { allOf: [ref('Tenant'), ref('NewKey')] }), ...errors(400, 401, 403, 409) } },
    get: { summary: 'List tenants (admin)', responses: { 200: ok('tenants'), ...errors(401, 403) } },
  },
  '/v1/tenants/{id}': {
    parameters: [name('id')],
    get: { summary: 'A tenant (admin)', responses: { 200: ok('tenant', ref('Tenant')), ...errors(401, 403, 404) } },
    delete: { summary: 'Delete a tenant and everything it owns (admin)', responses: { 204: ok('deleted'), ...errors(401, 403, 404) } },
    patch: { summary: 'Set the tenant\'s admission weight and limits (admin; docs/API.md, Admission)', requestBody: { content: json(ref('QuotaPatch')) }, responses: { 200: ok('the tenant\'s quota', ref('Quota')), ...errors(400, 401, 403, 404) } },
  },
  '/v1/tenants/{id}/quota': {
    parameters: [name('id')],
    get: { summary: 'The tenant\'s admission weight, limits and what it holds now (admin)', responses: { 200: ok('the tenant\'s quota', ref('Quota')), ...errors(401, 403, 404) } },
  },
  '/v1/tenants/{id}/keys': {
    parameters: [name('id')],
    post: { summary: 'New API key (admin)', responses: { 201: ok('key', ref('NewKey')), ...errors(401, 403, 404) } },
    get: { summary: 'List keys (admin)', responses: { 200: ok('keys'), ...errors(401, 403, 404) } },
  },
  '/v1/tenants/{id}/keys/{keyId}': {
    parameters: [name('id'), name('keyId')],
    delete: { summary: 'Revoke a key (admin)', responses: { 204: ok('revoked'), ...errors(401, 403, 404) } },
  },
  '/v1/whoami': { get: { summary: 'The calling tenant', responses: { 200: ok('tenant', ref('Tenant')), ...errors(401, 403) } } },
  '/v1/tasks': {
    post: { summary: 'Create a task', requestBody: { content: json(ref('Task')) }, responses: { 201: ok('task', ref('Task')), ...errors(400, 401, 409, 422) } },
    get: { summary: 'List tasks', responses: { 200: ok('tasks'), ...errors(401) } },
  },
  '/v1/tasks/{task}': {
    parameters: [name('task')],
    get: { summary: 'A task', responses: { 200: ok('task', ref('Task')), ...errors(401, 404) } },
    delete: { summary: 'Delete a task, its prompts and ensembles', responses: { 204: ok('deleted'), ...errors(401, 404) } },
  },
  '/v1/tasks/{task}/classify': {
    parameters: [name('task')],
    post: {
      summary: 'Classify inputs with a prompt, an ensemble, a list of prompts, or none (zero-shot verbalizer)',
      requestBody: { content: json(ref('ClassifyRequest')) },
      responses: { 200: ok('one result per input', ref('ClassifyResponse')), ...errors(400, 401, 404, 413, 422, 429, 503, 504) },
    },
  },
  '/v1/tasks/{task}/prompts': {
    parameters: [name('task')],
    post: {
      summary: 'Upload a prompt version: PEFT files (multipart: adapter_config.json, adapter_model.safetensors, name) or the JSON form',
      requestBody: { content: { ...json(ref('JsonPrompt')), 'multipart/form-data': { schema: { type: 'object', properties: { name: { type: 'string' }, adapter_config: { type: 'string', format: 'binary' }, adapter_model: { type: 'string', format: 'binary' } } } } } },
      responses: { 201: ok('the new version', ref('PromptVersion')), ...errors(400, 401, 404, 413, 415, 422) },
    },
    get: { summary: 'List prompts', responses: { 200: ok('prompts'), ...errors(401, 404) } },
  },
  '/v1/tasks/{task}/prompts/{name}': {
    parameters: [name('task'), name('name')],
    get: { summary: 'A prompt and its versions', responses: { 200: ok('prompt', ref('Prompt')), ...errors(401, 404) } },
    delete: { summary: 'Delete a prompt (409 while an ensemble uses it)', responses: { 204: ok('deleted'), ...errors(401, 404, 409) } },
  },
  '/v1/tasks/{task}/prompts/{name}/versions/{version}': {
    parameters: [name('task'), name('name'), version],
    get: { summary: 'One version', responses: { 200: ok('version', ref('PromptVersion')), ...errors(400, 401, 404) } },
    delete: { summary: 'Delete one version', responses: { 204: ok('deleted'), ...errors(400, 401, 404, 409) } },
  },
  '/v1/tasks/{task}/prompts/{name}/versions/{version}/export': {
    parameters: [name('task'), name('name'), version, { name: 'file', in: 'query', schema: { enum: ['adapter_config.json', 'adapter_model.safetensors'] } }],
    get: { summary: 'PEFT files: a tar of the adapter directory, or one file with ?file=', responses: { 200: { description: 'tar or file', content: { 'application/x-tar': {}, 'application/json': {}, 'application/octet-stream': {} } }, ...errors(400, 401, 404) } },
  },
  '/v1/tasks/{task}/prompts/{name}/inspect': {
    parameters: [name('task'), name('name'),
      { name: 'version', in: 'query', schema: { oneOf: [{ type: 'integer', minimum: 1 }, { type: 'string', enum: ['latest'] }] } },
      { name: 'k', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 50, default: 5 } }],
    get: { summary: 'Soft/P-tuning: each virtual token\'s k nearest vocabulary tokens (cosine) and norm; prefix: key and value norms per layer', responses: { 200: ok('inspection', ref('PromptInspection')), ...errors(400, 401, 404) } },
  },
  '/v1/tasks/{task}/ensembles': {
    parameters: [name('task')],
    post: { summary: 'Create an ensemble {name, members}', requestBody: { content: json(ref('Ensemble')) }, responses: { 201: ok('ensemble', ref('Ensemble')), ...errors(400, 401, 404, 409, 422) } },
    get: { summary: 'List ensembles', responses: { 200: ok('ensembles'), ...errors(401, 404) } },
  },
  '/v1/tasks/{task}/ensembles/{name}': {
    parameters: [name('task'), name('name')],
    post: { summary: 'Create an ensemble {members}', requestBody: { content: json(ref('Ensemble')) }, responses: { 201: ok('ensemble', ref('Ensemble')), ...errors(400, 401, 404, 409, 422) } },
    get: { summary: 'An ensemble', responses: { 200: ok('ensemble', ref('Ensemble')), ...errors(401, 404) } },
    delete: { summary: 'Delete an ensemble', responses: { 204: ok('deleted'), ...errors(401, 404) } },
  },
};

/** `extraPaths`: routes of optional parts of the server (the training job API). */
export function openApiDocument(extraPaths: Record<string, Json> = {}): Json {
  return {
    openapi: '3.0.3',
    info: { title: 'softserve', version: PRODUCT_VERSION, description: 'Multi-tenant inference server for prompt-tuned text classification. Prose reference: docs/API.md.' },
    servers: [{ url: 'http://127.0.0.1:8080' }],
    security: [{ bearer: [] }],
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'a tenant API key, or the admin key for /v1/tenants' } }, schemas },
    paths: { ...paths, ...extraPaths },
  };
}

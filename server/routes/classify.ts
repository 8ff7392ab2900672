// POST /v1/tasks/:task/classify: the serving route, on the fast path
// (server/fast-path.ts: express never sees it). Auth, JSON only, the
// tenant's concurrency slot (taken before the body is read), the body within
// the classify limit (express.json, body-parser, as the app's other JSON
// routes; it takes Node's own request and response), then
// ClassifyService (server/classify.ts) does the work. Refusals are counted in
// softserve_rejected_total and a 429 is answered after the admission refusal
// delay; `writeError` writes every error answer.

import type { IncomingMessage } from 'node:http';
import express from 'express';

import { isSoftserveError, type SoftserveError } from '../../kernels/errors.ts';
import type { Tenant } from '../../prompts/store.ts';
import type { Admission } from '../admission.ts';
import { classifyBodyBytes, jsonDepthGuard } from '../body-limits.ts';
import type { ClassifyService } from '../classify.ts';
import { httpStatus, retryAfterSeconds, writeJson } from '../errors.ts';
import { fastRoute, type Exchange } from '../fast-path.ts';
import { jsonOnlyRefusal } from '../json-only.ts';
import type { Metrics } from '../metrics.ts';
import { errors, json, name, ok, ref } from '../openapi.ts';
import type { RouteModule } from '../route-module.ts';
import type { ServingConfig } from '../config.ts';

export interface ClassifyRouteDeps {
  classify: ClassifyService;
  admission: Admission;
  metrics: Metrics;
  limits: ServingConfig['classify'];
  /** The tenant whose key the request carries (server/auth.ts `authenticateTenant`). */
  authenticate: (req: IncomingMessage) => Promise<Tenant>;
  /** SOFTSERVE_MAX_JSON_DEPTH. */
  maxJsonDepth: number;
  /** Retry-After for a refusal that does not say: the scheduler's estimate. */
  retryAfterEstimate: () => number;
}

export function classifyRoutes(deps: ClassifyRouteDeps): RouteModule {
  const { classify, admission, metrics } = deps;
  const bodyLimit = classifyBodyBytes(deps.limits);
  const parseJson = express.json({ limit: bodyLimit, strict: true, verify: jsonDepthGuard(deps.maxJsonDepth) });
  const readBody = (ex: Exchange) => new Promise<unknown>((resolve, reject) => {
    parseJson(ex.req as express.Request, ex.res as express.Response, (err?: unknown) => (err ? reject(err) : resolve((ex.req as { body?: unknown }).body)));
  });

  /** Counts a failed classify by why it failed; a 429 is answered only after the refusal delay. */
  const countAndHold = async (err: SoftserveError, ex: Exchange): Promise<void> => {
    const status = httpStatus(err);
    if (status === 429 || err.code === 'INFERENCE_WORKER_RESTARTING') {
      metrics.rejected.inc({ reason: status === 429 ? 'overloaded' : 'worker_restart' });
    } else if (err.code === 'DEADLINE_EXCEEDED') {
      metrics.rejected.inc({ reason: 'deadline' });
    } else if (err.code === 'DRAINING') {
      metrics.rejected.inc({ reason: 'draining' });
    }
    if (status === 429) await admission.holdRefusal(retryAfterSeconds(err, deps.retryAfterEstimate), ex.tenantId, ex.res);
  };

  return {
    name: 'classify',
    fast: [fastRoute('POST', '/v1/tasks/:task/classify', { bodyLimit }, async (ex) => {
      const tenant = await deps.authenticate(ex.req);
      ex.tenantId = tenant.id;
      const notJson = jsonOnlyRefusal(ex.req);
      if (notJson) throw notJson;
      await admission.gate(tenant.id, ex.res);
      const body = await readBody(ex);
      let result;
      try {
        result = await classify.classify(tenant.id, ex.params[0]!, body);
      } catch (err) {
        if (isSoftserveError(err)) await countAndHold(err, ex);
        throw err;
      }
      ex.classify = {
        rows: result.usage.rows, tokens: result.usage.tokens, batches: result.batch_ids,
        queueMs: result.timing.queue_ms, inferenceMs: result.timing.inference_ms, tokenizeMs: result.timing.tokenize_ms,
      };
      writeJson(ex.res, 200, result);
    })],
    openapi: {
      paths: {
        '/v1/tasks/{task}/classify': {
          parameters: [name('task')],
          post: {
            summary: 'Classify inputs with a prompt, an ensemble, a list of prompts, or none (zero-shot verbalizer)',
            requestBody: { content: json(ref('ClassifyRequest')) },
            responses: { 200: ok('one result per input', ref('ClassifyResponse')), ...errors(400, 401, 404, 413, 422, 429, 503, 504) },
          },
        },
      },
      schemas: {
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
      },
    },
  };
}

// Training job routes (a route module; its OpenAPI fragment is at the end):
//   POST /v1/tasks/:task/jobs       submit: JSON {prompt, ensemble?, options?, examples | jsonl, validation? | validation_jsonl?},
//                                   multipart (fields prompt, ensemble?, options (JSON); files examples, validation?: JSONL),
//                                   or a raw JSONL body (application/x-ndjson, application/jsonl) with ?prompt=&ensemble=&options=
//   GET  /v1/tasks/:task/jobs       the task's jobs (newest first)
//   GET  /v1/jobs                   all of the tenant's jobs
//   GET  /v1/jobs/:id               state, progress, held-out history, result, error
//   POST /v1/jobs/:id/cancel        cancel a queued or running job
// Bodies are bounded by SOFTSERVE_TRAINING_MAX_BYTES (413 beyond it; JSON
// bodies also by the app's SOFTSERVE_MAX_JSON_BYTES, so large example sets go
// as JSONL: multipart or a raw application/x-ndjson body); bad
// example rows are refused with 422 INVALID_EXAMPLES, each listed with its
// line (JSONL) or index (array). A job over the memory budget is refused with
// 422 TRAINING_MEMORY_BUDGET; a tenant at its limits gets 429 with Retry-After
// (TRAINING_QUEUE_LIMIT, TRAINING_TIME_QUOTA; OVERLOADED when the whole queue is full).

import express, { type Request, type RequestHandler, type Response } from 'express';

import { SoftserveError } from '../../kernels/errors.ts';
import { tenantOf } from '../auth.ts';
import { jsonDepthGuard } from '../body-limits.ts';
import { readMultipart } from '../multipart.ts';
import type { RouteModule } from '../route-module.ts';
import type { ExamplesInput, JobRequest, TrainingManager } from '../training/manager.ts';

const JSONL_TYPES = ['application/x-ndjson', 'application/jsonl', 'application/x-jsonlines', 'text/jsonl'];

function utf8(data: Buffer, what: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(data);
  } catch {
    throw new SoftserveError('INVALID_JSONL', `${what} is not valid UTF-8`);
  }
}

function parseOptionsField(raw: string | undefined): unknown {
  if (raw === undefined || raw === '') return {};
  try {
    return JSON.parse(raw);
  } catch (err) {
    throw new SoftserveError('INVALID_JSON', `options is not valid JSON: ${(err as Error).message}`);
  }
}

function examplesFrom(b: Record<string, unknown>, arrayKey: string, jsonlKey: string, required: boolean): ExamplesInput | undefined {
  const arr = b[arrayKey];
  const text = b[jsonlKey];
  if (arr !== undefined && text !== undefined) throw new SoftserveError('BAD_REQUEST', `give "${arrayKey}" or "${jsonlKey}", not both`);
  if (arr !== undefined) {
    if (!Array.isArray(arr)) throw new SoftserveError('BAD_REQUEST', `"${arrayKey}" must be an array of {text, label}`);
    return { array: arr };
  }
  if (text !== undefined) {
    if (typeof text !== 'string') throw new SoftserveError('BAD_REQUEST', `"${jsonlKey}" must be a string of JSON lines`);
    return { jsonl: text };
  }
  if (required) throw new SoftserveError('BAD_REQUEST', `the job needs examples: "${arrayKey}" (an array of {text, label}) or "${jsonlKey}" (JSON lines)`);
  return undefined;
}

const KNOWN_JSON = new Set(['prompt', 'ensemble', 'options', 'examples', 'jsonl', 'validation', 'validation_jsonl', 'unlabelled', 'unlabelled_jsonl']);

async function readJobRequest(req: Request, maxBytes: number, json: RequestHandler, text: RequestHandler, res: Response): Promise<JobRequest> {
  const type = req.headers['content-type'] ?? '';
  const run = (h: RequestHandler) => new Promise<void>((resolve, reject) => { h(req, res, (err?: unknown) => (err ? reject(err) : resolve())); });
  if (/^multipart\/form-data/i.test(type)) {
    const body = await readMultipart(req, { maxFileBytes: maxBytes, maxFiles: 3, maxFields: 3, maxFieldBytes: 64 * 1024 });
    for (const f of body.files) if (!['examples', 'validation', 'unlabelled'].includes(f.field)) throw new SoftserveError('INVALID_MULTIPART', `unexpected file part "${f.field}"; send "examples" (and optionally "validation", "unlabelled") as JSONL files`);
    for (const k of body.fields.keys()) if (!['prompt', 'ensemble', 'options'].includes(k)) throw new SoftserveError('INVALID_MULTIPART', `unexpected field "${k}"; fields are prompt, ensemble, options`);
    const examples = body.files.find((f) => f.field === 'examples');
    if (!examples) throw new SoftserveError('INVALID_MULTIPART', 'the job needs a file part "examples" (JSONL)');
    const validation = body.files.find((f) => f.field === 'validation');
    const out: JobRequest = {
      prompt: body.fields.get('prompt'),
      options: parseOptionsField(body.fields.get('options')),
      examples: { jsonl: utf8(examples.data, 'examples') },
    };
    if (body.fields.has('ensemble')) out.ensemble = body.fields.get('ensemble');
    if (validation) out.validation = { jsonl: utf8(validation.data, 'validation') };
    const unlabelled = body.files.find((f) => f.field === 'unlabelled');
    if (unlabelled) out.unlabelled = { jsonl: utf8(unlabelled.data, 'unlabelled') };
    return out;
  }
  if (JSONL_TYPES.some((t) => type.toLowerCase().startsWith(t))) {
    await run(text);
    const q = req.query as Record<string, unknown>;
    const out: JobRequest = {
      prompt: q.prompt,
      options: parseOptionsField(typeof q.options === 'string' ? q.options : undefined),
      examples: { jsonl: typeof req.body === 'string' ? req.body : '' },
    };
    if (q.ensemble !== undefined) out.ensemble = q.ensemble;
    return out;
  }
  if (req.is('application/json')) {
    await run(json);
    const b = req.body as unknown;
    if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new SoftserveError('BAD_REQUEST', 'body must be a JSON object');
    const o = b as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!KNOWN_JSON.has(k)) throw new SoftserveError('BAD_REQUEST', `unknown field ${JSON.stringify(k)} (fields: ${[...KNOWN_JSON].join(', ')})`);
    const out: JobRequest = { prompt: o.prompt, options: o.options ?? {}, examples: examplesFrom(o, 'examples', 'jsonl', true)! };
    if (o.ensemble !== undefined) out.ensemble = o.ensemble;
    const validation = examplesFrom(o, 'validation', 'validation_jsonl', false);
    if (validation) out.validation = validation;
    const unlabelled = examplesFrom(o, 'unlabelled', 'unlabelled_jsonl', false);
    if (unlabelled) out.unlabelled = unlabelled;
    return out;
  }
  throw new SoftserveError('UNSUPPORTED_MEDIA_TYPE', `send application/json, multipart/form-data or JSON lines (application/x-ndjson), not ${JSON.stringify(type || 'no content type')}`);
}

export function jobsRoutes(manager: TrainingManager): RouteModule {
  const opts = { maxUploadBytes: manager.config.maxUploadBytes };
  return {
    name: 'jobs',
    openapi: { paths: jobsOpenApiPaths() },
    mount(app, ctx) {
      const { tenantAuth } = ctx;
      // JSON job bodies keep the app's JSON bounds (size and nesting depth); large example sets go as JSONL.
      const json = express.json({ limit: Math.min(opts.maxUploadBytes, ctx.config.maxJsonBytes), strict: true, verify: jsonDepthGuard(ctx.config.maxJsonDepth) });
      const text = express.text({ type: JSONL_TYPES, limit: opts.maxUploadBytes });

      app.post('/v1/tasks/:task/jobs', tenantAuth, async (req: Request, res: Response) => {
        const tenant = tenantOf(res);
        const task = String(req.params.task);
        // An unknown task is 404 before the body is read.
        await ctx.store.getTask(tenant.id, task);
        // The training limit applies to every body by its declared length; a JSON body is then read by
        // this route's parser, within the app's SOFTSERVE_MAX_JSON_BYTES too.
        const declared = Number(req.headers['content-length'] ?? NaN);
        if (Number.isFinite(declared) && declared > opts.maxUploadBytes) {
          if (!req.complete) res.setHeader('Connection', 'close');
          throw new SoftserveError('PAYLOAD_TOO_LARGE', `the job body is ${declared} bytes; the limit is ${opts.maxUploadBytes} (SOFTSERVE_TRAINING_MAX_BYTES)`, { limit: opts.maxUploadBytes });
        }
        const body = await readJobRequest(req, opts.maxUploadBytes, json, text, res);
        // 429s (queue full, tenant limits, time quota) carry details.retryAfter: the error handler sends it as Retry-After.
        const job = await manager.submit(tenant.id, task, body);
        res.status(202).location(`/v1/jobs/${job.id}`).json(job);
      });

      app.get('/v1/tasks/:task/jobs', tenantAuth, async (req: Request, res: Response) => {
        res.json({ jobs: await manager.list(tenantOf(res).id, String(req.params.task)) });
      });

      app.get('/v1/jobs', tenantAuth, async (_req: Request, res: Response) => {
        res.json({ jobs: await manager.list(tenantOf(res).id) });
      });

      app.get('/v1/jobs/:id', tenantAuth, async (req: Request, res: Response) => {
        res.json(await manager.get(tenantOf(res).id, String(req.params.id)));
      });

      app.post('/v1/jobs/:id/cancel', tenantAuth, async (req: Request, res: Response) => {
        res.json(await manager.cancel(tenantOf(res).id, String(req.params.id)));
      });
    },
  };
}

/** The job routes for /openapi.json (docs/TRAINING.md is the prose version). */
function jobsOpenApiPaths(): Record<string, Record<string, unknown>> {
  const err = (...codes: number[]) => Object.fromEntries(codes.map((c) => [String(c), { description: 'error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } }]));
  const job = { type: 'object', description: 'a training job (docs/TRAINING.md)', properties: { id: { type: 'string' }, state: { type: 'string', enum: ['queued', 'running', 'succeeded', 'failed', 'cancelled'] }, progress: { type: 'object', nullable: true }, history: { type: 'array', items: { type: 'object' } }, result: { type: 'object', nullable: true }, error: { type: 'object', nullable: true }, events: { type: 'array', items: { type: 'object' } }, memory: { type: 'object', nullable: true, description: 'estimate_mb, limit_mb, peak_growth_mb' } } };
  const one = (description: string, status = '200') => ({ [status]: { description, content: { 'application/json': { schema: job } } } });
  const list = { 200: { description: 'jobs, newest first', content: { 'application/json': { schema: { type: 'object', properties: { jobs: { type: 'array', items: job } } } } } } };
  const task = { name: 'task', in: 'path', required: true, schema: { type: 'string' } };
  const id = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
  return {
    '/v1/tasks/{task}/jobs': {
      post: {
        summary: 'Submit a training job (JSON, multipart with a JSONL file, or a raw JSONL body)', parameters: [task],
        requestBody: { content: { 'application/json': { schema: { type: 'object', required: ['prompt'], properties: { prompt: { type: 'string' }, ensemble: { type: 'string' }, options: { type: 'object' }, examples: { type: 'array', items: { type: 'object', properties: { text: { type: 'string' }, label: { type: 'string' } } } }, jsonl: { type: 'string' }, validation: { type: 'array' }, validation_jsonl: { type: 'string' }, unlabelled: { type: 'array', description: 'method distill: texts without labels ({text}) for the teacher to label' }, unlabelled_jsonl: { type: 'string' } } } }, 'multipart/form-data': { schema: { type: 'object' } }, 'application/x-ndjson': { schema: { type: 'string' } } } },
        responses: { ...one('queued', '202'), ...err(400, 401, 404, 409, 413, 415, 422, 429, 503) },
      },
      get: { summary: "The task's training jobs", parameters: [task], responses: { ...list, ...err(401, 404) } },
    },
    '/v1/jobs': { get: { summary: "All of the tenant's training jobs", responses: { ...list, ...err(401) } } },
    '/v1/jobs/{id}': { get: { summary: 'A training job: state, progress, held-out history, result', parameters: [id], responses: { ...one('the job'), ...err(401, 404) } } },
    '/v1/jobs/{id}/cancel': { post: { summary: 'Cancel a queued or running job', parameters: [id], responses: { ...one('the job'), ...err(401, 404, 409) } } },
  };
}

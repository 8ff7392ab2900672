// Prompt routes, under /v1/tasks/:task/prompts. Upload takes PEFT's files as
// multipart/form-data or the plain JSON form; export gives PEFT's files back
// (a tar of the adapter directory, or one file with ?file=).

import express, { type Request, type Response } from 'express';

import { SoftserveError } from '../../kernels/errors.ts';
import { PROMPT_KINDS, parseJsonPrompt } from '../../prompts/kinds.ts';
import { ADAPTER_CONFIG_NAME, ADAPTER_MODEL_NAME } from '../../prompts/peft.ts';
import { validateName, type PromptStore } from '../../prompts/store.ts';
import { tenantOf } from '../auth.ts';
import type { ServerConfig } from '../config.ts';
import { readMultipart, type MultipartFile } from '../multipart.ts';
import { errors, json, name, ok, ref, version } from '../openapi.ts';
import type { RouteModule } from '../route-module.ts';
import { tarArchive } from '../tar.ts';
import { promptView, versionView } from './views.ts';

const CONFIG_PARTS = new Set(['adapter_config', ADAPTER_CONFIG_NAME]);
const MODEL_PARTS = new Set(['adapter_model', ADAPTER_MODEL_NAME]);

function param(req: Request, name: string): string {
  const v = req.params[name];
  if (typeof v !== 'string') throw new SoftserveError('BAD_REQUEST', `missing path parameter ${name}`);
  return v;
}

/** A version path segment: a positive integer or "latest". */
export function versionParam(raw: string): number | undefined {
  if (raw === 'latest') return undefined;
  if (!/^[1-9][0-9]{0,9}$/.test(raw)) throw new SoftserveError('BAD_REQUEST', `version must be a positive integer or "latest", got ${JSON.stringify(raw)}`);
  return Number(raw);
}

function pick(files: MultipartFile[], names: Set<string>): MultipartFile | undefined {
  return files.find((f) => names.has(f.field) || (f.filename !== null && names.has(f.filename)));
}

/**
 * A named file must be what its part carries: JSON for the config, safetensors
 * for the tensors. A pickled adapter_model.bin is refused here, by name, not
 * later as bytes that fail to parse.
 */
function checkPartFilename(f: MultipartFile): void {
  if (f.filename === null) return;
  // The field name decides the part's role; the file name only when the field is not one of ours.
  const isConfig = CONFIG_PARTS.has(f.field) || (!MODEL_PARTS.has(f.field) && CONFIG_PARTS.has(f.filename));
  const want = isConfig ? '.json' : '.safetensors';
  if (!f.filename.toLowerCase().endsWith(want)) {
    throw new SoftserveError('INVALID_MULTIPART', `file part "${f.field}" is named ${JSON.stringify(f.filename)}; it must be a ${want} file${want === '.safetensors' ? ' (export a pickled .bin adapter as safetensors)' : ''}`, { field: f.field });
  }
}

export function promptsRouter(store: PromptStore, config: ServerConfig): express.Router {
  const r = express.Router({ mergeParams: true });

  r.post('/', async (req: Request, res: Response) => {
    const tenant = tenantOf(res);
    const task = param(req, 'task');
    const type = req.headers['content-type'] ?? '';
    let version;
    if (/^multipart\/form-data/i.test(type)) {
      // Resolve the task before reading the body: an unknown task is 404 at once.
      await store.getTask(tenant.id, task);
      const body = await readMultipart(req, { maxFileBytes: config.maxUploadBytes, maxFiles: 2, maxFields: 4, maxFieldBytes: 1024 });
      for (const f of body.files) {
        if (!CONFIG_PARTS.has(f.field) && !MODEL_PARTS.has(f.field) && !(f.filename !== null && (CONFIG_PARTS.has(f.filename) || MODEL_PARTS.has(f.filename)))) {
          throw new SoftserveError('INVALID_MULTIPART', `unexpected file part "${f.field}"; send ${ADAPTER_CONFIG_NAME} and ${ADAPTER_MODEL_NAME}`);
        }
        checkPartFilename(f);
      }
      for (const k of body.fields.keys()) {
        if (k !== 'name') throw new SoftserveError('INVALID_MULTIPART', `unexpected field "${k}"; the only field is "name"`);
      }
      const cfg = pick(body.files, CONFIG_PARTS);
      const model = pick(body.files, MODEL_PARTS);
      if (!cfg || !model) {
        throw new SoftserveError('INVALID_MULTIPART', `a PEFT upload needs two file parts, ${ADAPTER_CONFIG_NAME} and ${ADAPTER_MODEL_NAME}; got ${body.files.map((f) => f.filename ?? f.field).join(', ') || 'none'}`);
      }
      const name = body.fields.get('name') ?? (typeof req.query.name === 'string' ? req.query.name : undefined);
      if (name === undefined) throw new SoftserveError('INVALID_NAME', 'the prompt needs a name: a "name" field or ?name=');
      version = await store.putPeftPrompt(tenant.id, task, name, { config: cfg.data, model: model.data });
    } else if (req.is('application/json')) {
      const body = req.body as unknown;
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new SoftserveError('BAD_REQUEST', 'body must be a JSON object');
      const b = body as Record<string, unknown>;
      const name = b.name as string;
      validateName('prompt', name);
      await store.getTask(tenant.id, task);
      const tensors = parseJsonPrompt(b, store.spec, store.limits);
      version = await store.putPrompt(tenant.id, task, name, tensors, { source: 'json' });
    } else {
      throw new SoftserveError('UNSUPPORTED_MEDIA_TYPE', `send multipart/form-data (PEFT files) or application/json, not ${JSON.stringify(type || 'no content type')}`);
    }
    res.status(201).json(versionView(version));
  });

  r.get('/', async (req: Request, res: Response) => {
    const prompts = await store.listPrompts(tenantOf(res).id, param(req, 'task'));
    res.json({ prompts: prompts.map(promptView) });
  });

  r.get('/:name', async (req: Request, res: Response) => {
    res.json(promptView(await store.getPrompt(tenantOf(res).id, param(req, 'task'), param(req, 'name'))));
  });

  r.delete('/:name', async (req: Request, res: Response) => {
    await store.deletePrompt(tenantOf(res).id, param(req, 'task'), param(req, 'name'));
    res.status(204).end();
  });

  r.get('/:name/versions/:version', async (req: Request, res: Response) => {
    const v = await store.getPromptVersion(tenantOf(res).id, param(req, 'task'), param(req, 'name'), versionParam(param(req, 'version')));
    res.json(versionView(v));
  });

  r.delete('/:name/versions/:version', async (req: Request, res: Response) => {
    const v = versionParam(param(req, 'version'));
    if (v === undefined) throw new SoftserveError('BAD_REQUEST', 'delete names a version number, not "latest"');
    await store.deletePromptVersion(tenantOf(res).id, param(req, 'task'), param(req, 'name'), v);
    res.status(204).end();
  });

  r.get('/:name/versions/:version/export', async (req: Request, res: Response) => {
    const file = req.query.file;
    if (file !== undefined && file !== ADAPTER_CONFIG_NAME && file !== ADAPTER_MODEL_NAME) {
      throw new SoftserveError('BAD_REQUEST', `file must be ${ADAPTER_CONFIG_NAME} or ${ADAPTER_MODEL_NAME}`);
    }
    const out = await store.exportPrompt(tenantOf(res).id, param(req, 'task'), param(req, 'name'), versionParam(param(req, 'version')));
    const dir = `${out.info.name}-v${out.info.version}`;
    res.setHeader('Cache-Control', 'private, no-store');
    if (file === ADAPTER_CONFIG_NAME) {
      res.type('application/json').attachment(ADAPTER_CONFIG_NAME).send(Buffer.from(out.config));
    } else if (file === ADAPTER_MODEL_NAME) {
      res.type('application/octet-stream').attachment(ADAPTER_MODEL_NAME).send(Buffer.from(out.model));
    } else {
      const tar = tarArchive([
        { name: `${dir}/${ADAPTER_CONFIG_NAME}`, data: out.config },
        { name: `${dir}/${ADAPTER_MODEL_NAME}`, data: out.model },
      ], Date.parse(out.info.createdAt) / 1000);
      res.type('application/x-tar').attachment(`${dir}.tar`).send(Buffer.from(tar));
    }
  });

  return r;
}

/** /v1/tasks/:task/prompts: upload (multipart PEFT files or JSON), list, get, delete, export. */
export const promptsRoutes: RouteModule = {
  name: 'prompts',
  mount(_app, ctx) {
    ctx.mount('/v1/tasks/:task/prompts', ctx.tenantAuth, ctx.jsonBody, promptsRouter(ctx.store, ctx.config));
  },
  openapi: {
    paths: {
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
    },
    schemas: {
      JsonPrompt: {
        type: 'object', required: ['name', 'kind', 'tensor'],
        properties: {
          name: { type: 'string' }, kind: { enum: [...PROMPT_KINDS] },
          tensor: { type: 'array', description: '[P][H] for soft/ptuning, [L][2][KV][P][D] for prefix', items: {} },
          head: { type: 'object', properties: { weight: { type: 'array', items: {} }, bias: { type: 'array', items: { type: 'number' } } } },
        },
      },
      PromptVersion: {
        type: 'object',
        properties: {
          task: { type: 'string' }, name: { type: 'string' }, version: { type: 'integer' }, kind: { enum: [...PROMPT_KINDS] },
          num_virtual_tokens: { type: 'integer' }, has_head: { type: 'boolean' }, tensor_sha256: { type: 'string' }, tensor_bytes: { type: 'integer' },
          source: { enum: ['peft', 'json', 'training'] }, source_dtype: { type: 'string', nullable: true }, created_at: { type: 'string' },
          provenance: {
            type: 'object', nullable: true, additionalProperties: true,
            description: 'trained versions: job, method, seed, init, held_out_accuracy (a weighted vote\'s weight), held_out_examples; distill: student, gold_weight, teacher {ensemble, members}; transfer: init_from {prompt, version, task?}. null for uploads',
          },
        },
      },
      Prompt: { type: 'object', properties: { task: { type: 'string' }, name: { type: 'string' }, latest_version: { type: 'integer' }, versions: { type: 'array', items: ref('PromptVersion') } } },
    },
  },
};

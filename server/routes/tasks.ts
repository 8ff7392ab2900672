// Task routes: /v1/tasks. A task is a tenant's classification problem: ordered
// labels, a template with a {text} slot, and a scoring rule.

import express, { type Request, type Response } from 'express';

import { SoftserveError } from '../../kernels/errors.ts';
import { POOLINGS, type Pooling } from '../../models/pooling.ts';
import type { PromptStore, Scoring } from '../../prompts/store.ts';
import { tenantOf } from '../auth.ts';
import { requireJson } from '../json-only.ts';
import { errors, json, name, ok, ref } from '../openapi.ts';
import type { RouteModule } from '../route-module.ts';
import { taskView } from './views.ts';

function body(req: Request): Record<string, unknown> {
  const b = req.body as unknown;
  if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new SoftserveError('BAD_REQUEST', 'body must be a JSON object');
  return b as Record<string, unknown>;
}

function scoringFromJson(raw: unknown): Scoring {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new SoftserveError('BAD_REQUEST', 'scoring must be {type: "verbalizer", label_words: [...]} or {type: "head", pooling?: "last"|"mean"|"mean_last"}');
  }
  const s = raw as Record<string, unknown>;
  if (s.type === 'verbalizer') return { type: 'verbalizer', labelWords: s.label_words as string[] };
  // validation.ts checks the pooling's value (422 INVALID_TASK).
  if (s.type === 'head') return { type: 'head', pooling: (s.pooling ?? 'last') as Pooling };
  throw new SoftserveError('BAD_REQUEST', `scoring.type must be "verbalizer" or "head", got ${JSON.stringify(s.type)}`);
}

export function tasksRouter(store: PromptStore): express.Router {
  const r = express.Router();

  r.post('/', requireJson, async (req: Request, res: Response) => {
    const b = body(req);
    const task = await store.createTask(tenantOf(res).id, {
      name: b.name as string,
      labels: b.labels as string[],
      template: b.template as string,
      scoring: scoringFromJson(b.scoring),
    });
    res.status(201).json(taskView(task));
  });

  r.get('/', async (_req: Request, res: Response) => {
    res.json({ tasks: (await store.listTasks(tenantOf(res).id)).map(taskView) });
  });

  r.get('/:task', async (req: Request, res: Response) => {
    res.json(taskView(await store.getTask(tenantOf(res).id, req.params.task as string)));
  });

  r.delete('/:task', async (req: Request, res: Response) => {
    await store.deleteTask(tenantOf(res).id, req.params.task as string);
    res.status(204).end();
  });

  return r;
}

/** /v1/tasks: create, list, get, delete (mounted after the routes under /v1/tasks/:task/). */
export const tasksRoutes: RouteModule = {
  name: 'tasks',
  mount(_app, ctx) {
    ctx.mount('/v1/tasks', ctx.tenantAuth, ctx.jsonBody, tasksRouter(ctx.store));
  },
  openapi: {
    paths: {
      '/v1/tasks': {
        post: { summary: 'Create a task', requestBody: { content: json(ref('Task')) }, responses: { 201: ok('task', ref('Task')), ...errors(400, 401, 409, 422) } },
        get: { summary: 'List tasks', responses: { 200: ok('tasks'), ...errors(401) } },
      },
      '/v1/tasks/{task}': {
        parameters: [name('task')],
        get: { summary: 'A task', responses: { 200: ok('task', ref('Task')), ...errors(401, 404) } },
        delete: { summary: 'Delete a task, its prompts and ensembles', responses: { 204: ok('deleted'), ...errors(401, 404) } },
      },
    },
    schemas: {
      Task: {
        type: 'object', required: ['name', 'labels', 'template', 'scoring'],
        properties: {
          name: { type: 'string' },
          labels: { type: 'array', items: { type: 'string' }, minItems: 2 },
          template: { type: 'string', description: 'contains {text} once; may contain {mask} (masked LMs) and {soft} / {soft:a-b} (where virtual tokens go; default: first)' },
          scoring: {
            oneOf: [
              { type: 'object', required: ['type', 'label_words'], properties: { type: { enum: ['verbalizer'] }, label_words: { type: 'array', items: { type: 'string' } } } },
              { type: 'object', required: ['type'], properties: { type: { enum: ['head'] }, pooling: { enum: [...POOLINGS] } } },
            ],
          },
          created_at: { type: 'string' },
        },
      },
    },
  },
};

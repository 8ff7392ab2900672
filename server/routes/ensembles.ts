// Ensemble routes, under /v1/tasks/:task/ensembles: named sets of N prompts of
// one task (each a pinned version or the prompt's latest).

import express, { type Request, type Response } from 'express';

import { SoftserveError } from '../../kernels/errors.ts';
import type { EnsembleMember, PromptStore } from '../../prompts/store.ts';
import { parseVoteMode, type VoteMode } from '../../prompts/vote.ts';
import { tenantOf } from '../auth.ts';
import { requireJson } from '../json-only.ts';
import { errors, json, name, ok, ref } from '../openapi.ts';
import type { RouteModule } from '../route-module.ts';
import { ensembleView } from './views.ts';

function members(req: Request): EnsembleMember[] {
  const b = req.body as unknown;
  if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new SoftserveError('BAD_REQUEST', 'body must be a JSON object');
  const m = (b as Record<string, unknown>).members;
  if (!Array.isArray(m)) throw new SoftserveError('BAD_REQUEST', '"members" must be an array of {prompt, version?}');
  return m.map((x, i) => {
    if (typeof x === 'string') return { prompt: x };
    if (typeof x !== 'object' || x === null) throw new SoftserveError('BAD_REQUEST', `member ${i} must be a prompt name or {prompt, version?}`);
    const o = x as Record<string, unknown>;
    return { prompt: o.prompt as string, version: (o.version ?? null) as number | null };
  });
}

/** The body's optional `vote` mode (stored with the ensemble; a request's `vote` overrides it). */
function voteOf(req: Request): VoteMode | null {
  const v = (req.body as Record<string, unknown> | undefined)?.vote;
  return v === undefined || v === null ? null : parseVoteMode(v);
}

export function ensemblesRouter(store: PromptStore): express.Router {
  const r = express.Router({ mergeParams: true });
  const task = (req: Request): string => req.params.task as string;

  r.get('/', async (req: Request, res: Response) => {
    res.json({ ensembles: (await store.listEnsembles(tenantOf(res).id, task(req))).map(ensembleView) });
  });

  r.post('/', async (req: Request, res: Response) => {
    const name = (req.body as Record<string, unknown> | undefined)?.name;
    const e = await store.createEnsemble(tenantOf(res).id, task(req), name as string, members(req), { vote: voteOf(req) });
    res.status(201).json(ensembleView(e));
  });

  r.post('/:name', async (req: Request, res: Response) => {
    const e = await store.createEnsemble(tenantOf(res).id, task(req), req.params.name as string, members(req), { vote: voteOf(req) });
    res.status(201).json(ensembleView(e));
  });

  r.get('/:name', async (req: Request, res: Response) => {
    res.json(ensembleView(await store.getEnsemble(tenantOf(res).id, task(req), req.params.name as string)));
  });

  r.delete('/:name', async (req: Request, res: Response) => {
    await store.deleteEnsemble(tenantOf(res).id, task(req), req.params.name as string);
    res.status(204).end();
  });

  return r;
}

/** /v1/tasks/:task/ensembles: JSON bodies only. */
export const ensemblesRoutes: RouteModule = {
  name: 'ensembles',
  mount(_app, ctx) {
    ctx.mount('/v1/tasks/:task/ensembles', ctx.tenantAuth, requireJson, ctx.jsonBody, ensemblesRouter(ctx.store));
  },
  openapi: {
    paths: {
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
    },
    schemas: {
      Ensemble: {
        type: 'object',
        properties: {
          task: { type: 'string' }, name: { type: 'string' }, members: { type: 'array', items: { type: 'object', properties: { prompt: { type: 'string' }, version: { type: 'integer', nullable: true } } } },
          vote: { enum: ['majority', 'mean_probability', 'weighted'], description: 'the ensemble\'s vote mode (default majority); a request\'s vote overrides it' },
        },
      },
    },
  },
};

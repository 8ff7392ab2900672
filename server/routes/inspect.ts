// GET /v1/tasks/:task/prompts/:name/inspect[?version=&k=]: what a stored
// prompt looks like against the model's vocabulary (prompts/inspect.ts). The
// embedding matrix is read from the checkpoint on first use and kept.

import express, { type Request, type Response } from 'express';

import { SoftserveError } from '../../kernels/errors.ts';
import { loadInputEmbeddings, type InputEmbeddings } from '../../models/embeddings.ts';
import type { ModelSpec } from '../../models/spec.ts';
import type { TextTokenizer } from '../../models/tokenizer.ts';
import { inspectPrefix, inspectVirtualTokens, inverseRowNorms } from '../../prompts/inspect.ts';
import type { PromptStore } from '../../prompts/store.ts';
import { tenantOf } from '../auth.ts';
import { errors, name, ok, ref } from '../openapi.ts';
import type { RouteModule } from '../route-module.ts';
import { versionParam } from './prompts.ts';
import { PROMPT_KINDS } from '../../prompts/kinds.ts';

export const MAX_INSPECT_K = 50;
const DEFAULT_INSPECT_K = 5;

export class PromptInspector {
  private embeddings: { emb: InputEmbeddings; invNorms: Float32Array } | null = null;

  constructor(private readonly modelDir: string, readonly spec: ModelSpec, private readonly tokenizer: TextTokenizer) {}

  vocabulary(): { emb: InputEmbeddings; invNorms: Float32Array } {
    if (!this.embeddings) {
      const emb = loadInputEmbeddings(this.modelDir);
      this.embeddings = { emb, invNorms: inverseRowNorms(emb) };
    }
    return this.embeddings;
  }

  tokenText(id: number): string {
    return this.tokenizer.tokenText(id) ?? `<${id}>`;
  }
}

function kParam(raw: unknown): number {
  if (raw === undefined) return DEFAULT_INSPECT_K;
  if (typeof raw !== 'string' || !/^[1-9][0-9]{0,3}$/.test(raw) || Number(raw) > MAX_INSPECT_K) {
    throw new SoftserveError('BAD_REQUEST', `k must be an integer from 1 to ${MAX_INSPECT_K}, got ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}

export function inspectRouter(store: PromptStore, inspector: PromptInspector): express.Router {
  const r = express.Router({ mergeParams: true });
  r.get('/', async (req: Request, res: Response) => {
    const k = kParam(req.query.k);
    const version = typeof req.query.version === 'string' ? versionParam(req.query.version) : undefined;
    if (req.query.version !== undefined && typeof req.query.version !== 'string') throw new SoftserveError('BAD_REQUEST', 'version must be given once');
    const task = String(req.params.task);
    const name = String(req.params.name);
    const prompt = await store.getPromptTensors(tenantOf(res).id, task, name, version);
    const view: Record<string, unknown> = {
      task, prompt: name, version: prompt.version, kind: prompt.kind, num_virtual_tokens: prompt.numVirtualTokens,
    };
    if (prompt.kind === 'prefix') {
      view.layers = inspectPrefix(prompt.tensors, inspector.spec);
    } else {
      const { emb, invNorms } = inspector.vocabulary();
      const tokens = await inspectVirtualTokens(prompt.tensors, emb, invNorms, k);
      view.tokens = tokens.map((t) => ({
        index: t.index, norm: t.norm,
        nearest: t.nearest.map((n) => ({ id: n.id, token: inspector.tokenText(n.id), similarity: n.similarity })),
      }));
    }
    res.json(view);
  });
  return r;
}

/** GET /v1/tasks/:task/prompts/:name/inspect (mounted before the prompts router, which would take the path). */
export function inspectRoutes(inspector: PromptInspector): RouteModule {
  return {
    name: 'inspect',
    mount(_app, ctx) {
      ctx.mount('/v1/tasks/:task/prompts/:name/inspect', ctx.tenantAuth, inspectRouter(ctx.store, inspector));
    },
    openapi: {
      paths: {
        '/v1/tasks/{task}/prompts/{name}/inspect': {
          parameters: [name('task'), name('name'),
            { name: 'version', in: 'query', schema: { oneOf: [{ type: 'integer', minimum: 1 }, { type: 'string', enum: ['latest'] }] } },
            { name: 'k', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 50, default: 5 } }],
          get: { summary: 'Soft/P-tuning: each virtual token\'s k nearest vocabulary tokens (cosine) and norm; prefix: key and value norms per layer', responses: { 200: ok('inspection', ref('PromptInspection')), ...errors(400, 401, 404) } },
        },
      },
      schemas: {
        PromptInspection: {
          type: 'object',
          properties: {
            task: { type: 'string' }, prompt: { type: 'string' }, version: { type: 'integer' }, kind: { enum: [...PROMPT_KINDS] }, num_virtual_tokens: { type: 'integer' },
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
      },
    },
  };
}

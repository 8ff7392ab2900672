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
import { versionParam } from './prompts.ts';

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

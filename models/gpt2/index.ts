// GPT-2: learned positions, pre-LN blocks, Conv1D weights stored [in,out]
// (no transpose needed), fused q/k/v projection, LM head tied to wte.

import type { Graph, Value } from '../../kernels/graph.ts';
import { configInt, configNumber, configOptionalInt, type Checkpoint } from '../checkpoint.ts';
import type { Family } from '../family.ts';
import type { ModelSpec } from '../spec.ts';
import {
  activation, attendWithPrefix, attentionBias, declareServingInputs, embedTokens, layerNorm, linear,
  scoreAndPool, splitHeads, vectorWeight, type Activation,
} from '../serving-graph.ts';

export function gpt2Spec(ckpt: Checkpoint): ModelSpec {
  const c = ckpt.config;
  const hiddenSize = configInt(c, 'n_embd');
  const numHeads = configInt(c, 'n_head');
  return {
    family: 'gpt2', modelType: String(c.model_type),
    vocabSize: configInt(c, 'vocab_size'), hiddenSize,
    numLayers: configInt(c, 'n_layer'), numHeads, numKvHeads: numHeads,
    headDim: Math.floor(hiddenSize / Math.max(numHeads, 1)),
    maxPositions: configInt(c, 'n_positions', 1024),
    causal: true,
    bosTokenId: configOptionalInt(c, 'bos_token_id'), eosTokenId: configOptionalInt(c, 'eos_token_id'),
    maskTokenId: null, padTokenId: configOptionalInt(c, 'pad_token_id'), hasLmHead: true,
  };
}

export function buildGpt2Graph(g: Graph, ckpt: Checkpoint, spec: ModelSpec): void {
  const c = ckpt.config;
  const ws = ckpt.weights;
  const { hiddenSize: H, numHeads: NH, headDim: D, vocabSize: V, numLayers: L, maxPositions } = spec;
  const eps = configNumber(c, 'layer_norm_epsilon', 1e-5);
  const inner = configOptionalInt(c, 'n_inner') ?? 4 * H;
  const act = String(c.activation_function ?? 'gelu_new') as Activation;
  // GPT2LMHeadModel saves "transformer.*"; GPT2Model saves the same names bare.
  const pre = ws.has('transformer.wte.weight') ? 'transformer.' : '';
  const w = (name: string, shape: number[]): Value => g.weight(pre + name, shape, ws.get(pre + name, shape));
  const ln = (x: Value, name: string) =>
    layerNorm(g, x, vectorWeight(g, ws, `${pre}${name}.weight`, H), vectorWeight(g, ws, `${pre}${name}.bias`, H), eps);

  const inp = declareServingInputs(g, spec);
  const wte = w('wte.weight', [V, H]);
  const wpe = w('wpe.weight', [maxPositions, H]);
  const bias = attentionBias(g, inp, true);

  let x = g.add(embedTokens(g, inp, wte, spec), g.gather(wpe, inp.positionIds));
  for (let l = 0; l < L; l++) {
    const p = `h.${l}`;
    let h = ln(x, `${p}.ln_1`);
    const qkv = linear(g, h, w(`${p}.attn.c_attn.weight`, [H, 3 * H]), w(`${p}.attn.c_attn.bias`, [3 * H]));
    const [q, k, v] = g.opN('Split', [qkv, g.ints([H, H, H])], 3, { axis: 2 });
    const attended = attendWithPrefix(g, inp, spec, l,
      splitHeads(g, q!, NH, D), splitHeads(g, k!, NH, D), splitHeads(g, v!, NH, D), bias);
    x = g.add(x, linear(g, attended, w(`${p}.attn.c_proj.weight`, [H, H]), w(`${p}.attn.c_proj.bias`, [H])));
    h = ln(x, `${p}.ln_2`);
    const up = activation(g, linear(g, h, w(`${p}.mlp.c_fc.weight`, [H, inner]), w(`${p}.mlp.c_fc.bias`, [inner])), act);
    x = g.add(x, linear(g, up, w(`${p}.mlp.c_proj.weight`, [inner, H]), w(`${p}.mlp.c_proj.bias`, [H])));
  }
  scoreAndPool(g, inp, spec, ln(x, 'ln_f'), { outputEmbedding: wte });
}

export const gpt2: Family = {
  name: 'gpt2',
  modelTypes: ['gpt2'],
  spec: gpt2Spec,
  buildServingGraph: buildGpt2Graph,
  positionOffset: () => 0,
  // GPT-2 adds no special tokens around an input.
  specialTokens: () => ({ start: [], end: [], mask: null }),
  inputEmbeddingNames: () => ['transformer.wte.weight', 'wte.weight'],
};

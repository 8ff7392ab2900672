// Llama (and Llama-shaped checkpoints such as stories260k): RMSNorm, RoPE in the
// rotate_half convention, grouped-query attention, SwiGLU, tied or untied head.

import type { Graph, Value } from '../../kernels/graph.ts';
import { SoftserveError } from '../../kernels/errors.ts';
import { configInt, configNumber, configOptionalInt, type Checkpoint } from '../checkpoint.ts';
import type { Family } from '../family.ts';
import type { ModelSpec } from '../spec.ts';
import {
  activation, attendWithPrefix, attentionBias, declareServingInputs, embedTokens, linear, linearWeight,
  rmsNorm, scoreAndPool, splitHeads, vectorWeight, type Activation,
} from '../serving-graph.ts';

export function llamaSpec(ckpt: Checkpoint): ModelSpec {
  const c = ckpt.config;
  const hiddenSize = configInt(c, 'hidden_size');
  const numHeads = configInt(c, 'num_attention_heads');
  const numKvHeads = configInt(c, 'num_key_value_heads', numHeads);
  if (numHeads === 0 || numKvHeads === 0 || numHeads % numKvHeads !== 0) {
    throw new SoftserveError('MODEL_CONFIG_INVALID', `config.json: num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  }
  if (c.rope_scaling !== undefined && c.rope_scaling !== null) {
    throw new SoftserveError('MODEL_CONFIG_INVALID', 'config.json: rope_scaling is not supported');
  }
  return {
    family: 'llama', modelType: String(c.model_type),
    vocabSize: configInt(c, 'vocab_size'), hiddenSize,
    numLayers: configInt(c, 'num_hidden_layers'), numHeads, numKvHeads,
    headDim: configInt(c, 'head_dim', Math.floor(hiddenSize / Math.max(numHeads, 1))),
    maxPositions: configInt(c, 'max_position_embeddings', 2048),
    causal: true,
    bosTokenId: configOptionalInt(c, 'bos_token_id'), eosTokenId: configOptionalInt(c, 'eos_token_id'),
    maskTokenId: null, padTokenId: configOptionalInt(c, 'pad_token_id'), hasLmHead: true,
  };
}

/** rotate_half(x) = concat(-x[D/2:], x[:D/2]) as a constant D×D matrix: x @ R. */
function rotateHalfMatrix(D: number): Float32Array {
  const R = new Float32Array(D * D);
  const half = D / 2;
  for (let i = 0; i < half; i++) {
    R[(i + half) * D + i] = -1;
    R[i * D + (i + half)] = 1;
  }
  return R;
}

export function buildLlamaGraph(g: Graph, ckpt: Checkpoint, spec: ModelSpec): void {
  const c = ckpt.config;
  const ws = ckpt.weights;
  const { hiddenSize: H, numHeads: NH, numKvHeads: KV, headDim: D, vocabSize: V, numLayers: L } = spec;
  const eps = configNumber(c, 'rms_norm_eps', 1e-6);
  const theta = configNumber(c, 'rope_theta', 10000);
  const I = configInt(c, 'intermediate_size');
  const act = String(c.hidden_act ?? 'silu') as Activation;
  const hasBias = c.attention_bias === true;
  // LlamaConfig defaults tie_word_embeddings to false: then lm_head.weight must exist.
  const tied = c.tie_word_embeddings === true;
  const mlpBias = c.mlp_bias === true;

  const inp = declareServingInputs(g, spec);
  const embedding = g.weight('model.embed_tokens.weight', [V, H], ws.get('model.embed_tokens.weight', [V, H]));

  // RoPE tables from each row's positions: angle = position * theta^(-2i/D).
  const invFreq = Array.from({ length: D / 2 }, (_, i) => theta ** (-(2 * i) / D));
  const angles = g.mul(g.unsqueeze(g.cast(inp.positionIds, 'float32'), [2]), g.floats(invFreq)); // [B,T,D/2]
  const full = g.unsqueeze(g.concat([angles, angles], 2), [1]);                                  // [B,1,T,D]
  const cos = g.op('Cos', [full]);
  const sin = g.op('Sin', [full]);
  const R = g.weight('rope.rotate_half', [D, D], rotateHalfMatrix(D));
  const rope = (x: Value) => g.add(g.mul(x, cos), g.mul(g.matmul(x, R), sin));
  const bias = attentionBias(g, inp, true);

  let x = embedTokens(g, inp, embedding, spec);
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}`;
    const proj = (name: string, out: number) =>
      linear(g, h, linearWeight(g, ws, `${p}.self_attn.${name}.weight`, out, H),
        hasBias ? vectorWeight(g, ws, `${p}.self_attn.${name}.bias`, out) : undefined);
    let h = rmsNorm(g, x, vectorWeight(g, ws, `${p}.input_layernorm.weight`, H), eps);
    const q = rope(splitHeads(g, proj('q_proj', NH * D), NH, D));
    const k = rope(splitHeads(g, proj('k_proj', KV * D), KV, D));
    const v = splitHeads(g, proj('v_proj', KV * D), KV, D);
    const attended = attendWithPrefix(g, inp, spec, l, q, k, v, bias);
    const oBias = hasBias ? vectorWeight(g, ws, `${p}.self_attn.o_proj.bias`, H) : undefined;
    x = g.add(x, linear(g, attended, linearWeight(g, ws, `${p}.self_attn.o_proj.weight`, H, NH * D), oBias));

    h = rmsNorm(g, x, vectorWeight(g, ws, `${p}.post_attention_layernorm.weight`, H), eps);
    const mlp = (name: string, out: number, inp: number, input: Value) =>
      linear(g, input, linearWeight(g, ws, `${p}.mlp.${name}.weight`, out, inp),
        mlpBias ? vectorWeight(g, ws, `${p}.mlp.${name}.bias`, out) : undefined);
    const gate = activation(g, mlp('gate_proj', I, H, h), act);
    x = g.add(x, mlp('down_proj', H, I, g.mul(gate, mlp('up_proj', I, H, h))));
  }
  const final = rmsNorm(g, x, vectorWeight(g, ws, 'model.norm.weight', H), eps);
  const lmHead = tied ? embedding : g.weight('lm_head.weight', [V, H], ws.get('lm_head.weight', [V, H]));
  scoreAndPool(g, inp, spec, final, { outputEmbedding: lmHead });
}

export const llama: Family = {
  name: 'llama',
  modelTypes: ['llama'],
  spec: llamaSpec,
  buildServingGraph: buildLlamaGraph,
  positionOffset: () => 0,
  // BOS when tokenizer_config asks for it (add_bos_token); no EOS, no mask.
  specialTokens: (spec, _tok, addBos) => ({ start: addBos && spec.bosTokenId !== null ? [spec.bosTokenId] : [], end: [], mask: null }),
  inputEmbeddingNames: () => ['model.embed_tokens.weight'],
};

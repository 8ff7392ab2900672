// Prefix tuning / P-tuning v2: per-layer key/value prefixes [L, 2, KV, P, D]
// that live in attention only (no text tokens); PEFT's PREFIX_TUNING.
//
// PEFT stores [P, L*2*token_dim]. For a model whose config has
// num_key_value_heads (llama and its kin, grouped or not), PEFT rewrites
// token_dim = head_dim * num_key_value_heads and num_attention_heads =
// num_key_value_heads, so the saved adapter_config already carries the KV
// width. get_prompt views a row as [L*2, heads, D], permutes to
// [L*2, batch, heads, P, D] and splits in pairs: layer l's key is slot 2l, its
// value 2l + 1. Flat column of (l, k|v, h, d): ((l*2 + kv) * KV + h) * D + d.

import type { ModelSpec } from '../../models/spec.ts';
import { SoftserveError } from '../../kernels/errors.ts';
import type { PromptKindDef } from './kind.ts';

/** PEFT's [P, L*2*KV*D] prefix rows -> the engine's [L, 2, KV, P, D]. */
export function prefixFromPeft(src: Float32Array, spec: ModelSpec, p: number): Float32Array {
  const { numLayers: L, numKvHeads: KV, headDim: D } = spec;
  const slots = L * 2 * KV; // (l, kv, h) flattened, in PEFT's column order and the engine's outer order alike
  const width = slots * D;
  const out = new Float32Array(src.length);
  for (let pos = 0; pos < p; pos++) {
    for (let s = 0; s < slots; s++) {
      const from = pos * width + s * D;
      const to = (s * p + pos) * D;
      for (let d = 0; d < D; d++) out[to + d] = src[from + d]!;
    }
  }
  return out;
}

/** The engine's [L, 2, KV, P, D] -> PEFT's [P, L*2*KV*D]. */
export function prefixToPeft(src: Float32Array, spec: ModelSpec, p: number): Float32Array {
  const { numLayers: L, numKvHeads: KV, headDim: D } = spec;
  const slots = L * 2 * KV;
  const width = slots * D;
  const out = new Float32Array(src.length);
  for (let pos = 0; pos < p; pos++) {
    for (let s = 0; s < slots; s++) {
      const to = pos * width + s * D;
      const from = (s * p + pos) * D;
      for (let d = 0; d < D; d++) out[to + d] = src[from + d]!;
    }
  }
  return out;
}

export const prefix: PromptKindDef = {
  name: 'prefix',
  storedName: 'prefix',
  shape: (dims, p) => [dims.numLayers, 2, dims.numKvHeads, p, dims.headDim],
  lengthAxis: 3,
  jsonShape: '[L][2][KV][P][D]',
  placesTokens: false,
  feed(row, key, p, data) {
    row.prefix = { key, length: p, data };
  },
  trainableInput: 'prefix_table',
  layout: 'prefix',
  peft: {
    type: 'PREFIX_TUNING',
    dims(spec) {
      const tokenDim = spec.numKvHeads * spec.headDim;
      return { tokenDim, numAttentionHeads: spec.numKvHeads, numLayers: spec.numLayers, width: spec.numLayers * 2 * tokenDim };
    },
    fromPeft: prefixFromPeft,
    toPeft: prefixToPeft,
    // A materialised prefix: no projection to run on load; its encoder width is the KV width.
    configFields: (_spec, dims) => ({ defaults: { encoder_hidden_size: dims.tokenDim, prefix_projection: false }, fixed: { encoder_hidden_size: dims.tokenDim } }),
    meaning: {
      tokenDim: 'num_key_value_heads * head_dim',
      numAttentionHeads: 'num_key_value_heads',
      width: (spec, p, dims) => `num_virtual_tokens=${p}, num_layers*2*token_dim = ${spec.numLayers}*2*${dims.tokenDim}`,
    },
    checkConfig({ tokenDim }, spec, dims) {
      if (spec.numKvHeads !== spec.numHeads && tokenDim === spec.hiddenSize) {
        const why = `prefixes of this grouped-query model carry ${spec.numKvHeads} key/value heads of ${spec.headDim}: token_dim = num_key_value_heads * head_dim, as current PEFT writes it; a token_dim of the hidden size comes from a PEFT that predates grouped-query support`;
        throw new SoftserveError('PROMPT_SHAPE_MISMATCH', `adapter_config.json token_dim is ${JSON.stringify(tokenDim)}; the loaded model needs ${JSON.stringify(dims.tokenDim)} (${why})`,
          { field: 'token_dim', expected: dims.tokenDim, got: tokenDim });
      }
    },
  },
};

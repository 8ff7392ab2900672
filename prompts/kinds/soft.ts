// Prompt tuning (Lester et al. 2021): P input embeddings [P, H], virtual
// tokens V + j in the token sequence; PEFT's PROMPT_TUNING, same layout.

import type { PromptKindDef } from './kind.ts';

export const soft: PromptKindDef = {
  name: 'soft',
  storedName: 'soft_prompt',
  shape: (dims, p) => [p, dims.hiddenSize],
  lengthAxis: 0,
  jsonShape: '[P][H]',
  placesTokens: true,
  feed(row, key, p, data) {
    if (p > 0) row.softPrompt = { key, length: p, data };
  },
  trainableInput: 'soft_prompt_table',
  layout: 'embeddings',
  peft: {
    type: 'PROMPT_TUNING',
    dims: (spec) => ({ tokenDim: spec.hiddenSize, numAttentionHeads: spec.numHeads, numLayers: spec.numLayers, width: spec.hiddenSize }),
    fromPeft: (raw) => raw,
    toPeft: (data) => data,
    configFields: () => ({ defaults: { prompt_tuning_init: 'RANDOM', prompt_tuning_init_text: null, tokenizer_kwargs: null, tokenizer_name_or_path: null } }),
    meaning: {
      tokenDim: 'the model\'s hidden size',
      numAttentionHeads: 'the model\'s attention heads',
      width: (_spec, p, dims) => `num_virtual_tokens=${p}, token_dim=${dims.tokenDim}`,
    },
  },
};

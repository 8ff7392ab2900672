// RoBERTa: BERT's encoder graph (models/bert) with <s>/</s>/<mask>, the
// lm_head MLM head (always exact gelu), roberta.* tensor names, and positions
// numbered from padding_idx + 1.

import { encoderFamily } from '../bert/index.ts';

export const roberta = encoderFamily({
  name: 'roberta',
  mlmHead: { dense: 'lm_head.dense', norm: 'lm_head.layer_norm', bias: 'lm_head.bias' },
  // RobertaLMHead always uses exact gelu, whatever hidden_act says.
  mlmActivation: 'gelu',
  tokens: { cls: '<s>', sep: '</s>', mask: '<mask>', clsFallback: 0, sepFallback: 2 },
  positionOffset: (spec) => (spec.padTokenId ?? 1) + 1,
});

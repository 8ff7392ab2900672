// P-tuning (Liu et al. 2021): stored materialised, so serving sees P input
// embeddings [P, H] like a soft prompt (the MLP/LSTM encoder is a training
// device, prompts/training/reparam.ts); PEFT's P_TUNING.

import type { PromptKindDef } from './kind.ts';
import { soft } from './soft.ts';

export const ptuning: PromptKindDef = {
  ...soft,
  name: 'ptuning',
  peft: {
    ...soft.peft,
    type: 'P_TUNING',
    configFields: (spec) => ({ defaults: { encoder_dropout: 0.0, encoder_hidden_size: spec.hiddenSize, encoder_num_layers: 2, encoder_reparameterization_type: 'MLP' } }),
  },
};

// RoBERTa: BERT's graph (models/bert) with <s>/</s>/<mask>, positions that
// start after the padding index, and the roberta.* tensor names.

import { bert, bertSpec } from '../bert/index.ts';
import type { Family } from '../family.ts';

export const roberta: Family = {
  ...bert,
  name: 'roberta',
  modelTypes: ['roberta'],
  spec: (ckpt) => bertSpec(ckpt, 'roberta'),
  specialTokens: (spec, tok) => ({ start: [tok.tokenId('<s>') ?? 0], end: [tok.tokenId('</s>') ?? 2], mask: spec.maskTokenId }),
};

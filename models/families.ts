// Maps config.json's model_type to the family that builds its graph. Adding a
// family is one entry here and one folder beside this file.

import { SoftserveError } from '../kernels/errors.ts';
import type { Graph } from '../kernels/graph.ts';
import type { Checkpoint } from './checkpoint.ts';
import type { ModelSpec } from './spec.ts';
import { buildLlamaGraph, llamaSpec } from './llama/index.ts';
import { buildGpt2Graph, gpt2Spec } from './gpt2/index.ts';
import { bertSpec, buildBertGraph, positionOffset } from './bert/index.ts';

export interface Family {
  spec(ckpt: Checkpoint): ModelSpec;
  buildServingGraph(g: Graph, ckpt: Checkpoint, spec: ModelSpec): void;
  /** The position id of a row's first token (RoBERTa starts after the padding index). */
  positionOffset(spec: ModelSpec): number;
}

const FAMILIES: Record<string, Family> = {
  llama: { spec: llamaSpec, buildServingGraph: buildLlamaGraph, positionOffset: () => 0 },
  gpt2: { spec: gpt2Spec, buildServingGraph: buildGpt2Graph, positionOffset: () => 0 },
  bert: { spec: (c) => bertSpec(c, 'bert'), buildServingGraph: buildBertGraph, positionOffset },
  roberta: { spec: (c) => bertSpec(c, 'roberta'), buildServingGraph: buildBertGraph, positionOffset },
};

export function familyOf(ckpt: Checkpoint): Family {
  const modelType = ckpt.config.model_type;
  const family = typeof modelType === 'string' ? FAMILIES[modelType] : undefined;
  if (!family) {
    throw new SoftserveError('MODEL_ARCHITECTURE_UNSUPPORTED',
      `${ckpt.dir}/config.json: model_type ${JSON.stringify(modelType)} is not supported (supported: ${Object.keys(FAMILIES).join(', ')})`,
      { file: `${ckpt.dir}/config.json` });
  }
  return family;
}

// The model-family registry: config.json's model_type -> the family object
// that knows everything family-specific (models/family.ts). Adding a family is
// its folder (models/<family>/index.ts exporting one Family) and one line in
// FAMILIES below; test/family-registry.test.ts checks every entry's contract.

import { SoftserveError } from '../kernels/errors.ts';
import type { Checkpoint } from './checkpoint.ts';
import type { Family } from './family.ts';
import type { ModelSpec } from './spec.ts';
import { llama } from './llama/index.ts';
import { gpt2 } from './gpt2/index.ts';
import { bert } from './bert/index.ts';
import { roberta } from './roberta/index.ts';

export type { Family, SpecialTokens, TokenLookup } from './family.ts';

/** Every family this server loads. */
export const FAMILIES: readonly Family[] = [llama, gpt2, bert, roberta];

const BY_MODEL_TYPE = new Map(FAMILIES.flatMap((f) => f.modelTypes.map((t) => [t, f] as const)));
const BY_NAME = new Map(FAMILIES.map((f) => [f.name, f] as const));

/** The family that loads a checkpoint, by config.json's model_type. */
export function familyOf(ckpt: Checkpoint): Family {
  const modelType = ckpt.config.model_type;
  const family = typeof modelType === 'string' ? BY_MODEL_TYPE.get(modelType) : undefined;
  if (!family) {
    throw new SoftserveError('MODEL_ARCHITECTURE_UNSUPPORTED',
      `${ckpt.dir}/config.json: model_type ${JSON.stringify(modelType)} is not supported (supported: ${[...BY_MODEL_TYPE.keys()].join(', ')})`,
      { file: `${ckpt.dir}/config.json` });
  }
  return family;
}

/** The family of a loaded model's spec. */
export function familyOfSpec(spec: ModelSpec): Family {
  const family = BY_NAME.get(spec.family);
  if (!family) throw new SoftserveError('INTERNAL', `no model family named ${JSON.stringify(spec.family)}`);
  return family;
}

/** The name of the input word-embedding matrix [V,H] in a checkpoint. */
export function inputEmbeddingName(ckpt: Checkpoint, spec: ModelSpec): string {
  const candidates = familyOfSpec(spec).inputEmbeddingNames(spec);
  const name = ckpt.weights.resolve(...candidates);
  if (!name) throw new SoftserveError('MODEL_TENSOR_MISSING', `no input embedding matrix (${candidates.join(' / ')})`);
  return name;
}

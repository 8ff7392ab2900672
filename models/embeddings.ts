// The input word-embedding matrix [V,H] of a checkpoint, read on its own: for
// looking at learned prompts (nearest vocabulary tokens), not for serving,
// which reads it inside the graph.

import { loadCheckpoint } from './checkpoint.ts';
import { familyOf, inputEmbeddingName } from './families.ts';

export interface InputEmbeddings {
  vocabSize: number;
  hiddenSize: number;
  /** [V, H], row-major. */
  data: Float32Array;
}

export function loadInputEmbeddings(modelDir: string): InputEmbeddings {
  const ckpt = loadCheckpoint(modelDir);
  const spec = familyOf(ckpt).spec(ckpt);
  const data = ckpt.weights.get(inputEmbeddingName(ckpt, spec), [spec.vocabSize, spec.hiddenSize]);
  return { vocabSize: spec.vocabSize, hiddenSize: spec.hiddenSize, data };
}

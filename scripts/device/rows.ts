// Deterministic engine rows for the device checks: a mixed batch (verbalizer
// and linear-head rows, soft prompts and prefixes of several lengths, some
// shared, texts of different lengths) for parity, and uniform rows for the
// engine bench.

import type { EngineRow, LinearHead, PrefixTensor, SoftPromptTensor } from '../../models/batch.ts';
import type { ModelSpec } from '../../models/spec.ts';
import { softmax } from '../../prompts/softmax.ts';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296 - 0.5);
}

function textIds(spec: ModelSpec, length: number, seed: number): number[] {
  // Ordinary tokens only: ids below 5 are special tokens in every family we serve.
  return Array.from({ length }, (_, t) => 5 + ((seed * 131 + t * 17) % (spec.vocabSize - 5)));
}

function softPrompt(spec: ModelSpec, key: string, length: number, seed: number): SoftPromptTensor {
  const r = lcg(seed);
  return { key, length, data: Float32Array.from({ length: length * spec.hiddenSize }, () => r()) };
}

function prefix(spec: ModelSpec, key: string, length: number, seed: number): PrefixTensor {
  const r = lcg(seed);
  const n = spec.numLayers * 2 * spec.numKvHeads * length * spec.headDim;
  return { key, length, data: Float32Array.from({ length: n }, () => 2 * r()) };
}

function head(spec: ModelSpec, key: string, classes: number, seed: number): LinearHead {
  const r = lcg(seed);
  return {
    key, numClasses: classes,
    weight: Float32Array.from({ length: classes * spec.hiddenSize }, () => r()),
    bias: Float32Array.from({ length: classes }, () => r()),
  };
}

/** The token a masked LM scores at, placed at the end of the text; causal models score the last token anyway. */
function withScoreToken(spec: ModelSpec, ids: number[]): number[] {
  return spec.maskTokenId !== null && !spec.causal ? [...ids, spec.maskTokenId] : ids;
}

/**
 * A batch of 16 rows mixing everything the serving graph handles: plain,
 * soft-prompted and prefixed rows, verbalizers of 2-4 classes and linear
 * heads, prompts shared by two rows, texts from 6 to 48 tokens.
 */
export function mixedRows(spec: ModelSpec): EngineRow[] {
  const V = spec.vocabSize;
  const softA = softPrompt(spec, 'softA', 5, 1);
  const softB = softPrompt(spec, 'softB', 12, 2);
  const preA = prefix(spec, 'preA', 4, 3);
  const preB = prefix(spec, 'preB', 9, 4);
  const head3 = head(spec, 'head3', 3, 5);
  const head2 = head(spec, 'head2', 2, 6);
  const verbalizers = [[10, 11], [12, 13, 14], [15, 16, 17, 18]];
  const rows: EngineRow[] = [];
  const lengths = [6, 48, 17, 31, 9, 24, 40, 12, 6, 33, 20, 45, 8, 27, 15, 38];
  lengths.forEach((len, i) => {
    const text = withScoreToken(spec, textIds(spec, len, i + 1));
    const scoring = i % 5 === 4 ? { head: i % 2 === 0 ? head3 : head2 } : { labelIds: verbalizers[i % 3]! };
    const kind = i % 4;
    if (kind === 1) {
      const s = i % 8 === 1 ? softA : softB;
      rows.push({ inputIds: [...Array.from({ length: s.length }, (_, j) => V + j), ...text], softPrompt: s, ...scoring });
    } else if (kind === 2) {
      rows.push({ inputIds: text, prefix: i % 8 === 2 ? preA : preB, ...scoring });
    } else if (kind === 3) {
      rows.push({ inputIds: [...Array.from({ length: softA.length }, (_, j) => V + j), ...text], softPrompt: softA, prefix: preB, ...scoring });
    } else {
      rows.push({ inputIds: text, ...scoring });
    }
  });
  return rows;
}

/** `batch` rows of `tokens` text tokens each, two verbalizer classes, no prompt (the bench's plain case). */
export function benchRows(spec: ModelSpec, batch: number, tokens: number): EngineRow[] {
  return Array.from({ length: batch }, (_, b) => ({ inputIds: withScoreToken(spec, textIds(spec, tokens - (spec.causal ? 0 : 1), b + 1)), labelIds: [10, 11] }));
}

/** Per-row softmax of the first `classes` scores. */
export function probabilities(scores: Float32Array): number[] {
  return softmax(scores);
}

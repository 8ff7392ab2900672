// Turns a list of heterogeneous rows into the serving graph's input tensors
// (docs/ENGINE.md): right padding, PEFT positions, deduplicated prompt, prefix
// and head tables. Pure and synchronous, and it produces plain typed arrays, so
// it can run on either side of a worker-thread boundary.

import { SoftserveError } from '../kernels/errors.ts';
import type { TensorData } from '../kernels/session.ts';
import { featureOffset, featureWidth, type Pooling } from './pooling.ts';
import type { ModelSpec } from './spec.ts';

/** A soft prompt [length, H]. `key` identifies it for deduplication. */
export interface SoftPromptTensor { key: string; length: number; data: Float32Array }
/** A per-layer prefix [L, 2, KV, length, D]. */
export interface PrefixTensor { key: string; length: number; data: Float32Array }
/** A linear head: weight [C, F] (F: its pooling's feature width, H or 2H), bias [C]. */
export interface LinearHead { key: string; numClasses: number; weight: Float32Array; bias: Float32Array }

export interface EngineRow {
  /** Token ids; an id V + j is token j of `softPrompt` (V = vocabulary size). */
  inputIds: number[];
  softPrompt?: SoftPromptTensor;
  prefix?: PrefixTensor;
  /** Verbalizer: the token scored per class. Ignored when `head` is set. */
  labelIds?: number[];
  head?: LinearHead;
  /** What the head reads (models/pooling.ts): default the mean over real tokens. */
  pooling?: Pooling;
  /** Where the verbalizer reads: default last token (causal) or the mask token. */
  scorePosition?: number;
}

export type { TensorData };

export interface AssembledBatch {
  feeds: Record<string, TensorData>;
  /** Classes per row (a row's scores are the first numClasses of its C). */
  numClasses: number[];
  rows: number;
  /** Padded sequence length and the number of real tokens, for padding metrics. */
  paddedLength: number;
  realTokens: number;
}

function invalid(message: string): never {
  throw new SoftserveError('ENGINE_INPUT_INVALID', message);
}

function dedupe<T extends { key: string }>(items: Array<T | undefined>): { unique: T[]; index: Map<string, number> } {
  const unique: T[] = [];
  const index = new Map<string, number>();
  for (const item of items) {
    if (item && !index.has(item.key)) {
      index.set(item.key, unique.length);
      unique.push(item);
    }
  }
  return { unique, index };
}

function poolingOf(row: EngineRow): Pooling {
  return row.pooling ?? 'mean';
}

export function assembleBatch(rows: EngineRow[], spec: ModelSpec, positionOffset: number): AssembledBatch {
  if (rows.length === 0) invalid('a batch needs at least one row');
  const { vocabSize: V, hiddenSize: H, numLayers: L, numKvHeads: KV, headDim: D } = spec;
  const B = rows.length;
  const T = Math.max(...rows.map((r) => r.inputIds.length));

  const soft = dedupe(rows.map((r) => r.softPrompt));
  const prefixes = dedupe(rows.map((r) => r.prefix));
  // A head is one table entry per pooling (the same weights laid into another half are another entry).
  const headOf = (r: EngineRow) => (r.head ? { ...r.head, key: `${r.head.key}|${poolingOf(r)}`, pooling: poolingOf(r) } : undefined);
  const rowHeads = rows.map(headOf);
  const heads = dedupe(rowHeads);
  const P = Math.max(1, ...soft.unique.map((s) => s.length));
  const Pk = Math.max(1, ...prefixes.unique.map((p) => p.length));
  const numClasses = rows.map((r) => (r.head ? r.head.numClasses : r.labelIds?.length ?? 0));
  const C = Math.max(1, ...numClasses);

  for (const s of soft.unique) {
    if (s.data.length !== s.length * H) invalid(`soft prompt ${s.key}: ${s.data.length} values, expected ${s.length}×${H}`);
  }
  for (const p of prefixes.unique) {
    if (p.data.length !== L * 2 * KV * p.length * D) invalid(`prefix ${p.key}: ${p.data.length} values, expected ${L}×2×${KV}×${p.length}×${D}`);
  }
  for (const h of heads.unique) {
    if (h.weight.length !== h.numClasses * featureWidth(h.pooling, H) || h.bias.length !== h.numClasses) invalid(`head ${h.key}: wrong weight or bias size for ${h.pooling} pooling`);
  }

  const inputIds = new BigInt64Array(B * T);
  const attentionMask = new BigInt64Array(B * T);
  const positionIds = new BigInt64Array(B * T).fill(BigInt(positionOffset));
  const softIndex = new BigInt64Array(B);
  const prefixIndex = new BigInt64Array(B);
  const prefixLength = new BigInt64Array(B);
  const scorePosition = new BigInt64Array(B);
  const labelIds = new BigInt64Array(B * C);
  const labelMask = new Uint8Array(B * C);
  const headIndex = new BigInt64Array(B);
  const useHead = new Uint8Array(B);
  let realTokens = 0;

  rows.forEach((row, b) => {
    const n = row.inputIds.length;
    if (n === 0) invalid(`row ${b} has no tokens`);
    const promptLength = row.softPrompt?.length ?? 0;
    const shift = row.prefix?.length ?? 0;
    if (positionOffset + shift + n > spec.maxPositions) {
      throw new SoftserveError('INVALID_INPUT',
        `input of ${n} tokens${shift ? ` after a prefix of ${shift}` : ''} exceeds the model's ${spec.maxPositions} positions`);
    }
    row.inputIds.forEach((id, t) => {
      if (!Number.isInteger(id) || id < 0 || id >= V + promptLength) {
        invalid(`row ${b}: token id ${id} at ${t} is outside the vocabulary (${V}) and the row's ${promptLength} virtual tokens`);
      }
      inputIds[b * T + t] = BigInt(id);
      attentionMask[b * T + t] = 1n;
      positionIds[b * T + t] = BigInt(positionOffset + shift + t);
    });
    realTokens += n;
    if (row.softPrompt) softIndex[b] = BigInt(soft.index.get(row.softPrompt.key)!);
    if (row.prefix) {
      prefixIndex[b] = BigInt(prefixes.index.get(row.prefix.key)!);
      prefixLength[b] = BigInt(row.prefix.length);
    }
    let s = row.scorePosition;
    if (s === undefined) {
      if (spec.causal) s = n - 1;
      else {
        const m = spec.maskTokenId === null ? -1 : row.inputIds.indexOf(spec.maskTokenId);
        s = m >= 0 ? m : 0;
      }
    }
    if (!Number.isInteger(s) || s < 0 || s >= n) invalid(`row ${b}: score position ${s} is outside its ${n} tokens`);
    scorePosition[b] = BigInt(s);
    if (row.head) {
      useHead[b] = 1;
      headIndex[b] = BigInt(heads.index.get(rowHeads[b]!.key)!);
      for (let c = 0; c < row.head.numClasses; c++) labelMask[b * C + c] = 1;
    } else {
      const labels = row.labelIds ?? [];
      if (labels.length === 0) invalid(`row ${b} has neither label ids nor a linear head`);
      if (!spec.hasLmHead) invalid(`row ${b}: this model has no LM head, so it needs a linear head`);
      labels.forEach((id, c) => {
        if (!Number.isInteger(id) || id < 0 || id >= V) invalid(`row ${b}: label token ${id} is outside the vocabulary`);
        labelIds[b * C + c] = BigInt(id);
        labelMask[b * C + c] = 1;
      });
    }
  });

  const softTable = new Float32Array(Math.max(1, soft.unique.length) * P * H);
  soft.unique.forEach((s, u) => softTable.set(s.data, u * P * H));

  const Uk = Math.max(1, prefixes.unique.length);
  const prefixTable = new Float32Array(L * 2 * Uk * KV * Pk * D);
  prefixes.unique.forEach((p, u) => {
    // source [L,2,KV,len,D] -> table [L,2,Uk,KV,Pk,D]
    for (let l = 0; l < L; l++) for (let w = 0; w < 2; w++) for (let k = 0; k < KV; k++) {
      const src = (((l * 2 + w) * KV + k) * p.length) * D;
      const dst = ((((l * 2 + w) * Uk + u) * KV + k) * Pk) * D;
      prefixTable.set(p.data.subarray(src, src + p.length * D), dst);
    }
  });

  const Uh = Math.max(1, heads.unique.length);
  const headTable = new Float32Array(Uh * C * 2 * H);
  const headBias = new Float32Array(Uh * C);
  heads.unique.forEach((h, u) => {
    const F = featureWidth(h.pooling, H);
    const at = featureOffset(h.pooling, H);
    for (let c = 0; c < h.numClasses; c++) headTable.set(h.weight.subarray(c * F, (c + 1) * F), (u * C + c) * 2 * H + at);
    headBias.set(h.bias, u * C);
  });

  return {
    feeds: {
      input_ids: { type: 'int64', data: inputIds, dims: [B, T] },
      attention_mask: { type: 'int64', data: attentionMask, dims: [B, T] },
      position_ids: { type: 'int64', data: positionIds, dims: [B, T] },
      soft_prompt_table: { type: 'float32', data: softTable, dims: [Math.max(1, soft.unique.length), P, H] },
      soft_prompt_index: { type: 'int64', data: softIndex, dims: [B] },
      prefix_table: { type: 'float32', data: prefixTable, dims: [L, 2, Uk, KV, Pk, D] },
      prefix_index: { type: 'int64', data: prefixIndex, dims: [B] },
      prefix_length: { type: 'int64', data: prefixLength, dims: [B] },
      score_position: { type: 'int64', data: scorePosition, dims: [B] },
      label_ids: { type: 'int64', data: labelIds, dims: [B, C] },
      label_mask: { type: 'bool', data: labelMask, dims: [B, C] },
      head_table: { type: 'float32', data: headTable, dims: [Uh, C, 2 * H] },
      head_bias: { type: 'float32', data: headBias, dims: [Uh, C] },
      head_index: { type: 'int64', data: headIndex, dims: [B] },
      use_head: { type: 'bool', data: useHead, dims: [B] },
    },
    numClasses,
    rows: B,
    paddedLength: T,
    realTokens,
  };
}

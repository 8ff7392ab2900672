// What a learned prompt "means", as Lester et al. (2021, §7) look at it: for
// each virtual token of a soft or P-tuning prompt, the vocabulary tokens whose
// input embeddings are nearest by cosine similarity, and the token's norm; for
// a prefix, the norms of its keys and values in each layer.

import type { InputEmbeddings } from '../models/embeddings.ts';
import type { PromptTensors } from './kinds.ts';

export interface Neighbour { id: number; similarity: number }
export interface VirtualTokenView { index: number; norm: number; nearest: Neighbour[] }
export interface PrefixLayerView {
  layer: number;
  /** Mean over prefix positions of the L2 norm of the position's keys (all key/value heads together). */
  key_norm: number;
  value_norm: number;
  /** The same norms per prefix position. */
  key_norms: number[];
  value_norms: number[];
}

/** Inverse L2 norms of the embedding rows (0 for an all-zero row), computed once per model. */
export function inverseRowNorms(emb: InputEmbeddings): Float32Array {
  const { vocabSize: V, hiddenSize: H, data } = emb;
  const out = new Float32Array(V);
  for (let v = 0; v < V; v++) {
    let s = 0;
    for (let h = 0; h < H; h++) s += data[v * H + h]! * data[v * H + h]!;
    out[v] = s > 0 ? 1 / Math.sqrt(s) : 0;
  }
  return out;
}

/**
 * The k nearest vocabulary tokens of one virtual token `p` (length H) by
 * cosine similarity, best first (ties: the lower id first).
 */
export function nearestTokens(p: Float32Array, emb: InputEmbeddings, invNorms: Float32Array, k: number): { norm: number; nearest: Neighbour[] } {
  const { vocabSize: V, hiddenSize: H, data } = emb;
  let pp = 0;
  for (let h = 0; h < H; h++) pp += p[h]! * p[h]!;
  const norm = Math.sqrt(pp);
  const invP = norm > 0 ? 1 / norm : 0;
  // A small sorted list beats sorting V similarities: k is at most a few dozen.
  const best: Neighbour[] = [];
  for (let v = 0; v < V; v++) {
    let dot = 0;
    const row = v * H;
    for (let h = 0; h < H; h++) dot += p[h]! * data[row + h]!;
    const similarity = dot * invP * invNorms[v]!;
    if (best.length === k && similarity <= best[k - 1]!.similarity) continue;
    let at = best.length;
    while (at > 0 && best[at - 1]!.similarity < similarity) at--;
    best.splice(at, 0, { id: v, similarity });
    if (best.length > k) best.pop();
  }
  return { norm, nearest: best };
}

/**
 * Every virtual token of a soft or P-tuning prompt ([P, H]). Yields to the
 * event loop between tokens: on a large vocabulary one token is ~V×H
 * multiply-adds, and the HTTP thread must keep answering.
 */
export async function inspectVirtualTokens(tensors: PromptTensors, emb: InputEmbeddings, invNorms: Float32Array, k: number): Promise<VirtualTokenView[]> {
  const H = emb.hiddenSize;
  const out: VirtualTokenView[] = [];
  for (let i = 0; i < tensors.numVirtualTokens; i++) {
    const { norm, nearest } = nearestTokens(tensors.data.subarray(i * H, (i + 1) * H), emb, invNorms, k);
    out.push({ index: i, norm, nearest });
    if (i + 1 < tensors.numVirtualTokens) await new Promise((r) => setImmediate(r));
  }
  return out;
}

/** Per-layer key and value norms of a prefix prompt ([L, 2, KV, P, D]). */
export function inspectPrefix(tensors: PromptTensors, dims: { numLayers: number; numKvHeads: number; headDim: number }): PrefixLayerView[] {
  const { numLayers: L, numKvHeads: KV, headDim: D } = dims;
  const P = tensors.numVirtualTokens;
  const norms = (layer: number, kv: 0 | 1): number[] => {
    const out: number[] = [];
    for (let p = 0; p < P; p++) {
      let s = 0;
      for (let head = 0; head < KV; head++) {
        const base = ((((layer * 2 + kv) * KV + head) * P) + p) * D;
        for (let d = 0; d < D; d++) s += tensors.data[base + d]! * tensors.data[base + d]!;
      }
      out.push(Math.sqrt(s));
    }
    return out;
  };
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
  return Array.from({ length: L }, (_, layer) => {
    const key_norms = norms(layer, 0);
    const value_norms = norms(layer, 1);
    return { layer, key_norm: mean(key_norms), value_norm: mean(value_norms), key_norms, value_norms };
  });
}

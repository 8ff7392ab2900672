// What a model family is: everything family-specific, in one object per
// family (models/<family>/index.ts), registered in models/families.ts. The
// layers above ask the family, never `spec.family === ...`.

import type { Graph } from '../kernels/graph.ts';
import type { Checkpoint } from './checkpoint.ts';
import type { ModelSpec } from './spec.ts';

/** The special tokens a family wraps an input in (ids). */
export interface SpecialTokens { start: number[]; end: number[]; mask: number | null }

/** The tokenizer lookups a family needs to name its special tokens. */
export interface TokenLookup { tokenId(token: string): number | undefined }

export interface Family {
  /** The registry name, also ModelSpec.family. */
  name: string;
  /** config.json model_type values this family loads (detection). */
  modelTypes: readonly string[];
  /** The facts the layers above need, read from config.json and the tokenizer. */
  spec(ckpt: Checkpoint): ModelSpec;
  /** Adds the serving graph (docs/ENGINE.md inputs and outputs); training graphs are built on it. */
  buildServingGraph(g: Graph, ckpt: Checkpoint, spec: ModelSpec): void;
  /** The position id of a row's first token (RoBERTa starts after the padding index). */
  positionOffset(spec: ModelSpec): number;
  /** BOS/CLS before an input, EOS/SEP after it, and the mask token a verbalizer may read. */
  specialTokens(spec: ModelSpec, tok: TokenLookup, addBos: boolean): SpecialTokens;
  /** Candidate names of the input word-embedding matrix [V,H], first found wins. */
  inputEmbeddingNames(spec: ModelSpec): string[];
}

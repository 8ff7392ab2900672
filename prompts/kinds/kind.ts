// What a prompt kind is: its tensor layout and stored name (codec), its PEFT
// mapping, and the engine inputs it feeds. One file per kind beside this one
// (soft.ts, ptuning.ts, prefix.ts), registered in prompts/kinds.ts, which
// holds the code every kind shares (validation, the stored file, JSON uploads).

import type { EngineRow } from '../../models/batch.ts';
import type { ModelSpec } from '../../models/spec.ts';

/** The model dimensions a prompt was validated against (stored with it). */
export interface ModelDims {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
}

/** What PEFT's adapter_config.json records for a model, for one PEFT type. */
export interface PeftDims { tokenDim: number; numAttentionHeads: number; numLayers: number; width: number }

export interface PromptKindDef {
  /** The kind's name in the API, the store and the stored files. */
  name: string;
  // --- codec ---
  /** The tensor's name in the stored safetensors file. */
  storedName: string;
  /** The tensor's shape (row-major, float32) for P virtual tokens. */
  shape(dims: ModelDims, p: number): number[];
  /** The axis of `shape` that holds P (a JSON upload's P is read from it). */
  lengthAxis: number;
  /** The nested-array shape a JSON upload gives, for error messages. */
  jsonShape: string;
  // --- engine ---
  /**
   * Whether the prompt's virtual tokens sit in the token sequence (ids V + j,
   * placed by the template) or only in attention (a prefix: no text tokens).
   */
  placesTokens: boolean;
  /** Puts the prompt on an engine row: the EngineRow field it feeds. */
  feed(row: EngineRow, key: string, p: number, data: Float32Array): void;
  /** The serving-graph input its gradient is taken at in training. */
  trainableInput: 'soft_prompt_table' | 'prefix_table';
  /** Kinds sharing a tensor layout family can start training from each other (transfer). */
  layout: 'embeddings' | 'prefix';
  // --- PEFT ---
  peft: {
    /** adapter_config.json peft_type. */
    type: string;
    dims(spec: ModelSpec): PeftDims;
    /** PEFT's prompt_embeddings [P, width] -> this kind's layout. */
    fromPeft(raw: Float32Array, spec: ModelSpec, p: number): Float32Array;
    /** This kind's layout -> PEFT's prompt_embeddings [P, width]. */
    toPeft(data: Float32Array, spec: ModelSpec, p: number): Float32Array;
    /**
     * The kind's own adapter_config.json fields on export (a materialised
     * prompt): `defaults` an uploaded config may override, `fixed` it may not.
     */
    configFields(spec: ModelSpec, dims: PeftDims): { defaults: Record<string, unknown>; fixed?: Record<string, unknown> };
    /** What token_dim and num_attention_heads must equal, in words, for mismatch messages. */
    meaning: { tokenDim: string; numAttentionHeads: string; width: (spec: ModelSpec, p: number, dims: PeftDims) => string };
    /** A kind's own adapter_config check beyond the dims (throws PROMPT_SHAPE_MISMATCH), e.g. prefix's GQA token_dim. */
    checkConfig?(cfg: { tokenDim: number | undefined }, spec: ModelSpec, dims: PeftDims): void;
  };
}

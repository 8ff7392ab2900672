// The facts about a loaded model that the layers above need (prompt validation,
// PEFT shapes, batch assembly) without touching its weights.

/** A registered family's name (models/families.ts: llama, gpt2, bert, roberta, ...). */
export type ModelFamily = string;

export interface ModelSpec {
  family: ModelFamily;
  /** Hugging Face model_type from config.json. */
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  /** Key/value heads (< numHeads for grouped-query attention). */
  numKvHeads: number;
  headDim: number;
  maxPositions: number;
  /** true for decoder-only models: score at the last real token. */
  causal: boolean;
  bosTokenId: number | null;
  eosTokenId: number | null;
  /** [MASK] / <mask> for masked LMs, where the verbalizer score is read. */
  maskTokenId: number | null;
  padTokenId: number | null;
  /** Whether a verbalizer can be scored (an LM or MLM head exists). */
  hasLmHead: boolean;
}

// BERT and the encoders shaped like it (RoBERTa: models/roberta): absolute
// positions, token types, post-LN encoder blocks, and the MLM head (dense,
// gelu, LayerNorm, decoder tied to the word embeddings, per-token bias) that
// the verbalizer reads at the mask token. What differs between them is an
// EncoderVariant; encoderFamily(variant) makes the Family.

import type { Graph, Value } from '../../kernels/graph.ts';
import { configInt, configNumber, configOptionalInt, type Checkpoint } from '../checkpoint.ts';
import type { Family } from '../family.ts';
import type { ModelSpec } from '../spec.ts';
import {
  activation, attendWithPrefix, attentionBias, declareServingInputs, embedTokens, layerNorm, linear,
  linearWeight, scoreAndPool, splitHeads, vectorWeight, type Activation,
} from '../serving-graph.ts';

/** What a BERT-shaped encoder family sets apart from BERT's graph. */
export interface EncoderVariant {
  /** Family name, also the base-model tensor prefix ("bert." / "roberta.") and config model_type. */
  name: string;
  /** The MLM head's tensor names. */
  mlmHead: { dense: string; norm: string; bias: string };
  /** The MLM head's activation; null: config.json hidden_act. */
  mlmActivation: Activation | null;
  /** Token strings, and the ids used when the tokenizer lacks them. */
  tokens: { cls: string; sep: string; mask: string; clsFallback: number; sepFallback: number };
  positionOffset(spec: ModelSpec): number;
}

interface Layout {
  base: string;                 // "bert." / "roberta." / "" (bare encoder checkpoints)
  head: { dense: string; norm: string; bias: string } | null;
}

function layout(ckpt: Checkpoint, v: EncoderVariant): Layout {
  const ws = ckpt.weights;
  const base = ws.has(`${v.name}.embeddings.word_embeddings.weight`) ? `${v.name}.` : '';
  const head = v.mlmHead;
  return { base, head: ws.has(`${head.dense}.weight`) ? head : null };
}

function maskTokenId(ckpt: Checkpoint, v: EncoderVariant): number | null {
  const wanted = v.tokens.mask;
  const added = ckpt.tokenizerJson.added_tokens;
  if (Array.isArray(added)) {
    for (const t of added as Array<{ id?: number; content?: string }>) if (t.content === wanted && typeof t.id === 'number') return t.id;
  }
  const vocab = (ckpt.tokenizerJson.model as { vocab?: Record<string, number> } | undefined)?.vocab;
  return vocab && typeof vocab === 'object' && !Array.isArray(vocab) && typeof vocab[wanted] === 'number' ? vocab[wanted]! : null;
}

function encoderSpec(ckpt: Checkpoint, v: EncoderVariant): ModelSpec {
  const c = ckpt.config;
  const hiddenSize = configInt(c, 'hidden_size');
  const numHeads = configInt(c, 'num_attention_heads');
  return {
    family: v.name, modelType: String(c.model_type),
    vocabSize: configInt(c, 'vocab_size'), hiddenSize,
    numLayers: configInt(c, 'num_hidden_layers'), numHeads, numKvHeads: numHeads,
    headDim: Math.floor(hiddenSize / Math.max(numHeads, 1)),
    maxPositions: configInt(c, 'max_position_embeddings', 512),
    causal: false,
    bosTokenId: configOptionalInt(c, 'bos_token_id'), eosTokenId: configOptionalInt(c, 'eos_token_id'),
    maskTokenId: maskTokenId(ckpt, v), padTokenId: configOptionalInt(c, 'pad_token_id'),
    hasLmHead: layout(ckpt, v).head !== null,
  };
}

function buildEncoderGraph(g: Graph, ckpt: Checkpoint, spec: ModelSpec, v: EncoderVariant): void {
  const c = ckpt.config;
  const ws = ckpt.weights;
  const { hiddenSize: H, numHeads: NH, headDim: D, vocabSize: V, numLayers: L, maxPositions } = spec;
  const eps = configNumber(c, 'layer_norm_eps', 1e-12);
  const I = configInt(c, 'intermediate_size');
  const act = String(c.hidden_act ?? 'gelu') as Activation;
  const { base, head } = layout(ckpt, v);
  const ln = (x: Value, name: string) =>
    layerNorm(g, x, vectorWeight(g, ws, `${name}.weight`, H), vectorWeight(g, ws, `${name}.bias`, H), eps);
  const dense = (x: Value, name: string, out: number, inp: number) =>
    linear(g, x, linearWeight(g, ws, `${name}.weight`, out, inp), vectorWeight(g, ws, `${name}.bias`, out));

  const inp = declareServingInputs(g, spec);
  const e = `${base}embeddings`;
  const words = g.weight(`${e}.word_embeddings.weight`, [V, H], ws.get(`${e}.word_embeddings.weight`, [V, H]));
  const positions = g.weight(`${e}.position_embeddings.weight`, [maxPositions, H], ws.get(`${e}.position_embeddings.weight`, [maxPositions, H]));
  const typeVocab = configInt(c, 'type_vocab_size', 2);
  const types = ws.get(`${e}.token_type_embeddings.weight`, [typeVocab, H]);
  const typeZero = g.weight(`${e}.token_type_embeddings.weight[0]`, [H], types.slice(0, H));

  let x = g.add(g.add(embedTokens(g, inp, words, spec), g.gather(positions, inp.positionIds)), typeZero);
  x = ln(x, `${e}.LayerNorm`);
  const bias = attentionBias(g, inp, false);
  for (let l = 0; l < L; l++) {
    const p = `${base}encoder.layer.${l}`;
    const heads = (name: string) => splitHeads(g, dense(x, `${p}.attention.self.${name}`, H, H), NH, D);
    const attended = attendWithPrefix(g, inp, spec, l, heads('query'), heads('key'), heads('value'), bias);
    x = ln(g.add(x, dense(attended, `${p}.attention.output.dense`, H, H)), `${p}.attention.output.LayerNorm`);
    const up = activation(g, dense(x, `${p}.intermediate.dense`, I, H), act);
    x = ln(g.add(x, dense(up, `${p}.output.dense`, H, I)), `${p}.output.LayerNorm`);
  }
  if (head) {
    scoreAndPool(g, inp, spec, x, {
      outputEmbedding: words,
      outputBias: vectorWeight(g, ws, head.bias, V),
      transform: (h) => ln(activation(g, dense(h, head.dense, H, H), v.mlmActivation ?? act), head.norm),
    });
  } else {
    scoreAndPool(g, inp, spec, x, { outputEmbedding: null });
  }
}

/** The Family of a BERT-shaped encoder. */
export function encoderFamily(v: EncoderVariant): Family {
  return {
    name: v.name,
    modelTypes: [v.name],
    spec: (ckpt) => encoderSpec(ckpt, v),
    buildServingGraph: (g, ckpt, spec) => buildEncoderGraph(g, ckpt, spec, v),
    positionOffset: v.positionOffset,
    specialTokens: (spec, tok) => ({
      start: [tok.tokenId(v.tokens.cls) ?? v.tokens.clsFallback], end: [tok.tokenId(v.tokens.sep) ?? v.tokens.sepFallback], mask: spec.maskTokenId,
    }),
    inputEmbeddingNames: () => [`${v.name}.embeddings.word_embeddings.weight`, 'embeddings.word_embeddings.weight'],
  };
}

export const bert = encoderFamily({
  name: 'bert',
  mlmHead: { dense: 'cls.predictions.transform.dense', norm: 'cls.predictions.transform.LayerNorm', bias: 'cls.predictions.bias' },
  // BERT's head transform follows hidden_act.
  mlmActivation: null,
  tokens: { cls: '[CLS]', sep: '[SEP]', mask: '[MASK]', clsFallback: 101, sepFallback: 102 },
  positionOffset: () => 0,
});

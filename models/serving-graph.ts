// Building blocks every family's serving graph shares: the heterogeneous-batch
// inputs, token embedding with virtual (soft-prompt) tokens, attention with
// per-row prefixes, and the scoring/pooling tail. docs/ENGINE.md is the
// contract these implement.

import type { Graph, Value } from '../kernels/graph.ts';
import type { WeightStore } from './checkpoint.ts';
import type { ModelSpec } from './spec.ts';

/** Logit added to masked attention keys: exp(-1e9 - max) is exactly 0 in float32. */
const MASKED = -1e9;

export interface ServingInputs {
  inputIds: Value; attentionMask: Value; positionIds: Value;
  softPromptTable: Value; softPromptIndex: Value;
  prefixTable: Value; prefixIndex: Value; prefixLength: Value;
  scorePosition: Value;
  labelIds: Value; labelMask: Value;
  headTable: Value; headBias: Value; headIndex: Value; useHead: Value;
}

export function declareServingInputs(g: Graph, spec: ModelSpec): ServingInputs {
  const { hiddenSize: H, numLayers: L, numKvHeads: KV, headDim: D } = spec;
  return {
    inputIds: g.input('input_ids', 'int64', ['B', 'T']),
    attentionMask: g.input('attention_mask', 'int64', ['B', 'T']),
    positionIds: g.input('position_ids', 'int64', ['B', 'T']),
    softPromptTable: g.input('soft_prompt_table', 'float32', ['U', 'P', H]),
    softPromptIndex: g.input('soft_prompt_index', 'int64', ['B']),
    prefixTable: g.input('prefix_table', 'float32', [L, 2, 'Uk', KV, 'Pk', D]),
    prefixIndex: g.input('prefix_index', 'int64', ['B']),
    prefixLength: g.input('prefix_length', 'int64', ['B']),
    scorePosition: g.input('score_position', 'int64', ['B']),
    labelIds: g.input('label_ids', 'int64', ['B', 'C']),
    labelMask: g.input('label_mask', 'bool', ['B', 'C']),
    // Heads are laid into rows of the wide feature [mean ; last] (models/pooling.ts).
    headTable: g.input('head_table', 'float32', ['Uh', 'C', 2 * H]),
    headBias: g.input('head_bias', 'float32', ['Uh', 'C']),
    headIndex: g.input('head_index', 'int64', ['B']),
    useHead: g.input('use_head', 'bool', ['B']),
  };
}

/** Loads a Hugging Face Linear weight [out,in] transposed to [in,out] for MatMul. */
export function linearWeight(g: Graph, ws: WeightStore, name: string, out: number, inp: number): Value {
  const w = ws.get(name, [out, inp]);
  const t = new Float32Array(inp * out);
  for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) t[i * out + o] = w[o * inp + i]!;
  return g.weight(name, [inp, out], t);
}

export function vectorWeight(g: Graph, ws: WeightStore, name: string, n: number): Value {
  return g.weight(name, [n], ws.get(name, [n]));
}

/** x @ W (+ b) with W already [in,out]. */
export function linear(g: Graph, x: Value, w: Value, b?: Value): Value {
  const y = g.matmul(x, w);
  return b === undefined ? y : g.add(y, b);
}

export function layerNorm(g: Graph, x: Value, w: Value, b: Value, eps: number): Value {
  return g.op('LayerNormalization', [x, w, b], { axis: -1, epsilon: { float: eps } });
}

export function rmsNorm(g: Graph, x: Value, w: Value, eps: number): Value {
  const meanSquare = g.reduceMean(g.mul(x, x), [-1]);
  return g.mul(g.div(x, g.sqrt(g.add(meanSquare, g.float(eps)))), w);
}

export type Activation = 'silu' | 'gelu' | 'gelu_new' | 'relu';

export function activation(g: Graph, x: Value, kind: Activation): Value {
  switch (kind) {
    case 'silu': return g.mul(x, g.sigmoid(x));
    case 'relu': return g.op('Relu', [x]);
    case 'gelu': // exact: x/2 (1 + erf(x/sqrt 2))
      return g.mul(g.mul(x, g.float(0.5)), g.add(g.float(1), g.erf(g.mul(x, g.float(Math.SQRT1_2)))));
    case 'gelu_new': { // tanh approximation (GPT-2)
      const cube = g.mul(g.mul(x, x), x);
      const inner = g.mul(g.add(x, g.mul(cube, g.float(0.044715))), g.float(Math.sqrt(2 / Math.PI)));
      return g.mul(g.mul(x, g.float(0.5)), g.add(g.float(1), g.tanh(inner)));
    }
  }
}

/**
 * Word embeddings where vocabulary ids gather from `embedding` [V,H] and
 * virtual ids (>= V) gather from the row's soft prompt. Two gathers and a
 * select instead of one gather over concat(embedding, prompts): the concat
 * would copy the whole vocabulary table on every forward.
 */
export function embedTokens(g: Graph, inp: ServingInputs, embedding: Value, spec: ModelSpec): Value {
  const V = g.int(spec.vocabSize);
  const isVirtual = g.op('GreaterOrEqual', [inp.inputIds, V]);                  // [B,T]
  const zero = g.int(0);
  const vocabIds = g.where(isVirtual, zero, inp.inputIds);
  const fromVocab = g.gather(embedding, vocabIds);                               // [B,T,H]
  const P = g.shape(inp.softPromptTable, 1, 2);                                  // [1]
  const rowBase = g.unsqueeze(g.mul(inp.softPromptIndex, P), [1]);              // [B,1]
  const flatIds = g.add(g.sub(inp.inputIds, V), rowBase);                        // [B,T]
  const virtualIds = g.where(isVirtual, flatIds, zero);
  const flatTable = g.reshape(inp.softPromptTable, [-1, spec.hiddenSize]);      // [U*P,H]
  const fromPrompt = g.gather(flatTable, virtualIds);                            // [B,T,H]
  return g.where(g.unsqueeze(isVirtual, [2]), fromPrompt, fromVocab);
}

/**
 * Additive attention bias [B,1,T,Pk+T]: prefix keys j < prefix_length, text
 * keys that are real and (causal models) not in the future.
 */
export function attentionBias(g: Graph, inp: ServingInputs, causal: boolean): Value {
  const BT = g.shape(inp.inputIds);                                              // [B,T]
  const T = g.shape(inp.inputIds, 1, 2);
  const Pk = g.shape(inp.prefixTable, 4, 5);
  const one = g.int(1);
  const zero = g.int(0);
  const prefixPos = g.op('Range', [zero, g.squeeze(Pk, [0]), one]);              // [Pk]
  const prefixOk = g.op('Less', [g.unsqueeze(prefixPos, [0]), g.unsqueeze(inp.prefixLength, [1])]); // [B,Pk]
  const prefixAllowed = g.op('Expand', [g.unsqueeze(prefixOk, [1]), g.concat([BT, Pk], 0)]);         // [B,T,Pk]
  const keyReal = g.unsqueeze(g.cast(inp.attentionMask, 'bool'), [1]);           // [B,1,T]
  let textAllowed: Value;
  if (causal) {
    const idx = g.op('Range', [zero, g.squeeze(T, [0]), one]);
    const notFuture = g.op('LessOrEqual', [g.unsqueeze(idx, [0]), g.unsqueeze(idx, [1])]);          // [T,T]
    textAllowed = g.op('And', [g.unsqueeze(notFuture, [0]), keyReal]);            // [B,T,T]
  } else {
    textAllowed = g.op('Expand', [keyReal, g.concat([BT, T], 0)]);                // [B,T,T]
  }
  const allowed = g.concat([prefixAllowed, textAllowed], 2);                    // [B,T,Pk+T]
  return g.unsqueeze(g.where(allowed, g.float(0), g.float(MASKED)), [1]);
}

/** [B,T,heads*D] -> [B,heads,T,D] */
export function splitHeads(g: Graph, x: Value, heads: number, headDim: number): Value {
  return g.transpose(g.reshape(x, [0, 0, heads, headDim]), [0, 2, 1, 3]);
}

/** This layer's prefix keys or values for each row: [B,KV,Pk,D]. */
function rowPrefix(g: Graph, inp: ServingInputs, layer: number, which: 0 | 1): Value {
  const perLayer = g.gather(g.gather(inp.prefixTable, g.int(layer)), g.int(which)); // [Uk,KV,Pk,D]
  return g.gather(perLayer, inp.prefixIndex);                                       // [B,KV,Pk,D]
}

/**
 * Scaled dot-product attention of q [B,H,T,D] over [prefix; k] with the
 * shared bias; k and v hold KV heads, repeated for grouped-query models.
 * Returns [B,T,H*D].
 */
export function attendWithPrefix(
  g: Graph, inp: ServingInputs, spec: ModelSpec, layer: number,
  q: Value, k: Value, v: Value, bias: Value,
): Value {
  const { numHeads: H, numKvHeads: KV, headDim: D } = spec;
  let keys = g.concat([rowPrefix(g, inp, layer, 0), k], 2);                    // [B,KV,S,D]
  let values = g.concat([rowPrefix(g, inp, layer, 1), v], 2);
  if (KV !== H) {
    const repeat = (x: Value) =>
      g.reshape(g.op('Expand', [g.unsqueeze(x, [2]), g.ints([1, 1, H / KV, 1, 1])]), [0, H, -1, D]);
    keys = repeat(keys);
    values = repeat(values);
  }
  const scaled = g.mul(q, g.float(1 / Math.sqrt(D)));
  const logits = g.add(g.matmul(scaled, g.transpose(keys, [0, 1, 3, 2])), bias);  // [B,H,T,S]
  const context = g.matmul(g.softmax(logits, -1), values);                       // [B,H,T,D]
  return g.reshape(g.transpose(context, [0, 2, 1, 3]), [0, 0, H * D]);
}

export interface ScoringHead {
  /** Output embedding rows [V,H] the verbalizer dots with (null: no LM head). */
  outputEmbedding: Value | null;
  /** Per-token output bias [V] (BERT's MLM decoder bias). */
  outputBias?: Value;
  /** Transform applied to the scored hidden state first (BERT's MLM transform). */
  transform?: (h: Value) => Value;
}

/** Writes the `scores` [B,C] and `pooled` [B,2H] ([mean ; last]) outputs from the final hidden states [B,T,H]. */
export function scoreAndPool(g: Graph, inp: ServingInputs, spec: ModelSpec, hidden: Value, head: ScoringHead): void {
  const atScore = g.op('GatherND', [hidden, g.unsqueeze(inp.scorePosition, [1])], { batch_dims: 1 }); // [B,H]
  const maskF = g.unsqueeze(g.cast(inp.attentionMask, 'float32'), [2]);                               // [B,T,1]
  const mean = g.div(g.reduceSum(g.mul(hidden, maskF), [1], false), g.reduceSum(maskF, [1], false));  // [B,H]
  const pooled = g.concat([mean, atScore], 1);                                     // [B,2H]

  const headW = g.gather(inp.headTable, inp.headIndex);                          // [B,C,2H]
  const headB = g.gather(inp.headBias, inp.headIndex);                           // [B,C]
  const headScores = g.add(g.squeeze(g.matmul(headW, g.unsqueeze(pooled, [2])), [2]), headB);

  let scores = headScores;
  if (head.outputEmbedding !== null) {
    const u = head.transform ? head.transform(atScore) : atScore;
    const labelRows = g.gather(head.outputEmbedding, inp.labelIds);              // [B,C,H]
    let verbal = g.squeeze(g.matmul(labelRows, g.unsqueeze(u, [2])), [2]);      // [B,C]
    if (head.outputBias) verbal = g.add(verbal, g.gather(head.outputBias, inp.labelIds));
    scores = g.where(g.unsqueeze(inp.useHead, [1]), headScores, verbal);
  }
  const masked = g.where(inp.labelMask, scores, g.float(-Infinity));
  g.output(masked, 'scores', 'float32', ['B', 'C']);
  g.output(pooled, 'pooled', 'float32', ['B', 2 * spec.hiddenSize]);
}

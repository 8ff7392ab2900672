// A plain float64 reference forward for the four model families, for tests only.
//
// It implements docs/ENGINE.md again, as independently of the ONNX graph builders
// as it can: simple loops over Float64Array, one row at a time (no batching, no
// padding), nothing imported from models/ except the safetensors parser. Read it
// like llama2.c: embeddings, then one function per family's layer, then scores.
//
// API
//   loadReferenceModel(dir): RefModel
//       Reads config.json and model.safetensors (or model.safetensors.index.json
//       and its shards); F64/F32/F16/BF16 tensors become Float64Array.
//   buildReferenceModel(configJson, tensors): RefModel
//       The same from memory (tests that edit weights use it).
//   referenceForward(model, row): RefOutput
//       One row, no padding. Output:
//         scores  [C]      class scores (-Infinity where classMask is false,
//                          and for classes past the row's own up to numClasses)
//         pooled  [H]      mean of hidden over the row's tokens, or hidden[s];
//                 [2H]     both, [mean ; hidden[s]], for pooling mean_last
//         hidden  T x [H]  final hidden states (after llama's model.norm, gpt2's
//                          ln_f; bert/roberta: the last layer's output)
//         cache   [L,2,KV,T,D] this run's keys (post-RoPE for llama) and values,
//                          in the layout of RefRow.prefix: a run's cache is a
//                          valid prefix for a later run
//         positions T      the position id of each token
//   erf(x), gelu(x), geluTanh(x): the activations, exported for their own checks.
//
// RefRow:
//   ids            token ids, no padding; an id V + j (V = vocab size) is
//                  soft-prompt token j
//   softPrompt     [P,H] (row-major); softPromptLength (default P) bounds j
//   prefix         [L,2,KV,P,D] this row's per-layer key (0) / value (1) prefix;
//                  prefixLength (default P) of its P positions are used
//   scorePosition  where the verbalizer and "last" pooling read the row; default
//                  the last token for causal families, required for bert/roberta
//                  unless the row only needs mean pooling
//   labelIds       verbalizer: one token id per class
//   head           linear head: weight [C,F] (F = the pooled feature's width), bias [C]
//   pooling        'mean': pooled = mean over the row's tokens; 'last' (default):
//                  hidden[scorePosition]; 'mean_last': the two concatenated
//   classMask      optional per-class flags; false scores -Infinity
//   numClasses     optional: pad scores with -Infinity up to this many classes

import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseSafetensors, type TensorView } from '../../models/safetensors.ts';

export type RefFamily = 'llama' | 'gpt2' | 'bert' | 'roberta';

export interface RefRow {
  ids: number[];
  softPrompt?: Float64Array | Float32Array;
  softPromptLength?: number;
  prefix?: Float64Array | Float32Array;
  prefixLength?: number;
  scorePosition?: number;
  labelIds?: number[];
  head?: { weight: Float32Array | Float64Array; bias: Float32Array | Float64Array; numClasses: number };
  pooling?: 'last' | 'mean' | 'mean_last';
  classMask?: boolean[];
  numClasses?: number;
}

export interface RefOutput {
  scores: Float64Array;
  pooled: Float64Array;
  hidden: Float64Array[];
  cache: Float64Array;
  positions: number[];
}

export interface RefConfig {
  family: RefFamily;
  vocabSize: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  eps: number;
  /** Activation of the MLP (llama: of the gate). */
  act: string;
  causal: boolean;
  /** Added to every position id (roberta: pad_token_id + 1). */
  positionOffset: number;
  /** Size of the learned position table (gpt2/bert/roberta); Infinity for llama. */
  maxPositions: number;
  ropeTheta: number;
  attentionBias: boolean;
  mlpBias: boolean;
  tieWordEmbeddings: boolean;
  /** gpt2: divide attention logits by sqrt(D) (scale_attn_weights). */
  scaleAttnWeights: boolean;
  /** gpt2: also divide by (layer + 1). */
  scaleAttnByLayer: boolean;
}

export interface RefTensor {
  shape: number[];
  data: Float64Array;
}

interface LlamaLayer {
  attnNorm: Float64Array;
  wq: Float64Array; bq: Float64Array | null;
  wk: Float64Array; bk: Float64Array | null;
  wv: Float64Array; bv: Float64Array | null;
  wo: Float64Array; bo: Float64Array | null;
  mlpNorm: Float64Array;
  wGate: Float64Array; bGate: Float64Array | null;
  wUp: Float64Array; bUp: Float64Array | null;
  wDown: Float64Array; bDown: Float64Array | null;
}
interface LlamaWeights { kind: 'llama'; embed: Float64Array; layers: LlamaLayer[]; norm: Float64Array; lmHead: Float64Array }

interface Gpt2Layer {
  ln1w: Float64Array; ln1b: Float64Array;
  attnW: Float64Array; attnB: Float64Array; // Conv1D [H,3H], [3H]
  projW: Float64Array; projB: Float64Array; // Conv1D [H,H]
  ln2w: Float64Array; ln2b: Float64Array;
  fcW: Float64Array; fcB: Float64Array;     // Conv1D [H,I]
  fc2W: Float64Array; fc2B: Float64Array;   // Conv1D [I,H]
}
interface Gpt2Weights { kind: 'gpt2'; wte: Float64Array; wpe: Float64Array; layers: Gpt2Layer[]; lnfW: Float64Array; lnfB: Float64Array }

interface BertLayer {
  wq: Float64Array; bq: Float64Array;
  wk: Float64Array; bk: Float64Array;
  wv: Float64Array; bv: Float64Array;
  wo: Float64Array; bo: Float64Array;
  ln1w: Float64Array; ln1b: Float64Array;
  wi: Float64Array; bi: Float64Array;
  wOut: Float64Array; bOut: Float64Array;
  ln2w: Float64Array; ln2b: Float64Array;
}
interface MlmHead { denseW: Float64Array; denseB: Float64Array; lnW: Float64Array; lnB: Float64Array; bias: Float64Array; act: string }
interface BertWeights {
  kind: 'bert';
  word: Float64Array; pos: Float64Array; type: Float64Array;
  embLnW: Float64Array; embLnB: Float64Array;
  layers: BertLayer[];
  mlm: MlmHead | null;
}

export interface RefModel {
  config: RefConfig;
  /** config.json as read. */
  raw: Record<string, unknown>;
  tensors: Map<string, RefTensor>;
  weights: LlamaWeights | Gpt2Weights | BertWeights;
}

// ---------------------------------------------------------------------------
// Loading

function fail(msg: string): never {
  throw new Error(`reference: ${msg}`);
}

function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * Math.pow(2, -24);
  if (exp === 31) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mant) * Math.pow(2, exp - 25);
}

function tensorToFloat64(t: TensorView): Float64Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const out = new Float64Array(n);
  const dv = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  const f32 = new DataView(new ArrayBuffer(4));
  for (let i = 0; i < n; i++) {
    switch (t.dtype) {
      case 'F64': out[i] = dv.getFloat64(8 * i, true); break;
      case 'F32': out[i] = dv.getFloat32(4 * i, true); break;
      case 'F16': out[i] = halfToNumber(dv.getUint16(2 * i, true)); break;
      case 'BF16':
        f32.setUint32(0, dv.getUint16(2 * i, true) << 16);
        out[i] = f32.getFloat32(0);
        break;
      default: fail(`tensor ${t.name} has dtype ${t.dtype}, not a float type`);
    }
  }
  return out;
}

function readSafetensorsFile(path: string, into: Map<string, RefTensor>, only?: Set<string>): void {
  const parsed = parseSafetensors(new Uint8Array(readFileSync(path)));
  for (const [name, view] of parsed.tensors) {
    if (only && !only.has(name)) continue;
    if (view.dtype !== 'F64' && view.dtype !== 'F32' && view.dtype !== 'F16' && view.dtype !== 'BF16') continue;
    into.set(name, { shape: view.shape.slice(), data: tensorToFloat64(view) });
  }
}

export function loadReferenceModel(dir: string): RefModel {
  const raw = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const tensors = new Map<string, RefTensor>();
  const single = join(dir, 'model.safetensors');
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(single)) {
    readSafetensorsFile(single, tensors);
  } else if (existsSync(index)) {
    const idx = JSON.parse(readFileSync(index, 'utf8')) as { weight_map?: Record<string, string> };
    if (!idx.weight_map) fail(`${index} has no weight_map`);
    const byFile = new Map<string, Set<string>>();
    for (const [name, file] of Object.entries(idx.weight_map)) {
      if (!byFile.has(file)) byFile.set(file, new Set());
      byFile.get(file)!.add(name);
    }
    for (const [file, names] of byFile) {
      readSafetensorsFile(join(dir, file), tensors, names);
      for (const n of names) if (!tensors.has(n)) fail(`${file} lacks ${n} named in the index`);
    }
  } else {
    fail(`${dir} has neither model.safetensors nor model.safetensors.index.json`);
  }
  return buildReferenceModel(raw, tensors);
}

function num(raw: Record<string, unknown>, key: string, dflt?: number): number {
  const v = raw[key];
  if (typeof v === 'number') return v;
  if ((v === undefined || v === null) && dflt !== undefined) return dflt;
  return fail(`config.json: ${key} missing or not a number`);
}
function bool(raw: Record<string, unknown>, key: string, dflt: boolean): boolean {
  const v = raw[key];
  return typeof v === 'boolean' ? v : dflt;
}

function readConfig(raw: Record<string, unknown>): RefConfig {
  const modelType = raw.model_type;
  if (modelType === 'llama') {
    if (raw.rope_scaling !== undefined && raw.rope_scaling !== null) fail('rope_scaling is not supported by the reference');
    const hidden = num(raw, 'hidden_size');
    const heads = num(raw, 'num_attention_heads');
    return {
      family: 'llama', vocabSize: num(raw, 'vocab_size'), hidden,
      layers: num(raw, 'num_hidden_layers'), heads,
      kvHeads: num(raw, 'num_key_value_heads', heads),
      headDim: num(raw, 'head_dim', hidden / heads),
      intermediate: num(raw, 'intermediate_size'),
      eps: num(raw, 'rms_norm_eps', 1e-6),
      act: typeof raw.hidden_act === 'string' ? raw.hidden_act : 'silu',
      causal: true, positionOffset: 0, maxPositions: Infinity,
      ropeTheta: num(raw, 'rope_theta', 10000),
      attentionBias: bool(raw, 'attention_bias', false),
      mlpBias: bool(raw, 'mlp_bias', false),
      tieWordEmbeddings: bool(raw, 'tie_word_embeddings', false),
      scaleAttnWeights: true, scaleAttnByLayer: false,
    };
  }
  if (modelType === 'gpt2') {
    const hidden = num(raw, 'n_embd');
    const heads = num(raw, 'n_head');
    return {
      family: 'gpt2', vocabSize: num(raw, 'vocab_size'), hidden,
      layers: num(raw, 'n_layer'), heads, kvHeads: heads, headDim: hidden / heads,
      intermediate: num(raw, 'n_inner', 4 * hidden),
      eps: num(raw, 'layer_norm_epsilon', 1e-5),
      act: typeof raw.activation_function === 'string' ? raw.activation_function : 'gelu_new',
      causal: true, positionOffset: 0, maxPositions: num(raw, 'n_positions', 1024),
      ropeTheta: 0, attentionBias: true, mlpBias: true, tieWordEmbeddings: true,
      scaleAttnWeights: bool(raw, 'scale_attn_weights', true),
      scaleAttnByLayer: bool(raw, 'scale_attn_by_inverse_layer_idx', false),
    };
  }
  if (modelType === 'bert' || modelType === 'roberta') {
    const pet = raw.position_embedding_type;
    if (pet !== undefined && pet !== null && pet !== 'absolute') fail(`position_embedding_type ${String(pet)} is not supported`);
    const hidden = num(raw, 'hidden_size');
    const heads = num(raw, 'num_attention_heads');
    const roberta = modelType === 'roberta';
    return {
      family: roberta ? 'roberta' : 'bert', vocabSize: num(raw, 'vocab_size'), hidden,
      layers: num(raw, 'num_hidden_layers'), heads, kvHeads: heads, headDim: hidden / heads,
      intermediate: num(raw, 'intermediate_size'),
      eps: num(raw, 'layer_norm_eps', 1e-12),
      act: typeof raw.hidden_act === 'string' ? raw.hidden_act : 'gelu',
      causal: false,
      positionOffset: roberta ? num(raw, 'pad_token_id', 1) + 1 : 0,
      maxPositions: num(raw, 'max_position_embeddings', 512),
      ropeTheta: 0, attentionBias: true, mlpBias: true, tieWordEmbeddings: true,
      scaleAttnWeights: true, scaleAttnByLayer: false,
    };
  }
  return fail(`model_type ${JSON.stringify(modelType)} is not one of llama, gpt2, bert, roberta`);
}

/** Looks a tensor up under any of `names`, checking its shape. */
function weight(tensors: Map<string, RefTensor>, names: string[], shape: number[]): Float64Array {
  for (const n of names) {
    const t = tensors.get(n);
    if (!t) continue;
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      fail(`tensor ${n} has shape [${t.shape}], expected [${shape}]`);
    }
    return t.data;
  }
  return fail(`missing tensor ${names.join(' or ')}`);
}
function optional(tensors: Map<string, RefTensor>, names: string[], shape: number[]): Float64Array | null {
  return names.some((n) => tensors.has(n)) ? weight(tensors, names, shape) : null;
}

/** The names a module may carry: with or without the base model's prefix. */
function prefixed(bases: string[], name: string): string[] {
  return bases.map((b) => (b ? `${b}.${name}` : name));
}

function llamaWeights(c: RefConfig, t: Map<string, RefTensor>): LlamaWeights {
  const { hidden: H, vocabSize: V, heads, kvHeads, headDim: D, intermediate: I } = c;
  const w = (n: string, s: number[]) => weight(t, [n], s);
  const b = (n: string, s: number[], on: boolean) => (on ? w(n, s) : null);
  const layers: LlamaLayer[] = [];
  for (let i = 0; i < c.layers; i++) {
    const p = `model.layers.${i}`;
    layers.push({
      attnNorm: w(`${p}.input_layernorm.weight`, [H]),
      wq: w(`${p}.self_attn.q_proj.weight`, [heads * D, H]), bq: b(`${p}.self_attn.q_proj.bias`, [heads * D], c.attentionBias),
      wk: w(`${p}.self_attn.k_proj.weight`, [kvHeads * D, H]), bk: b(`${p}.self_attn.k_proj.bias`, [kvHeads * D], c.attentionBias),
      wv: w(`${p}.self_attn.v_proj.weight`, [kvHeads * D, H]), bv: b(`${p}.self_attn.v_proj.bias`, [kvHeads * D], c.attentionBias),
      wo: w(`${p}.self_attn.o_proj.weight`, [H, heads * D]), bo: b(`${p}.self_attn.o_proj.bias`, [H], c.attentionBias),
      mlpNorm: w(`${p}.post_attention_layernorm.weight`, [H]),
      wGate: w(`${p}.mlp.gate_proj.weight`, [I, H]), bGate: b(`${p}.mlp.gate_proj.bias`, [I], c.mlpBias),
      wUp: w(`${p}.mlp.up_proj.weight`, [I, H]), bUp: b(`${p}.mlp.up_proj.bias`, [I], c.mlpBias),
      wDown: w(`${p}.mlp.down_proj.weight`, [H, I]), bDown: b(`${p}.mlp.down_proj.bias`, [H], c.mlpBias),
    });
  }
  const embed = w('model.embed_tokens.weight', [V, H]);
  return {
    kind: 'llama', embed, layers,
    norm: w('model.norm.weight', [H]),
    lmHead: c.tieWordEmbeddings ? embed : w('lm_head.weight', [V, H]),
  };
}

function gpt2Weights(c: RefConfig, t: Map<string, RefTensor>): Gpt2Weights {
  const { hidden: H, vocabSize: V, intermediate: I } = c;
  const bases = ['transformer', ''];
  const w = (n: string, s: number[]) => weight(t, prefixed(bases, n), s);
  const layers: Gpt2Layer[] = [];
  for (let i = 0; i < c.layers; i++) {
    const p = `h.${i}`;
    layers.push({
      ln1w: w(`${p}.ln_1.weight`, [H]), ln1b: w(`${p}.ln_1.bias`, [H]),
      attnW: w(`${p}.attn.c_attn.weight`, [H, 3 * H]), attnB: w(`${p}.attn.c_attn.bias`, [3 * H]),
      projW: w(`${p}.attn.c_proj.weight`, [H, H]), projB: w(`${p}.attn.c_proj.bias`, [H]),
      ln2w: w(`${p}.ln_2.weight`, [H]), ln2b: w(`${p}.ln_2.bias`, [H]),
      fcW: w(`${p}.mlp.c_fc.weight`, [H, I]), fcB: w(`${p}.mlp.c_fc.bias`, [I]),
      fc2W: w(`${p}.mlp.c_proj.weight`, [I, H]), fc2B: w(`${p}.mlp.c_proj.bias`, [H]),
    });
  }
  return {
    kind: 'gpt2',
    wte: w('wte.weight', [V, H]), wpe: w('wpe.weight', [c.maxPositions, H]),
    layers, lnfW: w('ln_f.weight', [H]), lnfB: w('ln_f.bias', [H]),
  };
}

function bertWeights(c: RefConfig, raw: Record<string, unknown>, t: Map<string, RefTensor>): BertWeights {
  const { hidden: H, vocabSize: V, intermediate: I } = c;
  const bases = c.family === 'roberta' ? ['roberta', ''] : ['bert', ''];
  const w = (n: string, s: number[]) => weight(t, prefixed(bases, n), s);
  // Old TF-converted checkpoints name LayerNorm parameters gamma/beta.
  const lnW = (n: string) => weight(t, [...prefixed(bases, `${n}.weight`), ...prefixed(bases, `${n}.gamma`)], [H]);
  const lnB = (n: string) => weight(t, [...prefixed(bases, `${n}.bias`), ...prefixed(bases, `${n}.beta`)], [H]);
  const layers: BertLayer[] = [];
  for (let i = 0; i < c.layers; i++) {
    const p = `encoder.layer.${i}`;
    layers.push({
      wq: w(`${p}.attention.self.query.weight`, [H, H]), bq: w(`${p}.attention.self.query.bias`, [H]),
      wk: w(`${p}.attention.self.key.weight`, [H, H]), bk: w(`${p}.attention.self.key.bias`, [H]),
      wv: w(`${p}.attention.self.value.weight`, [H, H]), bv: w(`${p}.attention.self.value.bias`, [H]),
      wo: w(`${p}.attention.output.dense.weight`, [H, H]), bo: w(`${p}.attention.output.dense.bias`, [H]),
      ln1w: lnW(`${p}.attention.output.LayerNorm`), ln1b: lnB(`${p}.attention.output.LayerNorm`),
      wi: w(`${p}.intermediate.dense.weight`, [I, H]), bi: w(`${p}.intermediate.dense.bias`, [I]),
      wOut: w(`${p}.output.dense.weight`, [H, I]), bOut: w(`${p}.output.dense.bias`, [H]),
      ln2w: lnW(`${p}.output.LayerNorm`), ln2b: lnB(`${p}.output.LayerNorm`),
    });
  }
  const typeVocab = num(raw, 'type_vocab_size', 2);
  let mlm: MlmHead | null = null;
  if (c.family === 'bert') {
    const dense = optional(t, ['cls.predictions.transform.dense.weight'], [H, H]);
    if (dense) {
      mlm = {
        denseW: dense,
        denseB: weight(t, ['cls.predictions.transform.dense.bias'], [H]),
        lnW: weight(t, ['cls.predictions.transform.LayerNorm.weight', 'cls.predictions.transform.LayerNorm.gamma'], [H]),
        lnB: weight(t, ['cls.predictions.transform.LayerNorm.bias', 'cls.predictions.transform.LayerNorm.beta'], [H]),
        bias: weight(t, ['cls.predictions.bias', 'cls.predictions.decoder.bias'], [V]),
        act: c.act, // BertPredictionHeadTransform uses config.hidden_act
      };
    }
  } else {
    const dense = optional(t, ['lm_head.dense.weight'], [H, H]);
    if (dense) {
      mlm = {
        denseW: dense,
        denseB: weight(t, ['lm_head.dense.bias'], [H]),
        lnW: weight(t, ['lm_head.layer_norm.weight'], [H]),
        lnB: weight(t, ['lm_head.layer_norm.bias'], [H]),
        bias: weight(t, ['lm_head.bias', 'lm_head.decoder.bias'], [V]),
        act: 'gelu', // RobertaLMHead always uses the exact gelu
      };
    }
  }
  return {
    kind: 'bert',
    word: w('embeddings.word_embeddings.weight', [V, H]),
    pos: w('embeddings.position_embeddings.weight', [c.maxPositions, H]),
    type: w('embeddings.token_type_embeddings.weight', [typeVocab, H]),
    embLnW: lnW('embeddings.LayerNorm'), embLnB: lnB('embeddings.LayerNorm'),
    layers, mlm,
  };
}

export function buildReferenceModel(raw: Record<string, unknown>, tensors: Map<string, RefTensor>): RefModel {
  const config = readConfig(raw);
  if (config.heads % config.kvHeads !== 0) fail(`${config.heads} heads do not split into ${config.kvHeads} kv heads`);
  const weights = config.family === 'llama' ? llamaWeights(config, tensors)
    : config.family === 'gpt2' ? gpt2Weights(config, tensors)
    : bertWeights(config, raw, tensors);
  return { config, raw, tensors, weights };
}

// ---------------------------------------------------------------------------
// Math

/** erf via its everywhere-convergent series of positive terms:
 *  erf(x) = 2/sqrt(pi) * exp(-x^2) * sum_n x (2x^2)^n / (1*3*...*(2n+1)). */
export function erf(x: number): number {
  const a = Math.abs(x);
  if (a >= 6.5) return Math.sign(x);
  let term = a;
  let sum = a;
  const x2 = 2 * a * a;
  for (let n = 1; n < 500; n++) {
    term *= x2 / (2 * n + 1);
    sum += term;
    if (term < 1e-17 * sum) break;
  }
  const r = (2 / Math.sqrt(Math.PI)) * Math.exp(-a * a) * sum;
  return x < 0 ? -r : r;
}

/** Exact gelu: x * Phi(x). */
export function gelu(x: number): number {
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

/** gelu_new / gelu_pytorch_tanh: the tanh approximation. */
export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

function activation(name: string): (x: number) => number {
  switch (name) {
    case 'gelu': return gelu;
    case 'gelu_new': case 'gelu_pytorch_tanh': case 'gelu_fast': return geluTanh;
    case 'silu': case 'swish': return (x) => x / (1 + Math.exp(-x));
    case 'relu': return (x) => (x > 0 ? x : 0);
    default: return fail(`activation ${name} is not supported`);
  }
}

/** nn.Linear: y = W x + b, W is [out, in]. */
function linear(W: Float64Array, b: Float64Array | null, x: Float64Array, out: number): Float64Array {
  const n = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = b ? b[o]! : 0;
    const row = o * n;
    for (let i = 0; i < n; i++) s += W[row + i]! * x[i]!;
    y[o] = s;
  }
  return y;
}

/** GPT-2's Conv1D: y = x W + b, W is [in, out]. */
function conv1d(W: Float64Array, b: Float64Array, x: Float64Array, out: number): Float64Array {
  const y = Float64Array.from(b);
  for (let i = 0; i < x.length; i++) {
    const xi = x[i]!;
    const row = i * out;
    for (let o = 0; o < out; o++) y[o] += xi * W[row + o]!;
  }
  return y;
}

function layerNorm(x: Float64Array, w: Float64Array, b: Float64Array, eps: number): Float64Array {
  const n = x.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += x[i]!;
  mean /= n;
  let v = 0;
  for (let i = 0; i < n; i++) v += (x[i]! - mean) ** 2;
  v /= n;
  const inv = 1 / Math.sqrt(v + eps);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) y[i] = (x[i]! - mean) * inv * w[i]! + b[i]!;
  return y;
}

function rmsNorm(x: Float64Array, w: Float64Array, eps: number): Float64Array {
  const n = x.length;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += x[i]! * x[i]!;
  const inv = 1 / Math.sqrt(ss / n + eps);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) y[i] = x[i]! * inv * w[i]!;
  return y;
}

function add(a: Float64Array, b: Float64Array): Float64Array {
  const y = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) y[i] = a[i]! + b[i]!;
  return y;
}

function dot(a: Float64Array, aOff: number, b: ArrayLike<number>, bOff: number, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += a[aOff + i]! * b[bOff + i]!;
  return s;
}

/** Rotates one head's vector in place, rotate_half convention (HF Llama). */
function rope(v: Float64Array, off: number, D: number, pos: number, theta: number): void {
  const half = D / 2;
  for (let i = 0; i < half; i++) {
    const angle = pos * Math.pow(theta, (-2 * i) / D);
    const c = Math.cos(angle);
    const s = Math.sin(angle);
    const x1 = v[off + i]!;
    const x2 = v[off + i + half]!;
    v[off + i] = x1 * c - x2 * s;
    v[off + i + half] = x2 * c + x1 * s;
  }
}

/** What one layer's attention sees of the row's prefix: [KV][P][D] keys and values. */
interface LayerPrefix { keys: Float64Array; values: Float64Array; length: number; stride: number }

/**
 * Multi-head attention over [prefix ; text] for one row.
 * q: T x [heads*D], k/v: T x [kvHeads*D]. Query t sees every prefix position
 * j < prefix.length, and text key t' when t' <= t (causal) or always.
 * Masked keys are left out of the softmax exactly.
 */
function attention(c: RefConfig, q: Float64Array[], k: Float64Array[], v: Float64Array[], prefix: LayerPrefix | null, scale: number): Float64Array[] {
  const { heads, kvHeads, headDim: D } = c;
  const group = heads / kvHeads;
  const T = q.length;
  const P = prefix ? prefix.length : 0;
  const out: Float64Array[] = [];
  for (let t = 0; t < T; t++) {
    const o = new Float64Array(heads * D);
    const lastKey = c.causal ? t : T - 1;
    for (let h = 0; h < heads; h++) {
      const g = Math.floor(h / group);
      const logits = new Float64Array(P + lastKey + 1);
      for (let j = 0; j < P; j++) {
        logits[j] = scale * dot(q[t]!, h * D, prefix!.keys, (g * prefix!.stride + j) * D, D);
      }
      for (let u = 0; u <= lastKey; u++) logits[P + u] = scale * dot(q[t]!, h * D, k[u]!, g * D, D);
      let max = -Infinity;
      for (const l of logits) max = Math.max(max, l);
      let sum = 0;
      for (let j = 0; j < logits.length; j++) { logits[j] = Math.exp(logits[j]! - max); sum += logits[j]!; }
      for (let j = 0; j < P; j++) {
        const p = logits[j]! / sum;
        const vo = (g * prefix!.stride + j) * D;
        for (let d = 0; d < D; d++) o[h * D + d] += p * prefix!.values[vo + d]!;
      }
      for (let u = 0; u <= lastKey; u++) {
        const p = logits[P + u]! / sum;
        for (let d = 0; d < D; d++) o[h * D + d] += p * v[u]![g * D + d]!;
      }
    }
    out.push(o);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Layers, one function per family

function llamaLayer(c: RefConfig, w: LlamaLayer, x: Float64Array[], pos: number[], prefix: LayerPrefix | null, kv: { k: Float64Array[]; v: Float64Array[] }): Float64Array[] {
  const { heads, kvHeads, headDim: D, hidden: H, intermediate: I } = c;
  const act = activation(c.act);
  const q: Float64Array[] = [];
  for (let t = 0; t < x.length; t++) {
    const xn = rmsNorm(x[t]!, w.attnNorm, c.eps);
    const qt = linear(w.wq, w.bq, xn, heads * D);
    const kt = linear(w.wk, w.bk, xn, kvHeads * D);
    const vt = linear(w.wv, w.bv, xn, kvHeads * D);
    for (let h = 0; h < heads; h++) rope(qt, h * D, D, pos[t]!, c.ropeTheta);
    for (let h = 0; h < kvHeads; h++) rope(kt, h * D, D, pos[t]!, c.ropeTheta);
    q.push(qt); kv.k.push(kt); kv.v.push(vt);
  }
  const att = attention(c, q, kv.k, kv.v, prefix, 1 / Math.sqrt(D));
  const out: Float64Array[] = [];
  for (let t = 0; t < x.length; t++) {
    const h1 = add(x[t]!, linear(w.wo, w.bo, att[t]!, H));
    const hn = rmsNorm(h1, w.mlpNorm, c.eps);
    const gate = linear(w.wGate, w.bGate, hn, I);
    const up = linear(w.wUp, w.bUp, hn, I);
    for (let i = 0; i < I; i++) gate[i] = act(gate[i]!) * up[i]!;
    out.push(add(h1, linear(w.wDown, w.bDown, gate, H)));
  }
  return out;
}

function gpt2Layer(c: RefConfig, w: Gpt2Layer, layer: number, x: Float64Array[], prefix: LayerPrefix | null, kv: { k: Float64Array[]; v: Float64Array[] }): Float64Array[] {
  const { hidden: H, headDim: D, intermediate: I } = c;
  const act = activation(c.act);
  const q: Float64Array[] = [];
  for (let t = 0; t < x.length; t++) {
    const qkv = conv1d(w.attnW, w.attnB, layerNorm(x[t]!, w.ln1w, w.ln1b, c.eps), 3 * H);
    q.push(qkv.slice(0, H)); kv.k.push(qkv.slice(H, 2 * H)); kv.v.push(qkv.slice(2 * H, 3 * H));
  }
  let scale = c.scaleAttnWeights ? 1 / Math.sqrt(D) : 1;
  if (c.scaleAttnByLayer) scale /= layer + 1;
  const att = attention(c, q, kv.k, kv.v, prefix, scale);
  const out: Float64Array[] = [];
  for (let t = 0; t < x.length; t++) {
    const h1 = add(x[t]!, conv1d(w.projW, w.projB, att[t]!, H));
    const m = conv1d(w.fcW, w.fcB, layerNorm(h1, w.ln2w, w.ln2b, c.eps), I);
    for (let i = 0; i < I; i++) m[i] = act(m[i]!);
    out.push(add(h1, conv1d(w.fc2W, w.fc2B, m, H)));
  }
  return out;
}

/** BERT and RoBERTa: post-LN encoder layer, bidirectional attention. */
function bertLayer(c: RefConfig, w: BertLayer, x: Float64Array[], prefix: LayerPrefix | null, kv: { k: Float64Array[]; v: Float64Array[] }): Float64Array[] {
  const { hidden: H, headDim: D, intermediate: I } = c;
  const act = activation(c.act);
  const q: Float64Array[] = [];
  for (let t = 0; t < x.length; t++) {
    q.push(linear(w.wq, w.bq, x[t]!, H));
    kv.k.push(linear(w.wk, w.bk, x[t]!, H));
    kv.v.push(linear(w.wv, w.bv, x[t]!, H));
  }
  const att = attention(c, q, kv.k, kv.v, prefix, 1 / Math.sqrt(D));
  const out: Float64Array[] = [];
  for (let t = 0; t < x.length; t++) {
    const h1 = layerNorm(add(x[t]!, linear(w.wo, w.bo, att[t]!, H)), w.ln1w, w.ln1b, c.eps);
    const m = linear(w.wi, w.bi, h1, I);
    for (let i = 0; i < I; i++) m[i] = act(m[i]!);
    out.push(layerNorm(add(h1, linear(w.wOut, w.bOut, m, H)), w.ln2w, w.ln2b, c.eps));
  }
  return out;
}

// ---------------------------------------------------------------------------
// The forward pass

function rowOf(table: Float64Array, row: number, width: number): Float64Array {
  return table.slice(row * width, (row + 1) * width);
}

export function referenceForward(model: RefModel, row: RefRow): RefOutput {
  const c = model.config;
  const { hidden: H, vocabSize: V, layers: L, kvHeads: KV, headDim: D } = c;
  const T = row.ids.length;
  if (T === 0) fail('a row needs at least one token');

  // Soft prompt.
  let softLen = 0;
  if (row.softPrompt) {
    if (row.softPrompt.length % H !== 0) fail(`soft prompt of ${row.softPrompt.length} values is not [P,${H}]`);
    softLen = row.softPromptLength ?? row.softPrompt.length / H;
    if (softLen > row.softPrompt.length / H) fail(`softPromptLength ${softLen} exceeds the soft prompt's ${row.softPrompt.length / H} rows`);
  }
  for (const id of row.ids) {
    if (!Number.isInteger(id) || id < 0 || id >= V + softLen) fail(`token id ${id} out of range (V=${V}, soft prompt length ${softLen})`);
  }

  // Prefix: [L,2,KV,Pstored,D], of which the first prefixLength positions count.
  let prefixStored = 0;
  let prefixLen = 0;
  if (row.prefix) {
    const per = L * 2 * KV * D;
    if (row.prefix.length % per !== 0) fail(`prefix of ${row.prefix.length} values is not [${L},2,${KV},P,${D}]`);
    prefixStored = row.prefix.length / per;
    prefixLen = row.prefixLength ?? prefixStored;
    if (prefixLen > prefixStored) fail(`prefixLength ${prefixLen} exceeds the stored ${prefixStored}`);
  } else if (row.prefixLength) {
    fail('prefixLength without a prefix');
  }
  const prefixAt = (l: number): LayerPrefix | null => {
    if (!row.prefix || prefixLen === 0) return null;
    const block = KV * prefixStored * D;
    return {
      keys: Float64Array.from(row.prefix.subarray((2 * l) * block, (2 * l + 1) * block)),
      values: Float64Array.from(row.prefix.subarray((2 * l + 1) * block, (2 * l + 2) * block)),
      length: prefixLen,
      stride: prefixStored,
    };
  };

  // Positions (PEFT): offset + prefix length + index.
  const positions = row.ids.map((_, t) => c.positionOffset + prefixLen + t);
  for (const p of positions) if (p >= c.maxPositions) fail(`position ${p} is past the table of ${c.maxPositions}`);

  // Word embeddings (the soft prompt replaces these only).
  const wordTable = model.weights.kind === 'llama' ? model.weights.embed
    : model.weights.kind === 'gpt2' ? model.weights.wte : model.weights.word;
  let x: Float64Array[] = row.ids.map((id) => (id < V ? rowOf(wordTable, id, H)
    : Float64Array.from(row.softPrompt!.subarray((id - V) * H, (id - V + 1) * H))));

  // Family embeddings, layers, final norm.
  const cache = new Float64Array(L * 2 * KV * T * D);
  const keep = (l: number, kv: { k: Float64Array[]; v: Float64Array[] }) => {
    for (let s = 0; s < 2; s++) {
      const src = s === 0 ? kv.k : kv.v;
      for (let g = 0; g < KV; g++) {
        for (let t = 0; t < T; t++) {
          const at = ((((l * 2 + s) * KV + g) * T + t) * D);
          for (let d = 0; d < D; d++) cache[at + d] = src[t]![g * D + d]!;
        }
      }
    }
  };
  const w = model.weights;
  let hidden: Float64Array[];
  if (w.kind === 'llama') {
    for (let l = 0; l < L; l++) {
      const kv = { k: [] as Float64Array[], v: [] as Float64Array[] };
      x = llamaLayer(c, w.layers[l]!, x, positions, prefixAt(l), kv);
      keep(l, kv);
    }
    hidden = x.map((h) => rmsNorm(h, w.norm, c.eps));
  } else if (w.kind === 'gpt2') {
    x = x.map((e, t) => add(e, rowOf(w.wpe, positions[t]!, H)));
    for (let l = 0; l < L; l++) {
      const kv = { k: [] as Float64Array[], v: [] as Float64Array[] };
      x = gpt2Layer(c, w.layers[l]!, l, x, prefixAt(l), kv);
      keep(l, kv);
    }
    hidden = x.map((h) => layerNorm(h, w.lnfW, w.lnfB, c.eps));
  } else {
    const type0 = rowOf(w.type, 0, H);
    x = x.map((e, t) => layerNorm(add(add(e, rowOf(w.pos, positions[t]!, H)), type0), w.embLnW, w.embLnB, c.eps));
    for (let l = 0; l < L; l++) {
      const kv = { k: [] as Float64Array[], v: [] as Float64Array[] };
      x = bertLayer(c, w.layers[l]!, x, prefixAt(l), kv);
      keep(l, kv);
    }
    hidden = x;
  }

  // Score position and pooled feature.
  const pooling = row.pooling ?? 'last';
  const needsPosition = !!row.labelIds || pooling !== 'mean';
  let s = row.scorePosition;
  if (s === undefined) {
    if (c.causal) s = T - 1;
    else if (needsPosition) fail('bert/roberta rows need a scorePosition (the mask token)');
    else s = 0;
  }
  if (!Number.isInteger(s) || s < 0 || s >= T) fail(`scorePosition ${s} outside the row's ${T} tokens`);
  const mean = new Float64Array(H);
  for (const h of hidden) for (let i = 0; i < H; i++) mean[i] += h[i]! / T;
  const last = Float64Array.from(hidden[s]!);
  const pooled = pooling === 'mean' ? mean : pooling === 'last' ? last : Float64Array.from([...mean, ...last]);

  // Scores.
  if (row.labelIds && row.head) fail('a row scores with a verbalizer or a head, not both');
  let scores: number[] = [];
  if (row.labelIds) {
    for (const id of row.labelIds) if (!Number.isInteger(id) || id < 0 || id >= V) fail(`label id ${id} out of range`);
    const hs = hidden[s]!;
    if (w.kind === 'llama') scores = row.labelIds.map((id) => dot(w.lmHead, id * H, hs, 0, H));
    else if (w.kind === 'gpt2') scores = row.labelIds.map((id) => dot(w.wte, id * H, hs, 0, H));
    else {
      if (!w.mlm) fail('this checkpoint has no MLM head: a verbalizer cannot be scored');
      const mlm = w.mlm;
      const act = activation(mlm.act);
      const u0 = linear(mlm.denseW, mlm.denseB, hs, H);
      for (let i = 0; i < H; i++) u0[i] = act(u0[i]!);
      const u = layerNorm(u0, mlm.lnW, mlm.lnB, c.eps);
      scores = row.labelIds.map((id) => dot(w.word, id * H, u, 0, H) + mlm.bias[id]!);
    }
  } else if (row.head) {
    const C = row.head.numClasses;
    const F = pooled.length;
    if (row.head.weight.length !== C * F || row.head.bias.length !== C) fail(`head is not [${C},${F}] + [${C}]`);
    for (let k = 0; k < C; k++) scores.push(dot(pooled, 0, row.head.weight, k * F, F) + row.head.bias[k]!);
  }
  if (row.classMask) {
    if (row.classMask.length !== scores.length) fail(`classMask has ${row.classMask.length} entries for ${scores.length} classes`);
    scores = scores.map((v, k) => (row.classMask![k] ? v : -Infinity));
  }
  if (row.numClasses !== undefined) {
    if (row.numClasses < scores.length) fail(`numClasses ${row.numClasses} is fewer than the row's ${scores.length}`);
    while (scores.length < row.numClasses) scores.push(-Infinity);
  }
  return { scores: Float64Array.from(scores), pooled, hidden, cache, positions };
}

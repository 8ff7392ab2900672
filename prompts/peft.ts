// PEFT adapters as the interchange format: import the two files
// `PeftModel.save_pretrained` writes for prompt learning (adapter_config.json
// + adapter_model.safetensors), validate them against the loaded model, and
// write files PEFT itself loads back.
//
// What PEFT stores (read from its source: utils/other.py
// _prepare_prompt_learning_config, peft_model.py get_prompt /
// get_prompt_embedding_to_save, the prompt encoders):
//
// - One tensor, `prompt_embeddings`, always the materialised prompt (a
//   P-tuning MLP/LSTM or a prefix projection is run before saving).
// - PROMPT_TUNING, P_TUNING: [num_virtual_tokens * num_transformer_submodules,
//   token_dim], token_dim = hidden size.
// - PREFIX_TUNING: [num_virtual_tokens, num_layers * 2 * token_dim], with
//   PEFT's grouped-query handling (prompts/kinds/prefix.ts has the layout).
// Each kind's PEFT type, dims, layout conversion and config fields live in
// its file under prompts/kinds/; this module is the shared part.
// - SEQ_CLS adapters also save the classifier they trained
//   (modules_to_save); for a decoder model that is `score`, read at the last
//   token, which is what this server's linear head with pooling 'last' does.
//   It is saved as `base_model.score.weight` [C, H] (and a bias when the
//   layer has one).

import { SoftserveError } from '../kernels/errors.ts';
import type { ModelSpec } from '../models/spec.ts';
import { findDuplicateKey } from '../models/json-keys.ts';
import { headWidths } from '../models/pooling.ts';
import { parseSafetensors, serializeSafetensors, toFloat32, type TensorToWrite, type TensorView } from '../models/safetensors.ts';
import {
  checkVirtualTokens, fmtShape, headShapeHint, headWidth, promptKind, PROMPT_KINDS, validatePromptTensors,
  type PromptKind, type PromptLimits, type PromptTensors,
} from './kinds.ts';
import type { PeftDims } from './kinds/kind.ts';

export { prefixFromPeft, prefixToPeft } from './kinds/prefix.ts';

/** A PEFT prompt-learning type (adapter_config.json peft_type): PROMPT_TUNING, P_TUNING, PREFIX_TUNING. */
export type PeftType = string;

/** peft_type -> kind, from the kind registry. */
export const PEFT_KIND: Readonly<Record<PeftType, PromptKind>> = Object.fromEntries(PROMPT_KINDS.map((k) => [promptKind(k).peft.type, k]));
export const PEFT_TYPES: readonly PeftType[] = Object.keys(PEFT_KIND);
export const KIND_PEFT = Object.fromEntries(PROMPT_KINDS.map((k) => [k, promptKind(k).peft.type])) as Readonly<Record<PromptKind, PeftType>>;

export const ADAPTER_CONFIG_NAME = 'adapter_config.json';
export const ADAPTER_MODEL_NAME = 'adapter_model.safetensors';
const EMBEDDINGS = 'prompt_embeddings';
const HEAD_WEIGHT = 'base_model.score.weight';
const HEAD_BIAS = 'base_model.score.bias';
const ACCEPTED_DTYPES = new Set(['F32', 'F16', 'BF16']);

export interface PeftFiles {
  /** adapter_config.json bytes */
  config: Uint8Array;
  /** adapter_model.safetensors bytes */
  model: Uint8Array;
}

export interface ImportedPeft {
  peftType: PeftType;
  tensors: PromptTensors;
  /** dtype of prompt_embeddings as uploaded (stored as F32 whatever it was). */
  sourceDtype: string;
  /** The parsed adapter_config.json (kept with the prompt, reused on export). */
  config: Record<string, unknown>;
}

/** What PEFT's adapter_config.json records for this model, per PEFT type. */
export function expectedPeftDims(spec: ModelSpec, peftType: PeftType): PeftDims {
  return promptKind(PEFT_KIND[peftType]!).peft.dims(spec);
}

function badConfig(message: string, details?: Record<string, unknown>): never {
  throw new SoftserveError('INVALID_ADAPTER_CONFIG', `adapter_config.json: ${message}`, details);
}

export function parseAdapterConfig(bytes: Uint8Array, limits: PromptLimits): Record<string, unknown> {
  if (bytes.byteLength > limits.maxAdapterConfigBytes) {
    throw new SoftserveError('PAYLOAD_TOO_LARGE', `adapter_config.json is ${bytes.byteLength} bytes; the limit is ${limits.maxAdapterConfigBytes}`);
  }
  let value: unknown;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    value = JSON.parse(text);
  } catch (err) {
    badConfig(`not valid UTF-8 JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) badConfig('must be a JSON object');
  // JSON.parse keeps the last of two equal keys; a config that says peft_type twice is ambiguous.
  const dup = findDuplicateKey(text);
  if (dup) badConfig(`key "${[...dup.path, dup.key].join('.')}" appears twice`, { field: dup.key });
  return value as Record<string, unknown>;
}

/** An optional positive integer field: undefined when absent or null. */
function optInt(cfg: Record<string, unknown>, key: string): number | undefined {
  const v = cfg[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) badConfig(`"${key}" must be a positive integer or null, got ${JSON.stringify(v)}`);
  return v;
}

function mismatch(field: string, expected: unknown, got: unknown, why: string): never {
  throw new SoftserveError('PROMPT_SHAPE_MISMATCH', `adapter_config.json ${field} is ${JSON.stringify(got)}; the loaded model needs ${JSON.stringify(expected)} (${why})`, { field, expected, got });
}

/** Validates adapter_config.json against the model; returns the PEFT type and P. */
export function checkAdapterConfig(cfg: Record<string, unknown>, spec: ModelSpec, limits: PromptLimits): { peftType: PeftType; numVirtualTokens: number } {
  const pt = cfg.peft_type;
  if (typeof pt !== 'string') badConfig(`"peft_type" must be a string, got ${JSON.stringify(pt)}`);
  if (!Object.hasOwn(PEFT_KIND, pt)) {
    throw new SoftserveError('UNSUPPORTED_PEFT_TYPE', `peft_type ${JSON.stringify(pt)} is not supported; expected one of ${PEFT_TYPES.join(', ')}`, { expected: PEFT_TYPES, got: pt });
  }
  const peftType = pt as PeftType;
  const nvt = cfg.num_virtual_tokens;
  if (typeof nvt !== 'number' || !Number.isSafeInteger(nvt) || nvt < 1) badConfig(`"num_virtual_tokens" must be a positive integer, got ${JSON.stringify(nvt)}`);
  const p = checkVirtualTokens(nvt, limits);
  const submodules = optInt(cfg, 'num_transformer_submodules');
  if (submodules !== undefined && submodules !== 1) {
    mismatch('num_transformer_submodules', 1, submodules, 'encoder-decoder adapters do not apply to this model');
  }
  const kind = promptKind(PEFT_KIND[peftType]!);
  const exp = kind.peft.dims(spec);
  const tokenDim = optInt(cfg, 'token_dim');
  const heads = optInt(cfg, 'num_attention_heads');
  const layers = optInt(cfg, 'num_layers');
  if (layers !== undefined && layers !== exp.numLayers) mismatch('num_layers', exp.numLayers, layers, 'the model\'s layer count');
  kind.peft.checkConfig?.({ tokenDim }, spec, exp);
  if (tokenDim !== undefined && tokenDim !== exp.tokenDim) mismatch('token_dim', exp.tokenDim, tokenDim, kind.peft.meaning.tokenDim);
  if (heads !== undefined && heads !== exp.numAttentionHeads) {
    mismatch('num_attention_heads', exp.numAttentionHeads, heads, kind.peft.meaning.numAttentionHeads);
  }
  return { peftType, numVirtualTokens: p };
}

function floatTensor(t: TensorView, what: string): Float32Array {
  if (!ACCEPTED_DTYPES.has(t.dtype)) {
    throw new SoftserveError('PROMPT_DTYPE_UNSUPPORTED', `${what} has dtype ${t.dtype}; expected F32, F16 or BF16`, { expected: ['F32', 'F16', 'BF16'], got: t.dtype, tensor: t.name });
  }
  return toFloat32(t);
}

/**
 * Parses and validates a PEFT adapter. Throws a SoftserveError naming what
 * was expected and what came; nothing here touches storage.
 */
export function importPeft(files: PeftFiles, spec: ModelSpec, limits: PromptLimits, numClasses?: number): ImportedPeft {
  const config = parseAdapterConfig(files.config, limits);
  const { peftType, numVirtualTokens: p } = checkAdapterConfig(config, spec, limits);
  const parsed = parseSafetensors(files.model, { maxHeaderBytes: limits.maxSafetensorsHeaderBytes });
  for (const name of parsed.tensors.keys()) {
    if (name !== EMBEDDINGS && name !== HEAD_WEIGHT && name !== HEAD_BIAS) {
      throw new SoftserveError('INVALID_SAFETENSORS', `adapter_model.safetensors holds an unexpected tensor "${name}"; expected "${EMBEDDINGS}" (and, for a linear head, "${HEAD_WEIGHT}" / "${HEAD_BIAS}")`, { tensor: name });
    }
  }
  const emb = parsed.tensors.get(EMBEDDINGS);
  if (!emb) {
    throw new SoftserveError('INVALID_SAFETENSORS', `adapter_model.safetensors has no "${EMBEDDINGS}" tensor`, { expected: EMBEDDINGS, got: [...parsed.tensors.keys()] });
  }
  const exp = expectedPeftDims(spec, peftType);
  const expectedShape = [p, exp.width];
  if (fmtShape(emb.shape) !== fmtShape(expectedShape)) {
    const detail = promptKind(PEFT_KIND[peftType]!).peft.meaning.width(spec, p, exp);
    throw new SoftserveError('PROMPT_SHAPE_MISMATCH', `${EMBEDDINGS} has shape ${fmtShape(emb.shape)}; the loaded model expects ${fmtShape(expectedShape)} (${detail})`, { expected: expectedShape, got: emb.shape });
  }
  const raw = floatTensor(emb, EMBEDDINGS);
  const kind = PEFT_KIND[peftType]!;
  const data = promptKind(kind).peft.fromPeft(raw, spec, p);
  const tensors: PromptTensors = { kind, numVirtualTokens: p, data };

  const w = parsed.tensors.get(HEAD_WEIGHT);
  const b = parsed.tensors.get(HEAD_BIAS);
  if (b && !w) throw new SoftserveError('INVALID_SAFETENSORS', `"${HEAD_BIAS}" without "${HEAD_WEIGHT}"`);
  if (w) {
    if (w.shape.length !== 2 || !headWidths(spec.hiddenSize).includes(w.shape[1]!) || w.shape[0]! < 1) {
      throw new SoftserveError('PROMPT_SHAPE_MISMATCH', `${HEAD_WEIGHT} has shape ${fmtShape(w.shape)}; expected ${headShapeHint(spec.hiddenSize)}`, { expected: ['C', spec.hiddenSize], got: w.shape });
    }
    const c = w.shape[0]!;
    if (b && fmtShape(b.shape) !== fmtShape([c])) {
      throw new SoftserveError('PROMPT_SHAPE_MISMATCH', `${HEAD_BIAS} has shape ${fmtShape(b.shape)}; expected [${c}]`, { expected: [c], got: b.shape });
    }
    tensors.head = { weight: floatTensor(w, HEAD_WEIGHT), bias: b ? floatTensor(b, HEAD_BIAS) : new Float32Array(c) };
  }
  validatePromptTensors(spec, tensors, limits, numClasses);
  return { peftType, tensors, sourceDtype: emb.dtype, config };
}

export interface ExportOptions {
  /** The adapter_config.json the prompt was uploaded with, if any. */
  storedConfig?: Record<string, unknown> | null;
  /** base_model_name_or_path to write when the stored config has none. */
  baseModel?: string | null;
}

function anyBitSet(a: Float32Array): boolean {
  const bits = new Uint32Array(a.buffer, a.byteOffset, a.length);
  for (let i = 0; i < bits.length; i++) if (bits[i] !== 0) return true;
  return false;
}

/**
 * Writes a prompt as PEFT files. The tensors are F32 in PEFT's layout; the
 * config keeps what the upload said (base model, task type...) and sets every
 * field that decides shapes from the loaded model. The prompt is always
 * materialised, so the config says inference_mode: true (and, for prefixes,
 * prefix_projection: false): PeftModel.from_pretrained loads it as is.
 * The same prompt always gives the same bytes.
 */
export function exportPeft(t: PromptTensors, spec: ModelSpec, opts: ExportOptions = {}): { config: Uint8Array; model: Uint8Array } {
  const peftType = KIND_PEFT[t.kind];
  const p = t.numVirtualTokens;
  const exp = expectedPeftDims(spec, peftType);
  const stored = opts.storedConfig ?? {};

  const cfg: Record<string, unknown> = {
    auto_mapping: null,
    base_model_name_or_path: opts.baseModel ?? null,
    inference_mode: true,
    modules_to_save: null,
    num_attention_heads: exp.numAttentionHeads,
    num_layers: exp.numLayers,
    num_transformer_submodules: 1,
    num_virtual_tokens: p,
    peft_type: peftType,
    revision: null,
    task_type: t.head ? 'SEQ_CLS' : spec.causal ? 'CAUSAL_LM' : null,
    token_dim: exp.tokenDim,
  };
  const kindFields = promptKind(t.kind).peft.configFields(spec, exp);
  Object.assign(cfg, kindFields.defaults);
  // What the upload said, where it does not decide shapes.
  for (const [k, v] of Object.entries(stored)) {
    if (k in cfg && ['base_model_name_or_path', 'revision', 'task_type', 'prompt_tuning_init', 'prompt_tuning_init_text',
      'tokenizer_name_or_path', 'tokenizer_kwargs', 'encoder_reparameterization_type', 'encoder_hidden_size',
      'encoder_num_layers', 'encoder_dropout', 'auto_mapping'].includes(k)) {
      cfg[k] = v;
    }
  }
  Object.assign(cfg, kindFields.fixed ?? {});
  if (t.head) {
    cfg.task_type = 'SEQ_CLS';
    cfg.modules_to_save = ['score'];
  }
  const sorted: Record<string, unknown> = {};
  for (const k of Object.keys(cfg).sort()) sorted[k] = cfg[k];
  const config = new TextEncoder().encode(JSON.stringify(sorted, null, 2) + '\n');

  const embeddings = promptKind(t.kind).peft.toPeft(t.data, spec, p);
  const tensors: TensorToWrite[] = [{ name: EMBEDDINGS, shape: [p, exp.width], data: embeddings }];
  if (t.head) {
    const c = t.head.bias.length;
    tensors.push({ name: HEAD_WEIGHT, shape: [c, headWidth(t.head)], data: t.head.weight });
    if (anyBitSet(t.head.bias)) tensors.push({ name: HEAD_BIAS, shape: [c], data: t.head.bias });
  }
  const model = serializeSafetensors(tensors, { format: 'pt' });
  return { config, model };
}

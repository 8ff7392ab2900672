// PEFT files for tests, built by hand: the stories260k ModelSpec, deterministic
// floats, and safetensors writers that can also write broken files. Kept free
// of server imports so that the crash test's child process starts fast.

import type { ModelSpec } from '../models/spec.ts';
import { mulberry32 } from '../prompts/training/rng.ts';
import { toHalfBits } from './fixtures/random-checkpoint.ts';

/** stories260k: llama, hidden 64, 5 layers, 8 heads, 4 KV heads, head_dim 8. */
export const SPEC: ModelSpec = {
  family: 'llama',
  modelType: 'llama',
  vocabSize: 512,
  hiddenSize: 64,
  numLayers: 5,
  numHeads: 8,
  numKvHeads: 4,
  headDim: 8,
  maxPositions: 512,
  causal: true,
  bosTokenId: 1,
  eosTokenId: 2,
  maskTokenId: null,
  padTokenId: null,
  hasLmHead: true,
};

export type PeftTypeName = 'PROMPT_TUNING' | 'P_TUNING' | 'PREFIX_TUNING';

/** Deterministic pseudo-random floats (mulberry32), in [-1, 1). */
export function randomFloats(n: number, seed: number): Float32Array {
  const rng = mulberry32(seed);
  // 2u - 1 is exact in float64 (u = k / 2^32), so these are the values the old inline copy gave.
  return Float32Array.from({ length: n }, () => 2 * rng() - 1);
}

export interface RawTensor {
  name: string;
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
  /** Override the data_offsets written in the header. */
  offsets?: [number, number];
}

/** A safetensors file written by hand, so tests can also write broken ones. */
export function rawSafetensors(tensors: RawTensor[], opts: { metadata?: Record<string, string>; headerLenOverride?: bigint; headerPad?: number } = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (opts.metadata) header.__metadata__ = opts.metadata;
  let off = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: t.offsets ?? [off, off + t.bytes.byteLength] };
    off += t.bytes.byteLength;
  }
  let json = JSON.stringify(header);
  if (opts.headerPad) json += ' '.repeat(opts.headerPad);
  while ((8 + Buffer.byteLength(json)) % 8 !== 0) json += ' ';
  const h = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + h.length + off);
  new DataView(out.buffer).setBigUint64(0, opts.headerLenOverride ?? BigInt(h.length), true);
  out.set(h, 8);
  let pos = 8 + h.length;
  for (const t of tensors) {
    out.set(t.bytes, pos);
    pos += t.bytes.byteLength;
  }
  return out;
}

export function f32Bytes(a: Float32Array): Uint8Array {
  const out = new Uint8Array(a.length * 4);
  const dv = new DataView(out.buffer);
  a.forEach((v, i) => dv.setFloat32(i * 4, v, true));
  return out;
}

export function f16Bytes(a: Float32Array): Uint8Array {
  const out = new Uint8Array(a.length * 2);
  const dv = new DataView(out.buffer);
  a.forEach((v, i) => dv.setUint16(i * 2, toHalfBits(v), true));
  return out;
}

/** BF16 by truncation of the F32 bits. */
export function bf16Bytes(a: Float32Array): Uint8Array {
  const out = new Uint8Array(a.length * 2);
  const dv = new DataView(out.buffer);
  const bits = new Uint32Array(a.buffer, a.byteOffset, a.length);
  bits.forEach((b, i) => dv.setUint16(i * 2, b >>> 16, true));
  return out;
}

/** PEFT's prompt_embeddings width for this model and type. */
export function peftWidth(spec: ModelSpec, t: PeftTypeName): number {
  return t === 'PREFIX_TUNING' ? spec.numLayers * 2 * spec.numKvHeads * spec.headDim : spec.hiddenSize;
}

/** adapter_config.json as PeftModel.save_pretrained writes it for `spec` (current PEFT). */
export function adapterConfig(spec: ModelSpec, t: PeftTypeName, p: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const prefix = t === 'PREFIX_TUNING';
  const base: Record<string, unknown> = {
    auto_mapping: null,
    base_model_name_or_path: 'stories260k',
    inference_mode: true,
    num_attention_heads: prefix ? spec.numKvHeads : spec.numHeads,
    num_layers: spec.numLayers,
    num_transformer_submodules: 1,
    num_virtual_tokens: p,
    peft_type: t,
    revision: null,
    task_type: 'CAUSAL_LM',
    token_dim: prefix ? spec.numKvHeads * spec.headDim : spec.hiddenSize,
  };
  if (t === 'P_TUNING') Object.assign(base, { encoder_hidden_size: 128, encoder_reparameterization_type: 'MLP', encoder_num_layers: 2, encoder_dropout: 0.0 });
  if (prefix) Object.assign(base, { encoder_hidden_size: spec.numKvHeads * spec.headDim, prefix_projection: false });
  return { ...base, ...extra };
}

export interface PeftBuild {
  config: Uint8Array;
  model: Uint8Array;
  /** The F32 values of prompt_embeddings, [P, width] row-major. */
  values: Float32Array;
}

export function buildPeft(spec: ModelSpec, t: PeftTypeName, p: number, seed: number, opts: { dtype?: 'F32' | 'F16' | 'BF16'; config?: Record<string, unknown>; head?: { classes: number; bias: boolean } } = {}): PeftBuild {
  const width = peftWidth(spec, t);
  const values = randomFloats(p * width, seed);
  const dtype = opts.dtype ?? 'F32';
  const bytes = dtype === 'F32' ? f32Bytes(values) : dtype === 'F16' ? f16Bytes(values) : bf16Bytes(values);
  const tensors: RawTensor[] = [{ name: 'prompt_embeddings', dtype, shape: [p, width], bytes }];
  if (opts.head) {
    const c = opts.head.classes;
    tensors.push({ name: 'base_model.score.weight', dtype: 'F32', shape: [c, spec.hiddenSize], bytes: f32Bytes(randomFloats(c * spec.hiddenSize, seed + 1)) });
    if (opts.head.bias) tensors.push({ name: 'base_model.score.bias', dtype: 'F32', shape: [c], bytes: f32Bytes(randomFloats(c, seed + 2)) });
  }
  const cfg = adapterConfig(spec, t, p, { ...(opts.config ?? {}), ...(opts.head ? { task_type: 'SEQ_CLS', modules_to_save: ['score'] } : {}) });
  return { config: Buffer.from(JSON.stringify(cfg)), model: rawSafetensors(tensors, { metadata: { format: 'pt' } }), values };
}

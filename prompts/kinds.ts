// The prompt-kind registry and what every kind shares: validation against a
// loaded model, the plain-JSON upload form, and the on-disk encoding of a
// prompt's tensors. Each kind's own facts (layout, stored name, PEFT mapping,
// the engine input it feeds) live in its file under prompts/kinds/; adding a
// kind is that file and one line in KINDS below.
//
// Layouts (float32, row-major), as docs/ENGINE.md takes them:
//   soft, ptuning   [P, H]            input embeddings of P virtual tokens
//   prefix          [L, 2, KV, P, D]  per-layer key (0) / value (1) prefixes
//   linear head     weight [C, H], bias [C]  (tasks scored with a head)

import { SoftserveError } from '../kernels/errors.ts';
import type { ModelSpec } from '../models/spec.ts';
import { headWidths } from '../models/pooling.ts';
import { parseSafetensors, serializeSafetensors, toFloat32, type TensorToWrite } from '../models/safetensors.ts';

import type { ModelDims, PromptKindDef } from './kinds/kind.ts';
import { soft } from './kinds/soft.ts';
import { ptuning } from './kinds/ptuning.ts';
import { prefix } from './kinds/prefix.ts';

export type { ModelDims, PromptKindDef } from './kinds/kind.ts';

/** Every prompt kind, by name. */
const KINDS = { soft, ptuning, prefix } satisfies Record<string, PromptKindDef>;

export type PromptKind = keyof typeof KINDS;
export const PROMPT_KINDS = Object.keys(KINDS) as readonly PromptKind[];

/** A kind's definition (prompts/kinds/<kind>.ts). */
export function promptKind(kind: PromptKind): PromptKindDef {
  return KINDS[kind];
}

export function isPromptKind(kind: unknown): kind is PromptKind {
  return typeof kind === 'string' && Object.hasOwn(KINDS, kind);
}

/** Whether a prompt of kind `from` can start training a prompt of kind `to` (same tensor layout: soft <-> ptuning, prefix <-> prefix). */
export function canTransfer(from: PromptKind, to: PromptKind): boolean {
  return KINDS[from].layout === KINDS[to].layout;
}

/** Virtual tokens a prompt places in the token sequence (0 for none, and for a prefix, which lives in attention). */
export function tokensInText(prompt: { kind: PromptKind; numVirtualTokens: number } | null | undefined): number {
  return prompt && KINDS[prompt.kind].placesTokens ? prompt.numVirtualTokens : 0;
}

export interface LinearHead {
  /** [C, F]: F = H (pooling "last" or "mean") or 2H ("mean_last"), models/pooling.ts */
  weight: Float32Array;
  /** [C] */
  bias: Float32Array;
}

export interface PromptTensors {
  kind: PromptKind;
  numVirtualTokens: number;
  /** soft / ptuning: [P, H]; prefix: [L, 2, KV, P, D]. */
  data: Float32Array;
  head?: LinearHead;
}

export interface PromptLimits {
  /** Most virtual tokens a prompt may have. */
  maxVirtualTokens: number;
  /** Largest safetensors JSON header accepted in an upload. */
  maxSafetensorsHeaderBytes: number;
  /** Largest adapter_config.json accepted. */
  maxAdapterConfigBytes: number;
  /** Most classes a task may have. */
  maxLabels: number;
}

export const DEFAULT_PROMPT_LIMITS: PromptLimits = {
  maxVirtualTokens: 256,
  maxSafetensorsHeaderBytes: 64 * 1024,
  maxAdapterConfigBytes: 64 * 1024,
  maxLabels: 256,
};

export function modelDims(spec: ModelSpec): ModelDims {
  return {
    hiddenSize: spec.hiddenSize,
    numLayers: spec.numLayers,
    numHeads: spec.numHeads,
    numKvHeads: spec.numKvHeads,
    headDim: spec.headDim,
  };
}

export function sameDims(a: ModelDims, b: ModelDims): boolean {
  return a.hiddenSize === b.hiddenSize && a.numLayers === b.numLayers && a.numHeads === b.numHeads &&
    a.numKvHeads === b.numKvHeads && a.headDim === b.headDim;
}

export function promptShape(spec: ModelDims, kind: PromptKind, p: number): number[] {
  return KINDS[kind].shape(spec, p);
}

function product(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function fmtShape(shape: readonly (number | string)[]): string {
  return `[${shape.join(', ')}]`;
}

/** Index of the first non-finite value, or -1. */
export function firstNonFinite(a: Float32Array): number {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return i;
  return -1;
}

function requireFinite(a: Float32Array, what: string): void {
  const i = firstNonFinite(a);
  if (i >= 0) {
    throw new SoftserveError('PROMPT_NOT_FINITE', `${what} holds ${a[i]} at flat index ${i}; every value must be finite`, { index: i, value: String(a[i]) });
  }
}

export function checkVirtualTokens(p: unknown, limits: PromptLimits, what = 'num_virtual_tokens'): number {
  if (typeof p !== 'number' || !Number.isSafeInteger(p) || p < 1) {
    throw new SoftserveError('PROMPT_SHAPE_MISMATCH', `${what} must be a positive integer, got ${JSON.stringify(p)}`, { expected: 'positive integer', got: p });
  }
  if (p > limits.maxVirtualTokens) {
    throw new SoftserveError('PROMPT_TOO_LONG', `${what} is ${p}; this server accepts at most ${limits.maxVirtualTokens} virtual tokens`, { expected: `<= ${limits.maxVirtualTokens}`, got: p });
  }
  return p;
}

/**
 * Checks a prompt against the model: kind, length within limits, tensor
 * sizes, finite values, and (when present) the head's shape. `numClasses`,
 * when given, is the task's label count the head must match.
 */
export function validatePromptTensors(spec: ModelSpec, t: PromptTensors, limits: PromptLimits, numClasses?: number): void {
  if (!isPromptKind(t.kind)) {
    throw new SoftserveError('BAD_REQUEST', `unknown prompt kind ${JSON.stringify(t.kind)}; expected one of ${PROMPT_KINDS.join(', ')}`);
  }
  checkVirtualTokens(t.numVirtualTokens, limits);
  const shape = promptShape(spec, t.kind, t.numVirtualTokens);
  if (t.data.length !== product(shape)) {
    throw new SoftserveError('PROMPT_SHAPE_MISMATCH', `${t.kind} prompt has ${t.data.length} values; expected ${fmtShape(shape)} = ${product(shape)}`, { expected: shape, got: t.data.length });
  }
  requireFinite(t.data, `${t.kind} prompt`);
  if (t.head) {
    const c = t.head.bias.length;
    const h = headWidth(t.head);
    if (c < 1 || !headWidths(spec.hiddenSize).includes(h)) {
      throw new SoftserveError('PROMPT_SHAPE_MISMATCH', `linear head weight has ${t.head.weight.length} values and bias ${c}; expected weight ${headShapeHint(spec.hiddenSize)} and bias [C]`, { expected: ['C', spec.hiddenSize], got: t.head.weight.length });
    }
    if (numClasses !== undefined && c !== numClasses) {
      throw new SoftserveError('PROMPT_SHAPE_MISMATCH', `linear head has ${c} classes; the task has ${numClasses} labels (expected weight [${numClasses}, ${h}])`, { expected: [numClasses, h], got: [c, h] });
    }
    requireFinite(t.head.weight, 'linear head weight');
    requireFinite(t.head.bias, 'linear head bias');
  }
}

/** The head weight shapes a model of this hidden size takes, for error messages. */
export function headShapeHint(hidden: number): string {
  return `[C, ${hidden}] (pooling "last" or "mean") or [C, ${2 * hidden}] (pooling "mean_last")`;
}

/** Width of a head's weight rows: H, or 2H for a head over the "mean_last" feature. */
export function headWidth(head: LinearHead): number {
  return head.weight.length / Math.max(1, head.bias.length);
}

// --- stored form ----------------------------------------------------------

/** Deterministic safetensors bytes for a prompt (same tensors, same bytes, same hash). */
export function encodePromptFile(spec: ModelDims, t: PromptTensors): Uint8Array {
  const tensors: TensorToWrite[] = [
    { name: KINDS[t.kind].storedName, shape: promptShape(spec, t.kind, t.numVirtualTokens), data: t.data },
  ];
  if (t.head) {
    const c = t.head.bias.length;
    tensors.push({ name: 'head.weight', shape: [c, headWidth(t.head)], data: t.head.weight });
    tensors.push({ name: 'head.bias', shape: [c], data: t.head.bias });
  }
  return serializeSafetensors(tensors);
}

/** Reads a stored prompt file back, checking it holds what its row says. */
export function decodePromptFile(bytes: Uint8Array, dims: ModelDims, kind: PromptKind, p: number, hasHead: boolean): PromptTensors {
  const corrupt = (msg: string): never => {
    throw new SoftserveError('PROMPT_FILE_CORRUPT', `stored prompt file: ${msg}`);
  };
  let parsed;
  try {
    parsed = parseSafetensors(bytes);
  } catch (err) {
    return corrupt((err as Error).message);
  }
  const main = parsed.tensors.get(KINDS[kind].storedName);
  const shape = promptShape(dims, kind, p);
  if (!main || main.dtype !== 'F32' || fmtShape(main.shape) !== fmtShape(shape)) {
    return corrupt(`expected ${KINDS[kind].storedName} F32 ${fmtShape(shape)}`);
  }
  const out: PromptTensors = { kind, numVirtualTokens: p, data: toFloat32(main) };
  if (hasHead) {
    const w = parsed.tensors.get('head.weight');
    const b = parsed.tensors.get('head.bias');
    if (!w || !b || w.dtype !== 'F32' || b.dtype !== 'F32' || b.shape.length !== 1 ||
        w.shape.length !== 2 || w.shape[0] !== b.shape[0] || !headWidths(dims.hiddenSize).includes(w.shape[1]!)) {
      return corrupt('expected head.weight [C, H] or [C, 2H] and head.bias [C], F32');
    }
    out.head = { weight: toFloat32(w), bias: toFloat32(b) };
  }
  return out;
}

export function promptBytes(t: PromptTensors): number {
  return t.data.byteLength + (t.head ? t.head.weight.byteLength + t.head.bias.byteLength : 0);
}

// --- plain JSON upload form -------------------------------------------------

/**
 * Flattens a nested array of numbers whose shape must be exactly `expected`
 * (row-major). Values are rounded to float32; a value outside float32's range
 * becomes non-finite and is refused.
 */
function probeShape(value: unknown): number[] {
  const got: number[] = [];
  let v: unknown = value;
  while (Array.isArray(v) && got.length < 8) {
    got.push(v.length);
    v = v[0];
  }
  return got;
}

function flattenNested(value: unknown, expected: number[], what: string): Float32Array {
  const got = probeShape(value);
  if (fmtShape(got) !== fmtShape(expected)) {
    throw new SoftserveError('PROMPT_SHAPE_MISMATCH', `${what} has shape ${fmtShape(got)}; the loaded model expects ${fmtShape(expected)}`, { expected, got });
  }
  const out = new Float32Array(product(expected));
  let pos = 0;
  const walk = (node: unknown, depth: number): void => {
    if (depth === expected.length) {
      if (typeof node !== 'number') {
        throw new SoftserveError('BAD_REQUEST', `${what}: every entry must be a number, found ${node === null ? 'null' : typeof node}`);
      }
      out[pos++] = node;
      return;
    }
    if (!Array.isArray(node) || node.length !== expected[depth]) {
      throw new SoftserveError('PROMPT_SHAPE_MISMATCH', `${what} is ragged: expected ${expected[depth]} entries at depth ${depth}`, { expected });
    }
    for (const child of node) walk(child, depth + 1);
  };
  walk(value, 0);
  requireFinite(out, what);
  return out;
}

/**
 * The JSON form of an upload:
 * `{name, kind, tensor, head?: {weight, bias?}}` where `tensor` is a nested
 * array of the kind's shape ([P][H] for soft/ptuning, [L][2][KV][P][D] for
 * prefix) and the head's weight is [C][H].
 */
export function parseJsonPrompt(body: Record<string, unknown>, spec: ModelSpec, limits: PromptLimits): PromptTensors {
  const kind = body.kind;
  if (!isPromptKind(kind)) {
    throw new SoftserveError('BAD_REQUEST', `"kind" must be one of ${PROMPT_KINDS.join(', ')}, got ${JSON.stringify(kind)}`);
  }
  const k = kind;
  const def = KINDS[k];
  if (!Array.isArray(body.tensor)) {
    throw new SoftserveError('BAD_REQUEST', `"tensor" must be a nested array of shape ${def.jsonShape}`);
  }
  // P is read from the tensor itself (the kind's length axis).
  const got = probeShape(body.tensor);
  const pAxis = def.lengthAxis;
  if (got.length !== promptShape(spec, k, 1).length) {
    const expected = promptShape(spec, k, 1).map((d, i): number | string => (i === pAxis ? 'P' : d));
    throw new SoftserveError('PROMPT_SHAPE_MISMATCH', `${k} tensor has shape ${fmtShape(got)}; the loaded model expects ${fmtShape(expected)}`, { expected, got });
  }
  const p = checkVirtualTokens(got[pAxis], limits, 'the number of virtual tokens');
  const data = flattenNested(body.tensor, promptShape(spec, k, p), `${k} tensor`);
  const out: PromptTensors = { kind: k, numVirtualTokens: p, data };
  if (body.head !== undefined && body.head !== null) {
    const head = body.head as Record<string, unknown>;
    if (typeof head !== 'object' || !Array.isArray(head.weight) || !Array.isArray(head.weight[0])) {
      throw new SoftserveError('BAD_REQUEST', '"head" must be {weight: [C][H] numbers, bias?: [C] numbers}');
    }
    const c = head.weight.length;
    if (c < 1 || c > limits.maxLabels) {
      throw new SoftserveError('PROMPT_SHAPE_MISMATCH', `head has ${c} classes; expected 1..${limits.maxLabels}`);
    }
    // [C][H] for "last"/"mean" pooling, [C][2H] for "mean_last".
    const width = (head.weight[0] as unknown[]).length === 2 * spec.hiddenSize ? 2 * spec.hiddenSize : spec.hiddenSize;
    const weight = flattenNested(head.weight, [c, width], 'head weight');
    const bias = head.bias === undefined ? new Float32Array(c) : flattenNested(head.bias, [c], 'head bias');
    out.head = { weight, bias };
  }
  validatePromptTensors(spec, out, limits);
  return out;
}

// Reads a Hugging Face checkpoint directory: config.json, model.safetensors or
// a sharded model.safetensors.index.json, tokenizer.json. Every failure is one
// SoftserveError naming the file (and tensor) at fault, raised before any graph
// reaches onnxruntime.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SoftserveError, isSoftserveError } from '../kernels/errors.ts';
import { parseSafetensors, toFloat32, type TensorView } from './safetensors.ts';

export type HfConfig = Record<string, unknown>;

export interface Checkpoint {
  dir: string;
  config: HfConfig;
  weights: WeightStore;
  /** Parsed tokenizer.json and tokenizer_config.json (if present). */
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
}

function readJson(path: string, required: boolean): Record<string, unknown> | undefined {
  if (!existsSync(path)) {
    if (!required) return undefined;
    throw new SoftserveError('MODEL_FILE_MISSING', `model file ${path} is missing`, { file: path });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new SoftserveError('MODEL_FILE_INVALID', `model file ${path} is not valid JSON: ${(err as Error).message}`, { file: path });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new SoftserveError('MODEL_FILE_INVALID', `model file ${path} must hold a JSON object`, { file: path });
  }
  return parsed as Record<string, unknown>;
}

/** Weights by name, converted to float32 on first use and checked for shape. */
export class WeightStore {
  private readonly views = new Map<string, { view: TensorView; file: string }>();
  private readonly used = new Set<string>();

  add(view: TensorView, file: string): void {
    this.views.set(view.name, { view, file });
  }

  has(name: string): boolean {
    return this.views.has(name);
  }

  names(): string[] {
    return [...this.views.keys()];
  }

  /** The first of `names` that exists (checkpoints differ in prefixes). */
  resolve(...names: string[]): string | undefined {
    return names.find((n) => this.views.has(n));
  }

  shapeOf(name: string): number[] | undefined {
    return this.views.get(name)?.view.shape;
  }

  get(name: string, shape: number[]): Float32Array {
    const entry = this.views.get(name);
    if (!entry) {
      throw new SoftserveError('MODEL_TENSOR_MISSING', `tensor "${name}" is missing from the checkpoint`, { tensor: name });
    }
    const { view, file } = entry;
    if (view.shape.length !== shape.length || view.shape.some((d, i) => d !== shape[i])) {
      throw new SoftserveError('MODEL_TENSOR_SHAPE',
        `tensor "${name}" in ${file} has shape [${view.shape}], expected [${shape}]`, { tensor: name, file, expected: shape, got: view.shape });
    }
    if (!['F32', 'F16', 'BF16', 'F64'].includes(view.dtype)) {
      throw new SoftserveError('MODEL_FILE_INVALID', `tensor "${name}" in ${file} has dtype ${view.dtype}, expected a float type`, { tensor: name, file });
    }
    this.used.add(name);
    return toFloat32(view);
  }
}

function loadSafetensorsFile(path: string, weights: WeightStore): void {
  if (!existsSync(path)) throw new SoftserveError('MODEL_FILE_MISSING', `model file ${path} is missing`, { file: path });
  const buf = readFileSync(path);
  try {
    const parsed = parseSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
    for (const view of parsed.tensors.values()) weights.add(view, path);
  } catch (err) {
    if (isSoftserveError(err)) {
      throw new SoftserveError('MODEL_FILE_INVALID', `model file ${path}: ${err.message}`, { file: path, ...err.details });
    }
    throw err;
  }
}

export function loadCheckpoint(dir: string): Checkpoint {
  if (!existsSync(dir)) throw new SoftserveError('MODEL_FILE_MISSING', `model directory ${dir} does not exist`, { file: dir });
  const config = readJson(join(dir, 'config.json'), true)!;
  const weights = new WeightStore();
  const single = join(dir, 'model.safetensors');
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(single)) {
    loadSafetensorsFile(single, weights);
  } else if (existsSync(index)) {
    const idx = readJson(index, true)!;
    const map = idx.weight_map;
    if (typeof map !== 'object' || map === null) {
      throw new SoftserveError('MODEL_FILE_INVALID', `model file ${index} has no weight_map object`, { file: index });
    }
    const shards = new Set(Object.values(map as Record<string, unknown>));
    for (const shard of shards) {
      if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\') || shard.startsWith('.')) {
        throw new SoftserveError('MODEL_FILE_INVALID', `model file ${index} names an invalid shard ${JSON.stringify(shard)}`, { file: index });
      }
      loadSafetensorsFile(join(dir, shard), weights);
    }
    for (const [tensor, shard] of Object.entries(map as Record<string, string>)) {
      if (!weights.has(tensor)) {
        throw new SoftserveError('MODEL_TENSOR_MISSING', `tensor "${tensor}" is listed in ${index} but missing from ${shard}`, { tensor, file: join(dir, shard) });
      }
    }
  } else {
    throw new SoftserveError('MODEL_FILE_MISSING', `model directory ${dir} has neither model.safetensors nor model.safetensors.index.json`, { file: single });
  }
  const tokenizerJson = readJson(join(dir, 'tokenizer.json'), true)!;
  const tokenizerConfig = readJson(join(dir, 'tokenizer_config.json'), false) ?? {};
  return { dir, config, weights, tokenizerJson, tokenizerConfig };
}

// Typed access to config.json fields, with errors that name the field.
export function configInt(config: HfConfig, key: string, fallback?: number): number {
  const v = config[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new SoftserveError('MODEL_CONFIG_INVALID', `config.json lacks "${key}"`, { field: key });
  }
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new SoftserveError('MODEL_CONFIG_INVALID', `config.json "${key}" must be a non-negative integer, got ${JSON.stringify(v)}`, { field: key });
  }
  return v;
}

export function configNumber(config: HfConfig, key: string, fallback?: number): number {
  const v = config[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new SoftserveError('MODEL_CONFIG_INVALID', `config.json lacks "${key}"`, { field: key });
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new SoftserveError('MODEL_CONFIG_INVALID', `config.json "${key}" must be a number, got ${JSON.stringify(v)}`, { field: key });
  }
  return v;
}

export function configOptionalInt(config: HfConfig, key: string): number | null {
  const v = config[key];
  return v === undefined || v === null ? null : configInt(config, key);
}

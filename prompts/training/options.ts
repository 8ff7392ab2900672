// Training options: what a job may set, their defaults per method, and their
// validation. The API speaks snake_case JSON; `parseTrainingOptions` turns it
// into TrainingOptions, rejecting unknown keys and out-of-range values with
// the field named.

import { SoftserveError } from '../../kernels/errors.ts';
import { extendedView, parseExtendedOptions, type DistillSpec, type InitFrom, type ProbeSolver } from './extended-options.ts';
import type { Schedule } from './optim.ts';
import type { PromptKind } from '../kinds.ts';

export const METHODS = ['prompt_tuning', 'p_tuning', 'prefix_tuning', 'linear_head'] as const;
export type TrainingMethod = (typeof METHODS)[number];

export const INITS = ['random', 'vocab', 'label_words'] as const;
export type PromptInit = (typeof INITS)[number];

export const ENCODERS = ['none', 'mlp', 'lstm'] as const;
export type EncoderKind = (typeof ENCODERS)[number];

export interface TrainingOptions {
  method: TrainingMethod;
  /** Soft-prompt tokens (prompt/P-tuning), prefix length (prefix tuning); 1 for the linear head's fixed token. */
  numVirtualTokens: number;
  /**
   * Soft prompts: random (normal, the embeddings' scale), vocab (embeddings of
   * tokens sampled from the training texts), label_words (the label words'
   * embeddings first, then sampled vocabulary; Lester et al.'s best on small
   * models). Prefixes: the model's own keys/values for sampled tokens (vocab)
   * or for the label words, or random at their scale.
   */
  init: PromptInit;
  /** P-tuning: mlp or lstm; prefix tuning: none or mlp. */
  encoder: EncoderKind;
  encoderHidden: number;
  learningRate: number;
  /** AdamW decoupled weight decay, on encoder and head weights only. */
  weightDecay: number;
  batchSize: number;
  epochs: number;
  /** Stops after this many optimiser steps even if epochs remain. */
  maxSteps: number;
  warmupRatio: number;
  schedule: Schedule;
  /** Global gradient-norm clip (0: none). */
  clipNorm: number;
  /** Held-out evaluation every this many steps (0: four times an epoch). */
  evalEvery: number;
  /** Stop after this many evaluations without a better held-out result (0: never). */
  patience: number;
  /** Fraction of the examples held out for early stopping and model selection when no validation set is given. */
  heldOutFraction: number;
  seed: number;
  /** Inputs are cut to this many tokens during training. */
  maxTextTokens: number;
  /** Train this many prompts (seeds seed, seed+1, ...) and publish them as an ensemble. */
  ensembleSize: number;
  /** Per-member inits for an ensemble (cycled); default: `init` for all. */
  ensembleInits: PromptInit[] | null;
  /** linear_head: exact L-BFGS fit (default) or minibatch Adam (extended-options.ts). */
  solver: ProbeSolver;
  /** Transfer: start from this prompt instead of `init` (extended-options.ts). */
  initFrom: InitFrom | null;
  /** Distillation: `method` is the student's; targets come from this teacher (extended-options.ts). */
  distill: DistillSpec | null;
}

const BASE: Omit<TrainingOptions, 'method' | 'numVirtualTokens' | 'init' | 'encoder' | 'learningRate'> = {
  encoderHidden: 128,
  weightDecay: 0.01,
  batchSize: 32,
  epochs: 5,
  maxSteps: 20000,
  warmupRatio: 0.06,
  schedule: 'linear',
  clipNorm: 1,
  evalEvery: 0,
  patience: 6,
  heldOutFraction: 0.1,
  seed: 0,
  maxTextTokens: 128,
  ensembleSize: 1,
  ensembleInits: null,
  solver: 'lbfgs',
  initFrom: null,
  distill: null,
};

/** The kind of prompt a method trains (linear_head: a soft prompt, fixed, carrying the head). */
export function methodKind(method: TrainingMethod): PromptKind {
  return method === 'prefix_tuning' ? 'prefix' : method === 'p_tuning' ? 'ptuning' : 'soft';
}

export function defaultOptions(method: TrainingMethod): TrainingOptions {
  // Learning rates and epochs from npm run eval on stories260k (docs/RESULTS.md):
  // prompts underfit at 3 epochs; these keep improving to about 5.
  switch (method) {
    case 'prompt_tuning':
      return { ...BASE, method, numVirtualTokens: 16, init: 'label_words', encoder: 'none', learningRate: 0.1 };
    case 'p_tuning':
      return { ...BASE, method, numVirtualTokens: 16, init: 'label_words', encoder: 'mlp', learningRate: 0.1 };
    case 'prefix_tuning':
      return { ...BASE, method, numVirtualTokens: 8, init: 'vocab', encoder: 'none', learningRate: 0.01 };
    case 'linear_head':
      return { ...BASE, method, numVirtualTokens: 1, init: 'vocab', encoder: 'none', learningRate: 0.01, epochs: 30, batchSize: 64, patience: 8 };
  }
}

const FIELDS: Record<string, keyof TrainingOptions> = {
  method: 'method',
  num_virtual_tokens: 'numVirtualTokens',
  init: 'init',
  encoder: 'encoder',
  encoder_hidden: 'encoderHidden',
  learning_rate: 'learningRate',
  weight_decay: 'weightDecay',
  batch_size: 'batchSize',
  epochs: 'epochs',
  max_steps: 'maxSteps',
  warmup_ratio: 'warmupRatio',
  schedule: 'schedule',
  clip_norm: 'clipNorm',
  eval_every: 'evalEvery',
  patience: 'patience',
  held_out_fraction: 'heldOutFraction',
  seed: 'seed',
  max_text_tokens: 'maxTextTokens',
  ensemble_size: 'ensembleSize',
  ensemble_inits: 'ensembleInits',
};

function bad(field: string, message: string): never {
  throw new SoftserveError('BAD_REQUEST', `options.${field}: ${message}`, { field });
}

function num(field: string, v: unknown, min: number, max: number, integer: boolean): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) bad(field, `must be a number, got ${JSON.stringify(v)}`);
  if (integer && !Number.isSafeInteger(v)) bad(field, `must be an integer, got ${v}`);
  if (v < min || v > max) bad(field, `must be in [${min}, ${max}], got ${v}`);
  return v;
}

function oneOf<T extends string>(field: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) bad(field, `must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
  return v as T;
}

export interface OptionLimits { maxVirtualTokens: number; maxEnsembleSize: number; maxEpochs: number; maxSteps: number }

export const DEFAULT_OPTION_LIMITS: OptionLimits = { maxVirtualTokens: 256, maxEnsembleSize: 16, maxEpochs: 100, maxSteps: 100000 };

/** Options from an API body (snake_case), over the method's defaults. */
export function parseTrainingOptions(raw: unknown, limits: OptionLimits = DEFAULT_OPTION_LIMITS): TrainingOptions {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new SoftserveError('BAD_REQUEST', 'options must be a JSON object');
  }
  const ext = parseExtendedOptions(raw as Record<string, unknown>, limits.maxEnsembleSize);
  const o = ext.rest;
  for (const k of Object.keys(o)) if (!(k in FIELDS)) bad(k, `unknown option (known: ${Object.keys(FIELDS).join(', ')})`);
  const method = oneOf('method', o.method ?? 'prompt_tuning', METHODS);
  const opts = defaultOptions(method);
  const set = <K extends keyof TrainingOptions>(key: K, value: TrainingOptions[K]) => { opts[key] = value; };
  if (o.num_virtual_tokens !== undefined) set('numVirtualTokens', num('num_virtual_tokens', o.num_virtual_tokens, 1, limits.maxVirtualTokens, true));
  if (o.init !== undefined) set('init', oneOf('init', o.init, INITS));
  if (o.encoder !== undefined) set('encoder', oneOf('encoder', o.encoder, ENCODERS));
  if (o.encoder_hidden !== undefined) set('encoderHidden', num('encoder_hidden', o.encoder_hidden, 1, 4096, true));
  if (o.learning_rate !== undefined) set('learningRate', num('learning_rate', o.learning_rate, 1e-7, 10, false));
  if (o.weight_decay !== undefined) set('weightDecay', num('weight_decay', o.weight_decay, 0, 1, false));
  if (o.batch_size !== undefined) set('batchSize', num('batch_size', o.batch_size, 1, 512, true));
  if (o.epochs !== undefined) set('epochs', num('epochs', o.epochs, 1, limits.maxEpochs, true));
  if (o.max_steps !== undefined) set('maxSteps', num('max_steps', o.max_steps, 1, limits.maxSteps, true));
  if (o.warmup_ratio !== undefined) set('warmupRatio', num('warmup_ratio', o.warmup_ratio, 0, 0.5, false));
  if (o.schedule !== undefined) set('schedule', oneOf('schedule', o.schedule, ['linear', 'constant'] as const));
  if (o.clip_norm !== undefined) set('clipNorm', num('clip_norm', o.clip_norm, 0, 1e6, false));
  if (o.eval_every !== undefined) set('evalEvery', num('eval_every', o.eval_every, 0, 1e6, true));
  if (o.patience !== undefined) set('patience', num('patience', o.patience, 0, 1000, true));
  if (o.held_out_fraction !== undefined) set('heldOutFraction', num('held_out_fraction', o.held_out_fraction, 0, 0.5, false));
  if (o.seed !== undefined) set('seed', num('seed', o.seed, 0, 2 ** 31 - 1, true));
  if (o.max_text_tokens !== undefined) set('maxTextTokens', num('max_text_tokens', o.max_text_tokens, 1, 4096, true));
  if (o.ensemble_size !== undefined) set('ensembleSize', num('ensemble_size', o.ensemble_size, 1, limits.maxEnsembleSize, true));
  if (o.ensemble_inits !== undefined && o.ensemble_inits !== null) {
    if (!Array.isArray(o.ensemble_inits) || o.ensemble_inits.length === 0) bad('ensemble_inits', 'must be a non-empty array of inits');
    set('ensembleInits', o.ensemble_inits.map((x, i) => oneOf(`ensemble_inits[${i}]`, x, INITS)));
  }
  // Encoders per method.
  if (method === 'p_tuning' && opts.encoder === 'none') bad('encoder', 'P-tuning needs an encoder: mlp or lstm');
  if (method === 'prefix_tuning' && opts.encoder === 'lstm') bad('encoder', 'prefix tuning takes none or mlp');
  if ((method === 'prompt_tuning' || method === 'linear_head') && opts.encoder !== 'none') bad('encoder', `${method} has no encoder (use p_tuning for an MLP/LSTM prompt encoder)`);
  if (method === 'linear_head' && opts.numVirtualTokens !== 1) bad('num_virtual_tokens', 'linear_head uses a single fixed token');
  if (ext.solver) opts.solver = ext.solver;
  opts.initFrom = ext.initFrom;
  opts.distill = ext.distill;
  if (opts.distill && opts.ensembleSize > 1) bad('ensemble_size', 'distillation trains one prompt');
  return opts;
}

/** Back to the API's snake_case (for job views). */
export function optionsView(o: TrainingOptions): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [api, key] of Object.entries(FIELDS)) out[api] = o[key];
  extendedView(o, out);
  return out;
}

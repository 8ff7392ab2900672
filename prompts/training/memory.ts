// Peak memory of a training job, estimated from its options and the model
// before the job is accepted (docs/TRAINING.md, "Memory budget").
//
// A training step keeps every layer's activations for the backward pass, so
// its memory grows with layers x batch x sequence, and the attention part
// with the square of the sequence (scores and probabilities, B x heads x T x
// T per layer). The held-out evaluation runs the forward graph on up to 64
// rows at a time and keeps one layer's working set. onnxruntime keeps each
// session's peak in its arena, so the two add up. On top comes a fixed cost
// per job: the training graph and its session (a copy of the weights).
//
// The coefficients below were fitted to peak RSS measured with
// `npm run bench:training-memory` (stories260k and a random llama with hidden
// 256), then rounded up; the estimate is meant to be an upper bound of the
// measured growth, not a prediction of it.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { ModelSpec } from '../../models/spec.ts';
import type { TrainingOptions } from './options.ts';

export interface ModelDims {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  vocabSize: number;
  maxPositions: number;
}

/** The dimensions the estimate needs; the MLP width from config.json (4H when it does not say). */
export function modelDimsOf(spec: ModelSpec, modelDir?: string): ModelDims {
  let intermediate = 4 * spec.hiddenSize;
  if (modelDir) {
    try {
      const c = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as Record<string, unknown>;
      const v = c.intermediate_size ?? c.n_inner;
      if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) intermediate = v;
    } catch {
      // No readable config: keep 4H.
    }
  }
  return {
    hiddenSize: spec.hiddenSize, numLayers: spec.numLayers, numHeads: spec.numHeads,
    intermediateSize: intermediate, vocabSize: spec.vocabSize, maxPositions: spec.maxPositions,
  };
}

export interface EstimateContext {
  /** Tokens of the template's own text and the model's special tokens (an upper bound is fine). */
  templateTokens: number;
  /** Longest text in tokens, when known to be shorter than max_text_tokens (an upper bound). */
  textTokens?: number;
  /** Rows per held-out evaluation batch (the trainer uses min(64, batch_size)). */
  evalRows?: number;
}

export interface MemoryEstimate {
  /** Estimated peak growth of the process while the job runs, in bytes. */
  bytes: number;
  /** Tokens per row in the longest batch (prompt + template + text). */
  sequenceTokens: number;
  /** batch_size x sequenceTokens. */
  batchTokens: number;
  parts: { fixed: number; trainStep: number; evaluation: number };
}

// Fitted coefficients (float32 values kept per element; see the header).
const ATTENTION_SAVED = 3.5; // per layer: B x heads x Tq x Tk, forward + backward
const HIDDEN_SAVED = 28; // per layer: B x Tq x H
const MLP_SAVED = 6; // per layer: B x Tq x I
const EVAL_ATTENTION = 5;
const EVAL_HIDDEN = 16;
const EVAL_MLP = 4;
const FIXED_WEIGHT_COPIES = 3; // the training session's weights, graph bytes, arena slack
const FIXED_BYTES = 48 * 2 ** 20; // training graph construction, session, buffers
// Over a whole job (many steps, evaluations between them, the server's other
// threads) the peak measured through the server ran a few percent above the
// fresh-process figures the coefficients were fitted to: margin for that.
const MARGIN = 1.25;

/** Upper bound of a job's peak memory growth, from its options and the model. */
export function estimateTrainingMemory(dims: ModelDims, opts: TrainingOptions, ctx: EstimateContext): MemoryEstimate {
  const { hiddenSize: H, numLayers: L, numHeads: NH, intermediateSize: I, vocabSize: V } = dims;
  const text = Math.min(opts.maxTextTokens, ctx.textTokens ?? opts.maxTextTokens);
  const prefix = opts.method === 'prefix_tuning';
  // Soft prompts are input positions; a prefix is only keys and values.
  const tq = Math.min(dims.maxPositions, text + ctx.templateTokens + (prefix ? 0 : opts.numVirtualTokens));
  const tk = tq + (prefix ? opts.numVirtualTokens : 0);
  const B = opts.batchSize;
  const E = Math.min(ctx.evalRows ?? 64, 64, B);
  const f32 = 4;
  // The linear head trains on features computed once by the forward graph: no training step.
  const trainStep = opts.method === 'linear_head' ? 0 : f32 * L * (B * NH * tq * tk * ATTENTION_SAVED + B * tq * (H * HIDDEN_SAVED + I * MLP_SAVED));
  const evaluation = f32 * (E * NH * tq * tk * EVAL_ATTENTION + E * tq * (H * EVAL_HIDDEN + I * EVAL_MLP));
  const weights = f32 * (V * H + L * (4 * H * H + 3 * H * I));
  const fixed = FIXED_BYTES + FIXED_WEIGHT_COPIES * weights;
  return { bytes: fixed + MARGIN * (trainStep + evaluation), sequenceTokens: tq, batchTokens: B * tq, parts: { fixed, trainStep, evaluation } };
}

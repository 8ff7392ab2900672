// The memory budget of a training job, checked at submit: its peak memory is
// estimated from its options, the model and (as an upper bound) its texts
// (prompts/training/memory.ts), and a job over SOFTSERVE_TRAINING_MEMORY_MB,
// or whose batch holds more than SOFTSERVE_TRAINING_MAX_BATCH_TOKENS tokens,
// is refused with 422 TRAINING_MEMORY_BUDGET before anything is queued. The
// message names the limit, the estimate and what to reduce, with the largest
// batch_size that would fit. Refusing (rather than scaling the batch down)
// keeps a job's options what the client asked for: the batch size changes
// the optimisation, so the client should choose.

import { SoftserveError } from '../../kernels/errors.ts';
import type { Example } from '../../prompts/training/data.ts';
import { estimateTrainingMemory, type MemoryEstimate, type ModelDims } from '../../prompts/training/memory.ts';
import type { TrainingOptions } from '../../prompts/training/options.ts';
import { parseTemplate } from '../../prompts/template.ts';

const MB = 2 ** 20;

/**
 * Tokens of a template outside its {text}: at most one per UTF-8 byte of its
 * literal text, one per {mask}, plus the model's start/end tokens and a
 * sentencepiece word marker per piece.
 */
export function templateTokenBound(template: string): number {
  let n = 4;
  for (const p of parseTemplate(template)) {
    if (p.kind === 'literal') n += Buffer.byteLength(p.text, 'utf8') + 1;
    else if (p.kind === 'mask') n += 1;
  }
  return n;
}

/** The longest text in tokens, bounded above by its UTF-8 bytes (no tokenizer makes more tokens than bytes, plus a word marker). */
export function textTokenBound(examples: Example[]): number {
  let max = 0;
  for (const e of examples) max = Math.max(max, Buffer.byteLength(e.text, 'utf8'));
  return max + 2;
}

export interface BudgetLimits { memoryMb: number; maxBatchTokens: number }

export interface BudgetCheck {
  estimate: MemoryEstimate;
  limitBytes: number;
}

/** Throws TRAINING_MEMORY_BUDGET when the job would not fit; returns the estimate when it does. */
export function checkTrainingBudget(dims: ModelDims, opts: TrainingOptions, template: string, examples: Example[], limits: BudgetLimits): BudgetCheck {
  const ctx = { templateTokens: templateTokenBound(template), textTokens: textTokenBound(examples), evalRows: 64 };
  const estimate = estimateTrainingMemory(dims, opts, ctx);
  const limitBytes = limits.memoryMb * MB;
  const fits = (b: number) => {
    const e = estimateTrainingMemory(dims, { ...opts, batchSize: b }, ctx);
    return e.bytes <= limitBytes && e.batchTokens <= limits.maxBatchTokens;
  };
  if (estimate.bytes <= limitBytes && estimate.batchTokens <= limits.maxBatchTokens) return { estimate, limitBytes };

  let largest = 0;
  for (let b = opts.batchSize - 1; b >= 1; b = b > 64 ? Math.floor(b * 0.9) : b - 1) {
    if (fits(b)) { largest = b; break; }
  }
  const reduce = opts.method === 'prefix_tuning' || opts.method === 'prompt_tuning' || opts.method === 'p_tuning'
    ? 'batch_size, max_text_tokens or num_virtual_tokens'
    : 'batch_size or max_text_tokens';
  const hint = largest > 0 ? `; batch_size ${largest} would fit with the other options unchanged` : '; no batch_size fits with these max_text_tokens and num_virtual_tokens';
  const details = {
    limit_mb: limits.memoryMb, estimate_mb: Math.ceil(estimate.bytes / MB), max_batch_tokens: limits.maxBatchTokens,
    batch_tokens: estimate.batchTokens, sequence_tokens: estimate.sequenceTokens, largest_batch_size: largest || null,
  };
  if (estimate.batchTokens > limits.maxBatchTokens) {
    throw new SoftserveError('TRAINING_MEMORY_BUDGET',
      `the job's batches hold up to ${estimate.batchTokens} tokens (batch_size ${opts.batchSize} x ${estimate.sequenceTokens} tokens per row); the limit is ${limits.maxBatchTokens} (SOFTSERVE_TRAINING_MAX_BATCH_TOKENS): reduce ${reduce}${hint}`, details);
  }
  throw new SoftserveError('TRAINING_MEMORY_BUDGET',
    `the job would need about ${details.estimate_mb} MB of memory (batch_size ${opts.batchSize} x ${estimate.sequenceTokens} tokens per row); the limit is ${limits.memoryMb} MB (SOFTSERVE_TRAINING_MEMORY_MB): reduce ${reduce}${hint}`, details);
}

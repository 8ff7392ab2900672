// The training loop: prompt tuning, P-tuning, prefix tuning (each optionally
// with a linear head when the task scores with one) and the linear head alone,
// on a frozen model through its training graph (models/training-graph.ts).
//
// Rows are built exactly as the classify path builds them (the task's
// template, the same tokenizer, label-word tokens, pooling), so a published
// prompt scores in serving as it did here. Every step: materialise the prompt
// from its encoder, run forward+backward in onnxruntime, backpropagate the
// prompt gradient through the encoder, clip, AdamW. Held-out evaluation every
// `evalEvery` steps picks the best prompt and stops early after `patience`
// evaluations without improvement.
//
// Linear heads see standardised features: the head's parameters (W~, b~) act
// on (pooled - mu) / sigma, with mu, sigma measured once with the initial
// prompt; the published head is folded back (W = W~/sigma, b = b~ - W mu), so
// serving needs nothing extra. Without it the large common offset of the
// hidden states makes the head learn barely at all (see REFERENCE.md).

import { SoftserveError } from '../../kernels/errors.ts';
import type { EngineRow } from '../../models/batch.ts';
import { featureOf, featureOffset, featureWidth } from '../../models/pooling.ts';
import type { TrainableInput, TrainableModel } from '../../models/training-graph.ts';
import { canTransfer, promptKind, tokensInText, type PromptKind, type PromptTensors } from '../kinds.ts';
import { engineRow, taskRows, tokenizeInput, type RowModel, type RowPrompt, type TaskRows } from '../rows.ts';
import { softmax } from '../softmax.ts';
import type { Scoring } from '../store.ts';
import { labelTokenId, specialTokens } from '../template.ts';
import type { Example } from './data.ts';
import { fitWithGrid, type GridFit, type GridPoint, type LogRegData } from './logreg.ts';
import { AdamW, clipGradNorm, learningRate, param, zeroGrads, type Param } from './optim.ts';
import { methodKind, type PromptInit, type TrainingOptions } from './options.ts';
import {
  DirectEncoder, FrozenEncoder, LstmEncoder, MlpEncoder, PrefixMlpEncoder, type PromptEncoder,
} from './reparam.ts';
import { normal, shuffle, stream, type Rng } from './rng.ts';

export interface TaskSpec {
  labels: string[];
  template: string;
  scoring: Scoring;
}

export interface EvalPoint {
  member: number;
  step: number;
  epoch: number;
  /** Mean training loss since the previous evaluation. */
  trainLoss: number;
  heldOutLoss: number | null;
  heldOutAccuracy: number | null;
  elapsedMs: number;
}

export interface Progress {
  member: number;
  members: number;
  phase: 'preparing' | 'training' | 'done';
  step: number;
  totalSteps: number;
  epoch: number;
  /** Mean loss over the last steps (up to 20). */
  loss: number | null;
  heldOutAccuracy: number | null;
  heldOutLoss: number | null;
  bestHeldOutAccuracy: number | null;
  examplesPerSec: number;
}

export interface TrainHooks {
  onProgress?(p: Progress): void;
  onEval?(p: EvalPoint): void;
  /** Polled between steps: true cancels the run. */
  shouldStop?(): boolean;
}

export interface TrainResult {
  tensors: PromptTensors;
  steps: number;
  totalSteps: number;
  bestStep: number;
  heldOut: { accuracy: number; loss: number } | null;
  history: EvalPoint[];
  stoppedEarly: boolean;
  cancelled: boolean;
  wallMs: number;
  examplesPerSec: number;
  trainExamples: number;
  heldOutExamples: number;
  init: PromptInit | 'from_prompt';
  seed: number;
  /** linear_head with the exact solver: the λ chosen and the grid's held-out results. */
  probe?: { lambda: number; grid: GridPoint[]; refit?: GridFit['refit'] };
}

/** What a run may start from or learn towards besides its options (resolved by the caller). */
export interface TrainExtras {
  /** Transfer: the prompt's tensors to start from (same kind family and length; checked here). */
  initPrompt?: PromptTensors;
}

interface Encoded { ids: number[]; scorePosition: number; label: number; target?: number[] }

interface Materialised {
  prompt: Float32Array;
  head?: { weight: Float32Array; bias: Float32Array };
}

const EVAL_BATCH = 64;

// --- helpers ---------------------------------------------------------------------------

/** The row builder's view of a trainable model (the same tokenizer and BOS rule as serving). */
function rowModel(model: TrainableModel): RowModel {
  return { spec: model.spec, tokenizer: model.tokenizer, addBos: model.tokenizer.addBos };
}

function encodeAll(model: TrainableModel, plan: TaskRows, examples: Example[], virtualTokens: number, maxTextTokens: number): Encoded[] {
  const rm = rowModel(model);
  return examples.map((e) => {
    const b = tokenizeInput(rm, plan, e.text, virtualTokens, maxTextTokens);
    const enc: Encoded = { ids: b.ids, scorePosition: b.scorePosition, label: e.label };
    if (e.target) enc.target = e.target;
    return enc;
  });
}

/** Batches of similar length (less padding), in a random order: shuffle, sort within chunks, shuffle batches. */
function makeBatches(items: Encoded[], batchSize: number, rng: Rng): number[][] {
  const order = shuffle(items.map((_, i) => i), rng);
  const chunk = batchSize * 16;
  const batches: number[][] = [];
  for (let s = 0; s < order.length; s += chunk) {
    const part = order.slice(s, s + chunk).sort((a, b) => items[a]!.ids.length - items[b]!.ids.length);
    for (let i = 0; i < part.length; i += batchSize) batches.push(part.slice(i, i + batchSize));
  }
  return shuffle(batches, rng);
}

function logSoftmaxAt(scores: Float32Array | Float64Array, offset: number, C: number, label: number): { logp: number; argmax: number } {
  let max = -Infinity;
  let argmax = 0;
  for (let c = 0; c < C; c++) {
    const s = scores[offset + c]!;
    if (s > max) { max = s; argmax = c; }
  }
  let sum = 0;
  for (let c = 0; c < C; c++) sum += Math.exp(scores[offset + c]! - max);
  return { logp: scores[offset + label]! - max - Math.log(sum), argmax };
}

/** Tokens the training texts use (no special tokens), for "sampled vocabulary" initialisation. */
function vocabularyPool(model: TrainableModel, encoded: Encoded[]): number[] {
  const spec = model.spec;
  const special = new Set([spec.bosTokenId, spec.eosTokenId, spec.padTokenId, spec.maskTokenId].filter((x): x is number => x !== null));
  const st = specialTokens(spec, model.tokenizer, model.tokenizer.addBos);
  for (const id of [...st.start, ...st.end]) special.add(id);
  const counts = new Map<number, number>();
  for (const e of encoded) for (const id of e.ids) if (id < spec.vocabSize && !special.has(id)) counts.set(id, (counts.get(id) ?? 0) + 1);
  let pool = [...counts.entries()].filter(([, n]) => n >= 2).map(([id]) => id);
  if (pool.length < 8) pool = [...counts.keys()];
  if (pool.length === 0) pool = Array.from({ length: spec.vocabSize }, (_, i) => i).filter((i) => !special.has(i));
  return pool.sort((a, b) => a - b);
}

function sampleTokens(pool: number[], n: number, rng: Rng): number[] {
  const picked = shuffle([...pool], rng).slice(0, n);
  while (picked.length < n) picked.push(pool[Math.floor(rng() * pool.length)]!);
  return picked;
}

/** First token of each label's word (verbalizer) or name (head task). */
function labelTokens(model: TrainableModel, task: TaskSpec): number[] {
  const words = task.scoring.type === 'verbalizer' ? task.scoring.labelWords : task.labels;
  return words.map((w) => labelTokenId(w, model.tokenizer));
}

function initSoftPrompt(model: TrainableModel, task: TaskSpec, init: PromptInit, P: number, pool: number[], rng: Rng): Float64Array {
  const H = model.spec.hiddenSize;
  const E = model.embeddings();
  const out = new Float64Array(P * H);
  if (init === 'random') {
    let sq = 0;
    for (const x of E) sq += x * x;
    const std = Math.sqrt(sq / E.length);
    const n = normal(rng);
    for (let i = 0; i < out.length; i++) out[i] = std * n();
    return out;
  }
  const ids = init === 'label_words'
    ? [...labelTokens(model, task), ...sampleTokens(pool, P, rng)].slice(0, P)
    : sampleTokens(pool, P, rng);
  ids.forEach((id, j) => { for (let h = 0; h < H; h++) out[j * H + h] = E[id * H + h]!; });
  return out;
}

async function initPrefix(model: TrainableModel, task: TaskSpec, init: PromptInit, Pk: number, pool: number[], rng: Rng): Promise<Float64Array> {
  const spec = model.spec;
  const start = specialTokens(spec, model.tokenizer, model.tokenizer.addBos).start;
  let body: number[];
  if (init === 'label_words') {
    const words = task.scoring.type === 'verbalizer' ? task.scoring.labelWords : task.labels;
    body = words.flatMap((w) => model.tokenizer.encode(` ${w.trim()}`));
  } else {
    body = [];
  }
  const ids = [...start, ...body, ...sampleTokens(pool, Pk, rng)].slice(0, Pk);
  while (ids.length < Pk) ids.push(pool[0]!);
  const kv = Float64Array.from(await model.captureKv(ids, Pk));
  if (init !== 'random') return kv;
  let sq = 0;
  for (const x of kv) sq += x * x;
  const std = Math.sqrt(sq / kv.length);
  const n = normal(rng);
  return kv.map(() => std * n());
}

// --- the run ---------------------------------------------------------------------------

interface HeadState {
  w: Param;   // W~ [C,H]
  b: Param;   // b~ [C]
  mu: Float64Array;
  sigma: Float64Array;
}

function foldHead(h: HeadState, C: number, H: number): { weight: Float32Array; bias: Float32Array } {
  const weight = new Float32Array(C * H);
  const bias = new Float32Array(C);
  for (let c = 0; c < C; c++) {
    let b = h.b.data[c]!;
    for (let k = 0; k < H; k++) {
      const w = h.w.data[c * H + k]! / h.sigma[k]!;
      weight[c * H + k] = w;
      b -= w * h.mu[k]!;
    }
    bias[c] = b;
  }
  return { weight, bias };
}

function standardise(features: Float32Array, n: number, H: number): { mu: Float64Array; sigma: Float64Array } {
  const mu = new Float64Array(H);
  const sigma = new Float64Array(H);
  for (let i = 0; i < n; i++) for (let k = 0; k < H; k++) mu[k]! += features[i * H + k]! / n;
  for (let i = 0; i < n; i++) for (let k = 0; k < H; k++) sigma[k]! += (features[i * H + k]! - mu[k]!) ** 2 / n;
  let maxSigma = 0;
  for (let k = 0; k < H; k++) { sigma[k] = Math.sqrt(sigma[k]!); maxSigma = Math.max(maxSigma, sigma[k]!); }
  for (let k = 0; k < H; k++) sigma[k] = Math.max(sigma[k]!, 1e-3 * maxSigma, 1e-6);
  return { mu, sigma };
}

export interface MemberInfo { index: number; count: number }

export async function trainPrompt(
  model: TrainableModel, task: TaskSpec, train: Example[], heldOut: Example[],
  opts: TrainingOptions, hooks: TrainHooks = {}, member: MemberInfo = { index: 0, count: 1 }, extras: TrainExtras = {},
): Promise<TrainResult> {
  const started = performance.now();
  const spec = model.spec;
  const H = spec.hiddenSize;
  const C = task.labels.length;
  // The head's feature: F values of the graph's wide pooled output [mean ; last], from `at` (models/pooling.ts).
  const pooling = task.scoring.type === 'head' ? task.scoring.pooling : 'mean';
  const F = featureWidth(pooling, H);
  const at = featureOffset(pooling, H);
  const method = opts.method;
  const isPrefix = method === 'prefix_tuning';
  const headTask = task.scoring.type === 'head';
  if (method === 'linear_head' && !headTask) {
    throw new SoftserveError('INVALID_TASK', 'linear_head trains a linear head: the task must score with one (scoring.type "head")');
  }
  if (train.length === 0) throw new SoftserveError('INVALID_INPUT', 'no training examples');
  const P = opts.numVirtualTokens;
  // A linear probe without any virtual token (P = 0) is for evaluation only:
  // the store needs a prompt to publish, so the API's linear_head uses P = 1.
  const noPrompt = method === 'linear_head' && P === 0;
  const kind = methodKind(method);
  const def = promptKind(kind);
  const plan = taskRows(rowModel(model), task);

  const progress = (p: Partial<Progress>) => hooks.onProgress?.({
    member: member.index, members: member.count, phase: 'training', step: 0, totalSteps: 0, epoch: 0,
    loss: null, heldOutAccuracy: null, heldOutLoss: null, bestHeldOutAccuracy: null, examplesPerSec: 0, ...p,
  });
  progress({ phase: 'preparing' });

  const inText = tokensInText({ kind, numVirtualTokens: P });
  const trainEnc = encodeAll(model, plan, train, inText, opts.maxTextTokens);
  const heldEnc = encodeAll(model, plan, heldOut, inText, opts.maxTextTokens);
  const initRng = stream(opts.seed, 'init');
  const orderRng = stream(opts.seed, 'order');
  const pool = vocabularyPool(model, trainEnc);

  const from = extras.initPrompt ? transferInit(extras.initPrompt, kind, P, def.shape(spec, P).reduce((a, b) => a * b, 1)) : null;
  let encoder: PromptEncoder;
  if (isPrefix) {
    const base = from ?? await initPrefix(model, task, opts.init, P, pool, initRng);
    encoder = opts.encoder === 'mlp'
      ? new PrefixMlpEncoder(base, P, spec, H, opts.encoderHidden, initRng)
      : new DirectEncoder('prefix', base);
  } else {
    const init = from ?? initSoftPrompt(model, task, opts.init, P, pool, initRng);
    encoder = method === 'linear_head' ? new FrozenEncoder(init)
      : method === 'p_tuning' ? (opts.encoder === 'lstm' ? new LstmEncoder(init, P, H, opts.encoderHidden, initRng) : new MlpEncoder(init, P, H, opts.encoderHidden, initRng))
      : new DirectEncoder('soft_prompt', init);
  }

  let head: HeadState | null = null;
  const materialise = (): Materialised => {
    const m: Materialised = { prompt: Float32Array.from(encoder.forward()) };
    if (head) m.head = foldHead(head, C, F);
    return m;
  };
  const rowFor = (e: Encoded, m: Materialised): EngineRow => {
    // A probe without virtual tokens (noPrompt) carries no prompt tensor, only its head.
    const prompt: RowPrompt = { key: 'p', kind, numVirtualTokens: noPrompt ? 0 : P, data: m.prompt };
    if (m.head) prompt.head = m.head;
    return engineRow(plan, e, prompt);
  };
  // Evaluation batches no larger than the training batch: a forward pass on 64
  // long rows can need more memory than the step itself (the job's memory budget
  // is estimated from batch_size; prompts/training/memory.ts).
  const evalBatch = Math.min(EVAL_BATCH, opts.batchSize);
  const features = async (items: Encoded[], m: Materialised): Promise<Float32Array> => {
    const out = new Float32Array(items.length * F);
    const noHead: Materialised = { prompt: m.prompt, head: { weight: new Float32Array(C * F), bias: new Float32Array(C) } };
    for (let s = 0; s < items.length; s += evalBatch) {
      const part = items.slice(s, s + evalBatch);
      const r = await model.forward(part.map((e) => rowFor(e, noHead)));
      for (let b = 0; b < part.length; b++) out.set(featureOf(r.pooled, b, pooling, H), (s + b) * F);
    }
    return out;
  };

  if (headTask) {
    const sampleIdx = shuffle(trainEnc.map((_, i) => i), stream(opts.seed, 'standardise')).slice(0, 512);
    const sample = sampleIdx.map((i) => trainEnc[i]!);
    const { mu, sigma } = standardise(await features(sample, materialise()), sample.length, F);
    head = { w: param('head.weight', new Float64Array(C * F), true), b: param('head.bias', new Float64Array(C), false), mu, sigma };
  }

  const evaluate = async (items: Encoded[], m: Materialised): Promise<{ accuracy: number; loss: number }> => {
    const order = items.map((_, i) => i).sort((a, b) => items[a]!.ids.length - items[b]!.ids.length);
    let correct = 0;
    let loss = 0;
    for (let s = 0; s < order.length; s += evalBatch) {
      const part = order.slice(s, s + evalBatch).map((i) => items[i]!);
      const r = await model.forward(part.map((e) => rowFor(e, m)));
      part.forEach((e, b) => {
        const { logp, argmax } = logSoftmaxAt(r.scores, b * r.classes, C, e.label);
        loss -= logp;
        if (argmax === e.label) correct++;
      });
    }
    return { accuracy: correct / Math.max(1, items.length), loss: loss / Math.max(1, items.length) };
  };

  const params: Param[] = [...encoder.params, ...(head ? [head.w, head.b] : [])];
  const optimiser = new AdamW(params, { weightDecay: opts.weightDecay });
  const stepsPerEpoch = Math.ceil(trainEnc.length / opts.batchSize);
  const totalSteps = Math.max(1, Math.min(opts.maxSteps, opts.epochs * stepsPerEpoch));
  const warmup = Math.round(totalSteps * opts.warmupRatio);
  const evalEvery = opts.evalEvery > 0 ? opts.evalEvery : Math.max(1, Math.ceil(stepsPerEpoch / 4));

  const history: EvalPoint[] = [];
  let best: { step: number; accuracy: number; loss: number; snapshot: Materialised } | null = null;
  let sinceBest = 0;
  let step = 0;
  let epoch = 0;
  let cancelled = false;
  let stoppedEarly = false;
  let trainMs = 0;
  let seen = 0;
  const recent: number[] = [];
  let lossSum = 0;
  let lossSteps = 0;

  const headStep = method === 'linear_head';
  let featureCache: { train: Float32Array; held: Float32Array } | null = null;

  const runEval = async (): Promise<boolean> => {
    const m = materialise();
    const r = heldEnc.length === 0 ? null : featureCache ? evaluateFeatures(head!, featureCache.held, heldEnc, C, F) : await evaluate(heldEnc, m);
    const point: EvalPoint = {
      member: member.index, step, epoch, trainLoss: lossSteps > 0 ? lossSum / lossSteps : NaN,
      heldOutLoss: r?.loss ?? null, heldOutAccuracy: r?.accuracy ?? null, elapsedMs: performance.now() - started,
    };
    lossSum = 0;
    lossSteps = 0;
    history.push(point);
    hooks.onEval?.(point);
    if (!r) {
      best = { step, accuracy: NaN, loss: NaN, snapshot: m };
      return false;
    }
    // Better: higher accuracy, or the same accuracy and a loss lower by more than noise.
    if (!best || r.accuracy > best.accuracy || (r.accuracy === best.accuracy && r.loss < best.loss - 1e-4)) {
      best = { step, accuracy: r.accuracy, loss: r.loss, snapshot: m };
      sinceBest = 0;
    } else {
      sinceBest++;
    }
    return opts.patience > 0 && sinceBest >= opts.patience;
  };

  if (headStep) {
    // The prompt is fixed: features once, then logistic regression on them.
    const m0 = materialise();
    featureCache = { train: await features(trainEnc, m0), held: await features(heldEnc, m0) };
  }

  if (heldEnc.length > 0 && !(headStep && opts.solver === 'lbfgs')) await runEval();
  const wrt: TrainableInput[] = [def.trainableInput, ...(head ? ['head_table', 'head_bias'] as TrainableInput[] : [])];
  const finishExact = (fit: GridFit): TrainResult => {
    fit.points.forEach((p, i) => {
      const point: EvalPoint = { member: member.index, step: i, epoch: 0, trainLoss: NaN, heldOutLoss: p.heldOutLoss, heldOutAccuracy: p.heldOutAccuracy, elapsedMs: performance.now() - started };
      history.push(point);
      hooks.onEval?.(point);
    });
    const snapshot = materialise();
    const tensors: PromptTensors = { kind, numVirtualTokens: P, data: snapshot.prompt, head: snapshot.head! };
    const wallMs = performance.now() - started;
    progress({ phase: 'done', step: fit.iterations, totalSteps: fit.iterations, bestHeldOutAccuracy: fit.heldOut?.accuracy ?? null });
    return {
      tensors, steps: fit.iterations, totalSteps: fit.iterations, bestStep: fit.iterations, heldOut: fit.heldOut, history, stoppedEarly: false, cancelled: false,
      wallMs, examplesPerSec: (trainEnc.length * 1000) / Math.max(1, wallMs), trainExamples: train.length, heldOutExamples: heldOut.length,
      init: opts.init, seed: opts.seed, probe: { lambda: fit.lambda, grid: fit.points, ...(fit.refit ? { refit: fit.refit } : {}) },
    };
  };
  const distilling = trainEnc.some((e) => e.target !== undefined);
  if (!headStep) await model.prepare(wrt, distilling);
  if (headStep && opts.solver === 'lbfgs') {
    // The exact probe: no minibatch loop; the optimum for each λ of the grid, the best on held-out kept.
    const fit = exactProbe(head!, featureCache!, trainEnc, heldEnc, C, F);
    step = fit.iterations;
    const result = finishExact(fit);
    return result;
  }

  outer: while (step < totalSteps) {
    for (const batch of makeBatches(trainEnc, opts.batchSize, orderRng)) {
      if (hooks.shouldStop?.()) { cancelled = true; break outer; }
      const t0 = performance.now();
      zeroGrads(params);
      const items = batch.map((i) => trainEnc[i]!);
      const weight = 1 / items.length;
      let loss = 0;
      if (headStep) {
        loss = logisticStep(head!, featureCache!.train, batch, items, C, F);
      } else {
        const m = materialise();
        const out = await model.step(items.map((e) => rowFor(e, m)), items.map((e) => e.label), items.map(() => weight), wrt, softTargets(items, C, weight));
        loss = out.loss;
        const gPrompt = out.grads[wrt[0]!]!;
        encoder.backward(Float64Array.from(gPrompt));
        if (head) {
          // gW is the head table's gradient [1, C, 2H]: the head's F columns start at `at`.
          const gW = out.grads.head_table!;
          const gb = out.grads.head_bias!;
          for (let c = 0; c < C; c++) {
            head.b.grad[c]! += gb[c]!;
            for (let k = 0; k < F; k++) head.w.grad[c * F + k]! += (gW[c * 2 * H + at + k]! - gb[c]! * head.mu[k]!) / head.sigma[k]!;
          }
        }
      }
      if (!Number.isFinite(loss)) throw new SoftserveError('INTERNAL', `training diverged: loss is ${loss} at step ${step}`);
      clipGradNorm(params, opts.clipNorm);
      optimiser.step(learningRate(step, totalSteps, opts.learningRate, warmup, opts.schedule));
      step++;
      seen += items.length;
      trainMs += performance.now() - t0;
      recent.push(loss);
      if (recent.length > 20) recent.shift();
      lossSum += loss;
      lossSteps++;
      const done = step >= totalSteps;
      if (step % evalEvery === 0 || done) {
        if (await runEval()) { stoppedEarly = !done; if (stoppedEarly) break outer; }
      }
      const bestSoFar = best as { accuracy: number } | null;
      const last = history[history.length - 1];
      progress({
        step, totalSteps, epoch, loss: recent.reduce((a, b) => a + b, 0) / recent.length,
        heldOutAccuracy: last?.heldOutAccuracy ?? null, heldOutLoss: last?.heldOutLoss ?? null,
        bestHeldOutAccuracy: bestSoFar && Number.isFinite(bestSoFar.accuracy) ? bestSoFar.accuracy : null,
        examplesPerSec: trainMs > 0 ? (seen * 1000) / trainMs : 0,
      });
      if (done) break outer;
    }
    epoch++;
  }

  const chosen = (best ?? { step, accuracy: NaN, loss: NaN, snapshot: materialise() }) as { step: number; accuracy: number; loss: number; snapshot: Materialised };
  const tensors: PromptTensors = { kind, numVirtualTokens: P, data: chosen.snapshot.prompt };
  if (chosen.snapshot.head) tensors.head = chosen.snapshot.head;
  const result: TrainResult = {
    tensors, steps: step, totalSteps, bestStep: chosen.step,
    heldOut: Number.isFinite(chosen.accuracy) ? { accuracy: chosen.accuracy, loss: chosen.loss } : null,
    history, stoppedEarly, cancelled, wallMs: performance.now() - started,
    examplesPerSec: trainMs > 0 ? (seen * 1000) / trainMs : 0,
    trainExamples: train.length, heldOutExamples: heldOut.length, init: extras.initPrompt ? 'from_prompt' : opts.init, seed: opts.seed,
  };
  progress({ phase: 'done', step, totalSteps, epoch, examplesPerSec: result.examplesPerSec, bestHeldOutAccuracy: result.heldOut?.accuracy ?? null });
  return result;
}

/** One minibatch of softmax regression on standardised features; returns the mean loss. */
function logisticStep(head: HeadState, feats: Float32Array, batch: number[], items: Encoded[], C: number, H: number): number {
  const n = batch.length;
  let loss = 0;
  const z = new Float64Array(H);
  const s = new Float64Array(C);
  batch.forEach((i, r) => {
    for (let k = 0; k < H; k++) z[k] = (feats[i * H + k]! - head.mu[k]!) / head.sigma[k]!;
    for (let c = 0; c < C; c++) {
      let v = head.b.data[c]!;
      for (let k = 0; k < H; k++) v += head.w.data[c * H + k]! * z[k]!;
      s[c] = v;
    }
    const { label, target } = items[r]!;
    const q = (c: number) => (target ? target[c]! : c === label ? 1 : 0);
    let max = -Infinity;
    for (let c = 0; c < C; c++) max = Math.max(max, s[c]!);
    let sum = 0;
    for (let c = 0; c < C; c++) sum += Math.exp(s[c]! - max);
    for (let c = 0; c < C; c++) if (q(c) !== 0) loss -= (q(c) * (s[c]! - max - Math.log(sum))) / n;
    for (let c = 0; c < C; c++) {
      const d = (Math.exp(s[c]! - max) / sum - q(c)) / n;
      head.b.grad[c]! += d;
      for (let k = 0; k < H; k++) head.w.grad[c * H + k]! += d * z[k]!;
    }
  });
  return loss;
}

function evaluateFeatures(head: HeadState, feats: Float32Array, items: Encoded[], C: number, H: number): { accuracy: number; loss: number } {
  let correct = 0;
  let loss = 0;
  const s = new Float64Array(C);
  items.forEach((e, i) => {
    for (let c = 0; c < C; c++) {
      let v = head.b.data[c]!;
      for (let k = 0; k < H; k++) v += head.w.data[c * H + k]! * (feats[i * H + k]! - head.mu[k]!) / head.sigma[k]!;
      s[c] = v;
    }
    const { logp, argmax } = logSoftmaxAt(s, 0, C, e.label);
    loss -= logp;
    if (argmax === e.label) correct++;
  });
  return { accuracy: correct / Math.max(1, items.length), loss: loss / Math.max(1, items.length) };
}

/** Soft-target rows [B,C] with the row weight folded in, or undefined when the batch has none (plain labels). */
function softTargets(items: Encoded[], C: number, weight: number): Float32Array | undefined {
  if (!items.some((e) => e.target !== undefined)) return undefined;
  const t = new Float32Array(items.length * C);
  items.forEach((e, b) => {
    if (e.target) for (let c = 0; c < C; c++) t[b * C + c] = weight * e.target[c]!;
    else t[b * C + e.label] = weight;
  });
  return t;
}

/** A transferred prompt as the encoder's starting point: soft and P-tuning prompts are both P×H embeddings; prefixes only from prefixes. */
function transferInit(src: PromptTensors, kind: PromptKind, P: number, size: number): Float64Array {
  if (!canTransfer(src.kind, kind)) {
    throw new SoftserveError('INVALID_INPUT', `cannot start a ${kind} prompt from a ${src.kind} prompt`);
  }
  if (src.numVirtualTokens !== P || src.data.length !== size) {
    throw new SoftserveError('INVALID_INPUT', `the prompt to start from has ${src.numVirtualTokens} virtual tokens; this job trains ${P} (set num_virtual_tokens to ${src.numVirtualTokens})`);
  }
  return Float64Array.from(src.data);
}

/**
 * Standardises the cached features over the whole training set, fits the
 * exact probe for each λ of the grid, and leaves the chosen solution in the
 * head state (on the standardised scale; foldHead publishes it).
 */
function exactProbe(head: HeadState, feats: { train: Float32Array; held: Float32Array }, trainEnc: Encoded[], heldEnc: Encoded[], C: number, H: number): GridFit {
  const { mu, sigma } = standardise(feats.train, trainEnc.length, H);
  head.mu = mu;
  head.sigma = sigma;
  const data = (f: Float32Array, items: Encoded[]): LogRegData => {
    const x = new Float64Array(items.length * H);
    for (let i = 0; i < items.length; i++) for (let k = 0; k < H; k++) x[i * H + k] = (f[i * H + k]! - mu[k]!) / sigma[k]!;
    const q = new Float64Array(items.length * C);
    items.forEach((e, i) => {
      if (e.target) for (let c = 0; c < C; c++) q[i * C + c] = e.target[c]!;
      else q[i * C + e.label] = 1;
    });
    return { x, q, n: items.length, H, C };
  };
  const fit = fitWithGrid(data(feats.train, trainEnc), heldEnc.length > 0 ? data(feats.held, heldEnc) : null);
  head.w.data.set(fit.theta.subarray(0, C * H));
  head.b.data.set(fit.theta.subarray(C * H));
  return fit;
}

export interface EnsembleResult {
  members: TrainResult[];
  cancelled: boolean;
}

/** N prompts with seeds seed, seed+1, ... (and cycled inits when given). */
export async function trainEnsemble(
  model: TrainableModel, task: TaskSpec, train: Example[], heldOut: Example[], opts: TrainingOptions, hooks: TrainHooks = {}, extras: TrainExtras = {},
): Promise<EnsembleResult> {
  const members: TrainResult[] = [];
  for (let i = 0; i < opts.ensembleSize; i++) {
    const init = opts.ensembleInits ? opts.ensembleInits[i % opts.ensembleInits.length]! : opts.init;
    const r = await trainPrompt(model, task, train, heldOut, { ...opts, seed: opts.seed + i, init }, hooks, { index: i, count: opts.ensembleSize }, extras);
    if (r.cancelled) return { members, cancelled: true };
    members.push(r);
  }
  return { members, cancelled: false };
}

/** Accuracy and per-example predictions of a trained prompt on labelled examples (forward only). */
export async function evaluatePrompt(
  model: TrainableModel, task: TaskSpec, examples: Example[], tensors: PromptTensors | null, maxTextTokens: number,
): Promise<{ accuracy: number; loss: number; predictions: number[]; probabilities: Float64Array[] }> {
  const C = task.labels.length;
  const plan = taskRows(rowModel(model), task);
  const enc = encodeAll(model, plan, examples, tokensInText(tensors), maxTextTokens);
  if (task.scoring.type === 'head' && !tensors?.head) throw new SoftserveError('INVALID_TASK', 'a head task needs a prompt with a head');
  const predictions = new Array<number>(enc.length);
  const probabilities = new Array<Float64Array>(enc.length);
  let correct = 0;
  let loss = 0;
  const order = enc.map((_, i) => i).sort((a, b) => enc[a]!.ids.length - enc[b]!.ids.length);
  for (let s = 0; s < order.length; s += EVAL_BATCH) {
    const part = order.slice(s, s + EVAL_BATCH);
    const rows = part.map((i) => engineRow(plan, enc[i]!, tensors && { key: 'p', ...tensors }));
    const r = await model.forward(rows);
    part.forEach((i, b) => {
      const e = enc[i]!;
      const { logp, argmax } = logSoftmaxAt(r.scores, b * r.classes, C, e.label);
      loss -= logp;
      if (argmax === e.label) correct++;
      predictions[i] = argmax;
      probabilities[i] = Float64Array.from(softmax(r.scores, b * r.classes, C));
    });
  }
  return { accuracy: correct / Math.max(1, enc.length), loss: loss / Math.max(1, enc.length), predictions, probabilities };
}

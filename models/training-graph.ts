// Training graphs: the family's serving forward (the very graph that serves,
// so a trained prompt scores identically when published), a cross-entropy
// loss over the task's classes, and the gradients of that loss with respect to
// the prompt inputs only (kernels/autodiff.ts). Weights stay initializers and
// are never differentiated.
//
// Extra inputs: `labels` int64 [B] (class index per row) and `example_weight`
// float32 [B] (the loss is -sum_b w_b log softmax(scores_b)[label_b]; the
// trainer passes 1/rows, and 0 for padding rows it wants to ignore).
// Outputs: `loss` [], `grad_<input>` (same shape as the input) for each
// trainable input, and the serving outputs `scores` [B,C] / `pooled` [B,2H].
//
// TrainableModel wraps one loaded checkpoint with a forward-only session (the
// serving graph, for held-out evaluation and features), training sessions
// built on demand per set of trainable inputs, and a key/value capture graph
// (for initialising prefixes from the model's own activations).

import { addGradients } from '../kernels/autodiff.ts';
import { Graph, type Value } from '../kernels/graph.ts';
import { openSession, type Session, type SessionOptions, type TensorData } from '../kernels/session.ts';
import { assembleBatch, type AssembledBatch, type EngineRow } from './batch.ts';
import { loadCheckpoint, type Checkpoint } from './checkpoint.ts';
import { familyOf, inputEmbeddingName, type Family } from './families.ts';
import type { ModelSpec } from './spec.ts';
import { loadTokenizer, type TextTokenizer } from './tokenizer.ts';

export type TrainableInput = 'soft_prompt_table' | 'prefix_table' | 'head_table' | 'head_bias';

export interface TrainingGraph {
  graph: Graph;
  wrt: TrainableInput[];
  /** Forward nodes differentiated and backward nodes added (for logs and tests). */
  differentiatedNodes: number;
  backwardNodes: number;
}

/**
 * Appends the loss and gradients to a graph that already holds a serving
 * forward. With `softTargets` the loss reads a `targets` float32 [B,C] input
 * instead of labels and weights: loss = -sum_b sum_c targets[b,c] log
 * softmax(scores_b)_c (distillation; the trainer folds each row's weight into
 * its targets). Soft targets need every row to have all C classes (one task's
 * rows do): a masked class's -inf log-probability times a 0 target is NaN.
 */
export function addTrainingHead(g: Graph, wrt: readonly TrainableInput[], softTargets = false): { differentiatedNodes: number; backwardNodes: number } {
  if (wrt.length === 0) throw new Error('a training graph needs at least one trainable input');
  // `scores` is the serving output (an Identity of the masked class scores).
  const logp = g.op('LogSoftmax', ['scores'], { axis: 1 });
  let loss: Value;
  if (softTargets) {
    const targets = g.input('targets', 'float32', ['B', 'C']);
    loss = g.op('Neg', [g.reduceSum(g.mul(logp, targets), [0, 1], false)]);
  } else {
    const labels = g.input('labels', 'int64', ['B']);
    const weights = g.input('example_weight', 'float32', ['B']);
    const picked = g.squeeze(g.op('GatherElements', [logp, g.unsqueeze(labels, [1])], { axis: 1 }), [1]); // [B]
    loss = g.op('Neg', [g.reduceSum(g.mul(picked, weights), [0], false)]);
  }
  const res = addGradients(g, { loss, wrt: [...wrt] });
  g.output(loss, 'loss', 'float32', []);
  for (const w of wrt) g.output(res.grads.get(w)!, `grad_${w}`, 'float32', gradDims(w));
  return { differentiatedNodes: res.differentiatedNodes, backwardNodes: res.backwardNodes };
}

function gradDims(w: TrainableInput): Array<number | string> {
  switch (w) {
    case 'soft_prompt_table': return ['U', 'P', 'H'];
    case 'prefix_table': return ['L', 2, 'Uk', 'KV', 'Pk', 'D'];
    case 'head_table': return ['Uh', 'C', 'F'];
    case 'head_bias': return ['Uh', 'C'];
  }
}

export function buildTrainingGraph(ckpt: Checkpoint, family: Family, spec: ModelSpec, wrt: readonly TrainableInput[], softTargets = false): TrainingGraph {
  const g = new Graph(`${spec.family}_training`);
  family.buildServingGraph(g, ckpt, spec);
  const stats = addTrainingHead(g, wrt, softTargets);
  return { graph: g, wrt: [...wrt], ...stats };
}

/**
 * A graph that also outputs every layer's text keys and values
 * (`kv_<layer>_0` keys after RoPE, `kv_<layer>_1` values), [B,KV,T,D]: the
 * second operand of each attention's concat with the row's prefix.
 */
export function buildKvCaptureGraph(ckpt: Checkpoint, family: Family, spec: ModelSpec): Graph {
  const g = new Graph(`${spec.family}_kv`);
  family.buildServingGraph(g, ckpt, spec);
  const producer = new Map<Value, (typeof g.nodes)[number]>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n);
  const captured: Value[] = [];
  for (const n of g.nodes) {
    if (n.opType !== 'Concat' || n.inputs.length !== 2) continue;
    const first = producer.get(n.inputs[0]!);
    // rowPrefix: Gather(perLayer, prefix_index)
    if (first?.opType === 'Gather' && first.inputs[1] === 'prefix_index') captured.push(n.inputs[1]!);
  }
  if (captured.length !== 2 * spec.numLayers) {
    throw new Error(`kv capture: found ${captured.length} prefix concats, expected ${2 * spec.numLayers}`);
  }
  captured.forEach((v, i) => g.output(v, `kv_${Math.floor(i / 2)}_${i % 2}`, 'float32', ['B', spec.numKvHeads, 'T', spec.headDim]));
  return g;
}


export interface StepOutput {
  loss: number;
  /** Per trainable input, the gradient with the input's own layout. */
  grads: Partial<Record<TrainableInput, Float32Array>>;
  /** [B,C] */
  scores: Float32Array;
  classes: number;
}

export interface ForwardOutput {
  scores: Float32Array;
  pooled: Float32Array;
  classes: number;
}

export class TrainableModel {
  private readonly training = new Map<string, Promise<Session>>();
  private kvSession: Promise<Session> | null = null;
  private embeddingCache: Float32Array | null = null;

  private constructor(
    readonly ckpt: Checkpoint,
    readonly family: Family,
    readonly spec: ModelSpec,
    private loadedTokenizer: TextTokenizer | null,
    readonly positionOffset: number,
    private readonly forwardSession: Session,
    private readonly options: SessionOptions,
  ) {}

  /** `tokenizer`: the process's, if it has one already; else read on first use. */
  static async load(dir: string, options: SessionOptions = {}, tokenizer?: TextTokenizer): Promise<TrainableModel> {
    const ckpt = loadCheckpoint(dir);
    const family = familyOf(ckpt);
    const spec = family.spec(ckpt);
    const g = new Graph(`${spec.family}_serving`);
    family.buildServingGraph(g, ckpt, spec);
    const session = await openSession(g.toOnnx(), options);
    return new TrainableModel(ckpt, family, spec, tokenizer ?? null, family.positionOffset(spec), session, options);
  }

  get tokenizer(): TextTokenizer {
    this.loadedTokenizer ??= loadTokenizer(this.ckpt.dir);
    return this.loadedTokenizer;
  }

  assemble(rows: EngineRow[]): AssembledBatch {
    return assembleBatch(rows, this.spec, this.positionOffset);
  }

  /** The input word embeddings [V,H] (for prompt initialisation). */
  embeddings(): Float32Array {
    this.embeddingCache ??= this.ckpt.weights.get(inputEmbeddingName(this.ckpt, this.spec), [this.spec.vocabSize, this.spec.hiddenSize]);
    return this.embeddingCache;
  }

  async forward(rows: EngineRow[]): Promise<ForwardOutput> {
    const out = await this.forwardSession.run(this.assemble(rows).feeds);
    return { scores: out.float32('scores'), pooled: out.float32('pooled'), classes: out.dims('scores')[1]! };
  }

  private trainingSession(wrt: readonly TrainableInput[], softTargets = false): Promise<Session> {
    const key = `${softTargets ? 'soft:' : ''}${[...wrt].sort().join(',')}`;
    let s = this.training.get(key);
    if (!s) {
      const tg = buildTrainingGraph(this.ckpt, this.family, this.spec, wrt, softTargets);
      s = openSession(tg.graph.toOnnx(), this.options);
      this.training.set(key, s);
    }
    return s;
  }

  /** Opens the training session for `wrt` ahead of the first step. */
  async prepare(wrt: readonly TrainableInput[], softTargets = false): Promise<void> {
    await this.trainingSession(wrt, softTargets);
  }

  /**
   * One forward + backward: loss, gradients for `wrt`, and the rows' scores.
   * With `targets` (row-major [B,C], weights folded in) the loss is the soft
   * cross-entropy and `labels`/`weights` are ignored.
   */
  async step(rows: EngineRow[], labels: number[], weights: number[], wrt: readonly TrainableInput[], targets?: Float32Array): Promise<StepOutput> {
    const session = await this.trainingSession(wrt, targets !== undefined);
    const feeds: Record<string, TensorData> = { ...this.assemble(rows).feeds };
    if (targets) {
      feeds.targets = { type: 'float32', data: targets, dims: [rows.length, targets.length / rows.length] };
    } else {
      feeds.labels = { type: 'int64', data: BigInt64Array.from(labels.map(BigInt)), dims: [rows.length] };
      feeds.example_weight = { type: 'float32', data: Float32Array.from(weights), dims: [rows.length] };
    }
    const out = await session.run(feeds, ['loss', 'scores', ...wrt.map((w) => `grad_${w}`)]);
    const grads: Partial<Record<TrainableInput, Float32Array>> = {};
    for (const w of wrt) grads[w] = out.float32(`grad_${w}`);
    return { loss: out.float32('loss')[0]!, grads, scores: out.float32('scores'), classes: out.dims('scores')[1]! };
  }

  /**
   * Keys and values of each layer for the rows' text, [L,2,B,KV,T,D] flattened
   * per row: returns per row a [L,2,KV,T,D] array over its first `length` tokens.
   */
  async captureKv(ids: number[], length: number): Promise<Float32Array> {
    this.kvSession ??= openSession(buildKvCaptureGraph(this.ckpt, this.family, this.spec).toOnnx(), this.options);
    const session = await this.kvSession;
    const { feeds } = this.assemble([{ inputIds: ids, labelIds: [0] }]);
    const { numLayers: L, numKvHeads: KV, headDim: D } = this.spec;
    const T = ids.length;
    const fetches: string[] = [];
    for (let l = 0; l < L; l++) fetches.push(`kv_${l}_0`, `kv_${l}_1`);
    const out = await session.run(feeds, fetches);
    const P = Math.min(length, T);
    const res = new Float32Array(L * 2 * KV * P * D);
    for (let l = 0; l < L; l++) for (let w = 0; w < 2; w++) {
      const src = out.float32(`kv_${l}_${w}`); // [1,KV,T,D]
      for (let k = 0; k < KV; k++) for (let t = 0; t < P; t++) for (let d = 0; d < D; d++) {
        res[((((l * 2 + w) * KV + k) * P + t) * D) + d] = src[(k * T + t) * D + d]!;
      }
    }
    return res;
  }

  /**
   * Releases the training and kv sessions (and with them onnxruntime's arena,
   * which keeps the peak activation memory of a training step); they are
   * rebuilt on the next use. The forward session stays.
   */
  async releaseTraining(): Promise<void> {
    const sessions = [...this.training.values(), ...(this.kvSession ? [this.kvSession] : [])];
    this.training.clear();
    this.kvSession = null;
    for (const s of sessions) await (await s).release();
  }

  async release(): Promise<void> {
    await this.forwardSession.release();
    for (const s of this.training.values()) await (await s).release();
    if (this.kvSession) await (await this.kvSession).release();
  }
}

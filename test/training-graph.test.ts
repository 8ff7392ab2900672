// Whole-model gradient checks: the training graph (each family's serving
// forward + cross-entropy + autodiff backward, float32 in onnxruntime) against
// central finite differences of the same loss computed by the independent
// float64 reference forward (test/reference/forward.ts). One batch mixes rows
// with a soft prompt, a prefix, both, neither, verbalizer and linear-head
// scoring, mean and last pooling, so every trainable input (soft prompt table,
// prefix table, head weights and bias) gets its gradient through every path.
//
// Tolerance: 2e-3 of the gradient's largest entry. The float64 differences are
// exact to ~1e-9; what remains is float32 rounding in the graph (~1e-5). A
// wrong rule, mask or position is off by far more.

import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

import type { EngineRow } from '../models/batch.ts';
import { TrainableModel, type TrainableInput } from '../models/training-graph.ts';
import { loadReferenceModel, referenceForward, type RefModel, type RefRow } from './reference/forward.ts';
import { mulberry32, randomPrefix, randomSoftPrompt, writeRandomCheckpoint, type RandomCheckpointOptions } from './fixtures/random-checkpoint.ts';

const STORIES = fileURLToPath(new URL('../../shared/models/stories260k', import.meta.url));
const TOLERANCE = 2e-3;
const C = 3;

interface Params {
  soft: Float64Array;   // [P,H]
  prefix: Float64Array; // [L,2,KV,Pk,D]
  headW: Float64Array;  // [C,2H] (pooling mean_last)
  headB: Float64Array;  // [C]
}

interface Example {
  ids: number[];
  scorePosition: number;
  soft: boolean;
  prefix: boolean;
  head: boolean;
  pooling: 'mean' | 'last' | 'mean_last';
  labelIds: number[];
  label: number;
  weight: number;
}

function makeExamples(model: TrainableModel, seed: number, P: number): Example[] {
  const spec = model.spec;
  const V = spec.vocabSize;
  const rand = mulberry32(seed);
  const word = () => 5 + Math.floor(rand() * (V - 6));
  const start = spec.causal ? (spec.bosTokenId !== null ? [spec.bosTokenId] : []) : [];
  const virtual = Array.from({ length: P }, (_, j) => V + j);
  const mk = (n: number, soft: boolean, prefix: boolean, head: boolean, poolMean: boolean): Example => {
    // Head rows read the wide feature [mean ; last] (one head table entry, so its gradient is the parameters' own); verbalizer rows keep their pooling.
    let ids = [...(soft ? virtual : []), ...start, ...Array.from({ length: n }, word)];
    if (!spec.causal && spec.maskTokenId !== null) ids = [...ids, spec.maskTokenId];
    const scorePosition = spec.causal || spec.maskTokenId === null ? ids.length - 1 : ids.length - 1;
    const verbal = spec.hasLmHead && !head;
    return {
      ids, scorePosition, soft, prefix, head: !verbal, pooling: !verbal ? 'mean_last' : poolMean ? 'mean' : 'last',
      labelIds: Array.from({ length: C }, word),
      label: Math.floor(rand() * C), weight: 0.2 + rand(),
    };
  };
  return [
    mk(4, true, false, false, true),
    mk(6, false, true, false, true),
    mk(3, true, true, true, true),
    mk(5, false, true, true, false),
    mk(2, false, false, true, true),
    mk(5, true, true, false, false),
  ];
}

function engineRow(ex: Example, p: Params, spec: TrainableModel['spec'], P: number, Pk: number): EngineRow {
  const row: EngineRow = { inputIds: ex.ids, scorePosition: ex.scorePosition, pooling: ex.pooling };
  if (ex.soft) row.softPrompt = { key: 'soft', length: P, data: Float32Array.from(p.soft) };
  if (ex.prefix) row.prefix = { key: 'prefix', length: Pk, data: Float32Array.from(p.prefix) };
  if (ex.head) row.head = { key: 'head', numClasses: C, weight: Float32Array.from(p.headW), bias: Float32Array.from(p.headB) };
  else row.labelIds = ex.labelIds;
  void spec;
  return row;
}

function refLoss(ref: RefModel, examples: Example[], p: Params): number {
  let loss = 0;
  for (const ex of examples) {
    const row: RefRow = { ids: ex.ids, scorePosition: ex.scorePosition, pooling: ex.pooling };
    if (ex.soft) row.softPrompt = p.soft;
    if (ex.prefix) row.prefix = p.prefix;
    if (ex.head) row.head = { weight: p.headW, bias: p.headB, numClasses: C };
    else row.labelIds = ex.labelIds;
    const s = referenceForward(ref, row).scores;
    let max = -Infinity;
    for (let c = 0; c < C; c++) max = Math.max(max, s[c]!);
    let sum = 0;
    for (let c = 0; c < C; c++) sum += Math.exp(s[c]! - max);
    loss -= ex.weight * (s[ex.label]! - max - Math.log(sum));
  }
  return loss;
}

async function gradientCheck(dir: string, seed: number, opts: { coords?: number } = {}): Promise<{ worst: number; checked: number }> {
  const model = await TrainableModel.load(dir, { intraOpThreads: 1 });
  const ref = loadReferenceModel(dir);
  const spec = model.spec;
  const P = 3;
  const Pk = 2;
  const examples = makeExamples(model, seed, P);
  const rand = mulberry32(seed + 1);
  const params: Params = {
    soft: Float64Array.from(randomSoftPrompt(spec, P, seed + 2)),
    prefix: Float64Array.from(randomPrefix(spec, Pk, seed + 3)),
    headW: Float64Array.from({ length: C * 2 * spec.hiddenSize }, () => rand() - 0.5),
    headB: Float64Array.from({ length: C }, () => rand() - 0.5),
  };
  const wrt: TrainableInput[] = ['soft_prompt_table', 'prefix_table', 'head_table', 'head_bias'];
  const out = await model.step(
    examples.map((ex) => engineRow(ex, params, spec, P, Pk)),
    examples.map((ex) => ex.label), examples.map((ex) => ex.weight), wrt);

  const want = refLoss(ref, examples, params);
  assert.ok(Math.abs(out.loss - want) <= 1e-4 * Math.max(1, Math.abs(want)), `loss ${out.loss} vs reference ${want}`);

  const targets: Array<[TrainableInput, keyof Params]> = [
    ['soft_prompt_table', 'soft'], ['prefix_table', 'prefix'], ['head_table', 'headW'], ['head_bias', 'headB'],
  ];
  let worst = 0;
  let checked = 0;
  for (const [input, key] of targets) {
    const analytic = out.grads[input]!;
    const values = params[key];
    assert.equal(analytic.length, values.length, `${input}: gradient size`);
    let scale = 1e-8;
    for (const a of analytic) scale = Math.max(scale, Math.abs(a));
    const n = Math.min(values.length, opts.coords ?? 24);
    const pick = mulberry32(seed + 7);
    const coords = values.length <= n ? Array.from({ length: values.length }, (_, i) => i)
      : Array.from({ length: n }, () => Math.floor(pick() * values.length));
    for (const i of coords) {
      const x = values[i]!;
      const eps = 1e-5;
      values[i] = x + eps;
      const up = refLoss(ref, examples, params);
      values[i] = x - eps;
      const down = refLoss(ref, examples, params);
      values[i] = x;
      const numeric = (up - down) / (2 * eps);
      const err = Math.abs(numeric - analytic[i]!) / scale;
      worst = Math.max(worst, err);
      checked++;
      assert.ok(err <= TOLERANCE, `${input}[${i}]: graph ${analytic[i]} vs finite difference ${numeric} (error ${err.toExponential(2)} of max |grad| ${scale.toExponential(2)})`);
    }
    assert.ok(scale > 1e-6, `${input}: gradient is all zeros`);
  }
  await model.release();
  return { worst, checked };
}

const CASES: Array<[string, RandomCheckpointOptions]> = [
  ['llama (GQA 4/2)', { family: 'llama', seed: 11, heads: 4, kvHeads: 2 }],
  ['llama (untied head, attention bias)', { family: 'llama', seed: 12, heads: 4, kvHeads: 1, headDim: 8, tieWordEmbeddings: false, attentionBias: true }],
  ['gpt2', { family: 'gpt2', seed: 13 }],
  ['bert', { family: 'bert', seed: 14 }],
  ['roberta', { family: 'roberta', seed: 15 }],
  ['bert without MLM head (linear heads only)', { family: 'bert', seed: 16, mlmHead: false }],
];

describe('training graph gradients against float64 finite differences', () => {
  for (const [name, opts] of CASES) {
    it(name, async (t) => {
      const ckpt = writeRandomCheckpoint(opts);
      try {
        const { worst, checked } = await gradientCheck(ckpt.dir, opts.seed! * 10);
        t.diagnostic(`${checked} coordinates, max error ${worst.toExponential(2)} of the gradient scale`);
      } finally {
        ckpt.cleanup();
      }
    });
  }

  it('stories260k (soft prompt, prefix, head)', async (t) => {
    const { worst, checked } = await gradientCheck(STORIES, 77, { coords: 12 });
    t.diagnostic(`${checked} coordinates, max error ${worst.toExponential(2)} of the gradient scale`);
  });
});

describe('key/value capture for prefix initialisation', () => {
  it('matches the reference cache, so a captured prefix replays the text', async () => {
    const ckpt = writeRandomCheckpoint({ family: 'llama', seed: 21, heads: 4, kvHeads: 2 });
    try {
      const model = await TrainableModel.load(ckpt.dir, { intraOpThreads: 1 });
      const ref = loadReferenceModel(ckpt.dir);
      const ids = [1, 7, 9, 12, 30];
      const kv = await model.captureKv(ids, 3);
      const { numLayers: L, numKvHeads: KV, headDim: D } = model.spec;
      const cache = referenceForward(ref, { ids, labelIds: [5] }).cache; // [L,2,KV,T,D]
      const T = ids.length;
      let worst = 0;
      for (let l = 0; l < L; l++) for (let w = 0; w < 2; w++) for (let k = 0; k < KV; k++) for (let t = 0; t < 3; t++) for (let d = 0; d < D; d++) {
        const got = kv[((((l * 2 + w) * KV + k) * 3 + t) * D) + d]!;
        const want = cache[((((l * 2 + w) * KV + k) * T + t) * D) + d]!;
        worst = Math.max(worst, Math.abs(got - want));
      }
      assert.ok(worst < 1e-4, `kv differs by ${worst}`);
      await model.release();
    } finally {
      ckpt.cleanup();
    }
  });
});

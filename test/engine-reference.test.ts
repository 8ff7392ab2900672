// The ONNX serving graph of every family against the independent float64
// reference (test/reference/forward.ts), on small random checkpoints the tests
// write themselves, with and without soft prompts and prefixes. The graph runs
// all rows as one padded batch; the reference runs each row alone.
//
// Tolerance: 1e-4 absolute (float32 graph vs float64 reference). With hidden
// sizes of 16-32 and 2 layers, float32 rounding accumulates to ~1e-6; 1e-4
// leaves room without hiding a wrong position, mask or prefix (those move
// scores by 1e-2 or more: see the "prompts change the answer" test).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { Engine } from '../models/engine.ts';
import type { EngineRow } from '../models/batch.ts';
import { featureOf } from '../models/pooling.ts';
import { loadReferenceModel, referenceForward, type RefRow } from './reference/forward.ts';
import { mulberry32, randomPrefix, randomSoftPrompt, writeRandomCheckpoint, type RandomCheckpointOptions } from './fixtures/random-checkpoint.ts';

const TOLERANCE = 1e-4;
const STORIES = fileURLToPath(new URL('../../shared/models/stories260k', import.meta.url));

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'length');
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === -Infinity && b[i] === -Infinity) continue;
    worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  }
  return worst;
}

/** Rows covering prompts and prefixes alone and together, heads, pooling, lengths. */
function makeRows(engine: Engine, seed: number): EngineRow[] {
  const spec = engine.spec;
  const V = spec.vocabSize;
  const rand = mulberry32(seed);
  const word = () => 5 + Math.floor(rand() * (V - 5));
  const text = (n: number) => Array.from({ length: n }, word);
  const start = spec.causal ? (spec.bosTokenId !== null ? [spec.bosTokenId] : []) : [];
  const maskRow = (ids: number[]) => (spec.causal || spec.maskTokenId === null ? ids : [...ids, spec.maskTokenId]);
  const virtual = (n: number, from = 0) => Array.from({ length: n }, (_, j) => V + from + j);
  const soft4 = { key: 's4', length: 4, data: randomSoftPrompt(spec, 4, seed + 1) };
  const soft2 = { key: 's2', length: 2, data: randomSoftPrompt(spec, 2, seed + 2) };
  const prefix3 = { key: 'p3', length: 3, data: randomPrefix(spec, 3, seed + 3) };
  const prefix1 = { key: 'p1', length: 1, data: randomPrefix(spec, 1, seed + 4) };
  const head = {
    key: 'h3', numClasses: 3,
    weight: Float32Array.from({ length: 3 * spec.hiddenSize }, () => rand() - 0.5),
    bias: Float32Array.from({ length: 3 }, () => rand() - 0.5),
  };
  const wideHead = {
    key: 'h3w', numClasses: 3,
    weight: Float32Array.from({ length: 3 * 2 * spec.hiddenSize }, () => rand() - 0.5),
    bias: Float32Array.from({ length: 3 }, () => rand() - 0.5),
  };
  const labels = (n: number) => Array.from({ length: n }, word);
  const verbal = spec.hasLmHead;
  const score = (r: Omit<EngineRow, 'labelIds' | 'head'>, n: number): EngineRow =>
    verbal ? { ...r, labelIds: labels(n) } : { ...r, head };
  return [
    score({ inputIds: maskRow([...start, ...text(6)]) }, 2),
    score({ inputIds: maskRow([...virtual(4), ...start, ...text(3)]), softPrompt: soft4 }, 3),
    score({ inputIds: maskRow([...start, ...text(9)]), prefix: prefix3 }, 2),
    score({ inputIds: maskRow([...virtual(2), ...start, ...text(5)]), softPrompt: soft2, prefix: prefix1 }, 4),
    { inputIds: maskRow([...virtual(2), ...start, ...text(4), ...virtual(2, 2)]), softPrompt: soft4, head, pooling: 'mean' },
    { inputIds: maskRow([...start, ...text(2)]), prefix: prefix3, head, pooling: 'last' },
    // The same head weights under another pooling are another table entry; a mean_last head reads both halves.
    { inputIds: maskRow([...start, ...text(5)]), head, pooling: 'mean' },
    { inputIds: maskRow([...virtual(2), ...start, ...text(7)]), softPrompt: soft2, head: wideHead, pooling: 'mean_last' },
    score({ inputIds: maskRow([...start, ...text(1)]) }, 1),
  ];
}

function toRefRow(row: EngineRow, engine: Engine): RefRow {
  // The engine's pooled output is always the wide feature [mean ; last]: ask the reference for the same.
  const ref: RefRow = { ids: row.inputIds, pooling: row.pooling ?? 'mean' };
  if (row.softPrompt) { ref.softPrompt = row.softPrompt.data; ref.softPromptLength = row.softPrompt.length; }
  if (row.prefix) { ref.prefix = row.prefix.data; ref.prefixLength = row.prefix.length; }
  if (row.head) ref.head = { weight: row.head.weight, bias: row.head.bias, numClasses: row.head.numClasses };
  else ref.labelIds = row.labelIds!;
  if (!engine.spec.causal) {
    const m = engine.spec.maskTokenId === null ? -1 : row.inputIds.indexOf(engine.spec.maskTokenId);
    ref.scorePosition = m >= 0 ? m : 0;
  }
  return ref;
}

async function checkAgainstReference(dir: string, seed: number): Promise<number> {
  const engine = await Engine.load(dir);
  const ref = loadReferenceModel(dir);
  const rows = makeRows(engine, seed);
  const got = await engine.run(rows);
  let worst = 0;
  rows.forEach((row, b) => {
    const want = referenceForward(ref, toRefRow(row, engine));
    const wide = referenceForward(ref, { ...toRefRow(row, engine), pooling: 'mean_last', head: undefined, labelIds: undefined });
    const ds = maxAbsDiff(got[b]!.scores, want.scores.subarray(0, got[b]!.scores.length));
    const dp = Math.max(maxAbsDiff(got[b]!.pooled, wide.pooled), maxAbsDiff(featureOf(got[b]!.pooled, 0, row.pooling ?? 'mean', engine.spec.hiddenSize), want.pooled));
    assert.ok(ds <= TOLERANCE, `row ${b}: scores differ by ${ds}`);
    assert.ok(dp <= TOLERANCE, `row ${b}: pooled differs by ${dp}`);
    worst = Math.max(worst, ds, dp);
  });
  await engine.release();
  return worst;
}

const CASES: Array<[string, RandomCheckpointOptions]> = [
  ['llama, GQA 4/2, tied head', { family: 'llama', seed: 1, heads: 4, kvHeads: 2 }],
  ['llama, untied head, attention bias, explicit head_dim', { family: 'llama', seed: 2, heads: 4, kvHeads: 1, headDim: 8, tieWordEmbeddings: false, attentionBias: true }],
  ['gpt2', { family: 'gpt2', seed: 3 }],
  ['gpt2 with transformer. prefix', { family: 'gpt2', seed: 4, basePrefix: true }],
  ['bert', { family: 'bert', seed: 5 }],
  ['bert without MLM head (linear heads only)', { family: 'bert', seed: 6, mlmHead: false }],
  ['roberta', { family: 'roberta', seed: 7 }],
  ['llama, F16 weights', { family: 'llama', seed: 8, dtype: 'F16' }],
  ['bert, BF16 weights, sharded', { family: 'bert', seed: 9, dtype: 'BF16', sharded: true }],
  ['gpt2, sharded', { family: 'gpt2', seed: 10, sharded: true }],
];

for (const [name, opts] of CASES) {
  test(`graph matches the float64 reference: ${name}`, async (t) => {
    const ckpt = writeRandomCheckpoint(opts);
    try {
      const worst = await checkAgainstReference(ckpt.dir, opts.seed! * 100);
      t.diagnostic(`max abs error ${worst.toExponential(2)}`);
      assert.ok(worst > 0, 'identical to the last bit is suspicious: is the reference really independent?');
    } finally {
      ckpt.cleanup();
    }
  });
}

test('graph matches the float64 reference: stories260k', async (t) => {
  t.diagnostic(`max abs error ${(await checkAgainstReference(STORIES, 42)).toExponential(2)}`);
});

// The trainer's semantics on stories260k with tiny runs: a seed makes a run
// reproducible (and another seed changes it), each initialisation does what it
// says, every method and encoder trains and returns tensors of the serving
// shapes, cancellation stops between steps, early stopping keeps the best
// prompt, and a linear head trained on standardised features is folded back
// so that serving (raw pooled features) scores exactly as training did.

import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

import { TrainableModel } from '../models/training-graph.ts';
import type { Example } from '../prompts/training/data.ts';
import { parseTrainingOptions } from '../prompts/training/options.ts';
import { evaluatePrompt, trainEnsemble, trainPrompt, type TaskSpec } from '../prompts/training/trainer.ts';
import { labelTokenId } from '../prompts/template.ts';

const STORIES = fileURLToPath(new URL('../../shared/models/stories260k', import.meta.url));
const VERBAL: TaskSpec = { labels: ['negative', 'positive'], template: '{text} It was', scoring: { type: 'verbalizer', labelWords: [' sad', ' happy'] } };
const HEAD: TaskSpec = { labels: ['negative', 'positive'], template: '{text}', scoring: { type: 'head', pooling: 'mean' } };
const headTask = (pooling: 'mean' | 'last' | 'mean_last'): TaskSpec => ({ ...HEAD, scoring: { type: 'head', pooling } });
const TEXTS: Array<[string, number]> = [
  ['the girl smiled and laughed', 1], ['they played in the sun', 1], ['the dog was happy', 1], ['mom gave her a cake', 1],
  ['he found a new toy', 1], ['the bird sang a song', 1], ['the boy cried all night', 0], ['she lost her doll', 0],
  ['the storm broke the house', 0], ['tim was angry and sad', 0], ['the cat was sick', 0], ['nobody came to play', 0],
];
const EXAMPLES: Example[] = TEXTS.map(([text, label]) => ({ text, label }));

let model: TrainableModel;
before(async () => { model = await TrainableModel.load(STORIES, { intraOpThreads: 1 }); });
after(async () => { await model.release(); });

const opts = (o: Record<string, unknown>) => parseTrainingOptions({ num_virtual_tokens: 4, epochs: 2, batch_size: 4, held_out_fraction: 0, ...o });

describe('trainer', () => {
  it('is reproducible for a seed, and another seed gives another prompt', async () => {
    const a = await trainPrompt(model, VERBAL, EXAMPLES, [], opts({ seed: 3 }));
    const b = await trainPrompt(model, VERBAL, EXAMPLES, [], opts({ seed: 3 }));
    const c = await trainPrompt(model, VERBAL, EXAMPLES, [], opts({ seed: 4 }));
    assert.deepEqual(Array.from(a.tensors.data), Array.from(b.tensors.data));
    assert.notDeepEqual(Array.from(a.tensors.data), Array.from(c.tensors.data));
    assert.equal(a.steps, 6);
    assert.equal(a.tensors.kind, 'soft');
    assert.equal(a.tensors.data.length, 4 * model.spec.hiddenSize);
  });

  it('initialises: label words first, sampled vocabulary, random at the embeddings scale', async () => {
    const H = model.spec.hiddenSize;
    const E = model.embeddings();
    const zeroSteps = { epochs: 1, max_steps: 1, learning_rate: 1e-7, warmup_ratio: 0 };
    const lw = await trainPrompt(model, VERBAL, EXAMPLES, [], opts({ init: 'label_words', ...zeroSteps }));
    const ids = [' sad', ' happy'].map((w) => labelTokenId(w, model.tokenizer));
    ids.forEach((id, j) => {
      for (let h = 0; h < H; h++) assert.ok(Math.abs(lw.tensors.data[j * H + h]! - E[id * H + h]!) < 1e-5, `row ${j} is label word ${id}`);
    });
    const rowIsEmbedding = (data: Float32Array, j: number) => {
      for (let id = 0; id < model.spec.vocabSize; id++) {
        let d = 0;
        for (let h = 0; h < H; h++) d = Math.max(d, Math.abs(data[j * H + h]! - E[id * H + h]!));
        if (d < 1e-5) return true;
      }
      return false;
    };
    const vocab = await trainPrompt(model, VERBAL, EXAMPLES, [], opts({ init: 'vocab', ...zeroSteps }));
    for (let j = 0; j < 4; j++) assert.ok(rowIsEmbedding(vocab.tensors.data, j), `vocab row ${j} is a token embedding`);
    const random = await trainPrompt(model, VERBAL, EXAMPLES, [], opts({ init: 'random', ...zeroSteps }));
    assert.ok(!rowIsEmbedding(random.tensors.data, 0));
    let sq = 0;
    for (const x of random.tensors.data) sq += x * x;
    const rms = Math.sqrt(sq / random.tensors.data.length);
    assert.ok(rms > 0.15 && rms < 0.6, `random init at the embeddings' scale (0.31), got ${rms}`);
  });

  it('trains every method and encoder into tensors of the serving shapes', async () => {
    const { numLayers: L, numKvHeads: KV, headDim: D, hiddenSize: H } = model.spec;
    const cases: Array<[TaskSpec, Record<string, unknown>, string, number]> = [
      [VERBAL, { method: 'p_tuning', encoder: 'mlp', encoder_hidden: 8 }, 'ptuning', 4 * H],
      [VERBAL, { method: 'p_tuning', encoder: 'lstm', encoder_hidden: 8 }, 'ptuning', 4 * H],
      [VERBAL, { method: 'prefix_tuning', num_virtual_tokens: 2 }, 'prefix', L * 2 * KV * 2 * D],
      [HEAD, { method: 'prefix_tuning', num_virtual_tokens: 2, encoder: 'mlp', encoder_hidden: 8, init: 'label_words' }, 'prefix', L * 2 * KV * 2 * D],
      [HEAD, { method: 'prompt_tuning', init: 'random' }, 'soft', 4 * H],
      [HEAD, { method: 'linear_head', num_virtual_tokens: 1 }, 'soft', H],
      [headTask('last'), { method: 'prefix_tuning', num_virtual_tokens: 2 }, 'prefix', L * 2 * KV * 2 * D],
      [headTask('mean_last'), { method: 'prefix_tuning', num_virtual_tokens: 2 }, 'prefix', L * 2 * KV * 2 * D],
      [headTask('mean_last'), { method: 'linear_head', num_virtual_tokens: 1 }, 'soft', H],
    ];
    for (const [task, o, kind, size] of cases) {
      const r = await trainPrompt(model, task, EXAMPLES, [], opts(o));
      assert.equal(r.tensors.kind, kind, JSON.stringify(o));
      assert.equal(r.tensors.data.length, size, JSON.stringify(o));
      assert.equal(!!r.tensors.head, task.scoring.type === 'head', JSON.stringify(o));
      if (task.scoring.type === 'head') assert.equal(r.tensors.head!.weight.length, 2 * (task.scoring.pooling === 'mean_last' ? 2 * H : H), `${task.scoring.pooling}: head weight [C, F]`);
      assert.ok(r.tensors.data.every(Number.isFinite));
    }
    await assert.rejects(trainPrompt(model, VERBAL, EXAMPLES, [], opts({ method: 'linear_head', num_virtual_tokens: 1 })), /must score with one/);
  });

  it('folds the standardised head back: serving on raw features reproduces the trained head (exact and Adam; every pooling)', async () => {
    for (const pooling of ['mean', 'last', 'mean_last'] as const) for (const solver of ['lbfgs', 'adam']) {
    const task = headTask(pooling);
    const r = await trainPrompt(model, task, EXAMPLES, EXAMPLES.slice(0, 6), opts({ method: 'linear_head', solver, num_virtual_tokens: 1, epochs: 20, patience: 0, batch_size: 12 }));
    assert.ok(r.heldOut, 'held-out evaluated');
    if (solver === 'lbfgs') assert.ok(r.probe && r.probe.grid.every((p) => p.converged), 'every λ of the grid converged');
    // The trainer measured held-out accuracy on standardised features in TypeScript;
    // the serving graph on the folded head must agree exactly.
    const ev = await evaluatePrompt(model, task, EXAMPLES.slice(0, 6), r.tensors, 128);
    assert.equal(ev.accuracy, r.heldOut.accuracy, `${pooling}, ${solver}`);
    assert.ok(Math.abs(ev.loss - r.heldOut.loss) < 1e-4, `${pooling}, ${solver}: loss ${ev.loss} vs ${r.heldOut.loss}`);
    if (pooling !== 'last') assert.ok(r.heldOut.accuracy >= 5 / 6, `${pooling}, ${solver}: a head separates these easily: ${r.heldOut.accuracy}`);
    }
  });

  it('stops between steps when cancelled, and early when held-out accuracy stops improving', async () => {
    let polled = 0;
    const cancelled = await trainPrompt(model, VERBAL, EXAMPLES, [], opts({ epochs: 50 }), { shouldStop: () => ++polled > 3 });
    assert.equal(cancelled.cancelled, true);
    assert.equal(cancelled.steps, 3);
    const early = await trainPrompt(model, VERBAL, EXAMPLES, EXAMPLES.slice(0, 4), opts({ epochs: 100, learning_rate: 1e-7, eval_every: 1, patience: 2, warmup_ratio: 0 }));
    assert.equal(early.stoppedEarly, true);
    assert.equal(early.steps, 2, 'a learning rate too small to change anything: two evaluations without a better one');
    assert.equal(early.bestStep, 0);
    assert.equal(early.history.length, 3);
  });

  it('trains an ensemble: seeds seed..seed+N-1, inits cycled', async () => {
    const r = await trainEnsemble(model, VERBAL, EXAMPLES, [], opts({ ensemble_size: 3, seed: 10, ensemble_inits: ['label_words', 'random'], epochs: 1 }));
    assert.deepEqual(r.members.map((m) => [m.seed, m.init]), [[10, 'label_words'], [11, 'random'], [12, 'label_words']]);
  });
});

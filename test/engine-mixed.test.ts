// A heterogeneous batch gives every row what that row gets alone: different
// soft prompts, prefixes, both, neither, lengths, label sets, linear heads and
// pooling, padded together. Run on the real stories260k checkpoint.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { Engine } from '../models/engine.ts';
import type { EngineRow } from '../models/batch.ts';
import { mulberry32 as rng } from './fixtures/random-checkpoint.ts';

const STORIES = fileURLToPath(new URL('../../shared/models/stories260k', import.meta.url));

function randomArray(n: number, rand: () => number, scale: number): Float32Array {
  return Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
}

test('mixed batch: each row scores as it does alone (≤ 1e-5)', async () => {
  const engine = await Engine.load(STORIES);
  const { hiddenSize: H, numLayers: L, numKvHeads: KV, headDim: D, vocabSize: V } = engine.spec;
  const rand = rng(7);
  const soft = (key: string, length: number) => ({ key, length, data: randomArray(length * H, rand, 0.5) });
  const prefix = (key: string, length: number) => ({ key, length, data: randomArray(L * 2 * KV * length * D, rand, 1) });
  const s3 = soft('s3', 3);
  const s7 = soft('s7', 7);
  const p2 = prefix('p2', 2);
  const p5 = prefix('p5', 5);
  const head = { key: 'h4', numClasses: 4, weight: randomArray(4 * H, rand, 0.3), bias: randomArray(4, rand, 0.1) };
  const text = (n: number) => [1, ...Array.from({ length: n }, () => 3 + Math.floor(rand() * (V - 3)))];
  const virtual = (n: number) => Array.from({ length: n }, (_, j) => V + j);

  const rows: EngineRow[] = [
    { inputIds: text(5), labelIds: [10, 20] },
    { inputIds: [...virtual(3), ...text(9)], softPrompt: s3, labelIds: [30, 40, 50] },
    { inputIds: text(12), prefix: p5, labelIds: [60, 70] },
    { inputIds: [...virtual(7), ...text(2)], softPrompt: s7, prefix: p2, labelIds: [80, 90, 100, 110, 120] },
    // P-tuning style: virtual tokens before and after the text
    { inputIds: [...virtual(2), ...text(4), V + 2], softPrompt: s3, head, pooling: 'mean' },
    { inputIds: text(1), prefix: p2, head, pooling: 'last' },
    { inputIds: [...virtual(3), ...text(15)], softPrompt: s3, prefix: p5, labelIds: [5] },
    { inputIds: text(20), labelIds: [200, 300, 400], pooling: 'last' },
  ];
  const together = await engine.run(rows);
  for (let b = 0; b < rows.length; b++) {
    const [alone] = await engine.run([rows[b]!]);
    assert.equal(together[b]!.scores.length, alone!.scores.length, `row ${b} class count`);
    for (const [name, got, want] of [['scores', together[b]!.scores, alone!.scores], ['pooled', together[b]!.pooled, alone!.pooled]] as const) {
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
      assert.ok(worst <= 1e-5, `row ${b} ${name}: max abs difference ${worst}`);
    }
  }
  // The same rows in reverse order: position in the batch does not matter either.
  const reversed = await engine.run([...rows].reverse());
  reversed.reverse().forEach((r, b) => {
    r.scores.forEach((s, i) => assert.ok(Math.abs(s - together[b]!.scores[i]!) <= 1e-5, `row ${b} reversed`));
  });
  await engine.release();
});

test('prompts change the answer: a soft prompt and a prefix move the scores', async () => {
  const engine = await Engine.load(STORIES);
  const { hiddenSize: H, numLayers: L, numKvHeads: KV, headDim: D, vocabSize: V } = engine.spec;
  const rand = rng(11);
  const ids = [1, 100, 200, 300];
  const labels = [10, 20, 30];
  const [plain, withSoft, withPrefix] = await engine.run([
    { inputIds: ids, labelIds: labels },
    { inputIds: [V, V + 1, ...ids], softPrompt: { key: 's', length: 2, data: randomArray(2 * H, rand, 1) }, labelIds: labels },
    { inputIds: ids, prefix: { key: 'p', length: 3, data: randomArray(L * 2 * KV * 3 * D, rand, 1) }, labelIds: labels },
  ]);
  const differs = (a: Float32Array, b: Float32Array) => a.some((x, i) => Math.abs(x - b[i]!) > 1e-3);
  assert.ok(differs(plain!.scores, withSoft!.scores), 'soft prompt had no effect');
  assert.ok(differs(plain!.scores, withPrefix!.scores), 'prefix had no effect');
  await engine.release();
});

test('greedy decoding from BOS tells a TinyStories story', async () => {
  const engine = await Engine.load(STORIES);
  const ids = await engine.greedy([engine.spec.bosTokenId!], 30);
  const text = engine.tokenizer.decode(ids);
  assert.match(text, /^Once upon a time, there was a little girl named Lily\./);
  await engine.release();
});

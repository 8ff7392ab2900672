// The inference worker as a backend: rows cross to its thread packed (each
// prompt tensor once per batch, the caller's arrays left intact), are
// assembled there, and score exactly as the in-process engine scores them; a
// request whose row cannot be assembled fails alone. Real stories260k, real
// worker thread.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../models/engine.ts';
import type { EngineRow } from '../models/batch.ts';
import { InferenceWorker } from '../server/inference/client.ts';
import { packRows, unpackRows } from '../server/inference/rows-wire.ts';
import { mulberry32 as rng } from './fixtures/random-checkpoint.ts';
import { STORIES_DIR } from './serving-helpers.ts';

test('rows are packed with each prompt once and unpacked as they were', () => {
  const soft = { key: 's', length: 2, data: new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]).subarray(0, 4) };
  const rows: EngineRow[] = [
    { inputIds: [1, 100, 101, 7], softPrompt: soft, labelIds: [3, 4] },
    { inputIds: [1, 100, 101, 8, 9], softPrompt: soft, labelIds: [3, 4], pooling: 'last', scorePosition: 2 },
    { inputIds: [1, 2.5], labelIds: [] },
  ];
  const { packed, transfer } = packRows({ rows, groups: [0, 0, 1] });
  assert.equal(packed.softPrompts.length, 1, 'a prompt shared by rows travels once');
  assert.equal(packed.softPrompts[0]!.data.buffer.byteLength, 4 * 4, 'only the view is copied, not the buffer behind it');
  assert.ok(transfer.every((b) => b !== soft.data.buffer), "the caller's prompt buffer is not transferred");
  const back = unpackRows(structuredClone(packed, { transfer }));
  assert.deepEqual(back.groups, [0, 0, 1]);
  assert.deepEqual(back.rows.map((r) => ({ ...r, softPrompt: r.softPrompt && { ...r.softPrompt, data: [...r.softPrompt.data] } })),
    rows.map((r) => {
      const { labelIds, ...rest } = r;
      return { ...rest, ...(labelIds && labelIds.length > 0 ? { labelIds } : {}), softPrompt: r.softPrompt && { ...r.softPrompt, data: [...r.softPrompt.data] } };
    }));
  assert.equal(back.rows[0]!.softPrompt, back.rows[1]!.softPrompt, 'rows with one key share one tensor again');
  assert.equal(soft.data.length, 4, "the caller's prompt is still usable");
});

test('the worker assembles and runs rows as the engine does; a bad request fails alone', async () => {
  const engine = await Engine.load(STORIES_DIR);
  const worker = new InferenceWorker({ modelDir: STORIES_DIR, executionProvider: 'cpu', intraOpThreads: 1 });
  try {
    await worker.ready;
    assert.equal(worker.capacity, 1);
    const { hiddenSize: H, vocabSize: V } = engine.spec;
    const rand = rng(3);
    const soft = { key: 'p', length: 3, data: Float32Array.from({ length: 3 * H }, () => rand() - 0.5) };
    const text = (n: number) => [1, ...Array.from({ length: n }, () => 3 + Math.floor(rand() * (V - 3)))];
    const good: EngineRow[] = [
      { inputIds: [V, V + 1, V + 2, ...text(6)], softPrompt: soft, labelIds: [10, 20] },
      { inputIds: text(4), labelIds: [30, 40, 50] },
      { inputIds: [V, V + 1, V + 2, ...text(9)], softPrompt: soft, labelIds: [5, 6] },
    ];
    const bad: EngineRow = { inputIds: [1, V + 50], labelIds: [1, 2] }; // a virtual token with no prompt
    const out = await worker.run({ rows: [good[0]!, bad, good[1]!, good[2]!], groups: [0, 1, 2, 0] });
    assert.deepEqual(out.ran, [0, 2, 3]);
    assert.equal(out.failed.length, 1);
    assert.equal(out.failed[0]!.group, 1);
    assert.equal((out.failed[0]!.error as { code?: string }).code, 'ENGINE_INPUT_INVALID');
    assert.equal(soft.data.length, 3 * H, "the caller's prompt was not detached");
    const alone = await engine.run(good);
    alone.forEach((r, b) => {
      const scores = out.scores.subarray(b * out.classes, b * out.classes + out.numClasses[b]!);
      assert.equal(scores.length, r.scores.length);
      r.scores.forEach((s, c) => assert.ok(Math.abs(s - scores[c]!) <= 1e-5, `row ${b} class ${c}: ${s} vs ${scores[c]}`));
    });
    const none = await worker.run({ rows: [bad], groups: [7] });
    assert.deepEqual(none.ran, []);
    assert.deepEqual(none.failed.map((f) => f.group), [7]);
  } finally {
    await worker.close();
    await engine.release();
  }
});

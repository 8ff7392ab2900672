// The scheduler's cost model for a forward pass (server/batch-cost.ts), against
// costs made up for the test.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchCostModel } from '../server/batch-cost.ts';

const close = (actual: number, expected: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= 1e-6 * Math.max(1, Math.abs(expected)), `${what}: ${actual}, expected ${expected}`);

test('fits a fixed and a per-token cost from batches of different sizes', () => {
  const m = new BatchCostModel();
  assert.equal(m.tokensFor(10), Infinity, 'nothing measured: no bound');
  for (const tokens of [64, 512, 128, 2048, 300]) m.observe(tokens, 5 + 0.01 * tokens);
  const fit = m.fit();
  close(fit.fixedMs, 5, 'fixed');
  close(fit.msPerToken, 0.01, 'per token');
  close(m.tokensFor(10), 500, 'a 10 ms target: 5 ms of tokens');
  close(m.tokensFor(4), 500, 'a target under the fixed cost: where the fixed cost is half the pass');
});

test('recent batches weigh more: the fit follows a machine that slows down', () => {
  const m = new BatchCostModel(0.5);
  for (const tokens of [64, 512, 128, 2048]) m.observe(tokens, 1 + 0.01 * tokens);
  for (let i = 0; i < 40; i++) m.observe([64, 512, 128, 2048][i % 4]!, 1 + 0.02 * [64, 512, 128, 2048][i % 4]!);
  assert.ok(Math.abs(m.fit().msPerToken - 0.02) < 1e-4, JSON.stringify(m.fit()));
});

test('batches of one size, or a fit that is not a cost, fall back to a plain rate', () => {
  const same = new BatchCostModel();
  for (let i = 0; i < 5; i++) same.observe(256, 8);
  assert.deepEqual(same.fit(), { fixedMs: 0, msPerToken: 8 / 256 });
  const falling = new BatchCostModel();
  falling.observe(100, 10);
  falling.observe(1000, 5); // bigger and quicker: noise, not a cost
  const f = falling.fit();
  assert.equal(f.fixedMs, 0);
  close(f.msPerToken, (0.95 * 10 + 5) / (0.95 * 100 + 1000), 'the weighted rate');
  const ignored = new BatchCostModel();
  ignored.observe(0, 5);
  ignored.observe(Number.NaN, 5);
  assert.equal(ignored.measured, false, 'an empty or bad batch is not a measure');
});

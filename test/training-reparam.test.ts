// The trainer's hand-written pieces: each prompt encoder's backward pass
// (P-tuning MLP and LSTM, prefix MLP) against central finite differences in
// float64, and the optimiser (AdamW, clipping, warm-up schedule).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { AdamW, clipGradNorm, learningRate, param, zeroGrads } from '../prompts/training/optim.ts';
import { LstmEncoder, MlpEncoder, PrefixMlpEncoder, type PromptEncoder } from '../prompts/training/reparam.ts';
import { mulberry32, normal } from '../prompts/training/rng.ts';

/** Makes the zero-initialised last layers non-zero so every parameter gets a gradient. */
function perturb(enc: PromptEncoder, seed: number): void {
  const n = normal(mulberry32(seed));
  for (const p of enc.params) for (let i = 0; i < p.data.length; i++) p.data[i]! += 0.3 * n();
}

function checkEncoder(enc: PromptEncoder, seed: number): number {
  const out0 = enc.forward();
  const n = normal(mulberry32(seed));
  const r = Float64Array.from({ length: out0.length }, () => n());
  const f = () => {
    const y = enc.forward();
    let s = 0;
    for (let i = 0; i < y.length; i++) s += r[i]! * y[i]!;
    return s;
  };
  zeroGrads(enc.params);
  enc.forward();
  enc.backward(r);
  let worst = 0;
  const pick = mulberry32(seed + 1);
  for (const p of enc.params) {
    let scale = 1e-12;
    for (const g of p.grad) scale = Math.max(scale, Math.abs(g));
    const coords = p.data.length <= 20 ? Array.from({ length: p.data.length }, (_, i) => i) : Array.from({ length: 20 }, () => Math.floor(pick() * p.data.length));
    for (const i of coords) {
      const x = p.data[i]!;
      const eps = 1e-6;
      p.data[i] = x + eps;
      const up = f();
      p.data[i] = x - eps;
      const down = f();
      p.data[i] = x;
      const numeric = (up - down) / (2 * eps);
      const err = Math.abs(numeric - p.grad[i]!) / scale;
      worst = Math.max(worst, err);
      assert.ok(err < 1e-6, `${p.name}[${i}]: backward ${p.grad[i]} vs finite difference ${numeric}`);
    }
    assert.ok(scale > 1e-9, `${p.name}: no gradient`);
  }
  return worst;
}

describe('prompt encoders: backward against finite differences', () => {
  const P = 4;
  const H = 6;
  const init = () => Float64Array.from({ length: P * H }, (_, i) => Math.sin(i + 1));

  it('MLP (P-tuning) starts at its initialisation and backpropagates exactly', (t) => {
    const enc = new MlpEncoder(init(), P, H, 5, mulberry32(1));
    assert.deepEqual(Array.from(enc.forward()), Array.from(init()), 'zero last layer: output = init');
    perturb(enc, 2);
    t.diagnostic(`max error ${checkEncoder(enc, 3).toExponential(2)}`);
  });

  it('LSTM (P-tuning, bidirectional) starts at its initialisation and backpropagates exactly', (t) => {
    const enc = new LstmEncoder(init(), P, H, 3, mulberry32(4));
    assert.deepEqual(Array.from(enc.forward()), Array.from(init()));
    perturb(enc, 5);
    t.diagnostic(`max error ${checkEncoder(enc, 6).toExponential(2)}`);
  });

  it('prefix MLP maps [Pk, L*2*KV*D] onto [L,2,KV,Pk,D] and backpropagates exactly', (t) => {
    const dims = { numLayers: 2, numKvHeads: 2, headDim: 3 };
    const Pk = 3;
    const base = Float64Array.from({ length: 2 * 2 * 2 * Pk * 3 }, (_, i) => i / 10);
    const enc = new PrefixMlpEncoder(base, Pk, dims, 4, 5, mulberry32(7));
    assert.deepEqual(Array.from(enc.forward()), Array.from(base));
    // Last-layer bias j = j: MLP row p, column (l,w,k,d) must land at [l,w,k,p,d].
    const lastBias = enc.params[enc.params.length - 1]!;
    lastBias.data.forEach((_, j) => { lastBias.data[j] = j; });
    const out = enc.forward();
    for (let lwk = 0; lwk < 4; lwk++) for (let p = 0; p < Pk; p++) for (let d = 0; d < 3; d++) {
      const at = (lwk * Pk + p) * 3 + d;
      assert.equal(out[at], base[at]! + lwk * 3 + d);
    }
    perturb(enc, 8);
    t.diagnostic(`max error ${checkEncoder(enc, 9).toExponential(2)}`);
  });
});

describe('optimiser', () => {
  it('AdamW minimises a quadratic; weight decay applies only to decayed params', () => {
    const a = param('a', Float64Array.from([3, -2]), false);
    const b = param('b', Float64Array.from([1]), true);
    const opt = new AdamW([a, b], { weightDecay: 0.5 });
    for (let s = 0; s < 500; s++) {
      zeroGrads([a, b]);
      for (let i = 0; i < 2; i++) a.grad[i] = 2 * (a.data[i]! - 1);
      b.grad[0] = 0;
      opt.step(0.05);
    }
    assert.ok(Math.abs(a.data[0]! - 1) < 1e-2 && Math.abs(a.data[1]! - 1) < 1e-2, `a = ${Array.from(a.data)}`);
    assert.ok(b.data[0]! < 0.01, `b decays towards 0: ${b.data[0]}`);
  });

  it('clips the global gradient norm', () => {
    const a = param('a', new Float64Array(2), false);
    a.grad.set([3, 4]);
    assert.equal(clipGradNorm([a], 1), 5);
    assert.ok(Math.abs(Math.hypot(a.grad[0]!, a.grad[1]!) - 1) < 1e-9);
  });

  it('warms up linearly, then decays to zero (or stays constant)', () => {
    assert.equal(learningRate(0, 100, 1, 10, 'linear'), 0.1);
    assert.equal(learningRate(9, 100, 1, 10, 'linear'), 1);
    assert.ok(Math.abs(learningRate(55, 100, 1, 10, 'linear') - 0.5) < 1e-9);
    assert.equal(learningRate(100, 100, 1, 10, 'linear'), 0);
    assert.equal(learningRate(80, 100, 1, 10, 'constant'), 1);
  });
});

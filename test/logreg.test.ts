// The exact probe (prompts/training/logreg.ts) reaches the optimum of its
// convex problem: at the L-BFGS solution, the gradient of the regularised
// cross-entropy, computed here independently (plain nested arrays, a direct
// formula and central finite differences of a separately written objective),
// is ~0, and no small step in any coordinate lowers the objective.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { fitLogReg, fitWithGrid, oneHot, type LogRegData } from '../prompts/training/logreg.ts';
import { mulberry32, normal } from '../prompts/training/rng.ts';

/** n points in H dims, C classes, overlapping Gaussian clusters (not separable: the optimum is finite even at tiny λ). */
function synthetic(n: number, H: number, C: number, seed: number): { x: number[][]; y: number[] } {
  const rng = mulberry32(seed);
  const gauss = normal(rng);
  const centres = Array.from({ length: C }, () => Array.from({ length: H }, () => gauss()));
  const x: number[][] = [];
  const y: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = Math.floor(rng() * C);
    y.push(c);
    x.push(centres[c]!.map((m) => 0.8 * m + 1.2 * gauss()));
  }
  return { x, y };
}

function asData(x: number[][], y: number[], C: number): LogRegData {
  const H = x[0]!.length;
  return { x: Float64Array.from(x.flat()), q: oneHot(y, C), n: x.length, H, C };
}

/** The objective, written independently: W[c][k], b[c] from θ = [W row-major, b]. */
function plainObjective(x: number[][], y: number[], C: number, lambda: number, theta: ArrayLike<number>): number {
  const H = x[0]!.length;
  const W = (c: number, k: number) => theta[c * H + k]!;
  const b = (c: number) => theta[C * H + c]!;
  let total = 0;
  x.forEach((xi, i) => {
    const s = Array.from({ length: C }, (_, c) => b(c) + xi.reduce((a, v, k) => a + W(c, k) * v, 0));
    const m = Math.max(...s);
    const logZ = m + Math.log(s.reduce((a, v) => a + Math.exp(v - m), 0));
    total += logZ - s[y[i]!]!;
  });
  let reg = 0;
  for (let j = 0; j < C * H; j++) reg += theta[j]! * theta[j]!;
  return total / x.length + 0.5 * lambda * reg;
}

/** The gradient by its formula: (1/n) Σ (p_i - onehot_i) [x_i, 1] + λ [W, 0]. */
function plainGradient(x: number[][], y: number[], C: number, lambda: number, theta: ArrayLike<number>): number[] {
  const H = x[0]!.length;
  const g = new Array<number>(C * H + C).fill(0);
  x.forEach((xi, i) => {
    const s = Array.from({ length: C }, (_, c) => theta[C * H + c]! + xi.reduce((a, v, k) => a + theta[c * H + k]! * v, 0));
    const m = Math.max(...s);
    const e = s.map((v) => Math.exp(v - m));
    const z = e.reduce((a, v) => a + v, 0);
    for (let c = 0; c < C; c++) {
      const r = (e[c]! / z - (c === y[i] ? 1 : 0)) / x.length;
      for (let k = 0; k < H; k++) g[c * H + k]! += r * xi[k]!;
      g[C * H + c]! += r;
    }
  });
  for (let j = 0; j < C * H; j++) g[j]! += lambda * theta[j]!;
  return g;
}

test('the L-BFGS solution is the optimum: independent gradient and finite differences ≈ 0', () => {
  const C = 3, H = 6;
  const { x, y } = synthetic(240, H, C, 7);
  for (const lambda of [1e-3, 0.1]) {
    const fit = fitLogReg(asData(x, y, C), lambda);
    assert.ok(fit.converged, `λ=${lambda}: not converged after ${fit.iterations} iterations (|g|max ${fit.gradMax})`);
    const theta = Array.from(fit.theta);
    // The formula.
    const g = plainGradient(x, y, C, lambda, theta);
    const gmax = Math.max(...g.map(Math.abs));
    assert.ok(gmax < 1e-6, `λ=${lambda}: gradient by formula ${gmax}`);
    // Central differences of the separately written objective, every coordinate.
    const f0 = plainObjective(x, y, C, lambda, theta);
    assert.ok(Math.abs(f0 - fit.value) < 1e-9, `objective ${f0} vs the solver's ${fit.value}`);
    const h = 1e-5;
    for (let j = 0; j < theta.length; j++) {
      const plus = theta.slice(); plus[j]! += h;
      const minus = theta.slice(); minus[j]! -= h;
      const fp = plainObjective(x, y, C, lambda, plus);
      const fm = plainObjective(x, y, C, lambda, minus);
      assert.ok(Math.abs((fp - fm) / (2 * h)) < 1e-5, `λ=${lambda}: ∂f/∂θ${j} ≈ ${(fp - fm) / (2 * h)}`);
      // A minimum: no step of a larger size lowers it either.
      const big = 1e-3;
      const up = theta.slice(); up[j]! += big;
      const down = theta.slice(); down[j]! -= big;
      assert.ok(plainObjective(x, y, C, lambda, up) >= f0 && plainObjective(x, y, C, lambda, down) >= f0, `λ=${lambda}: a step in θ${j} lowers f`);
    }
  }
});

test('the gradient is not trivially zero away from the optimum (the check can fail)', () => {
  const C = 3, H = 6;
  const { x, y } = synthetic(240, H, C, 7);
  const fit = fitLogReg(asData(x, y, C), 0.01, undefined, { maxIterations: 2, gradTolerance: 1e-12, memory: 10 });
  const g = plainGradient(x, y, C, 0.01, fit.theta);
  assert.ok(Math.max(...g.map(Math.abs)) > 1e-3, 'two iterations should not reach the optimum');
});

test('the grid keeps the λ with the best held-out accuracy, and each fit converges', () => {
  const C = 3, H = 6;
  const train = synthetic(200, H, C, 11);
  const held = synthetic(150, H, C, 12);
  const fit = fitWithGrid(asData(train.x, train.y, C), asData(held.x, held.y, C));
  assert.ok(fit.points.length > 3);
  const best = Math.max(...fit.points.map((p) => p.heldOutAccuracy!));
  assert.equal(fit.heldOut!.accuracy, best);
  assert.ok(fit.points.some((p) => p.lambda === fit.lambda && p.heldOutAccuracy === best));
  for (const p of fit.points) assert.ok(p.converged, `λ=${p.lambda} did not converge (|g|max ${p.gradMax})`);
  // The returned solution is the chosen λ refitted on train + held-out: the optimum of that objective.
  assert.equal(fit.refit?.n, 350);
  assert.ok(fit.refit!.converged);
  const g = plainGradient([...train.x, ...held.x], [...train.y, ...held.y], C, fit.lambda, fit.theta);
  assert.ok(Math.max(...g.map(Math.abs)) < 1e-6, `refit gradient ${Math.max(...g.map(Math.abs))}`);
  const trainOnly = plainGradient(train.x, train.y, C, fit.lambda, fit.theta);
  assert.ok(Math.max(...trainOnly.map(Math.abs)) > 1e-4, 'the refit moved off the train-only optimum (the check can fail)');
  // Refit off: the grid's own solution, the optimum on train alone.
  const noRefit = fitWithGrid(asData(train.x, train.y, C), asData(held.x, held.y, C), undefined, undefined, false);
  assert.equal(noRefit.refit, undefined);
  const g0 = plainGradient(train.x, train.y, C, noRefit.lambda, noRefit.theta);
  assert.ok(Math.max(...g0.map(Math.abs)) < 1e-6);
  // Without held-out data: one fit at the default λ.
  assert.equal(fitWithGrid(asData(train.x, train.y, C), null).points.length, 1);
});

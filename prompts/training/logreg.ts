// The exact linear probe: L2-regularised multinomial logistic regression on
// (standardised) features, fitted to its optimum by L-BFGS.
//
//   f(W, b) = (1/n) Σ_i Σ_c -q_ic · log softmax(W x_i + b)_c  +  (λ/2) ||W||²
//
// q_i is the one-hot gold label, or a soft target (distillation). The
// problem is convex with H·C + C parameters (the bias is not penalised), so
// L-BFGS with an Armijo backtracking line search reaches the optimum in tens
// to a few hundred iterations; minibatch Adam for a fixed number of epochs
// does not (it stops wherever its learning rate and noise leave it).
// `fitWithGrid` chooses λ on a held-out split from a small grid, warm-starting
// each fit from the previous (stronger) one, then refits the chosen λ on the
// training and held-out rows together: the held-out split has done its job
// (choosing λ) and its rows are as good as any for the final fit (the usual
// refit of cross-validated estimators; the held-out figures reported are the
// grid's, measured before the refit).
//
// Parameters are one Float64Array θ = [W (C×H, row-major), b (C)].

export interface LogRegData {
  /** n×H features, row-major. */
  x: Float64Array;
  /** n×C targets (each row sums to 1). */
  q: Float64Array;
  n: number;
  H: number;
  C: number;
}

export interface LbfgsOptions {
  maxIterations: number;
  /** Stop when the gradient's largest entry is below this. */
  gradTolerance: number;
  /** History pairs kept. */
  memory: number;
}

export const DEFAULT_LBFGS: LbfgsOptions = { maxIterations: 500, gradTolerance: 1e-7, memory: 10 };

export interface LbfgsResult {
  theta: Float64Array;
  value: number;
  gradMax: number;
  iterations: number;
  converged: boolean;
}

/** One-hot targets for class labels. */
export function oneHot(labels: ArrayLike<number>, C: number): Float64Array {
  const q = new Float64Array(labels.length * C);
  for (let i = 0; i < labels.length; i++) q[i * C + labels[i]!] = 1;
  return q;
}

/** f(θ) and ∇f(θ) written into `grad`. */
export function objective(d: LogRegData, lambda: number, theta: Float64Array, grad: Float64Array): number {
  const { x, q, n, H, C } = d;
  grad.fill(0);
  const bOff = C * H;
  const s = new Float64Array(C);
  let f = 0;
  for (let i = 0; i < n; i++) {
    const xi = i * H;
    let max = -Infinity;
    for (let c = 0; c < C; c++) {
      let v = theta[bOff + c]!;
      const w = c * H;
      for (let k = 0; k < H; k++) v += theta[w + k]! * x[xi + k]!;
      s[c] = v;
      if (v > max) max = v;
    }
    let sum = 0;
    for (let c = 0; c < C; c++) sum += Math.exp(s[c]! - max);
    const logZ = max + Math.log(sum);
    for (let c = 0; c < C; c++) {
      const qc = q[i * C + c]!;
      const p = Math.exp(s[c]! - logZ);
      if (qc !== 0) f -= qc * (s[c]! - logZ);
      // d/ds_c of -Σ q log softmax = p_c·Σq - q_c = p_c - q_c (targets sum to 1).
      const r = (p - qc) / n;
      if (r === 0) continue;
      grad[bOff + c]! += r;
      const w = c * H;
      for (let k = 0; k < H; k++) grad[w + k]! += r * x[xi + k]!;
    }
  }
  f /= n;
  for (let j = 0; j < bOff; j++) {
    f += 0.5 * lambda * theta[j]! * theta[j]!;
    grad[j]! += lambda * theta[j]!;
  }
  return f;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function maxAbs(a: Float64Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

/** Minimises fg (value, gradient into its second argument) from theta0 by L-BFGS (two-loop recursion, Armijo backtracking). */
export function lbfgs(fg: (theta: Float64Array, grad: Float64Array) => number, theta0: Float64Array, opts: LbfgsOptions = DEFAULT_LBFGS): LbfgsResult {
  const N = theta0.length;
  let theta = Float64Array.from(theta0);
  let grad = new Float64Array(N);
  let f = fg(theta, grad);
  const S: Float64Array[] = [];
  const Y: Float64Array[] = [];
  const rho: number[] = [];
  const dir = new Float64Array(N);
  const alpha = new Array<number>(opts.memory);
  let it = 0;
  let converged = maxAbs(grad) < opts.gradTolerance;
  while (!converged && it < opts.maxIterations) {
    // Two-loop recursion: dir = -H·grad.
    dir.set(grad);
    for (let j = S.length - 1; j >= 0; j--) {
      alpha[j] = rho[j]! * dot(S[j]!, dir);
      const y = Y[j]!;
      for (let i = 0; i < N; i++) dir[i]! -= alpha[j]! * y[i]!;
    }
    const gamma = S.length > 0 ? dot(S[S.length - 1]!, Y[Y.length - 1]!) / dot(Y[Y.length - 1]!, Y[Y.length - 1]!) : 1 / Math.max(1, Math.sqrt(dot(grad, grad)));
    for (let i = 0; i < N; i++) dir[i]! *= gamma;
    for (let j = 0; j < S.length; j++) {
      const beta = rho[j]! * dot(Y[j]!, dir);
      const s = S[j]!;
      for (let i = 0; i < N; i++) dir[i]! += s[i]! * (alpha[j]! - beta);
    }
    for (let i = 0; i < N; i++) dir[i] = -dir[i]!;
    let slope = dot(grad, dir);
    if (slope >= 0) {
      // Not a descent direction (numerical trouble): restart from steepest descent.
      S.length = 0; Y.length = 0; rho.length = 0;
      for (let i = 0; i < N; i++) dir[i] = -grad[i]!;
      slope = dot(grad, dir);
    }
    // Armijo backtracking from the full quasi-Newton step.
    let step = 1;
    const next = new Float64Array(N);
    const nextGrad = new Float64Array(N);
    let fNext = Infinity;
    for (let tries = 0; tries < 60; tries++) {
      for (let i = 0; i < N; i++) next[i] = theta[i]! + step * dir[i]!;
      fNext = fg(next, nextGrad);
      if (fNext <= f + 1e-4 * step * slope) break;
      step *= 0.5;
    }
    if (!(fNext <= f)) break; // no decrease possible at this precision: at the optimum
    const s = new Float64Array(N);
    const y = new Float64Array(N);
    for (let i = 0; i < N; i++) { s[i] = next[i]! - theta[i]!; y[i] = nextGrad[i]! - grad[i]!; }
    const sy = dot(s, y);
    if (sy > 1e-12) {
      S.push(s); Y.push(y); rho.push(1 / sy);
      if (S.length > opts.memory) { S.shift(); Y.shift(); rho.shift(); }
    }
    const decrease = f - fNext;
    theta = next;
    grad = nextGrad;
    f = fNext;
    it++;
    converged = maxAbs(grad) < opts.gradTolerance || decrease <= 1e-15 * Math.max(1, Math.abs(f));
  }
  return { theta, value: f, gradMax: maxAbs(grad), iterations: it, converged };
}

/** Fits one λ from `init` (zeros when absent). */
export function fitLogReg(d: LogRegData, lambda: number, init?: Float64Array, opts: LbfgsOptions = DEFAULT_LBFGS): LbfgsResult {
  const theta0 = init ? Float64Array.from(init) : new Float64Array(d.C * d.H + d.C);
  return lbfgs((t, g) => objective(d, lambda, t, g), theta0, opts);
}

/** Accuracy (against argmax of q) and mean cross-entropy of θ on data. */
export function scoreLogReg(d: LogRegData, theta: Float64Array): { accuracy: number; loss: number } {
  const { x, q, n, H, C } = d;
  const bOff = C * H;
  const s = new Float64Array(C);
  let correct = 0;
  let loss = 0;
  for (let i = 0; i < n; i++) {
    let max = -Infinity;
    let best = 0;
    for (let c = 0; c < C; c++) {
      let v = theta[bOff + c]!;
      for (let k = 0; k < H; k++) v += theta[c * H + k]! * x[i * H + k]!;
      s[c] = v;
      if (v > max) { max = v; best = c; }
    }
    let sum = 0;
    for (let c = 0; c < C; c++) sum += Math.exp(s[c]! - max);
    const logZ = max + Math.log(sum);
    let gold = 0;
    for (let c = 1; c < C; c++) if (q[i * C + c]! > q[i * C + gold]!) gold = c;
    if (best === gold) correct++;
    for (let c = 0; c < C; c++) if (q[i * C + c]! !== 0) loss -= q[i * C + c]! * (s[c]! - logZ);
  }
  return { accuracy: correct / Math.max(1, n), loss: loss / Math.max(1, n) };
}

/** λ grid (strong to weak; each fit starts from the previous solution). */
export const LAMBDA_GRID = [1, 0.3, 0.1, 0.03, 0.01, 3e-3, 1e-3, 3e-4, 1e-4];
/** λ when there is no held-out split to choose with. */
export const DEFAULT_LAMBDA = 1e-2;

export interface GridPoint { lambda: number; heldOutAccuracy: number | null; heldOutLoss: number | null; iterations: number; converged: boolean; gradMax: number }

export interface GridFit {
  theta: Float64Array;
  lambda: number;
  points: GridPoint[];
  iterations: number;
  heldOut: { accuracy: number; loss: number } | null;
  /** The final fit on train + held-out at the chosen λ (absent without held-out data or with refit off). */
  refit?: { n: number; iterations: number; converged: boolean; gradMax: number };
}

/** The rows of `a` then `b` (same H and C). */
export function concatData(a: LogRegData, b: LogRegData): LogRegData {
  const x = new Float64Array(a.x.length + b.x.length);
  x.set(a.x);
  x.set(b.x, a.x.length);
  const q = new Float64Array(a.q.length + b.q.length);
  q.set(a.q);
  q.set(b.q, a.q.length);
  return { x, q, n: a.n + b.n, H: a.H, C: a.C };
}

/**
 * Fits every λ of the grid on `train` and keeps the one with the best held-out
 * accuracy (ties: lower held-out loss), then (with `refit`, the default)
 * fits that λ again on train + held-out, starting from the chosen solution.
 * Without held-out data, fits DEFAULT_LAMBDA.
 */
export function fitWithGrid(train: LogRegData, heldOut: LogRegData | null, grid: number[] = LAMBDA_GRID, opts: LbfgsOptions = DEFAULT_LBFGS, refit = true): GridFit {
  const lambdas = heldOut && heldOut.n > 0 ? grid : [DEFAULT_LAMBDA];
  let prev: Float64Array | undefined;
  let best: { theta: Float64Array; lambda: number; accuracy: number; loss: number } | null = null;
  const points: GridPoint[] = [];
  let iterations = 0;
  for (const lambda of lambdas) {
    const r = fitLogReg(train, lambda, prev, opts);
    prev = r.theta;
    iterations += r.iterations;
    const h = heldOut && heldOut.n > 0 ? scoreLogReg(heldOut, r.theta) : null;
    points.push({ lambda, heldOutAccuracy: h?.accuracy ?? null, heldOutLoss: h?.loss ?? null, iterations: r.iterations, converged: r.converged, gradMax: r.gradMax });
    const acc = h?.accuracy ?? 0;
    const loss = h?.loss ?? 0;
    if (!best || acc > best.accuracy || (acc === best.accuracy && loss < best.loss)) best = { theta: r.theta, lambda, accuracy: acc, loss };
  }
  const b = best!;
  const fit: GridFit = { theta: b.theta, lambda: b.lambda, points, iterations, heldOut: heldOut && heldOut.n > 0 ? { accuracy: b.accuracy, loss: b.loss } : null };
  if (refit && heldOut && heldOut.n > 0) {
    const all = concatData(train, heldOut);
    const r = fitLogReg(all, b.lambda, b.theta, opts);
    fit.theta = r.theta;
    fit.iterations += r.iterations;
    fit.refit = { n: all.n, iterations: r.iterations, converged: r.converged, gradMax: r.gradMax };
  }
  return fit;
}

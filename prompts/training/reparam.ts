// Prompt encoders: how trainable parameters become the prompt the model sees
// (the "materialised" prompt, in the serving layout). The training graph
// gives d(loss)/d(materialised prompt); each encoder backpropagates that to its
// own parameters by hand. The networks are tiny (P rows), so plain loops in
// float64 are fast enough and leave onnxruntime's session to the model.
//
//   DirectEncoder    prompt = θ                          (prompt tuning, prefix tuning)
//   FrozenEncoder    prompt = constant                   (linear-head baseline)
//   MlpEncoder       prompt = E + MLP(E)                 (P-tuning, MLP)
//   LstmEncoder      prompt = E + MLP(BiLSTM(E))         (P-tuning, LSTM)
//   PrefixMlpEncoder prefix = base + permute(MLP(E))     (prefix tuning with reparameterisation)
//
// P-tuning (Liu et al. 2021) feeds trainable embeddings E through an LSTM or
// MLP. Here the encoder's output is added to E (a residual) and the last layer
// starts at zero, so training starts exactly from the chosen initialisation
// (label words, sampled vocabulary) and the encoder learns a correction; the
// published prompt is the materialised output, as PEFT stores it. The prefix
// MLP (Li & Liang 2021) is likewise added to a frozen base prefix taken from
// the model's own keys and values.

import { normal, type Rng } from './rng.ts';
import { param, type Param } from './optim.ts';

export interface PromptEncoder {
  readonly params: Param[];
  /** The materialised prompt (do not modify the returned array). */
  forward(): Float64Array;
  /** Accumulates into each param's grad, given d(loss)/d(materialised prompt). */
  backward(g: Float64Array): void;
}

// --- small dense algebra (row-major float64) ------------------------------------

/** C[m,n] = A[m,k] B[k,n] */
export function matmul(a: Float64Array, m: number, k: number, b: Float64Array, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const av = a[i * k + p]!;
      if (av === 0) continue;
      const row = p * n;
      const out = i * n;
      for (let j = 0; j < n; j++) c[out + j]! += av * b[row + j]!;
    }
  }
  return c;
}

/** acc[k,n] += A[m,k]^T G[m,n] */
function addMatmulTA(acc: Float64Array, a: Float64Array, m: number, k: number, g: Float64Array, n: number): void {
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const av = a[i * k + p]!;
      if (av === 0) continue;
      const row = p * n;
      const gi = i * n;
      for (let j = 0; j < n; j++) acc[row + j]! += av * g[gi + j]!;
    }
  }
}

/** G[m,n] W[k,n]^T -> [m,k] */
function matmulTB(g: Float64Array, m: number, n: number, w: Float64Array, k: number): Float64Array {
  const out = new Float64Array(m * k);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      let s = 0;
      const wr = p * n;
      const gr = i * n;
      for (let j = 0; j < n; j++) s += g[gr + j]! * w[wr + j]!;
      out[i * k + p] = s;
    }
  }
  return out;
}

function uniformInit(n: number, bound: number, rng: Rng): Float64Array {
  return Float64Array.from({ length: n }, () => (2 * rng() - 1) * bound);
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

// --- MLP ------------------------------------------------------------------------

export type Act = 'relu' | 'tanh';

/** Linear layers with an activation between them; the last layer starts at zero. */
export class Mlp {
  readonly params: Param[] = [];
  private readonly w: Param[] = [];
  private readonly b: Param[] = [];
  private inputs: Float64Array[] = [];
  private outputs: Float64Array[] = [];
  private rows = 0;

  constructor(name: string, readonly sizes: number[], readonly act: Act, rng: Rng) {
    for (let l = 0; l + 1 < sizes.length; l++) {
      const fanIn = sizes[l]!;
      const fanOut = sizes[l + 1]!;
      const last = l + 2 === sizes.length;
      const bound = 1 / Math.sqrt(fanIn);
      const w = param(`${name}.${l}.weight`, last ? new Float64Array(fanIn * fanOut) : uniformInit(fanIn * fanOut, bound, rng), true, 1 / fanIn);
      const b = param(`${name}.${l}.bias`, last ? new Float64Array(fanOut) : uniformInit(fanOut, bound, rng), false);
      this.w.push(w);
      this.b.push(b);
      this.params.push(w, b);
    }
  }

  forward(x: Float64Array, rows: number): Float64Array {
    this.rows = rows;
    this.inputs = [];
    this.outputs = [];
    let h = x;
    for (let l = 0; l < this.w.length; l++) {
      const fanIn = this.sizes[l]!;
      const fanOut = this.sizes[l + 1]!;
      this.inputs.push(h);
      const y = matmul(h, rows, fanIn, this.w[l]!.data, fanOut);
      const bias = this.b[l]!.data;
      for (let i = 0; i < rows; i++) for (let j = 0; j < fanOut; j++) y[i * fanOut + j]! += bias[j]!;
      if (l + 1 < this.w.length) {
        for (let i = 0; i < y.length; i++) y[i] = this.act === 'relu' ? Math.max(0, y[i]!) : Math.tanh(y[i]!);
      }
      this.outputs.push(y);
      h = y;
    }
    return h;
  }

  /** Accumulates weight grads; returns d/d(input). */
  backward(gOut: Float64Array): Float64Array {
    let g = gOut;
    const rows = this.rows;
    for (let l = this.w.length - 1; l >= 0; l--) {
      const fanIn = this.sizes[l]!;
      const fanOut = this.sizes[l + 1]!;
      if (l + 1 < this.w.length) {
        const y = this.outputs[l]!;
        const gg = new Float64Array(g.length);
        for (let i = 0; i < g.length; i++) gg[i] = this.act === 'relu' ? (y[i]! > 0 ? g[i]! : 0) : g[i]! * (1 - y[i]! * y[i]!);
        g = gg;
      }
      addMatmulTA(this.w[l]!.grad, this.inputs[l]!, rows, fanIn, g, fanOut);
      const bg = this.b[l]!.grad;
      for (let i = 0; i < rows; i++) for (let j = 0; j < fanOut; j++) bg[j]! += g[i * fanOut + j]!;
      g = matmulTB(g, rows, fanOut, this.w[l]!.data, fanIn);
    }
    return g;
  }
}

// --- bidirectional LSTM ------------------------------------------------------------

interface LstmDirection { wx: Param; wh: Param; b: Param }

/** One bidirectional LSTM layer over T steps: [T,in] -> [T,2h] (forward states, then backward). */
export class BiLstm {
  readonly params: Param[] = [];
  private readonly dirs: LstmDirection[] = [];
  private cache: Array<{ x: Float64Array; h: Float64Array[]; c: Float64Array[]; gates: Float64Array[] }> = [];
  private T = 0;

  constructor(name: string, readonly inSize: number, readonly hidden: number, rng: Rng) {
    const bound = 1 / Math.sqrt(hidden);
    for (const d of ['fwd', 'bwd']) {
      const b = uniformInit(4 * hidden, bound, rng);
      for (let j = hidden; j < 2 * hidden; j++) b[j]! += 1; // forget-gate bias +1
      const dir = {
        wx: param(`${name}.${d}.wx`, uniformInit(inSize * 4 * hidden, bound, rng), true, 1 / inSize),
        wh: param(`${name}.${d}.wh`, uniformInit(hidden * 4 * hidden, bound, rng), true, 1 / hidden),
        b: param(`${name}.${d}.b`, b, false),
      };
      this.dirs.push(dir);
      this.params.push(dir.wx, dir.wh, dir.b);
    }
  }

  forward(x: Float64Array, T: number): Float64Array {
    const H = this.hidden;
    this.T = T;
    this.cache = [];
    const out = new Float64Array(T * 2 * H);
    this.dirs.forEach((dir, di) => {
      const xw = matmul(x, T, this.inSize, dir.wx.data, 4 * H);
      const hs: Float64Array[] = [];
      const cs: Float64Array[] = [];
      const gates: Float64Array[] = [];
      let h = new Float64Array(H);
      let c = new Float64Array(H);
      for (let s = 0; s < T; s++) {
        const t = di === 0 ? s : T - 1 - s;
        const z = matmul(h, 1, H, dir.wh.data, 4 * H);
        for (let j = 0; j < 4 * H; j++) z[j]! += xw[t * 4 * H + j]! + dir.b.data[j]!;
        const gt = new Float64Array(4 * H);
        const hn = new Float64Array(H);
        const cn = new Float64Array(H);
        for (let j = 0; j < H; j++) {
          const i = sigmoid(z[j]!);
          const f = sigmoid(z[H + j]!);
          const gg = Math.tanh(z[2 * H + j]!);
          const o = sigmoid(z[3 * H + j]!);
          gt[j] = i; gt[H + j] = f; gt[2 * H + j] = gg; gt[3 * H + j] = o;
          cn[j] = f * c[j]! + i * gg;
          hn[j] = o * Math.tanh(cn[j]!);
          out[t * 2 * H + di * H + j] = hn[j]!;
        }
        hs.push(h); cs.push(c); gates.push(gt);
        h = hn; c = cn;
      }
      hs.push(h); cs.push(c);
      this.cache.push({ x, h: hs, c: cs, gates });
    });
    return out;
  }

  backward(gOut: Float64Array): Float64Array {
    const H = this.hidden;
    const T = this.T;
    const dx = new Float64Array(T * this.inSize);
    this.dirs.forEach((dir, di) => {
      const { x, h: hs, c: cs, gates } = this.cache[di]!;
      let dh: Float64Array = new Float64Array(H);
      let dc: Float64Array = new Float64Array(H);
      const dz = new Float64Array(T * 4 * H); // by time index t
      for (let s = T - 1; s >= 0; s--) {
        const t = di === 0 ? s : T - 1 - s;
        const gt = gates[s]!;
        const cPrev = cs[s]!;
        const cNew = cs[s + 1]!;
        const dhTot = new Float64Array(H);
        for (let j = 0; j < H; j++) dhTot[j] = dh[j]! + gOut[t * 2 * H + di * H + j]!;
        const dzs = new Float64Array(4 * H);
        const dcPrev = new Float64Array(H);
        for (let j = 0; j < H; j++) {
          const i = gt[j]!, f = gt[H + j]!, gg = gt[2 * H + j]!, o = gt[3 * H + j]!;
          const tc = Math.tanh(cNew[j]!);
          const dcj = dc[j]! + dhTot[j]! * o * (1 - tc * tc);
          dzs[j] = dcj * gg * i * (1 - i);
          dzs[H + j] = dcj * cPrev[j]! * f * (1 - f);
          dzs[2 * H + j] = dcj * i * (1 - gg * gg);
          dzs[3 * H + j] = dhTot[j]! * tc * o * (1 - o);
          dcPrev[j] = dcj * f;
        }
        dz.set(dzs, t * 4 * H);
        addMatmulTA(dir.wh.grad, hs[s]!, 1, H, dzs, 4 * H);
        for (let j = 0; j < 4 * H; j++) dir.b.grad[j]! += dzs[j]!;
        dh = matmulTB(dzs, 1, 4 * H, dir.wh.data, H);
        dc = dcPrev;
      }
      addMatmulTA(dir.wx.grad, x, T, this.inSize, dz, 4 * H);
      const dxd = matmulTB(dz, T, 4 * H, dir.wx.data, this.inSize);
      for (let i = 0; i < dx.length; i++) dx[i]! += dxd[i]!;
    });
    return dx;
  }
}

// --- encoders ------------------------------------------------------------------------

export class DirectEncoder implements PromptEncoder {
  readonly params: Param[];
  constructor(name: string, init: Float64Array) {
    this.params = [param(name, Float64Array.from(init), false)];
  }
  forward(): Float64Array {
    return this.params[0]!.data;
  }
  backward(g: Float64Array): void {
    const grad = this.params[0]!.grad;
    for (let i = 0; i < grad.length; i++) grad[i]! += g[i]!;
  }
}

export class FrozenEncoder implements PromptEncoder {
  readonly params: Param[] = [];
  constructor(private readonly value: Float64Array) {}
  forward(): Float64Array {
    return this.value;
  }
  backward(): void {}
}

/** P-tuning, MLP: prompt = E + MLP(E), E [P,H] trainable. */
export class MlpEncoder implements PromptEncoder {
  readonly params: Param[];
  private readonly emb: Param;
  private readonly mlp: Mlp;
  constructor(init: Float64Array, private readonly P: number, private readonly H: number, hidden: number, rng: Rng) {
    this.emb = param('ptuning.embedding', Float64Array.from(init), false);
    this.mlp = new Mlp('ptuning.mlp', [H, hidden, hidden, H], 'relu', rng);
    this.params = [this.emb, ...this.mlp.params];
  }
  forward(): Float64Array {
    const y = this.mlp.forward(this.emb.data, this.P);
    for (let i = 0; i < y.length; i++) y[i]! += this.emb.data[i]!;
    return y;
  }
  backward(g: Float64Array): void {
    const dx = this.mlp.backward(g);
    for (let i = 0; i < dx.length; i++) this.emb.grad[i]! += g[i]! + dx[i]!;
  }
}

/** P-tuning, LSTM: prompt = E + MLP(BiLSTM(E)). */
export class LstmEncoder implements PromptEncoder {
  readonly params: Param[];
  private readonly emb: Param;
  private readonly lstm: BiLstm;
  private readonly mlp: Mlp;
  constructor(init: Float64Array, private readonly P: number, H: number, hidden: number, rng: Rng) {
    this.emb = param('ptuning.embedding', Float64Array.from(init), false);
    this.lstm = new BiLstm('ptuning.lstm', H, hidden, rng);
    this.mlp = new Mlp('ptuning.mlp', [2 * hidden, 2 * hidden, H], 'relu', rng);
    this.params = [this.emb, ...this.lstm.params, ...this.mlp.params];
  }
  forward(): Float64Array {
    const h = this.lstm.forward(this.emb.data, this.P);
    const y = this.mlp.forward(h, this.P);
    for (let i = 0; i < y.length; i++) y[i]! += this.emb.data[i]!;
    return y;
  }
  backward(g: Float64Array): void {
    const dh = this.mlp.backward(g);
    const dx = this.lstm.backward(dh);
    for (let i = 0; i < dx.length; i++) this.emb.grad[i]! += g[i]! + dx[i]!;
  }
}

export interface PrefixDims { numLayers: number; numKvHeads: number; headDim: number }

/** Prefix tuning with an MLP: prefix [L,2,KV,Pk,D] = base + permute(MLP(E)), E [Pk,embDim]. */
export class PrefixMlpEncoder implements PromptEncoder {
  readonly params: Param[];
  private readonly emb: Param;
  private readonly mlp: Mlp;
  private readonly width: number;
  constructor(private readonly base: Float64Array, private readonly Pk: number, private readonly dims: PrefixDims, embDim: number, hidden: number, rng: Rng) {
    const n = normal(rng);
    this.width = dims.numLayers * 2 * dims.numKvHeads * dims.headDim;
    this.emb = param('prefix.embedding', Float64Array.from({ length: Pk * embDim }, () => n()), false);
    this.mlp = new Mlp('prefix.mlp', [embDim, hidden, this.width], 'tanh', rng);
    this.params = [this.emb, ...this.mlp.params];
  }
  /** [Pk, (l,w,k,d)] <-> [(l,w,k), Pk, d] */
  private index(p: number, lwk: number, d: number): [number, number] {
    const D = this.dims.headDim;
    return [p * this.width + lwk * D + d, (lwk * this.Pk + p) * D + d];
  }
  forward(): Float64Array {
    const y = this.mlp.forward(this.emb.data, this.Pk);
    const out = Float64Array.from(this.base);
    const groups = this.width / this.dims.headDim;
    for (let p = 0; p < this.Pk; p++) for (let lwk = 0; lwk < groups; lwk++) for (let d = 0; d < this.dims.headDim; d++) {
      const [src, dst] = this.index(p, lwk, d);
      out[dst]! += y[src]!;
    }
    return out;
  }
  backward(g: Float64Array): void {
    const gy = new Float64Array(this.Pk * this.width);
    const groups = this.width / this.dims.headDim;
    for (let p = 0; p < this.Pk; p++) for (let lwk = 0; lwk < groups; lwk++) for (let d = 0; d < this.dims.headDim; d++) {
      const [src, dst] = this.index(p, lwk, d);
      gy[src] = g[dst]!;
    }
    const dx = this.mlp.backward(gy);
    for (let i = 0; i < dx.length; i++) this.emb.grad[i]! += dx[i]!;
  }
}

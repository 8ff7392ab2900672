// Optimisation for prompt training: parameters as float64 arrays with their
// gradients, AdamW (decoupled weight decay, Loshchilov & Hutter), global-norm
// gradient clipping, and a learning-rate schedule with linear warm-up.

export interface Param {
  name: string;
  data: Float64Array;
  grad: Float64Array;
  /** Whether weight decay applies (encoder and head weights; never prompts). */
  decay: boolean;
  /**
   * Multiplies the learning rate for this parameter. Encoder weight matrices
   * use 1/fan-in: with Adam every entry moves by about lr per step, so a
   * layer's output would move by lr x fan-in, far faster than the prompt
   * itself (the muP rule for Adam).
   */
  lrScale: number;
}

export function param(name: string, data: Float64Array, decay: boolean, lrScale = 1): Param {
  return { name, data, grad: new Float64Array(data.length), decay, lrScale };
}

export function zeroGrads(params: Param[]): void {
  for (const p of params) p.grad.fill(0);
}

/** Scales all gradients so their global L2 norm is at most `max`; returns the norm before. */
export function clipGradNorm(params: Param[], max: number): number {
  let sq = 0;
  for (const p of params) for (const g of p.grad) sq += g * g;
  const norm = Math.sqrt(sq);
  if (max > 0 && norm > max) {
    const s = max / (norm + 1e-12);
    for (const p of params) for (let i = 0; i < p.grad.length; i++) p.grad[i]! *= s;
  }
  return norm;
}

export type Schedule = 'linear' | 'constant';

/** Linear warm-up to `base` over `warmup` steps, then constant or linear decay to 0 at `total`. */
export function learningRate(step: number, total: number, base: number, warmup: number, schedule: Schedule): number {
  if (warmup > 0 && step < warmup) return (base * (step + 1)) / warmup;
  if (schedule === 'constant') return base;
  const rest = Math.max(1, total - warmup);
  return base * Math.max(0, 1 - (step - warmup) / rest);
}

export interface AdamWOptions { beta1?: number; beta2?: number; eps?: number; weightDecay?: number }

export class AdamW {
  private readonly m: Float64Array[];
  private readonly v: Float64Array[];
  private t = 0;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private readonly weightDecay: number;

  constructor(private readonly params: Param[], opts: AdamWOptions = {}) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    this.m = params.map((p) => new Float64Array(p.data.length));
    this.v = params.map((p) => new Float64Array(p.data.length));
  }

  get steps(): number {
    return this.t;
  }

  step(lr: number): void {
    this.t++;
    const bc1 = 1 - this.beta1 ** this.t;
    const bc2 = 1 - this.beta2 ** this.t;
    this.params.forEach((p, k) => {
      const m = this.m[k]!;
      const v = this.v[k]!;
      const plr = lr * p.lrScale;
      const decay = p.decay ? plr * this.weightDecay : 0;
      for (let i = 0; i < p.data.length; i++) {
        const g = p.grad[i]!;
        m[i] = this.beta1 * m[i]! + (1 - this.beta1) * g;
        v[i] = this.beta2 * v[i]! + (1 - this.beta2) * g * g;
        const update = (m[i]! / bc1) / (Math.sqrt(v[i]! / bc2) + this.eps);
        p.data[i] = p.data[i]! - decay * p.data[i]! - plr * update;
      }
    });
  }
}

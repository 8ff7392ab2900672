// Reverse-mode rules, one per ONNX op, in the style of tinygrad's table: given
// the cotangents of a node's outputs, emit standard ONNX ops that compute the
// cotangents of the inputs that need one. Every rule returns, per input, a
// value of exactly that input's shape (broadcast operands are summed back by
// `unbroadcast`), or null when the input needs no gradient.
//
// Only ops that take part in differentiable paths need a rule; integer and
// boolean values never carry gradients, and an op without a rule is an error
// only if a gradient actually has to flow through it.

import type { NodeSpec } from '../onnx-proto.ts';
import type { Dim, Graph, Value } from '../graph.ts';
import { intAttr, intsAttr, isUnknownDim, normAxis, type ShapeInference } from '../shapes.ts';

export interface RuleContext {
  g: Graph;
  node: NodeSpec;
  /** Cotangent per output (null: nothing flows back from that output). */
  gy: Array<Value | null>;
  /** Whether input j needs a gradient. */
  wants(j: number): boolean;
  shapes: ShapeInference;
  /** Static shape of a forward value; throws when its rank is unknown. */
  shape(v: Value): Dim[];
  /** A run-time Shape of a forward value (one node per value). */
  shapeOf(v: Value): Value;
  /** Sums `grad` (shaped `from`) back to the shape of forward value `to`. */
  unbroadcast(grad: Value, from: Dim[], to: Value): Value;
  /** Zeros of the shape of forward value `v` (float). */
  zerosLike(v: Value): Value;
  /** Known contents of a small int64 input, e.g. axes. */
  ints(v: Value | undefined): number[] | null;
}

export type GradRule = (c: RuleContext) => Array<Value | null>;

/** The single output's cotangent (single-output ops always have one when called). */
function gy0(c: RuleContext): Value {
  const v = c.gy[0];
  if (!v) throw new Error(`${c.node.opType}: no output gradient`);
  return v;
}

function outShape(c: RuleContext, k = 0): Dim[] {
  return c.shape(c.node.outputs[k]!);
}

/** Swaps the last two axes of a value of rank r. */
function transposeLast2(g: Graph, v: Value, rank: number): Value {
  const perm = Array.from({ length: rank }, (_, i) => i);
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  return g.transpose(v, perm);
}

export const GRAD_RULES: Record<string, GradRule> = {
  Identity: (c) => [gy0(c)],

  Add: (c) => {
    const [a, b] = c.node.inputs as [Value, Value];
    const y = outShape(c);
    return [c.wants(0) ? c.unbroadcast(gy0(c), y, a) : null, c.wants(1) ? c.unbroadcast(gy0(c), y, b) : null];
  },

  Sum: (c) => {
    const y = outShape(c);
    return c.node.inputs.map((x, j) => (c.wants(j) ? c.unbroadcast(gy0(c), y, x) : null));
  },

  Sub: (c) => {
    const [a, b] = c.node.inputs as [Value, Value];
    const y = outShape(c);
    return [
      c.wants(0) ? c.unbroadcast(gy0(c), y, a) : null,
      c.wants(1) ? c.unbroadcast(c.g.op('Neg', [gy0(c)]), y, b) : null,
    ];
  },

  Mul: (c) => {
    const { g } = c;
    const [a, b] = c.node.inputs as [Value, Value];
    const y = outShape(c);
    return [
      c.wants(0) ? c.unbroadcast(g.mul(gy0(c), b), y, a) : null,
      c.wants(1) ? c.unbroadcast(g.mul(gy0(c), a), y, b) : null,
    ];
  },

  Div: (c) => {
    const { g } = c;
    const [a, b] = c.node.inputs as [Value, Value];
    const y = outShape(c);
    const out = c.node.outputs[0]!;
    return [
      c.wants(0) ? c.unbroadcast(g.div(gy0(c), b), y, a) : null,
      // d(a/b)/db = -(a/b)/b
      c.wants(1) ? c.unbroadcast(g.op('Neg', [g.div(g.mul(gy0(c), out), b)]), y, b) : null,
    ];
  },

  Neg: (c) => [c.g.op('Neg', [gy0(c)])],

  Pow: (c) => {
    // Exponent treated as a constant (the graphs only raise to fixed powers).
    const { g } = c;
    const [x, p] = c.node.inputs as [Value, Value];
    if (c.wants(1)) throw new Error('Pow: gradient with respect to the exponent is not supported');
    const y = outShape(c);
    const d = g.mul(p, g.op('Pow', [x, g.sub(p, g.float(1))]));
    return [c.unbroadcast(g.mul(gy0(c), d), y, x), null];
  },

  MatMul: (c) => {
    const { g } = c;
    const [a, b] = c.node.inputs as [Value, Value];
    const ra = c.shape(a).length;
    const rb = c.shape(b).length;
    if (ra < 2 || rb < 2) throw new Error('MatMul: gradients of rank-1 operands are not supported');
    const y = outShape(c);
    const ry = y.length;
    const gy = gy0(c);
    let ga: Value | null = null;
    let gb: Value | null = null;
    if (c.wants(0)) {
      // dA = dY @ B^T, shaped [...batch(y), M, K]
      const full = g.matmul(gy, transposeLast2(g, b, rb));
      ga = c.unbroadcast(full, [...y.slice(0, -2), c.shape(a)[ra - 2]!, c.shape(a)[ra - 1]!], a);
    }
    if (c.wants(1)) {
      // dB = A^T @ dY, shaped [...batch(y), K, N]
      const full = g.matmul(transposeLast2(g, a, ra), gy);
      gb = c.unbroadcast(full, [...y.slice(0, ry - 2), c.shape(b)[rb - 2]!, c.shape(b)[rb - 1]!], b);
    }
    return [ga, gb];
  },

  Where: (c) => {
    const { g } = c;
    const [cond, a, b] = c.node.inputs as [Value, Value, Value];
    const y = outShape(c);
    const zero = g.float(0);
    return [
      null,
      c.wants(1) ? c.unbroadcast(g.where(cond, gy0(c), zero), y, a) : null,
      c.wants(2) ? c.unbroadcast(g.where(cond, zero, gy0(c)), y, b) : null,
    ];
  },

  Cast: (c) => {
    const to = intAttr(c.node, 'to', 1);
    const from = c.shapes.type(c.node.inputs[0]!);
    if (from !== 'float' || (to !== 1 && to !== 11 && to !== 10 && to !== 16)) return [null];
    if (to !== 1) throw new Error('Cast: gradients only through float32');
    return [gy0(c)];
  },

  Reshape: (c) => [c.wants(0) ? c.g.op('Reshape', [gy0(c), c.shapeOf(c.node.inputs[0]!)]) : null, null],
  Squeeze: (c) => [c.wants(0) ? c.g.op('Reshape', [gy0(c), c.shapeOf(c.node.inputs[0]!)]) : null, null],
  Unsqueeze: (c) => [c.wants(0) ? c.g.op('Reshape', [gy0(c), c.shapeOf(c.node.inputs[0]!)]) : null, null],
  Flatten: (c) => [c.wants(0) ? c.g.op('Reshape', [gy0(c), c.shapeOf(c.node.inputs[0]!)]) : null],

  Transpose: (c) => {
    const x = c.node.inputs[0]!;
    const r = c.shape(x).length;
    const perm = intsAttr(c.node, 'perm') ?? Array.from({ length: r }, (_, i) => r - 1 - i);
    const inv = new Array<number>(r);
    perm.forEach((p, i) => { inv[p] = i; });
    return [c.g.transpose(gy0(c), inv)];
  },

  Expand: (c) => [c.wants(0) ? c.unbroadcast(gy0(c), outShape(c), c.node.inputs[0]!) : null, null],

  Concat: (c) => {
    const { g, node } = c;
    const r = c.shape(node.inputs[0]!).length;
    const axis = normAxis(intAttr(node, 'axis', 0), r);
    const sizes = node.inputs.map((x) => c.shape(x)[axis]!);
    const split = sizes.every((d) => typeof d === 'number')
      ? g.ints(sizes as number[])
      : g.concat(node.inputs.map((x) => g.shape(x, axis, axis + 1)), 0);
    const parts = g.opN('Split', [gy0(c), split], node.inputs.length, { axis });
    return parts.map((p, j) => (c.wants(j) ? p : null));
  },

  Split: (c) => {
    const { g, node } = c;
    const x = node.inputs[0]!;
    const r = c.shape(x).length;
    const axis = normAxis(intAttr(node, 'axis', 0), r);
    const parts = node.outputs.map((o, k) => c.gy[k] ?? c.zerosLike(o));
    return [g.concat(parts, axis), null];
  },

  Gather: (c) => {
    const { g, node } = c;
    const [data, indices] = node.inputs as [Value, Value];
    const axis = normAxis(intAttr(node, 'axis', 0), c.shape(data).length);
    if (axis !== 0) throw new Error('Gather: gradients only for axis 0');
    // Scatter-add the rows back: repeated indices accumulate.
    const idx = g.unsqueeze(indices, [-1]);
    return [g.op('ScatterND', [c.zerosLike(data), idx, gy0(c)], { reduction: 'add' }), null];
  },

  GatherElements: (c) => {
    const { g, node } = c;
    const [data, indices] = node.inputs as [Value, Value];
    const axis = intAttr(node, 'axis', 0);
    return [g.op('ScatterElements', [c.zerosLike(data), indices, gy0(c)], { axis, reduction: 'add' }), null];
  },

  GatherND: (c) => {
    const { g, node } = c;
    const [data, indices] = node.inputs as [Value, Value];
    const b = intAttr(node, 'batch_dims', 0);
    let idx = indices;
    if (b === 1) {
      const ir = c.shape(indices).length;
      if (ir !== 2) throw new Error('GatherND: gradients with batch_dims=1 need indices [B, m]');
      // Prepend each row's batch index: [B, 1 + m].
      const B = g.squeeze(g.shape(data, 0, 1), [0]);
      const rows = g.unsqueeze(g.op('Range', [g.int(0), B, g.int(1)]), [1]);
      idx = g.concat([rows, indices], 1);
    } else if (b !== 0) {
      throw new Error('GatherND: gradients only for batch_dims 0 or 1');
    }
    return [g.op('ScatterND', [c.zerosLike(data), idx, gy0(c)], { reduction: 'add' }), null];
  },

  Softmax: (c) => {
    const { g, node } = c;
    const y = node.outputs[0]!;
    const axis = intAttr(node, 'axis', -1);
    const gy = gy0(c);
    const dot = g.reduceSum(g.mul(gy, y), [axis], true);
    return [g.mul(y, g.sub(gy, dot))];
  },

  LogSoftmax: (c) => {
    const { g, node } = c;
    const y = node.outputs[0]!;
    const axis = intAttr(node, 'axis', -1);
    const gy = gy0(c);
    return [g.sub(gy, g.mul(g.op('Exp', [y]), g.reduceSum(gy, [axis], true)))];
  },

  LayerNormalization: (c) => {
    const { g, node } = c;
    const [x, scale, bias] = node.inputs as [Value, Value, Value | undefined];
    const r = c.shape(x).length;
    const axis = normAxis(intAttr(node, 'axis', -1), r);
    const axes = Array.from({ length: r - axis }, (_, i) => axis + i);
    // Use the forward's own mean and 1/std (optional outputs 1 and 2).
    while (node.outputs.length < 3) node.outputs.push(`${node.outputs[0]}_stat${node.outputs.length}`);
    const mean = node.outputs[1]!;
    const invStd = node.outputs[2]!;
    const gy = gy0(c);
    const xhat = g.mul(g.sub(x, mean), invStd);
    const y = outShape(c);
    let gx: Value | null = null;
    if (c.wants(0)) {
      const gh = g.mul(gy, scale);
      const m1 = g.reduceMean(gh, axes, true);
      const m2 = g.reduceMean(g.mul(gh, xhat), axes, true);
      gx = g.mul(invStd, g.sub(g.sub(gh, m1), g.mul(xhat, m2)));
    }
    const gs = c.wants(1) ? c.unbroadcast(g.mul(gy, xhat), y, scale) : null;
    const gb = bias !== undefined && c.wants(2) ? c.unbroadcast(gy, y, bias) : null;
    return [gx, gs, gb];
  },

  ReduceSum: (c) => {
    const { g, node } = c;
    const x = node.inputs[0]!;
    const r = c.shape(x).length;
    const keep = intAttr(node, 'keepdims', 1) === 1;
    let axes = node.inputs[1] ? c.ints(node.inputs[1]) : [];
    if (axes === null) throw new Error('ReduceSum: gradients need constant axes');
    if (axes.length === 0) {
      if (intAttr(node, 'noop_with_empty_axes', 0) === 1) return [gy0(c), null];
      axes = Array.from({ length: r }, (_, i) => i);
    }
    const norm = axes.map((a) => normAxis(a, r)).sort((a, b) => a - b);
    const kept = keep ? gy0(c) : g.unsqueeze(gy0(c), norm);
    return [g.op('Expand', [kept, c.shapeOf(x)]), null];
  },

  ReduceMean: (c) => {
    const { g, node } = c;
    const x = node.inputs[0]!;
    const xs = c.shape(x);
    const r = xs.length;
    const keep = intAttr(node, 'keepdims', 1) === 1;
    const axes = (intsAttr(node, 'axes') ?? Array.from({ length: r }, (_, i) => i)).map((a) => normAxis(a, r)).sort((a, b) => a - b);
    const dims = axes.map((a) => xs[a]!);
    let count: Value;
    if (dims.every((d) => typeof d === 'number')) {
      count = g.float((dims as number[]).reduce((p, d) => p * d, 1));
    } else {
      const sx = g.cast(g.op('Size', [x]), 'float32');
      const sy = g.cast(g.op('Size', [node.outputs[0]!]), 'float32');
      count = g.div(sx, sy);
    }
    const kept = keep ? gy0(c) : g.unsqueeze(gy0(c), axes);
    return [g.div(g.op('Expand', [kept, c.shapeOf(x)]), count)];
  },

  Sqrt: (c) => [c.g.div(c.g.mul(gy0(c), c.g.float(0.5)), c.node.outputs[0]!)],
  Exp: (c) => [c.g.mul(gy0(c), c.node.outputs[0]!)],
  Log: (c) => [c.g.div(gy0(c), c.node.inputs[0]!)],
  Reciprocal: (c) => {
    const y = c.node.outputs[0]!;
    return [c.g.op('Neg', [c.g.mul(gy0(c), c.g.mul(y, y))])];
  },
  Tanh: (c) => {
    const y = c.node.outputs[0]!;
    return [c.g.mul(gy0(c), c.g.sub(c.g.float(1), c.g.mul(y, y)))];
  },
  Sigmoid: (c) => {
    const y = c.node.outputs[0]!;
    return [c.g.mul(gy0(c), c.g.mul(y, c.g.sub(c.g.float(1), y)))];
  },
  Erf: (c) => {
    const { g } = c;
    const x = c.node.inputs[0]!;
    const d = g.mul(g.float(2 / Math.sqrt(Math.PI)), g.op('Exp', [g.op('Neg', [g.mul(x, x)])]));
    return [g.mul(gy0(c), d)];
  },
  Relu: (c) => {
    const { g } = c;
    const x = c.node.inputs[0]!;
    return [g.where(g.op('Greater', [x, g.float(0)]), gy0(c), g.float(0))];
  },
  Sin: (c) => [c.g.mul(gy0(c), c.g.op('Cos', [c.node.inputs[0]!]))],
  Cos: (c) => [c.g.op('Neg', [c.g.mul(gy0(c), c.g.op('Sin', [c.node.inputs[0]!]))])],
  Abs: (c) => [c.g.mul(gy0(c), c.g.op('Sign', [c.node.inputs[0]!]))],
};

/** Ops the rules know (for error messages and tests). */
export const DIFFERENTIABLE_OPS = Object.keys(GRAD_RULES).sort();

// Reverse-mode automatic differentiation over the graph IR. Given a graph (a
// model's forward pass plus a loss), it appends the nodes that compute the
// gradients of that loss with respect to chosen graph inputs (here: the prompt
// parameters), using only standard ONNX ops, so that the stock CPU build of
// onnxruntime (no training API, no *Grad kernels) runs forward and backward in
// one session. Weights are initializers and never receive gradients.
//
// Only nodes on a path from a parameter to the loss are differentiated: a
// forward sweep marks the float values that depend on a parameter ("active"),
// and the reverse sweep visits those nodes in reverse order, summing the
// cotangent contributions of every consumer. Each op's rule lives in
// grad-rules/rules.ts; shapes come from shapes.ts (symbolic, so the
// training graph keeps dynamic batch and sequence dimensions).

import type { Dim, Graph, Value } from './graph.ts';
import { GRAD_RULES, type RuleContext } from './grad-rules/rules.ts';
import { isUnknownDim, ShapeInference } from './shapes.ts';

export { DIFFERENTIABLE_OPS } from './grad-rules/rules.ts';

export interface GradientSpec {
  /** A scalar to differentiate (its cotangent is 1)... */
  loss?: Value;
  /** ...and/or explicit cotangents of any values (for vector-Jacobian products). */
  seeds?: Array<{ value: Value; grad: Value }>;
  /** Graph inputs to differentiate with respect to (float tensors). */
  wrt: Value[];
}

export interface GradientResult {
  /** wrt value -> its gradient (zeros when the loss does not depend on it). */
  grads: Map<Value, Value>;
  /** Forward nodes that were differentiated. */
  differentiatedNodes: number;
  /** Nodes appended for the backward pass. */
  backwardNodes: number;
}

export function addGradients(g: Graph, spec: GradientSpec): GradientResult {
  const shapes = new ShapeInference(g);
  const forward = g.nodes.slice();
  const firstBackward = g.nodes.length;

  const seeds: Array<{ value: Value; grad: Value | null }> = (spec.seeds ?? []).map((s) => ({ ...s }));
  if (spec.loss !== undefined) {
    const ls = shapes.shape(spec.loss);
    if (ls !== null && ls.length !== 0) throw new Error(`addGradients: loss ${spec.loss} must be a scalar, has shape [${ls.join(', ')}]`);
    seeds.push({ value: spec.loss, grad: null });
  }
  if (seeds.length === 0) throw new Error('addGradients: give a loss or seeds');
  for (const w of spec.wrt) {
    const info = shapes.get(w);
    if (!info) throw new Error(`addGradients: ${w} is not a value of this graph`);
    if (info.type !== 'float') throw new Error(`addGradients: ${w} is not a float tensor`);
  }

  // Forward sweep: which float values depend on a parameter.
  const active = new Set<Value>(spec.wrt);
  for (const node of forward) {
    if (!node.inputs.some((x) => active.has(x))) continue;
    for (const o of node.outputs) if (shapes.type(o) === 'float') active.add(o);
  }

  const contributions = new Map<Value, Value[]>();
  const push = (v: Value, grad: Value) => {
    const list = contributions.get(v);
    if (list) list.push(grad);
    else contributions.set(v, [grad]);
  };
  const collect = (v: Value): Value | null => {
    const list = contributions.get(v);
    if (!list || list.length === 0) return null;
    if (list.length === 1) return list[0]!;
    const sum = g.op('Sum', list);
    contributions.set(v, [sum]);
    return sum;
  };
  for (const s of seeds) push(s.value, s.grad ?? g.float(1));

  const shapeCache = new Map<Value, Value>();
  const shapeOf = (v: Value): Value => {
    let s = shapeCache.get(v);
    if (!s) {
      s = g.shape(v);
      shapeCache.set(v, s);
    }
    return s;
  };
  const staticShape = (v: Value): Dim[] => {
    const s = shapes.shape(v);
    if (s === null) throw new Error(`autodiff: the rank of ${v} is unknown`);
    return s;
  };
  const zerosLike = (v: Value): Value => g.op('ConstantOfShape', [shapeOf(v)]);

  const unbroadcast = (grad: Value, from: Dim[], to: Value): Value => {
    const xs = staticShape(to);
    const rx = xs.length;
    const ry = from.length;
    if (rx > ry) throw new Error(`autodiff: cannot unbroadcast rank ${ry} to rank ${rx} (${to})`);
    const lead = ry - rx;
    const axes: number[] = Array.from({ length: lead }, (_, i) => i);
    let dynamic = false;
    for (let i = 0; i < rx; i++) {
      const dx = xs[i]!;
      const dy = from[lead + i]!;
      if (dx === dy && !isUnknownDim(dx)) continue;
      if (dx === 1) {
        if (dy !== 1) axes.push(lead + i);
        continue;
      }
      dynamic = true;
    }
    if (!dynamic) {
      if (axes.length === 0) return grad;
      if (axes.every((a) => a < lead)) return g.reduceSum(grad, axes, false);
      return g.op('Reshape', [g.reduceSum(grad, axes, true), shapeOf(to)]);
    }
    // Decide at run time: sum the leading axes, then every axis where the
    // operand has size 1 and the gradient does not.
    const summed = lead > 0 ? g.reduceSum(grad, axes.filter((a) => a < lead), false) : grad;
    const isOne = g.op('Equal', [shapeOf(to), g.ints([1])]);
    const gradNotOne = g.op('Not', [g.op('Equal', [g.shape(summed), g.ints([1])])]);
    const rtAxes = g.reshape(g.op('NonZero', [g.op('And', [isOne, gradNotOne])]), [-1]);
    const reduced = g.op('ReduceSum', [summed, rtAxes], { keepdims: 1, noop_with_empty_axes: 1 });
    return g.op('Reshape', [reduced, shapeOf(to)]);
  };

  let differentiated = 0;
  for (let i = forward.length - 1; i >= 0; i--) {
    const node = forward[i]!;
    if (!node.outputs.some((o) => contributions.has(o) && active.has(o))) continue;
    const wants = node.inputs.map((x) => x !== '' && active.has(x));
    if (!wants.some(Boolean)) continue;
    const rule = GRAD_RULES[node.opType];
    if (!rule) {
      throw new Error(`autodiff: no gradient rule for ${node.opType} (node ${node.name}), which lies between a parameter and the loss`);
    }
    const gy = node.outputs.map((o) => (active.has(o) ? collect(o) : null));
    const ctx: RuleContext = {
      g, node, gy, shapes,
      wants: (j) => wants[j] === true,
      shape: staticShape,
      shapeOf,
      unbroadcast,
      zerosLike,
      ints: (v) => {
        if (v === undefined || v === '') return null;
        const val = shapes.get(v)?.value;
        return val && val.every((d) => typeof d === 'number') ? (val as number[]) : null;
      },
    };
    let inputGrads: Array<Value | null>;
    try {
      inputGrads = rule(ctx);
    } catch (err) {
      throw new Error(`autodiff: ${node.opType} (node ${node.name}): ${(err as Error).message}`);
    }
    differentiated++;
    inputGrads.forEach((gx, j) => {
      if (gx && wants[j]) push(node.inputs[j]!, gx);
    });
  }

  const grads = new Map<Value, Value>();
  for (const w of spec.wrt) grads.set(w, collect(w) ?? zerosLike(w));
  return { grads, differentiatedNodes: differentiated, backwardNodes: g.nodes.length - firstBackward };
}

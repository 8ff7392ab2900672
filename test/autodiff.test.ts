// Every gradient rule against central finite differences. Each case is a tiny
// graph y = f(inputs); the backward pass is seeded with a random cotangent r
// (so it computes the vector-Jacobian product r·J), and each input element is
// nudged both ways to get d(r·y)/dx numerically. r·y is summed in float64 from
// onnxruntime's float32 outputs, so the finite difference is good to ~1e-5 of
// the gradient's scale; a wrong rule is off by O(1).
//
// Cases use broadcasting in both directions, repeated indices, negative axes,
// and symbolic dimensions (which make the backward decide some reductions at
// run time).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { addGradients, DIFFERENTIABLE_OPS } from '../kernels/autodiff.ts';
import { Graph, type Dim, type Value } from '../kernels/graph.ts';
import { ShapeInference } from '../kernels/shapes.ts';
import { openSession, type TensorData } from '../kernels/session.ts';
import { mulberry32 } from './fixtures/random-checkpoint.ts';

type Feed = { name: string; type: 'float32' | 'int64' | 'bool'; dims: number[]; data: number[]; symbolic?: Dim[] };

interface Case {
  name: string;
  inputs: Feed[];
  build(g: Graph, v: Record<string, Value>): Value;
  wrt: string[];
  tol?: number;
}

function floats(n: number, seed: number, lo = -1, hi = 1): number[] {
  const r = mulberry32(seed);
  return Array.from({ length: n }, () => lo + (hi - lo) * r());
}

function f(name: string, dims: number[], seed: number, lo = -1, hi = 1, symbolic?: Dim[]): Feed {
  const n = dims.reduce((a, b) => a * b, 1);
  return { name, type: 'float32', dims, data: floats(n, seed, lo, hi), ...(symbolic ? { symbolic } : {}) };
}

function toTensor(feed: Feed): TensorData {
  if (feed.type === 'float32') return { type: 'float32', data: Float32Array.from(feed.data), dims: feed.dims };
  if (feed.type === 'int64') return { type: 'int64', data: BigInt64Array.from(feed.data.map(BigInt)), dims: feed.dims };
  return { type: 'bool', data: Uint8Array.from(feed.data), dims: feed.dims };
}

function buildGraph(c: Case, yDims: number[] | null): { g: Graph; grads: Map<Value, Value> } {
  const g = new Graph(`grad_${c.name}`);
  const v: Record<string, Value> = {};
  for (const inp of c.inputs) v[inp.name] = g.input(inp.name, inp.type, inp.symbolic ?? inp.dims);
  const y = c.build(g, v);
  let grads = new Map<Value, Value>();
  if (yDims) {
    const seed = g.input('seed_gy', 'float32', yDims);
    grads = addGradients(g, { seeds: [{ value: y, grad: seed }], wrt: c.wrt.map((n) => v[n]!) }).grads;
    for (const [w, gv] of grads) g.output(gv, `grad_${w}`, 'float32', c.inputs.find((i) => i.name === w)!.dims);
  }
  const rank = new ShapeInference(g).shape(y)?.length ?? 1;
  g.output(y, 'y', 'float32', yDims ?? Array.from({ length: rank }, (_, i) => `y${i}`));
  return { g, grads };
}

async function checkCase(c: Case): Promise<number> {
  const feeds: Record<string, TensorData> = {};
  for (const inp of c.inputs) feeds[inp.name] = toTensor(inp);
  const fwd = await openSession(buildGraph(c, null).g.toOnnx(), { intraOpThreads: 1 });
  const first = await fwd.run(feeds);
  const y0 = first.float32('y');
  const yDims = [...first.dims('y')];
  // No cotangent where y is -inf (masked scores): the loss never sends one there.
  const r = floats(y0.length, 99, -1, 1).map((x, i) => (Number.isFinite(y0[i]!) ? x : 0));

  const full = await openSession(buildGraph(c, yDims).g.toOnnx(), { intraOpThreads: 1 });
  const out = await full.run({ ...feeds, seed_gy: { type: 'float32', data: Float32Array.from(r), dims: yDims } });
  const rDotY = async (fd: Record<string, TensorData>): Promise<number> => {
    const y = (await fwd.run(fd)).float32('y');
    let s = 0;
    for (let i = 0; i < y.length; i++) if (r[i] !== 0) s += r[i]! * y[i]!;
    return s;
  };

  let worst = 0;
  for (const name of c.wrt) {
    const inp = c.inputs.find((i) => i.name === name)!;
    const analytic = out.float32(`grad_${name}`);
    assert.equal(analytic.length, inp.data.length, `${name}: gradient has ${analytic.length} values for ${inp.data.length}`);
    let scale = 1e-6;
    for (const a of analytic) scale = Math.max(scale, Math.abs(a));
    for (let i = 0; i < inp.data.length; i++) {
      const x = inp.data[i]!;
      const eps = 1e-3 * Math.max(1, Math.abs(x));
      const at = async (d: number) => {
        const data = [...inp.data];
        data[i] = x + d;
        return rDotY({ ...feeds, [name]: toTensor({ ...inp, data }) });
      };
      const numeric = ((await at(eps)) - (await at(-eps))) / (2 * eps);
      const err = Math.abs(numeric - analytic[i]!) / scale;
      worst = Math.max(worst, err);
      assert.ok(err <= (c.tol ?? 2e-3), `${c.name}: d/d${name}[${i}] analytic ${analytic[i]} vs numeric ${numeric} (relative error ${err.toExponential(2)})`);
    }
  }
  await fwd.release();
  await full.release();
  return worst;
}

const CASES: Case[] = [
  { name: 'Add (both operands broadcast)', inputs: [f('a', [2, 3, 4], 1), f('b', [3, 1], 2)], build: (g, v) => g.add(v.a!, v.b!), wrt: ['a', 'b'] },
  { name: 'Sub (broadcast)', inputs: [f('a', [2, 1, 4], 3), f('b', [3, 4], 4)], build: (g, v) => g.sub(v.a!, v.b!), wrt: ['a', 'b'] },
  { name: 'Mul (x*x and broadcast)', inputs: [f('a', [2, 3], 5), f('b', [3], 6)], build: (g, v) => g.mul(g.mul(v.a!, v.a!), v.b!), wrt: ['a', 'b'] },
  { name: 'Div (broadcast divisor)', inputs: [f('a', [2, 3], 7), f('b', [2, 1], 8, 0.5, 2)], build: (g, v) => g.div(v.a!, v.b!), wrt: ['a', 'b'] },
  { name: 'Neg', inputs: [f('a', [4], 9)], build: (g, v) => g.op('Neg', [v.a!]), wrt: ['a'] },
  { name: 'Pow (constant exponent)', inputs: [f('a', [5], 10, 0.5, 1.5)], build: (g, v) => g.op('Pow', [v.a!, g.float(3)]), wrt: ['a'] },
  { name: 'MatMul (batched, broadcast batch dims)', inputs: [f('a', [2, 1, 3, 4], 11), f('b', [3, 4, 2], 12)], build: (g, v) => g.matmul(v.a!, v.b!), wrt: ['a', 'b'] },
  { name: 'MatMul (constant right operand, 2-D)', inputs: [f('a', [2, 3, 4], 13)], build: (g, v) => g.matmul(v.a!, g.floats(floats(8, 14), [4, 2])), wrt: ['a'] },
  {
    name: 'Where (broadcast branches)',
    inputs: [{ name: 'c', type: 'bool', dims: [2, 3], data: [1, 0, 1, 0, 0, 1] }, f('a', [2, 3], 15), f('b', [3], 16)],
    build: (g, v) => g.where(v.c!, v.a!, v.b!), wrt: ['a', 'b'],
  },
  {
    name: 'Where (scalar -inf branch, as masked scores)',
    inputs: [{ name: 'c', type: 'bool', dims: [2, 2], data: [1, 1, 1, 0] }, f('a', [2, 2], 17)],
    build: (g, v) => g.op('LogSoftmax', [g.where(v.c!, v.a!, g.float(-Infinity))], { axis: 1 }),
    wrt: ['a'],
  },
  {
    name: 'Gather (repeated indices accumulate)',
    inputs: [f('d', [5, 3], 18), { name: 'i', type: 'int64', dims: [2, 3], data: [0, 4, 0, 2, 0, 4] }],
    build: (g, v) => g.gather(v.d!, v.i!), wrt: ['d'],
  },
  { name: 'Gather (scalar index)', inputs: [f('d', [3, 2, 4], 19)], build: (g, v) => g.gather(v.d!, g.int(1)), wrt: ['d'] },
  {
    name: 'GatherElements',
    inputs: [f('d', [3, 4], 20), { name: 'i', type: 'int64', dims: [3, 2], data: [1, 1, 3, 0, 2, 2] }],
    build: (g, v) => g.op('GatherElements', [v.d!, v.i!], { axis: 1 }), wrt: ['d'],
  },
  {
    name: 'GatherND (batch_dims 1, as the score position)',
    inputs: [f('d', [2, 5, 3], 21), { name: 'i', type: 'int64', dims: [2, 1], data: [3, 0] }],
    build: (g, v) => g.op('GatherND', [v.d!, v.i!], { batch_dims: 1 }), wrt: ['d'],
  },
  {
    name: 'Reshape, Transpose, Squeeze, Unsqueeze',
    inputs: [f('a', [2, 3, 4], 22)],
    build: (g, v) => g.squeeze(g.unsqueeze(g.transpose(g.reshape(v.a!, [0, 2, -1]), [2, 0, 1]), [0]), [0]),
    wrt: ['a'],
  },
  { name: 'Concat (static sizes)', inputs: [f('a', [2, 3, 4], 23), f('b', [2, 2, 4], 24)], build: (g, v) => g.mul(g.concat([v.a!, v.b!], 1), g.concat([v.b!, v.a!], 1)), wrt: ['a', 'b'] },
  {
    name: 'Concat (symbolic sizes: split decided at run time)',
    inputs: [f('a', [2, 3, 4], 25, -1, 1, ['B', 'S', 4]), f('b', [2, 2, 4], 26, -1, 1, ['B', 'T', 4])],
    build: (g, v) => g.softmax(g.concat([v.a!, v.b!], 1), 1), wrt: ['a', 'b'],
  },
  {
    name: 'Split (one output unused)',
    inputs: [f('a', [2, 6], 27)],
    build: (g, v) => {
      const [p, q] = g.opN('Split', [v.a!, g.ints([2, 4])], 2, { axis: 1 });
      void q;
      return g.mul(p!, p!);
    },
    wrt: ['a'],
  },
  { name: 'Expand', inputs: [f('a', [3, 1], 28)], build: (g, v) => g.op('Expand', [v.a!, g.ints([2, 3, 4])]), wrt: ['a'] },
  { name: 'Softmax (last axis)', inputs: [f('a', [2, 3, 5], 29, -2, 2)], build: (g, v) => g.softmax(v.a!, -1), wrt: ['a'] },
  { name: 'Softmax (axis 1)', inputs: [f('a', [2, 4, 3], 30, -2, 2)], build: (g, v) => g.softmax(v.a!, 1), wrt: ['a'] },
  { name: 'LogSoftmax', inputs: [f('a', [3, 4], 31, -2, 2)], build: (g, v) => g.op('LogSoftmax', [v.a!], { axis: 1 }), wrt: ['a'] },
  {
    name: 'LayerNormalization (input, scale and bias)',
    inputs: [f('x', [2, 3, 5], 32, -2, 2), f('w', [5], 33, 0.5, 1.5), f('b', [5], 34)],
    build: (g, v) => g.op('LayerNormalization', [v.x!, v.w!, v.b!], { axis: -1, epsilon: { float: 1e-5 } }),
    wrt: ['x', 'w', 'b'],
  },
  { name: 'ReduceSum (keepdims 0)', inputs: [f('a', [2, 3, 4], 35)], build: (g, v) => g.reduceSum(v.a!, [1], false), wrt: ['a'] },
  { name: 'ReduceSum (negative axis, keepdims 1)', inputs: [f('a', [2, 3, 4], 36)], build: (g, v) => g.mul(g.reduceSum(v.a!, [-1], true), v.a!), wrt: ['a'] },
  { name: 'ReduceMean (static count)', inputs: [f('a', [2, 3, 4], 37)], build: (g, v) => g.mul(g.reduceMean(v.a!, [-1], true), v.a!), wrt: ['a'] },
  { name: 'ReduceMean (symbolic count)', inputs: [f('a', [2, 3, 4], 38, -1, 1, ['B', 'T', 4])], build: (g, v) => g.reduceMean(v.a!, [0, 1], false), wrt: ['a'] },
  {
    name: 'RMSNorm (Mul, ReduceMean, Add, Sqrt, Div)',
    inputs: [f('x', [2, 3, 6], 39, -2, 2), f('w', [6], 40)],
    build: (g, v) => g.mul(g.div(v.x!, g.sqrt(g.add(g.reduceMean(g.mul(v.x!, v.x!), [-1]), g.float(1e-5)))), v.w!),
    wrt: ['x', 'w'],
  },
  { name: 'Sqrt', inputs: [f('a', [5], 41, 0.5, 2)], build: (g, v) => g.sqrt(v.a!), wrt: ['a'] },
  { name: 'Tanh', inputs: [f('a', [5], 42, -2, 2)], build: (g, v) => g.tanh(v.a!), wrt: ['a'] },
  { name: 'Sigmoid (SiLU)', inputs: [f('a', [5], 43, -3, 3)], build: (g, v) => g.mul(v.a!, g.sigmoid(v.a!)), wrt: ['a'] },
  { name: 'Erf (exact GELU)', inputs: [f('a', [6], 44, -3, 3)], build: (g, v) => g.mul(g.mul(v.a!, g.float(0.5)), g.add(g.float(1), g.erf(g.mul(v.a!, g.float(Math.SQRT1_2))))), wrt: ['a'] },
  { name: 'Relu', inputs: [{ name: 'a', type: 'float32', dims: [6], data: [-1.5, -0.7, -0.2, 0.3, 0.9, 1.4] }], build: (g, v) => g.op('Relu', [v.a!]), wrt: ['a'] },
  { name: 'Exp and Log', inputs: [f('a', [5], 45, 0.5, 2)], build: (g, v) => g.add(g.op('Exp', [v.a!]), g.op('Log', [v.a!])), wrt: ['a'] },
  { name: 'Sin and Cos', inputs: [f('a', [5], 46, -3, 3)], build: (g, v) => g.mul(g.op('Sin', [v.a!]), g.op('Cos', [v.a!])), wrt: ['a'] },
  { name: 'Reciprocal', inputs: [f('a', [5], 47, 0.5, 2)], build: (g, v) => g.op('Reciprocal', [v.a!]), wrt: ['a'] },
  { name: 'Cast (float to float) and Identity', inputs: [f('a', [4], 48)], build: (g, v) => g.op('Identity', [g.cast(g.mul(v.a!, v.a!), 'float32')]), wrt: ['a'] },
  { name: 'Sum (variadic, broadcast)', inputs: [f('a', [2, 3], 49), f('b', [3], 50), f('c', [2, 1], 51)], build: (g, v) => g.op('Sum', [v.a!, v.b!, v.c!]), wrt: ['a', 'b', 'c'] },
  {
    name: 'Add (symbolic dim that is 1 at run time: reduction decided at run time)',
    inputs: [f('a', [1, 3], 52, -1, 1, ['N', 3]), f('b', [4, 3], 53)],
    build: (g, v) => g.mul(g.add(v.a!, v.b!), v.b!), wrt: ['a', 'b'],
  },
  {
    name: 'attention block (scaled QK^T + bias, softmax, V, GQA expand)',
    inputs: [f('q', [1, 4, 3, 2], 54), f('k', [1, 2, 3, 2], 55), f('v', [1, 2, 3, 2], 56)],
    build: (g, v) => {
      const rep = (x: Value) => g.reshape(g.op('Expand', [g.unsqueeze(x, [2]), g.ints([1, 1, 2, 1, 1])]), [0, 4, -1, 2]);
      const bias = g.floats([0, -1e9, -1e9, 0, 0, -1e9, 0, 0, 0], [1, 1, 3, 3]);
      const logits = g.add(g.matmul(g.mul(v.q!, g.float(0.7)), g.transpose(rep(v.k!), [0, 1, 3, 2])), bias);
      return g.matmul(g.softmax(logits, -1), rep(v.v!));
    },
    wrt: ['q', 'k', 'v'],
  },
];

describe('gradient rules against central finite differences', () => {
  for (const c of CASES) {
    it(c.name, async (t) => {
      const worst = await checkCase(c);
      t.diagnostic(`max relative error ${worst.toExponential(2)}`);
    });
  }

  it('covers every op of the rule table', () => {
    const tested = new Set<string>();
    for (const c of CASES) {
      const { g } = buildGraph(c, null);
      for (const n of g.nodes) tested.add(n.opType);
    }
    const untested = DIFFERENTIABLE_OPS.filter((op) => !tested.has(op) && !['Flatten', 'Abs'].includes(op));
    assert.deepEqual(untested, [], `rules without a finite-difference case: ${untested.join(', ')}`);
  });

  it('refuses an op without a rule on the path to the loss, naming it', () => {
    const g = new Graph('no_rule');
    const x = g.input('x', 'float32', [3]);
    const y = g.op('Softplus', [x]);
    assert.throws(() => addGradients(g, { seeds: [{ value: y, grad: x }], wrt: [x] }), /no gradient rule for Softplus/);
  });

  it('prunes: nodes that do not depend on a parameter get no backward', () => {
    const g = new Graph('prune');
    const x = g.input('x', 'float32', [3]);
    const w = g.input('w', 'float32', [3]);
    const constPath = g.softmax(g.tanh(w), 0);      // depends only on w (not differentiated)
    const loss = g.reduceSum(g.mul(g.sigmoid(x), constPath), [0], false);
    const res = addGradients(g, { loss, wrt: [x] });
    assert.equal(res.differentiatedNodes, 3, 'ReduceSum, Mul and Sigmoid only');
  });
});

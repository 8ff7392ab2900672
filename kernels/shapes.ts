// Symbolic shape and element-type inference over a Graph's nodes, for the
// gradient rules: they need ranks (to transpose the last two axes, to
// normalise negative axes), and they need to know which axes an operand was
// broadcast along (so its gradient can be summed back). Shapes keep the
// graph's symbolic dimensions ('B', 'T', ...), so one training graph serves any
// batch size and sequence length.
//
// A dimension is a number or a canonical symbolic product such as "P*U" or
// "(Pk+T)" (a sum is an opaque atom). Small int64 tensors whose contents are
// known (Shape outputs, inline constants, their Concats and Gathers) carry
// those contents as dimensions too, so that Reshape/Expand/Range targets built
// from Shape ops resolve. Where a dimension cannot be known it becomes a fresh
// unknown atom ("?n"): equal only to itself, which the rules treat as "decide
// at run time".

import type { NodeSpec } from './onnx-proto.ts';
import type { Dim, Graph, Value } from './graph.ts';
export type ElemType = 'float' | 'int' | 'bool';

export interface ValueInfo {
  type: ElemType;
  /** null: rank unknown. */
  shape: Dim[] | null;
  /** Contents of a small int64 tensor (row-major), when known. */
  value?: Dim[];
}

// --- symbolic dimension arithmetic ---------------------------------------------

interface Mono { c: number; atoms: string[] }

/** Splits "a*b*(c*d+e)" on top-level '*'. */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === '*' && depth === 0) { out.push(cur); cur = ''; } else cur += ch;
  }
  out.push(cur);
  return out;
}

function mono(d: Dim): Mono {
  if (typeof d === 'number') return { c: d, atoms: [] };
  let c = 1;
  const atoms: string[] = [];
  for (const part of splitTop(d)) {
    if (/^-?\d+$/.test(part)) c *= Number(part);
    else atoms.push(part);
  }
  return { c, atoms: atoms.sort() };
}

function fromMono(m: Mono): Dim {
  if (m.atoms.length === 0 || m.c === 0) return m.c;
  const atoms = [...m.atoms].sort();
  return m.c === 1 ? atoms.join('*') : `${m.c}*${atoms.join('*')}`;
}

export function dimMul(a: Dim, b: Dim): Dim {
  const x = mono(a);
  const y = mono(b);
  return fromMono({ c: x.c * y.c, atoms: [...x.atoms, ...y.atoms] });
}

/** a / b when it divides exactly, else null. */
export function dimDiv(a: Dim, b: Dim): Dim | null {
  const x = mono(a);
  const y = mono(b);
  if (y.c === 0 || x.c % y.c !== 0) return null;
  const atoms = [...x.atoms];
  for (const at of y.atoms) {
    const i = atoms.indexOf(at);
    if (i < 0) return null;
    atoms.splice(i, 1);
  }
  return fromMono({ c: x.c / y.c, atoms });
}

export function dimAdd(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  if (a === 0) return b;
  if (b === 0) return a;
  return `(${[String(a), String(b)].sort().join('+')})`;
}

export function dimSub(a: Dim, b: Dim): Dim | null {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (b === 0) return a;
  if (typeof a === 'string' && a.startsWith('(') && a.endsWith(')')) {
    const terms = a.slice(1, -1).split('+');
    const i = terms.indexOf(String(b));
    if (i >= 0 && terms.length === 2) {
      const rest = terms[1 - i]!;
      return /^\d+$/.test(rest) ? Number(rest) : rest;
    }
  }
  return null;
}

export function dimProduct(dims: Dim[]): Dim {
  return dims.reduce<Dim>((acc, d) => dimMul(acc, d), 1);
}

export function isUnknownDim(d: Dim): boolean {
  return typeof d === 'string' && d.includes('?');
}

// --- inference --------------------------------------------------------------------

const ONNX_FLOAT = 1;
const ONNX_INT64 = 7;
const ONNX_INT32 = 6;
const ONNX_BOOL = 9;
const ONNX_DOUBLE = 11;

function elemTypeOf(onnxType: number): ElemType {
  if (onnxType === ONNX_FLOAT || onnxType === ONNX_DOUBLE || onnxType === 10 || onnxType === 16) return 'float';
  if (onnxType === ONNX_BOOL) return 'bool';
  return 'int';
}

function readInt64s(raw: Uint8Array): number[] {
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out: number[] = [];
  for (let i = 0; i + 8 <= raw.byteLength; i += 8) out.push(Number(dv.getBigInt64(i, true)));
  return out;
}

/** A node's int attribute (shape inference and gradient rules both read them). */
export function intAttr(node: NodeSpec, name: string, fallback: number): number {
  const a = node.attributes[name];
  return a && a.kind === 'int' ? a.value : fallback;
}

export function intsAttr(node: NodeSpec, name: string): number[] | undefined {
  const a = node.attributes[name];
  return a && a.kind === 'ints' ? a.value : undefined;
}

export function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

export class ShapeInference {
  private readonly info = new Map<Value, ValueInfo>();
  private unknownCounter = 0;

  constructor(graph: Graph) {
    for (const inp of graph.declaredInputs) {
      this.info.set(inp.name, { type: elemTypeOf(inp.dataType), shape: [...inp.dims] });
    }
    for (const t of graph.declaredInitializers) {
      const vi: ValueInfo = { type: elemTypeOf(t.dataType), shape: [...t.dims] };
      const n = t.dims.reduce((a, b) => a * b, 1);
      if (t.dataType === ONNX_INT64 && t.raw && n <= 64) vi.value = readInt64s(t.raw);
      this.info.set(t.name, vi);
    }
    for (const node of graph.nodes) this.visit(node);
  }

  /** Re-runs inference for nodes appended since construction (optional). */
  visit(node: NodeSpec): void {
    let outs: ValueInfo[];
    try {
      outs = this.infer(node);
    } catch {
      outs = node.outputs.map(() => ({ type: this.get(node.inputs[0] ?? '')?.type ?? 'float', shape: null }));
    }
    node.outputs.forEach((o, i) => { if (o) this.info.set(o, outs[i] ?? { type: 'float', shape: null }); });
  }

  get(v: Value): ValueInfo | undefined {
    return this.info.get(v);
  }

  type(v: Value): ElemType {
    return this.info.get(v)?.type ?? 'float';
  }

  shape(v: Value): Dim[] | null {
    return this.info.get(v)?.shape ?? null;
  }

  private fresh(): Dim {
    return `?${this.unknownCounter++}`;
  }

  broadcast(shapes: Array<Dim[] | null>): Dim[] | null {
    if (shapes.some((s) => s === null)) return null;
    const ss = shapes as Dim[][];
    const rank = Math.max(...ss.map((s) => s.length));
    const out: Dim[] = [];
    for (let i = 0; i < rank; i++) {
      const dims = ss.map((s) => s[s.length - rank + i]).filter((d): d is Dim => d !== undefined && d !== 1);
      if (dims.length === 0) { out.push(1); continue; }
      const known = dims.filter((d) => !isUnknownDim(d));
      const first = known[0] ?? dims[0]!;
      out.push(dims.every((d) => d === first) ? first : known.length > 0 && known.every((d) => d === first) ? first : this.fresh());
    }
    return out;
  }

  private values(v: Value | undefined): Dim[] | undefined {
    return v === undefined || v === '' ? undefined : this.info.get(v)?.value;
  }

  private infer(node: NodeSpec): ValueInfo[] {
    const ins = node.inputs.map((v) => (v === '' ? undefined : this.info.get(v)));
    const s0 = ins[0]?.shape ?? null;
    const t0: ElemType = ins[0]?.type ?? 'float';
    const same = (): ValueInfo[] => [{ type: t0, shape: s0 }];
    switch (node.opType) {
      case 'Identity': case 'Neg': case 'Sqrt': case 'Tanh': case 'Erf': case 'Sigmoid': case 'Relu':
      case 'Cos': case 'Sin': case 'Exp': case 'Log': case 'Softmax': case 'LogSoftmax': case 'Not': case 'Abs':
      case 'Reciprocal': {
        const out: ValueInfo = { type: t0, shape: s0 };
        if (node.opType === 'Identity' && ins[0]?.value) out.value = ins[0].value;
        if (node.opType === 'Neg' && ins[0]?.value && ins[0].value.every((d) => typeof d === 'number')) out.value = (ins[0].value as number[]).map((d) => -d);
        return [out];
      }
      case 'Cast': {
        const to = intAttr(node, 'to', ONNX_FLOAT);
        const out: ValueInfo = { type: elemTypeOf(to), shape: s0 };
        if (ins[0]?.value && (to === ONNX_INT64 || to === ONNX_INT32)) out.value = ins[0].value;
        return [out];
      }
      case 'Add': case 'Sub': case 'Mul': case 'Div': case 'Pow': case 'Max': case 'Min': case 'Sum': {
        const shape = this.broadcast(ins.map((i) => i?.shape ?? null));
        const out: ValueInfo = { type: t0, shape };
        const a = ins[0]?.value;
        const b = ins[1]?.value;
        if (a && b && ins.length === 2 && (a.length === b.length || a.length === 1 || b.length === 1)) {
          const n = Math.max(a.length, b.length);
          const vals: Dim[] = [];
          for (let i = 0; i < n; i++) {
            const x = a[a.length === 1 ? 0 : i]!;
            const y = b[b.length === 1 ? 0 : i]!;
            const r = node.opType === 'Add' ? dimAdd(x, y)
              : node.opType === 'Mul' ? dimMul(x, y)
              : node.opType === 'Sub' ? dimSub(x, y)
              : node.opType === 'Div' ? dimDiv(x, y) : null;
            if (r === null) { vals.length = 0; break; }
            vals.push(r);
          }
          if (vals.length === n) out.value = vals;
        }
        return [out];
      }
      case 'Equal': case 'Less': case 'LessOrEqual': case 'Greater': case 'GreaterOrEqual': case 'And': case 'Or': case 'Xor':
        return [{ type: 'bool', shape: this.broadcast(ins.map((i) => i?.shape ?? null)) }];
      case 'Where':
        return [{ type: ins[1]?.type ?? 'float', shape: this.broadcast(ins.map((i) => i?.shape ?? null)) }];
      case 'MatMul': {
        const a = ins[0]?.shape;
        const b = ins[1]?.shape;
        if (!a || !b || a.length < 2 || b.length < 2) return [{ type: t0, shape: null }];
        const batch = this.broadcast([a.slice(0, -2), b.slice(0, -2)]);
        return [{ type: t0, shape: batch ? [...batch, a[a.length - 2]!, b[b.length - 1]!] : null }];
      }
      case 'Gather': {
        const d = ins[0]?.shape;
        const i = ins[1]?.shape;
        if (!d || !i) return [{ type: t0, shape: null }];
        const axis = normAxis(intAttr(node, 'axis', 0), d.length);
        const out: ValueInfo = { type: t0, shape: [...d.slice(0, axis), ...i, ...d.slice(axis + 1)] };
        const dv = ins[0]?.value;
        const iv = ins[1]?.value;
        if (dv && iv && d.length === 1 && iv.every((x) => typeof x === 'number')) {
          out.value = (iv as number[]).map((k) => dv[k < 0 ? k + dv.length : k]!);
        }
        return [out];
      }
      case 'GatherElements':
        return [{ type: t0, shape: ins[1]?.shape ?? null }];
      case 'GatherND': {
        const d = ins[0]?.shape;
        const i = ins[1]?.shape;
        if (!d || !i) return [{ type: t0, shape: null }];
        const b = intAttr(node, 'batch_dims', 0);
        const m = i[i.length - 1];
        if (typeof m !== 'number') return [{ type: t0, shape: null }];
        return [{ type: t0, shape: [...i.slice(0, -1), ...d.slice(b + m)] }];
      }
      case 'ScatterND': case 'ScatterElements':
        return same();
      case 'Shape': {
        if (!s0) return [{ type: 'int', shape: null }];
        const r = s0.length;
        let start = intAttr(node, 'start', 0);
        let end = intAttr(node, 'end', r);
        if (start < 0) start += r;
        if (end < 0) end += r;
        start = Math.max(0, Math.min(r, start));
        end = Math.max(start, Math.min(r, end));
        return [{ type: 'int', shape: [end - start], value: s0.slice(start, end) }];
      }
      case 'Size':
        return [{ type: 'int', shape: [], ...(s0 ? { value: [dimProduct(s0)] } : {}) }];
      case 'Unsqueeze': {
        const axes = this.values(node.inputs[1]);
        if (!s0 || !axes || axes.some((a) => typeof a !== 'number')) return [{ type: t0, shape: null }];
        const r = s0.length + axes.length;
        const norm = (axes as number[]).map((a) => normAxis(a, r)).sort((x, y) => x - y);
        const shape: Dim[] = [];
        let k = 0;
        for (let i = 0; i < r; i++) shape.push(norm.includes(i) ? 1 : s0[k++]!);
        const out: ValueInfo = { type: t0, shape };
        if (ins[0]?.value) out.value = ins[0].value;
        return [out];
      }
      case 'Squeeze': {
        if (!s0) return [{ type: t0, shape: null }];
        const axesV = this.values(node.inputs[1]);
        let shape: Dim[];
        if (axesV) {
          const norm = (axesV as number[]).map((a) => normAxis(a, s0.length));
          shape = s0.filter((_, i) => !norm.includes(i));
        } else {
          shape = s0.filter((d) => d !== 1);
        }
        const out: ValueInfo = { type: t0, shape };
        if (ins[0]?.value) out.value = ins[0].value;
        return [out];
      }
      case 'Reshape': {
        const target = this.values(node.inputs[1]);
        if (!target) {
          const ts = ins[1]?.shape;
          return [{ type: t0, shape: ts && typeof ts[0] === 'number' ? Array.from({ length: ts[0] }, () => this.fresh()) : null }];
        }
        const shape: Dim[] = target.map((d, i) => (d === 0 && s0 ? s0[i]! : d));
        const minus = shape.indexOf(-1);
        if (minus >= 0) {
          const known = shape.filter((_, i) => i !== minus);
          const q = s0 ? dimDiv(dimProduct(s0), dimProduct(known)) : null;
          shape[minus] = q ?? this.fresh();
        }
        const out: ValueInfo = { type: t0, shape };
        if (ins[0]?.value) out.value = ins[0].value;
        return [out];
      }
      case 'Transpose': {
        if (!s0) return [{ type: t0, shape: null }];
        const perm = intsAttr(node, 'perm') ?? s0.map((_, i) => s0.length - 1 - i);
        return [{ type: t0, shape: perm.map((p) => s0[p]!) }];
      }
      case 'Concat': {
        const shapes = ins.map((i) => i?.shape ?? null);
        if (shapes.some((s) => s === null)) return [{ type: t0, shape: null }];
        const ss = shapes as Dim[][];
        const axis = normAxis(intAttr(node, 'axis', 0), ss[0]!.length);
        const shape = [...ss[0]!];
        shape[axis] = ss.slice(1).reduce<Dim>((acc, s) => dimAdd(acc, s[axis]!), ss[0]![axis]!);
        const out: ValueInfo = { type: t0, shape };
        if (ss[0]!.length === 1 && ins.every((i) => i?.value)) out.value = ins.flatMap((i) => i!.value!);
        return [out];
      }
      case 'Split': {
        if (!s0) return node.outputs.map(() => ({ type: t0, shape: null }));
        const axis = normAxis(intAttr(node, 'axis', 0), s0.length);
        const sizes = this.values(node.inputs[1]);
        return node.outputs.map((_, k) => {
          const shape = [...s0];
          if (sizes) shape[axis] = sizes[k]!;
          else {
            const q = dimDiv(s0[axis]!, node.outputs.length);
            shape[axis] = q ?? this.fresh();
          }
          return { type: t0, shape };
        });
      }
      case 'Expand': {
        const target = this.values(node.inputs[1]);
        if (!target) return [{ type: t0, shape: null }];
        return [{ type: t0, shape: this.broadcast([s0, target]) }];
      }
      case 'ConstantOfShape': {
        const target = this.values(node.inputs[0]);
        const value = node.attributes.value;
        const type: ElemType = value && value.kind === 'tensor' ? elemTypeOf(value.value.dataType) : 'float';
        return [{ type, shape: target ?? null }];
      }
      case 'Range': {
        const [start, limit, delta] = [0, 1, 2].map((k) => this.values(node.inputs[k])?.[0]);
        let n: Dim;
        if (typeof start === 'number' && typeof limit === 'number' && typeof delta === 'number') n = Math.max(0, Math.ceil((limit - start) / delta));
        else if (start === 0 && delta === 1 && limit !== undefined) n = limit;
        else n = this.fresh();
        return [{ type: t0, shape: [n] }];
      }
      case 'ReduceSum': case 'ReduceMean': case 'ReduceMax': case 'ReduceMin': case 'ReduceProd': {
        if (!s0) return [{ type: t0, shape: null }];
        const keep = intAttr(node, 'keepdims', 1) === 1;
        let axes: number[] | undefined = intsAttr(node, 'axes');
        if (!axes && node.inputs[1]) {
          const v = this.values(node.inputs[1]);
          if (!v) return [{ type: t0, shape: keep ? s0.map(() => this.fresh()) : null }];
          axes = v as number[];
        }
        const all = axes === undefined || axes.length === 0;
        if (all && intAttr(node, 'noop_with_empty_axes', 0) === 1) return same();
        const norm = all ? s0.map((_, i) => i) : axes!.map((a) => normAxis(a, s0.length));
        const shape = keep ? s0.map((d, i) => (norm.includes(i) ? 1 : d)) : s0.filter((_, i) => !norm.includes(i));
        return [{ type: t0, shape }];
      }
      case 'LayerNormalization': {
        if (!s0) return node.outputs.map(() => ({ type: t0, shape: null }));
        const axis = normAxis(intAttr(node, 'axis', -1), s0.length);
        const stat = s0.map((d, i) => (i >= axis ? 1 : d));
        return [{ type: t0, shape: s0 }, { type: 'float', shape: stat }, { type: 'float', shape: stat }];
      }
      case 'OneHot': {
        const depth = this.values(node.inputs[1])?.[0] ?? this.fresh();
        if (!s0) return [{ type: ins[2]?.type ?? 'float', shape: null }];
        const r = s0.length + 1;
        const axis = normAxis(intAttr(node, 'axis', -1), r);
        const shape = [...s0];
        shape.splice(axis, 0, depth);
        return [{ type: ins[2]?.type ?? 'float', shape }];
      }
      case 'NonZero':
        return [{ type: 'int', shape: s0 ? [s0.length, this.fresh()] : null }];
      case 'ArgMax': case 'ArgMin': {
        if (!s0) return [{ type: 'int', shape: null }];
        const axis = normAxis(intAttr(node, 'axis', 0), s0.length);
        const keep = intAttr(node, 'keepdims', 1) === 1;
        return [{ type: 'int', shape: keep ? s0.map((d, i) => (i === axis ? 1 : d)) : s0.filter((_, i) => i !== axis) }];
      }
      default:
        return node.outputs.map(() => ({ type: t0, shape: null }));
    }
  }
}

// A small graph IR: named values, standard ONNX nodes, weights and constants.
// Model families build their forward passes with it; `toOnnx` serialises it in
// memory for onnxruntime. Large weights travel as external data so the model
// message stays small and weights are never copied into protobuf.

import { encodeModel, OnnxDataType, type AttributeValue, type NodeSpec, type TensorProtoSpec, type ValueInfoSpec } from './onnx-proto.ts';

export type DType = 'float32' | 'int64' | 'bool';
/**
 * A dimension: a number, or a symbol ('B', 'T') or canonical symbolic product
 * ("P*U", "(Pk+T)"); shapes.ts does the arithmetic. The one Dim type of kernels/.
 */
export type Dim = number | string;
/** A value in the graph, referred to by name. */
export type Value = string;

const ONNX_TYPE: Record<DType, OnnxDataType> = {
  float32: OnnxDataType.FLOAT,
  int64: OnnxDataType.INT64,
  bool: OnnxDataType.BOOL,
};

/** Weights at least this large go to external data (see file comment). */
const EXTERNAL_MIN_BYTES = 4096;
export const OPSET = 17;

export type Attrs = Record<string, number | number[] | string | { float: number }>;

function toAttribute(v: Attrs[string]): AttributeValue {
  if (typeof v === 'string') return { kind: 'string', value: v };
  if (Array.isArray(v)) return { kind: 'ints', value: v };
  if (typeof v === 'number') return { kind: 'int', value: v };
  return { kind: 'float', value: v.float };
}

export interface OnnxModel {
  bytes: Uint8Array;
  externalData: Array<{ path: string; data: Uint8Array }>;
}

export class Graph {
  readonly nodes: NodeSpec[] = [];
  private readonly initializers: TensorProtoSpec[] = [];
  private readonly external: Array<{ path: string; data: Uint8Array }> = [];
  private readonly inputs: ValueInfoSpec[] = [];
  private readonly outputs: ValueInfoSpec[] = [];
  private readonly names = new Set<string>();
  private counter = 0;

  constructor(readonly name: string) {}

  private fresh(hint: string): Value {
    let name: string;
    do name = `${hint}_${this.counter++}`; while (this.names.has(name));
    this.names.add(name);
    return name;
  }

  private claim(name: string): Value {
    if (this.names.has(name)) throw new Error(`graph value "${name}" defined twice`);
    this.names.add(name);
    return name;
  }

  input(name: string, dtype: DType, dims: Dim[]): Value {
    this.inputs.push({ name: this.claim(name), dataType: ONNX_TYPE[dtype], dims });
    return name;
  }

  output(value: Value, name: string, dtype: DType, dims: Dim[]): void {
    this.nodes.push({ opType: 'Identity', inputs: [value], outputs: [this.claim(name)], name: `out_${name}`, attributes: {} });
    this.outputs.push({ name, dataType: ONNX_TYPE[dtype], dims });
  }

  /** A frozen float32 weight (external data when large). */
  weight(name: string, dims: number[], data: Float32Array): Value {
    const expected = dims.reduce((a, b) => a * b, 1);
    if (expected !== data.length) throw new Error(`weight ${name}: dims [${dims}] hold ${expected} values, got ${data.length}`);
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const tensorName = this.claim(name);
    if (bytes.byteLength >= EXTERNAL_MIN_BYTES) {
      const path = `${tensorName.replace(/[^A-Za-z0-9_.-]/g, '_')}.bin`;
      this.external.push({ path, data: bytes });
      this.initializers.push({ name: tensorName, dataType: OnnxDataType.FLOAT, dims, external: { location: path, offset: 0, length: bytes.byteLength } });
    } else {
      this.initializers.push({ name: tensorName, dataType: OnnxDataType.FLOAT, dims, raw: bytes.slice() });
    }
    return tensorName;
  }

  /** An inline int64 constant (shapes, axes, indices: must stay inline for ORT). */
  ints(values: number[], dims: number[] = [values.length]): Value {
    const raw = new Uint8Array(values.length * 8);
    const dv = new DataView(raw.buffer);
    values.forEach((v, i) => dv.setBigInt64(i * 8, BigInt(v), true));
    const name = this.fresh('const_i64');
    this.initializers.push({ name, dataType: OnnxDataType.INT64, dims, raw });
    return name;
  }

  /** An int64 scalar constant. */
  int(value: number): Value {
    return this.ints([value], []);
  }

  /** An inline float32 constant. */
  floats(values: ArrayLike<number>, dims: number[] = [values.length]): Value {
    const data = Float32Array.from(values as ArrayLike<number>);
    const name = this.fresh('const_f32');
    this.initializers.push({ name, dataType: OnnxDataType.FLOAT, dims, raw: new Uint8Array(data.buffer) });
    return name;
  }

  float(value: number): Value {
    return this.floats([value], []);
  }

  op(opType: string, inputs: Value[], attrs: Attrs = {}, domain?: string): Value {
    return this.opN(opType, inputs, 1, attrs, domain)[0]!;
  }

  opN(opType: string, inputs: Value[], nOutputs: number, attrs: Attrs = {}, domain?: string): Value[] {
    const outputs = Array.from({ length: nOutputs }, () => this.fresh(opType.toLowerCase()));
    const attributes: Record<string, AttributeValue> = {};
    for (const [k, v] of Object.entries(attrs)) attributes[k] = toAttribute(v);
    const node: NodeSpec = { opType, inputs, outputs, name: `${opType}_${this.nodes.length}`, attributes };
    if (domain) node.domain = domain;
    this.nodes.push(node);
    return outputs;
  }

  // The ops the model families use, named as ONNX names them.
  add(a: Value, b: Value): Value { return this.op('Add', [a, b]); }
  sub(a: Value, b: Value): Value { return this.op('Sub', [a, b]); }
  mul(a: Value, b: Value): Value { return this.op('Mul', [a, b]); }
  div(a: Value, b: Value): Value { return this.op('Div', [a, b]); }
  matmul(a: Value, b: Value): Value { return this.op('MatMul', [a, b]); }
  sqrt(a: Value): Value { return this.op('Sqrt', [a]); }
  tanh(a: Value): Value { return this.op('Tanh', [a]); }
  erf(a: Value): Value { return this.op('Erf', [a]); }
  sigmoid(a: Value): Value { return this.op('Sigmoid', [a]); }
  softmax(a: Value, axis = -1): Value { return this.op('Softmax', [a], { axis }); }
  reshape(a: Value, shape: number[]): Value { return this.op('Reshape', [a, this.ints(shape)]); }
  transpose(a: Value, perm: number[]): Value { return this.op('Transpose', [a], { perm }); }
  unsqueeze(a: Value, axes: number[]): Value { return this.op('Unsqueeze', [a, this.ints(axes)]); }
  squeeze(a: Value, axes: number[]): Value { return this.op('Squeeze', [a, this.ints(axes)]); }
  concat(values: Value[], axis: number): Value { return this.op('Concat', values, { axis }); }
  gather(data: Value, indices: Value, axis = 0): Value { return this.op('Gather', [data, indices], { axis }); }
  where(cond: Value, a: Value, b: Value): Value { return this.op('Where', [cond, a, b]); }
  cast(a: Value, to: DType): Value { return this.op('Cast', [a], { to: ONNX_TYPE[to] }); }
  reduceSum(a: Value, axes: number[], keepdims = true): Value {
    return this.op('ReduceSum', [a, this.ints(axes)], { keepdims: keepdims ? 1 : 0 });
  }
  reduceMean(a: Value, axes: number[], keepdims = true): Value {
    return this.op('ReduceMean', [a], { axes, keepdims: keepdims ? 1 : 0 });
  }
  /** Shape of `a`, dims [start, end). */
  shape(a: Value, start?: number, end?: number): Value {
    const attrs: Attrs = {};
    if (start !== undefined) attrs.start = start;
    if (end !== undefined) attrs.end = end;
    return this.op('Shape', [a], attrs);
  }

  /** Declared graph inputs (read-only; graph transforms such as autodiff read them). */
  get declaredInputs(): readonly ValueInfoSpec[] { return this.inputs; }
  /** Initializers, weights and inline constants alike (read-only). */
  get declaredInitializers(): readonly TensorProtoSpec[] { return this.initializers; }

  toOnnx(): OnnxModel {
    const bytes = encodeModel({
      graphName: this.name,
      nodes: this.nodes,
      initializers: this.initializers,
      inputs: this.inputs,
      outputs: this.outputs,
      opsets: [{ domain: '', version: OPSET }],
      irVersion: 8,
      producer: 'softserve',
    });
    return { bytes, externalData: this.external };
  }
}

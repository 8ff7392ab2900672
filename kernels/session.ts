// The one place that picks onnxruntime's execution provider, opens sessions
// and runs them: feeds go in as plain typed arrays with their dims, named
// outputs come out the same way, so no caller builds onnxruntime tensors.
// cpu is always there; cuda needs the CUDA build of onnxruntime-node (its
// install script downloads it when network is available); webgpu is bundled on
// linux-x64 but needs a real GPU with Vulkan.

import * as ort from 'onnxruntime-node';
import { SoftserveError } from './errors.ts';
import type { OnnxModel } from './graph.ts';

export type ExecutionProvider = 'cpu' | 'cuda' | 'webgpu';
export const EXECUTION_PROVIDERS: readonly ExecutionProvider[] = ['cpu', 'cuda', 'webgpu'];

export interface SessionOptions {
  executionProvider?: ExecutionProvider;
  /** Intra-op threads; omitted means onnxruntime's default (all cores). */
  intraOpThreads?: number;
  /**
   * Let onnxruntime's idle pool threads spin-wait for work (its default).
   * Spinning buys a little latency per run but burns cores that a server's
   * HTTP thread needs between batches; servers turn it off.
   */
  spinWait?: boolean;
}

export function parseExecutionProvider(value: string): ExecutionProvider {
  if ((EXECUTION_PROVIDERS as readonly string[]).includes(value)) return value as ExecutionProvider;
  throw new SoftserveError('EXECUTION_PROVIDER_UNAVAILABLE',
    `unknown execution provider "${value}"; expected one of ${EXECUTION_PROVIDERS.join(', ')}`);
}

function assertProviderInstalled(ep: ExecutionProvider): void {
  if (ep === 'cpu') return;
  const backends = ort.listSupportedBackends();
  const found = backends.find((b) => b.name === ep);
  if (!found) {
    throw new SoftserveError('EXECUTION_PROVIDER_UNAVAILABLE',
      `execution provider "${ep}" is not available in this onnxruntime-node build (available: ${backends.map((b) => b.name).join(', ')})`);
  }
}

/** A tensor as plain data: a typed array (row-major) and its dims. */
export interface TensorData {
  type: 'float32' | 'int64' | 'bool';
  data: Float32Array | BigInt64Array | Uint8Array;
  dims: number[];
}

/** What a run returns, read by output name. */
export class SessionOutputs {
  constructor(private readonly raw: ort.InferenceSession.OnnxValueMapType) {}

  private get(name: string): ort.Tensor {
    const t = this.raw[name];
    if (!t) throw new SoftserveError('INTERNAL', `the session produced no output "${name}"`);
    return t as ort.Tensor;
  }

  /** A float32 output's data (the session's own buffer: transfer it, do not copy it). */
  float32(name: string): Float32Array {
    const t = this.get(name);
    if (t.type !== 'float32') throw new SoftserveError('INTERNAL', `output "${name}" is ${t.type}, not float32`);
    return t.data as Float32Array;
  }

  dims(name: string): readonly number[] {
    return this.get(name).dims;
  }
}

/** An onnxruntime session that takes and returns plain data. */
export class Session {
  constructor(private readonly inner: ort.InferenceSession) {}

  /** Runs the graph; `fetches` limits the outputs computed (default: all). */
  async run(feeds: Record<string, TensorData>, fetches?: readonly string[]): Promise<SessionOutputs> {
    const tensors: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) tensors[name] = new ort.Tensor(t.type, t.data, t.dims);
    return new SessionOutputs(fetches ? await this.inner.run(tensors, [...fetches]) : await this.inner.run(tensors));
  }

  release(): Promise<void> {
    return this.inner.release();
  }
}

export async function openSession(model: OnnxModel, opts: SessionOptions = {}): Promise<Session> {
  const ep = opts.executionProvider ?? 'cpu';
  assertProviderInstalled(ep);
  // A session option set to undefined throws inside onnxruntime: add keys only when set.
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: [ep],
    graphOptimizationLevel: 'all',
  };
  if (opts.intraOpThreads !== undefined) options.intraOpNumThreads = opts.intraOpThreads;
  if (opts.spinWait === false) {
    options.extra = { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } };
  }
  if (model.externalData.length > 0) options.externalData = model.externalData;
  try {
    return new Session(await ort.InferenceSession.create(model.bytes, options));
  } catch (err) {
    const message = (err as Error).message ?? String(err);
    if (ep !== 'cpu') {
      throw new SoftserveError('EXECUTION_PROVIDER_UNAVAILABLE',
        `could not open a session on execution provider "${ep}": ${message}. ` +
        (ep === 'cuda'
          ? 'Install onnxruntime-node with its CUDA binaries (see README, "GPU").'
          : 'WebGPU needs a GPU with a Vulkan driver.'));
    }
    throw new SoftserveError('INTERNAL', `onnxruntime rejected the model graph: ${message}`);
  }
}

export { ort };

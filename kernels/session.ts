// The one place that picks onnxruntime's execution provider and opens sessions.
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

export async function openSession(model: OnnxModel, opts: SessionOptions = {}): Promise<ort.InferenceSession> {
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
    return await ort.InferenceSession.create(model.bytes, options);
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

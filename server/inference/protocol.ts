// Messages between the HTTP thread and an inference worker.

import type { TensorData } from '../../models/batch.ts';
import type { ModelSpec } from '../../models/spec.ts';

export type ToWorker =
  | { type: 'run'; id: number; feeds: Record<string, TensorData> }
  | { type: 'close' }
  /** TEST ONLY (InferenceWorker.exitForTest): the thread exits as a crash would. */
  | { type: 'exit-for-test'; code: number };

export type FromWorker =
  | { type: 'ready'; spec: ModelSpec; positionOffset: number; warmupMs: number }
  | { type: 'fatal'; code: string; message: string }
  | { type: 'result'; id: number; scores: Float32Array; pooled: Float32Array; classes: number; inferenceMs: number }
  | { type: 'failed'; id: number; code: string; message: string };

// Messages between the HTTP thread and an inference worker.

import type { ModelSpec } from '../../models/spec.ts';
import type { PackedRows } from './rows-wire.ts';

export type ToWorker =
  /** Rows to assemble and run (rows-wire.ts); every buffer in `rows` is transferred. */
  | { type: 'run'; id: number; rows: PackedRows }
  | { type: 'close' }
  /** TEST ONLY (InferenceWorker.exitForTest): the thread exits as a crash would. */
  | { type: 'exit-for-test'; code: number };

export type FromWorker =
  /** `threadId`: the thread's Linux id, for reading its CPU from outside (thread-cpu.ts), where known. */
  | { type: 'ready'; spec: ModelSpec; warmupMs: number; threadId?: number }
  | { type: 'fatal'; code: string; message: string }
  | {
    type: 'result'; id: number;
    /** Rows that ran (indices into the batch) and the requests whose rows could not be assembled. */
    ran: number[]; failed: Array<{ group: number; code: string; message: string }>;
    scores: Float32Array; classes: number; numClasses: number[];
    paddedLength: number; realTokens: number; inferenceMs: number; aroundRunMs: number;
  }
  | { type: 'failed'; id: number; code: string; message: string };

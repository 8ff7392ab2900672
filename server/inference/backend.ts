// The seam between the scheduler and whatever runs its batches (after undici's
// Dispatcher: one small run/close interface; a pool is just another
// implementation that picks a member). The scheduler forms batches of rows and
// hands them over; the backend assembles them into the serving graph's inputs
// (on its own thread: assembly is not the HTTP thread's work), runs them and
// answers with raw outputs.
//
// Implementations: `InferenceWorker` (inference/client.ts), one worker thread
// with one onnxruntime session. A pool of workers or a device-specific backend
// (a GPU session, a remote engine) is one new class implementing this
// interface, constructed in server/server.ts in place of InferenceWorker; the
// scheduler does not change (it keeps `capacity` batches in flight).

import type { ModelSpec } from '../../models/spec.ts';
import type { EngineRow } from '../../models/batch.ts';

export interface BatchInput {
  rows: EngineRow[];
  /**
   * Per row, the request it belongs to. A row that cannot be assembled fails
   * its whole group (its request) and no other: the rest of the batch runs.
   */
  groups: number[];
}

/** A request whose rows could not be assembled (its rows did not run). */
export interface GroupFailure { group: number; error: Error }

export interface BatchOutput {
  /** Indices (into BatchInput.rows) of the rows that ran, in output order. */
  ran: number[];
  /** Requests whose rows could not be assembled; their rows did not run. */
  failed: GroupFailure[];
  /** scores [ran, classes], row-major (empty when nothing ran). Classify reads scores only, so the worker fetches nothing else (Engine.runScores). */
  scores: Float32Array;
  classes: number;
  /** Per ran row, how many of its `classes` scores are real. */
  numClasses: number[];
  /** Padded sequence length and real tokens of the batch that ran. */
  paddedLength: number;
  realTokens: number;
  /** Time in the model's forward pass (assembly excluded). */
  inferenceMs: number;
  /**
   * Where the backend can tell: the wall time its thread worked around the
   * forward pass (unpacking, assembly, posting the previous batch's reply).
   * That code never blocks, so this is its CPU unless the thread was
   * preempted; decoding the incoming message, before the handler runs, is
   * not in it.
   */
  aroundRunMs?: number;
}

export interface InferenceBackend {
  /** Batches it takes in flight at once; the scheduler never sends more. */
  readonly capacity: number;
  /** Resolves when the model is loaded and warm; rejects if it never loads. */
  readonly ready: Promise<void>;
  /** Whether it can run batches now (false while restarting or closed). */
  readonly isReady: boolean;
  /** The loaded model (null before `ready`). */
  readonly spec: ModelSpec | null;
  run(batch: BatchInput): Promise<BatchOutput>;
  /** Stops taking batches, finishes nothing new, releases the model. */
  close(): Promise<void>;
}

// Batch assembly behind the backend seam: rows in, the serving graph's feeds
// out, with one request's bad row failing that request only (the others in
// its batch still run). Runs where the backend runs it: inside the inference
// worker thread for InferenceWorker.

import { SoftserveError } from '../../kernels/errors.ts';
import type { AssembledBatch, EngineRow } from '../../models/batch.ts';
import type { BatchInput, GroupFailure } from './backend.ts';

export interface IsolatedAssembly {
  /** The feeds of the rows that can run (null when none can). */
  batch: AssembledBatch | null;
  /** Indices into the input's rows, in the batch's row order. */
  ran: number[];
  failed: GroupFailure[];
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new SoftserveError('INTERNAL', String(err)));

export function assembleIsolated(input: BatchInput, assemble: (rows: EngineRow[]) => AssembledBatch): IsolatedAssembly {
  const { rows, groups } = input;
  try {
    return { batch: assemble(rows), ran: rows.map((_, i) => i), failed: [] };
  } catch {
    // Find the requests at fault: each is tried on its own; the rest run together.
  }
  const byGroup = new Map<number, number[]>();
  rows.forEach((_, i) => {
    const g = groups[i]!;
    const list = byGroup.get(g);
    if (list) list.push(i);
    else byGroup.set(g, [i]);
  });
  const ran: number[] = [];
  const failed: GroupFailure[] = [];
  for (const [group, indices] of byGroup) {
    try {
      assemble(indices.map((i) => rows[i]!));
      ran.push(...indices);
    } catch (err) {
      failed.push({ group, error: asError(err) });
    }
  }
  ran.sort((a, b) => a - b);
  return { batch: ran.length > 0 ? assemble(ran.map((i) => rows[i]!)) : null, ran, failed };
}

// Messages between the primary process (the model, the scheduler, the
// training runner: server/cluster/primary.ts) and its front workers (HTTP:
// server/cluster/front-link.ts), over node:cluster's IPC channel with
// `serialization: 'advanced'`, so typed arrays cross as typed arrays.
//
// A classify request crosses once each way: its rows packed as for the
// inference thread (rows-wire.ts), and its scores back in one flat array.
// Everything else is small: catalog changes (every process keeps its own
// catalog cache), the engine's readiness, and gathering what each process
// counts (metrics, usage) for the one front that was asked.

import { SoftserveError, isErrorCode } from '../../kernels/errors.ts';
import type { ModelSpec } from '../../models/spec.ts';
import type { CatalogEvent } from '../../prompts/catalog-cache.ts';
import type { PackedRows } from '../inference/rows-wire.ts';

/** What a front asks every process for and the primary merges. */
export type GatherWhat = { what: 'metrics' } | { what: 'usage'; tenantId: string };

export type ToPrimary =
  /** The front is loaded and listens on its channel (a message sent before would be lost). */
  | { t: 'connect' }
  | { t: 'listening'; port: number }
  | { t: 'submit'; id: number; tenant: string; deadlineMs: number; rows: PackedRows }
  | { t: 'catalog'; event: CatalogEvent }
  | { t: 'gather'; id: number; query: GatherWhat }
  /** A front's share of a gather the primary started. */
  | { t: 'collected'; gid: number; data: unknown }
  /** A job was queued on this front: the primary's training runner looks now rather than at its next poll. */
  | { t: 'job-queued' };

export type ToFront =
  /** `index`: this front's number (0..K-1; a replacement takes the number of the one it replaces). */
  | { t: 'hello'; spec: ModelSpec; fronts: number; index: number }
  | {
    t: 'result'; id: number;
    /** Row r's scores are scores[scoreStart[r] .. scoreStart[r + 1]); rowBatch[r] is the batch it ran in. */
    scores: Float32Array; scoreStart: Int32Array; rowBatch: Int32Array;
    batchIds: number[]; queueMs: number; inferenceMs: number;
  }
  | { t: 'error'; id: number; error: WireError }
  | { t: 'catalog'; event: CatalogEvent }
  | { t: 'engine'; ready: boolean; retryAfter: number }
  | { t: 'gathered'; id: number; data: unknown }
  | { t: 'collect'; gid: number; query: GatherWhat }
  /** Stop taking requests, answer what is in flight, close and exit. */
  | { t: 'drain' };

export interface WireError { code: string; message: string; details?: Record<string, unknown> }

export function errorToWire(err: unknown): WireError {
  if (err instanceof SoftserveError) return { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) };
  return { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) };
}

export function errorFromWire(e: WireError): SoftserveError {
  return new SoftserveError(isErrorCode(e.code) ? e.code : 'INTERNAL', e.message, e.details);
}

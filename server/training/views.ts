// The JSON shape of a training job (snake_case), from its row and, while it
// runs, the manager's live progress.

import { redactPaths } from '../redact.ts';
import type { Progress, EvalPoint } from '../../prompts/training/trainer.ts';
import type { JobRow } from '../../prompts/store/index.ts';

export interface PublishedMember {
  name: string;
  version: number;
  seed: number;
  init: string;
  held_out_accuracy: number | null;
  held_out_loss: number | null;
  steps: number;
  best_step: number;
  stopped_early: boolean;
  wall_ms: number;
  examples_per_sec: number;
}

export interface JobResult {
  prompts: PublishedMember[];
  ensemble: string | null;
}

const r4 = (x: number | null | undefined): number | null => (x === null || x === undefined || !Number.isFinite(x) ? null : Math.round(x * 1e4) / 1e4);

export function progressView(p: Progress | null) {
  if (!p) return null;
  return {
    phase: p.phase,
    member: p.member + 1,
    members: p.members,
    step: p.step,
    total_steps: p.totalSteps,
    epoch: p.epoch,
    loss: r4(p.loss),
    held_out_accuracy: r4(p.heldOutAccuracy),
    held_out_loss: r4(p.heldOutLoss),
    best_held_out_accuracy: r4(p.bestHeldOutAccuracy),
    examples_per_sec: Math.round(p.examplesPerSec * 10) / 10,
  };
}

export function historyView(h: EvalPoint[]) {
  return h.map((e) => ({
    member: e.member + 1,
    step: e.step,
    epoch: e.epoch,
    train_loss: r4(e.trainLoss),
    held_out_loss: r4(e.heldOutLoss),
    held_out_accuracy: r4(e.heldOutAccuracy),
    elapsed_ms: Math.round(e.elapsedMs),
  }));
}

export function jobView(row: JobRow, live?: { progress: Progress | null; history: EvalPoint[] }) {
  const progress = live ? live.progress : (row.progress ? JSON.parse(row.progress) as Progress : null);
  const history = live ? live.history : JSON.parse(row.history) as EvalPoint[];
  const counts = JSON.parse(row.result ?? 'null') as JobResult | null;
  return {
    id: row.id,
    task: row.task_name,
    prompt: row.prompt_name,
    ensemble: row.ensemble_name,
    state: row.state,
    cancel_requested: row.cancel_requested === 1,
    options: JSON.parse(row.options) as Record<string, unknown>,
    examples: row.num_examples,
    progress: progressView(progress),
    history: historyView(history),
    result: counts,
    error: row.error ? publicError(JSON.parse(row.error) as { code: string; message: string }) : null,
    attempts: row.attempts,
    memory: row.memory ? JSON.parse(row.memory) as { estimate_mb: number; limit_mb: number; peak_growth_mb?: number } : null,
    events: JSON.parse(row.events) as unknown[],
    created_at: row.created_at,
    started_at: row.started_at,
    finished_at: row.finished_at,
  };
}

export type JobView = ReturnType<typeof jobView>;

/** A failed job's error as a client sees it: no file-system paths (the worker's own errors can name files). */
function publicError(e: { code: string; message: string }): { code: string; message: string } {
  return { code: e.code, message: redactPaths(e.message) };
}

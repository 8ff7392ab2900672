// Messages between the training manager (HTTP thread) and the training worker.

import type { ExecutionProvider } from '../../kernels/session.ts';
import type { ModelSpec } from '../../models/spec.ts';
import type { PromptTensors } from '../../prompts/kinds.ts';
import type { Example } from '../../prompts/training/data.ts';
import type { TrainingOptions } from '../../prompts/training/options.ts';
import type { EvalPoint, Progress, TaskSpec } from '../../prompts/training/trainer.ts';

/** The thread's workerData. */
export interface TrainerWorkerConfig {
  modelDir: string;
  executionProvider: ExecutionProvider;
  intraOpThreads: number;
  /** Added niceness of this thread (0-19). */
  niceness: number;
}

export interface MemberSummary {
  seed: number;
  init: string;
  steps: number;
  totalSteps: number;
  bestStep: number;
  heldOut: { accuracy: number; loss: number } | null;
  stoppedEarly: boolean;
  wallMs: number;
  examplesPerSec: number;
}

export type ToTrainer =
  | {
    type: 'start'; jobId: string; task: TaskSpec; train: Example[]; heldOut: Example[]; options: TrainingOptions;
    /** Transfer: the prompt to start from; distillation: the teacher's members and unlabelled texts. */
    extras?: { initPrompt?: PromptTensors; teacher?: PromptTensors[]; unlabelled?: string[] };
  }
  | { type: 'cancel'; jobId: string }
  | { type: 'close' }
  /** Test-only (TrainingWorkerClient.crashForTest via TrainingManager.crashWorkerForTest, never reachable from HTTP): the worker exits as if it crashed. */
  | { type: 'test_exit'; code: number };

export type FromTrainer =
  | { type: 'ready'; spec: ModelSpec; loadMs: number }
  | { type: 'fatal'; code: string; message: string }
  | { type: 'progress'; jobId: string; progress: Progress }
  | { type: 'eval'; jobId: string; point: EvalPoint }
  | { type: 'done'; jobId: string; cancelled: boolean; members: Array<{ tensors: PromptTensors; summary: MemberSummary }> }
  | { type: 'failed'; jobId: string; code: string; message: string };

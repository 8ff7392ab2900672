// HTTP-thread handle on the training worker thread (as inference/client.ts is
// for serving): it owns the thread and its protocol. The thread starts when
// the first job needs it; a job is one `run` call whose promise settles with
// the worker's answer, or with `exited` if the thread died under it (the
// manager then decides to requeue or fail the job); the next `run` starts a
// fresh thread. Queue order, fairness, budgets and the jobs table stay with
// the manager.

import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';

import { isErrorCode, SoftserveError } from '../../kernels/errors.ts';
import type { EvalPoint, Progress } from '../../prompts/training/trainer.ts';
import type { FromTrainer, ToTrainer, TrainerWorkerConfig } from './protocol.ts';

/** How an attempt ended: the worker's answer, or the worker thread gone. */
export type Outcome = Extract<FromTrainer, { type: 'done' | 'failed' }> | { type: 'exited'; code: number };

export type StartJob = Omit<Extract<ToTrainer, { type: 'start' }>, 'type'>;

export interface JobListener {
  onProgress(progress: Progress): void;
  onEval(point: EvalPoint): void;
}

export interface TrainingWorkerHooks {
  /** The thread died on its own (not closed or retired); a running job has settled as `exited`. */
  onExit?(code: number): void;
}

function asError(code: string, message: string): SoftserveError {
  return new SoftserveError(isErrorCode(code) ? code : 'INTERNAL', message);
}

interface CurrentJob { jobId: string; listener: JobListener; settle(outcome: Outcome): void }

export class TrainingWorkerClient {
  private worker: Worker | null = null;
  private workerReady: Promise<void> | null = null;
  private current: CurrentJob | null = null;

  constructor(
    private readonly config: TrainerWorkerConfig,
    private readonly logger?: Logger,
    private readonly hooks: TrainingWorkerHooks = {},
  ) {}

  /** Starts the thread if none is running; resolves when its model is loaded. */
  start(): Promise<void> {
    if (this.workerReady) return this.workerReady;
    const worker = new Worker(new URL('./worker-entry.mjs', import.meta.url), { workerData: this.config, execArgv: [] });
    this.worker = worker;
    this.workerReady = new Promise<void>((resolve, reject) => {
      worker.on('message', (msg: FromTrainer) => {
        switch (msg.type) {
          case 'ready':
            this.logger?.info({ loadMs: Math.round(msg.loadMs) }, 'training worker ready');
            resolve();
            break;
          case 'fatal':
            reject(asError(msg.code, msg.message));
            break;
          case 'progress':
            if (this.current?.jobId === msg.jobId) this.current.listener.onProgress(msg.progress);
            break;
          case 'eval':
            if (this.current?.jobId === msg.jobId) this.current.listener.onEval(msg.point);
            break;
          case 'done':
          case 'failed':
            if (this.current?.jobId === msg.jobId) this.current.settle(msg);
            break;
        }
      });
      worker.on('error', (err) => {
        this.logger?.error({ err }, 'training worker failed');
        reject(err);
      });
      worker.on('exit', (code) => {
        reject(new SoftserveError('INTERNAL', `training worker exited with code ${code}`));
        // A retired worker (closed after a job went over its memory ceiling) may exit while its successor runs.
        if (this.worker !== worker) return;
        this.worker = null;
        this.workerReady = null;
        this.hooks.onExit?.(code);
        this.current?.settle({ type: 'exited', code });
      });
    });
    this.workerReady.catch(() => {});
    return this.workerReady;
  }

  /** Whether a thread is there (started, perhaps still loading). */
  get running(): boolean {
    return this.worker !== null;
  }

  /**
   * Runs one job on the started thread (one at a time); `cancelNow` sends the
   * cancel right after the start (a cancel requested while it was queued).
   */
  run(job: StartJob, listener: JobListener, cancelNow = false): Promise<Outcome> {
    if (this.current) return Promise.reject(new SoftserveError('INTERNAL', 'the training worker is already running a job'));
    if (!this.worker) return Promise.resolve({ type: 'exited', code: 1 });
    return new Promise<Outcome>((resolve) => {
      this.current = {
        jobId: job.jobId, listener,
        settle: (outcome) => {
          this.current = null;
          resolve(outcome);
        },
      };
      this.post({ type: 'start', ...job });
      if (cancelNow) this.cancel(job.jobId);
    });
  }

  /** The job stops at its next step and settles `done` with cancelled: true. */
  cancel(jobId: string): void {
    this.post({ type: 'cancel', jobId });
  }

  /**
   * Lets the idle worker go (it releases its sessions and exits) so that the
   * next job starts on a fresh one with all of the old one's memory returned.
   * Never Worker.terminate() during a step: onnxruntime's native run cannot be
   * interrupted, and a terminated thread returning from it aborts the process.
   */
  retire(): void {
    const worker = this.worker;
    if (!worker) return;
    this.worker = null;
    this.workerReady = null;
    worker.postMessage({ type: 'close' } satisfies ToTrainer);
  }

  /**
   * Test-only: makes the thread exit as a crash would, from inside
   * (process.exit in a worker ends the thread). Not reachable from HTTP.
   */
  crashForTest(code = 70): boolean {
    if (!this.worker) return false;
    this.post({ type: 'test_exit', code });
    return true;
  }

  /** Closes the thread (after its current job); terminates it if it has not exited in 5 s. */
  async close(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    this.post({ type: 'close' });
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => { void worker.terminate().then(() => resolve()); }, 5000);
      worker.once('exit', () => { clearTimeout(timer); resolve(); });
    });
  }

  private post(msg: ToTrainer, transfer: ArrayBuffer[] = []): void {
    this.worker?.postMessage(msg, transfer);
  }
}

// HTTP-thread handle on an inference worker, the first InferenceBackend
// (backend.ts): start it, wait until the model is loaded and warmed up, send
// batches of rows (packed by rows-wire.ts, their buffers transferred, not
// copied; the worker assembles them) and get outputs back as promises.

import { Worker } from 'node:worker_threads';
import { SoftserveError, isErrorCode } from '../../kernels/errors.ts';
import type { ModelSpec } from '../../models/spec.ts';
import type { ExecutionProvider } from '../../kernels/session.ts';
import type { BatchInput, BatchOutput, InferenceBackend } from './backend.ts';
import { packRows } from './rows-wire.ts';
import type { FromWorker, ToWorker } from './protocol.ts';

export interface InferenceWorkerOptions {
  modelDir: string;
  executionProvider: ExecutionProvider;
  intraOpThreads?: number;
  /** onnxruntime's pool threads spin-wait between runs (off by default: it starves the HTTP thread). */
  spinWait?: boolean;
}

function toError(code: string, message: string): SoftserveError {
  return new SoftserveError(isErrorCode(code) ? code : 'INTERNAL', message);
}

const restarting = (message: string) => new SoftserveError('INFERENCE_WORKER_RESTARTING', message, { retryAfter: 1 });

export interface InferenceWorkerHooks {
  /** The worker thread died unexpectedly; in-flight batches have been failed; a restart follows in `restartInMs`. */
  onExit?(info: { exitCode: number; error: Error | null; restartInMs: number }): void;
  /** A restarted worker has loaded the model and is serving again. */
  onRestarted?(info: { restarts: number; downMs: number }): void;
}

/** Restart delays after consecutive failures: 100 ms, doubling, at most 5 s. */
const RESTART_BASE_MS = 100;
const RESTART_MAX_MS = 5000;

/**
 * If the thread dies after it has been ready (a crash, out of memory, a
 * process.exit inside it), every batch in flight fails with 503
 * INFERENCE_WORKER_RESTARTING, new batches are refused the same way at once,
 * and a new thread is started (with backoff if it keeps dying); `isReady` is
 * false until it has loaded the model again.
 */
export class InferenceWorker implements InferenceBackend {
  /** One session on one thread: one batch at a time (a pool would report the sum of its members'). */
  readonly capacity = 1;
  private worker!: Worker;
  private readonly pending = new Map<number, { resolve: (o: BatchOutput) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private closed = false;
  private up = false;
  private everReady = false;
  private consecutiveFailures = 0;
  private downSince = 0;
  private lastError: Error | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  /** TEST ONLY (holdForTest): while set, no batch is sent to the thread and no restart begins. */
  private testHold: Promise<void> | null = null;
  /** Times the thread was restarted after dying. */
  restarts = 0;
  spec: ModelSpec | null = null;
  warmupMs = 0;
  /** The serving thread's Linux id while it is up (null where unknown): its CPU is read from outside (server/thread-cpu.ts). */
  threadId: number | null = null;
  /** The first start: resolves when the model is loaded, rejects if the first thread fails. */
  readonly ready: Promise<void>;
  private settleFirst!: { resolve: () => void; reject: (e: Error) => void };

  constructor(private readonly opts: InferenceWorkerOptions, private readonly hooks: InferenceWorkerHooks = {}) {
    this.ready = new Promise((resolve, reject) => { this.settleFirst = { resolve, reject }; });
    this.spawn();
  }

  /** Whether a loaded worker thread is serving now. */
  get isReady(): boolean {
    return this.up && !this.closed;
  }

  private spawn(): void {
    const worker = new Worker(new URL('./worker-entry.mjs', import.meta.url), { workerData: this.opts, execArgv: [] });
    this.worker = worker;
    worker.on('message', (msg: FromWorker) => {
      switch (msg.type) {
        case 'ready':
          this.spec = msg.spec;
          this.warmupMs = msg.warmupMs;
          this.threadId = msg.threadId ?? null;
          this.up = true;
          this.consecutiveFailures = 0;
          if (this.everReady) {
            this.restarts++;
            this.hooks.onRestarted?.({ restarts: this.restarts, downMs: performance.now() - this.downSince });
          }
          this.everReady = true;
          this.settleFirst.resolve();
          break;
        case 'fatal':
          // The model failed to load: fatal at start; after a crash, the exit that follows retries.
          this.lastError = toError(msg.code, msg.message);
          if (!this.everReady) this.settleFirst.reject(this.lastError);
          void worker.terminate();
          break;
        case 'result': {
          const p = this.pending.get(msg.id);
          this.pending.delete(msg.id);
          p?.resolve({
            ran: msg.ran, failed: msg.failed.map((f) => ({ group: f.group, error: toError(f.code, f.message) })),
            scores: msg.scores, classes: msg.classes, numClasses: msg.numClasses,
            paddedLength: msg.paddedLength, realTokens: msg.realTokens, inferenceMs: msg.inferenceMs,
            aroundRunMs: msg.aroundRunMs,
          });
          break;
        }
        case 'failed': {
          const p = this.pending.get(msg.id);
          this.pending.delete(msg.id);
          p?.reject(toError(msg.code, msg.message));
          break;
        }
      }
    });
    worker.on('error', (err) => { this.lastError = err; });
    worker.on('exit', (code) => {
      if (this.worker !== worker) return;
      this.up = false;
      this.threadId = null;
      if (this.closed) return;
      if (!this.everReady) {
        const err = this.lastError ?? new SoftserveError('INTERNAL', `inference worker exited with code ${code} before it was ready`);
        this.settleFirst.reject(err);
        this.failAll(err);
        return;
      }
      if (this.consecutiveFailures === 0) this.downSince = performance.now();
      this.failAll(restarting(`the inference worker stopped (exit code ${code}) and is restarting; retry shortly`));
      const delay = Math.min(RESTART_MAX_MS, RESTART_BASE_MS * 2 ** this.consecutiveFailures);
      this.consecutiveFailures++;
      this.hooks.onExit?.({ exitCode: code, error: this.lastError, restartInMs: delay });
      this.lastError = null;
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        void (this.testHold ?? Promise.resolve()).then(() => { if (!this.closed) this.spawn(); });
      }, delay);
    });
  }

  /**
   * TEST ONLY: makes the worker thread call process.exit(code), as a crash
   * would. Reachable through this handle only (tests hold the server's), never
   * from HTTP.
   */
  exitForTest(code = 70): void {
    this.worker.postMessage({ type: 'exit-for-test', code } satisfies ToWorker);
  }

  /**
   * TEST ONLY: until the returned function is called, batches wait on this
   * side instead of reaching the thread, and a restart waits too, so a test
   * can hold admitted work in flight (or a dead worker down) as long as it
   * needs, without depending on how fast the model runs.
   */
  holdForTest(): () => void {
    let release!: () => void;
    this.testHold = new Promise<void>((resolve) => { release = resolve; });
    return () => { this.testHold = null; release(); };
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  /** Sends the rows to the thread, which assembles and runs them. */
  run(batch: BatchInput): Promise<BatchOutput> {
    if (this.closed) return Promise.reject(new SoftserveError('DRAINING', 'inference worker is closed'));
    if (this.testHold) return this.testHold.then(() => this.run(batch));
    if (!this.up) return Promise.reject(restarting('the inference worker is restarting; retry shortly'));
    const id = this.nextId++;
    const { packed, transfer } = packRows(batch);
    const msg: ToWorker = { type: 'run', id, rows: packed };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage(msg, transfer);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (!this.up) {
      await this.worker.terminate();
      return;
    }
    this.worker.postMessage({ type: 'close' } satisfies ToWorker);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => { void this.worker.terminate().then(() => resolve()); }, 5000);
      this.worker.once('exit', () => { clearTimeout(timer); resolve(); });
    });
  }
}

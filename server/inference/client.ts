// HTTP-thread handle on an inference worker: start it, wait until the model is
// loaded and warmed up, send assembled batches (their buffers are transferred,
// not copied) and get outputs back as promises.

import { Worker } from 'node:worker_threads';
import { SoftserveError, type ErrorCode, ERROR_STATUS } from '../../kernels/errors.ts';
import { assembleBatch, type AssembledBatch, type EngineRow } from '../../models/batch.ts';
import type { ModelSpec } from '../../models/spec.ts';
import type { ExecutionProvider } from '../../kernels/session.ts';
import type { FromWorker, ToWorker } from './protocol.ts';

export interface InferenceOutput { scores: Float32Array; pooled: Float32Array; classes: number; inferenceMs: number }

export interface InferenceWorkerOptions {
  modelDir: string;
  executionProvider: ExecutionProvider;
  intraOpThreads?: number;
  /** onnxruntime's pool threads spin-wait between runs (off by default: it starves the HTTP thread). */
  spinWait?: boolean;
}

function toError(code: string, message: string): SoftserveError {
  return new SoftserveError((code in ERROR_STATUS ? code : 'INTERNAL') as ErrorCode, message);
}

export class InferenceWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve: (o: InferenceOutput) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private closed = false;
  spec: ModelSpec | null = null;
  positionOffset = 0;
  warmupMs = 0;
  readonly ready: Promise<void>;

  constructor(opts: InferenceWorkerOptions) {
    this.worker = new Worker(new URL('./worker-entry.mjs', import.meta.url), { workerData: opts, execArgv: [] });
    this.ready = new Promise((resolve, reject) => {
      this.worker.on('message', (msg: FromWorker) => {
        switch (msg.type) {
          case 'ready':
            this.spec = msg.spec;
            this.positionOffset = msg.positionOffset;
            this.warmupMs = msg.warmupMs;
            resolve();
            break;
          case 'fatal':
            reject(toError(msg.code, msg.message));
            break;
          case 'result': {
            const p = this.pending.get(msg.id);
            this.pending.delete(msg.id);
            p?.resolve({ scores: msg.scores, pooled: msg.pooled, classes: msg.classes, inferenceMs: msg.inferenceMs });
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
      this.worker.on('error', (err) => {
        reject(err);
        this.failAll(err);
      });
      this.worker.on('exit', (code) => {
        if (!this.closed) {
          const err = new SoftserveError('INTERNAL', `inference worker exited with code ${code}`);
          reject(err);
          this.failAll(err);
        }
      });
    });
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  /** Builds the worker's input tensors for `rows` (on the calling thread). */
  assemble(rows: EngineRow[]): AssembledBatch {
    if (!this.spec) throw new SoftserveError('NOT_READY', 'the model is not loaded yet');
    return assembleBatch(rows, this.spec, this.positionOffset);
  }

  run(batch: AssembledBatch): Promise<InferenceOutput> {
    if (this.closed) return Promise.reject(new SoftserveError('DRAINING', 'inference worker is closed'));
    const id = this.nextId++;
    const transfer = Object.values(batch.feeds).map((t) => t.data.buffer as ArrayBuffer);
    const msg: ToWorker = { type: 'run', id, feeds: batch.feeds };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage(msg, transfer);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.worker.postMessage({ type: 'close' } satisfies ToWorker);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => { void this.worker.terminate().then(() => resolve()); }, 5000);
      this.worker.once('exit', () => { clearTimeout(timer); resolve(); });
    });
  }
}

// The training worker thread: its own onnxruntime sessions (one intra-op
// thread by default, so it never takes more than one core), at a lower CPU
// priority than the rest of the process (Linux nice is per thread; the
// sessions run on this thread), one job at a time. Serving keeps its own
// worker and session; nothing here touches them.

import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';

import { TrainableModel } from '../../models/training-graph.ts';
import { distillTrainingSet } from '../../prompts/training/distill.ts';
import { trainEnsemble } from '../../prompts/training/trainer.ts';
import type { FromTrainer, ToTrainer, TrainerWorkerConfig } from './protocol.ts';

const port = parentPort!;
const config = workerData as TrainerWorkerConfig;
const cancelled = new Set<string>();
let queue: Promise<void> = Promise.resolve();

function post(msg: FromTrainer, transfer: ArrayBuffer[] = []): void {
  port.postMessage(msg, transfer);
}

async function main(): Promise<void> {
  if (config.niceness > 0) {
    try {
      setPriority(0, config.niceness);
    } catch {
      // Not permitted: run at normal priority.
    }
  }
  let model: TrainableModel;
  const started = performance.now();
  try {
    model = await TrainableModel.load(config.modelDir, { executionProvider: config.executionProvider, intraOpThreads: config.intraOpThreads });
  } catch (err) {
    const e = err as { code?: string; message?: string };
    post({ type: 'fatal', code: e.code ?? 'INTERNAL', message: e.message ?? String(err) });
    return;
  }
  post({ type: 'ready', spec: model.spec, loadMs: performance.now() - started });

  port.on('message', (msg: ToTrainer) => {
    if (msg.type === 'cancel') {
      cancelled.add(msg.jobId);
      return;
    }
    if (msg.type === 'test_exit') {
      process.exit(msg.code); // in a worker thread this ends the thread, not the process
    }
    if (msg.type === 'close') {
      void queue.then(async () => {
        await model.release();
        port.close();
      });
      return;
    }
    queue = queue.then(async () => {
      const { jobId } = msg;
      try {
        const { extras, options } = msg;
        // Distillation: the teacher labels the job's texts (and the unlabelled ones) first.
        const train = options.distill && extras?.teacher
          ? await distillTrainingSet(model, msg.task, msg.train, extras.unlabelled ?? [], extras.teacher, options.distill.goldWeight, options.maxTextTokens, options.distill.temperature)
          : msg.train;
        const res = await trainEnsemble(model, msg.task, train, msg.heldOut, options, {
          onProgress: (progress) => post({ type: 'progress', jobId, progress }),
          onEval: (point) => post({ type: 'eval', jobId, point }),
          shouldStop: () => cancelled.has(jobId),
        }, extras?.initPrompt ? { initPrompt: extras.initPrompt } : {});
        const members = res.members.map((r) => ({
          tensors: r.tensors,
          summary: {
            seed: r.seed, init: r.init, steps: r.steps, totalSteps: r.totalSteps, bestStep: r.bestStep, heldOut: r.heldOut,
            stoppedEarly: r.stoppedEarly, wallMs: r.wallMs, examplesPerSec: r.examplesPerSec,
          },
        }));
        const transfer: ArrayBuffer[] = [];
        for (const m of members) {
          transfer.push(m.tensors.data.buffer as ArrayBuffer);
          if (m.tensors.head) transfer.push(m.tensors.head.weight.buffer as ArrayBuffer, m.tensors.head.bias.buffer as ArrayBuffer);
        }
        post({ type: 'done', jobId, cancelled: res.cancelled, members }, transfer);
      } catch (err) {
        const e = err as { code?: string; message?: string };
        post({ type: 'failed', jobId, code: e.code ?? 'INTERNAL', message: e.message ?? String(err) });
      } finally {
        cancelled.delete(jobId);
        // Give the training sessions' memory back between jobs (rebuilt in well under a second for small models).
        await model.releaseTraining().catch(() => {});
      }
    });
  });
}

void main();

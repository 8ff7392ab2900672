// Worker-thread side of inference: owns the Engine (and so the onnxruntime
// session, whose run() would otherwise block the HTTP thread), assembles the
// rows it is sent into the serving graph's feeds, runs them and hands the
// outputs back without copying.

import { parentPort, workerData } from 'node:worker_threads';
import { Engine } from '../../models/engine.ts';
import type { ExecutionProvider, SessionOptions } from '../../kernels/session.ts';
import { currentThreadId } from '../thread-cpu.ts';
import { assembleIsolated } from './assembly.ts';
import { unpackRows } from './rows-wire.ts';
import type { FromWorker, ToWorker } from './protocol.ts';

interface WorkerConfig { modelDir: string; executionProvider: ExecutionProvider; intraOpThreads?: number; spinWait?: boolean }

const port = parentPort!;
const config = workerData as WorkerConfig;

const codeOf = (err: unknown) => (err as { code?: string }).code ?? 'INTERNAL';
const messageOf = (err: unknown) => (err as { message?: string }).message ?? String(err);

async function main(): Promise<void> {
  let engine: Engine;
  try {
    const options: SessionOptions = { executionProvider: config.executionProvider, spinWait: config.spinWait === true };
    if (config.intraOpThreads !== undefined) options.intraOpThreads = config.intraOpThreads;
    engine = await Engine.load(config.modelDir, options);
    // Warm-up: the first run allocates; readiness waits for it.
    const started = performance.now();
    const warm = engine.assemble([{ inputIds: [engine.spec.bosTokenId ?? 0, 5, 6, 7], labelIds: [1, 2] }]);
    await engine.runScores(warm);
    const threadId = currentThreadId();
    const ready: FromWorker = { type: 'ready', spec: engine.spec, warmupMs: performance.now() - started, ...(threadId !== undefined ? { threadId } : {}) };
    port.postMessage(ready);
  } catch (err) {
    port.postMessage({ type: 'fatal', code: codeOf(err), message: messageOf(err) } satisfies FromWorker);
    return;
  }
  // The time spent posting the previous reply, reported with the next batch.
  let replyMs = 0;
  port.on('message', async (msg: ToWorker) => {
    const received = performance.now();
    if (msg.type === 'close') {
      await engine.release();
      port.close();
      return;
    }
    if (msg.type === 'exit-for-test') process.exit(msg.code);
    try {
      const { batch, ran, failed } = assembleIsolated(unpackRows(msg.rows), (rows) => engine.assemble(rows));
      const started = performance.now();
      const out = batch ? await engine.runScores(batch) : { scores: new Float32Array(0), classes: 0 };
      const finished = performance.now();
      const reply: FromWorker = {
        type: 'result', id: msg.id, ran, failed: failed.map((f) => ({ group: f.group, code: codeOf(f.error), message: f.error.message })),
        scores: out.scores, classes: out.classes, numClasses: batch?.numClasses ?? [],
        paddedLength: batch?.paddedLength ?? 0, realTokens: batch?.realTokens ?? 0, inferenceMs: finished - started,
        aroundRunMs: replyMs + (started - received),
      };
      port.postMessage(reply, [out.scores.buffer as ArrayBuffer]);
      replyMs = performance.now() - finished;
    } catch (err) {
      port.postMessage({ type: 'failed', id: msg.id, code: codeOf(err), message: messageOf(err) } satisfies FromWorker);
    }
  });
}

void main();

// Worker-thread side of inference: owns the Engine (and so the onnxruntime
// session, whose run() would otherwise block the HTTP thread), runs the batches
// it is sent and hands the outputs back without copying.

import { parentPort, workerData } from 'node:worker_threads';
import { Engine } from '../../models/engine.ts';
import type { AssembledBatch } from '../../models/batch.ts';
import type { ExecutionProvider, SessionOptions } from '../../kernels/session.ts';
import type { FromWorker, ToWorker } from './protocol.ts';

interface WorkerConfig { modelDir: string; executionProvider: ExecutionProvider; intraOpThreads?: number; spinWait?: boolean }

const port = parentPort!;
const config = workerData as WorkerConfig;

async function main(): Promise<void> {
  let engine: Engine;
  try {
    const options: SessionOptions = { executionProvider: config.executionProvider, spinWait: config.spinWait === true };
    if (config.intraOpThreads !== undefined) options.intraOpThreads = config.intraOpThreads;
    engine = await Engine.load(config.modelDir, options);
    // Warm-up: the first run allocates; readiness waits for it.
    const started = performance.now();
    const warm = engine.assemble([{ inputIds: [engine.spec.bosTokenId ?? 0, 5, 6, 7], labelIds: [1, 2] }]);
    await engine.runAssembled(warm);
    const ready: FromWorker = { type: 'ready', spec: engine.spec, positionOffset: engine.positionOffset, warmupMs: performance.now() - started };
    port.postMessage(ready);
  } catch (err) {
    const e = err as { code?: string; message?: string };
    port.postMessage({ type: 'fatal', code: e.code ?? 'INTERNAL', message: e.message ?? String(err) } satisfies FromWorker);
    return;
  }
  port.on('message', async (msg: ToWorker) => {
    if (msg.type === 'close') {
      await engine.release();
      port.close();
      return;
    }
    if (msg.type === 'exit-for-test') process.exit(msg.code);
    const started = performance.now();
    try {
      const out = await engine.runAssembled({ feeds: msg.feeds } as AssembledBatch);
      const reply: FromWorker = {
        type: 'result', id: msg.id, scores: out.scores, pooled: out.pooled, classes: out.classes,
        inferenceMs: performance.now() - started,
      };
      port.postMessage(reply, [out.scores.buffer as ArrayBuffer, out.pooled.buffer as ArrayBuffer]);
    } catch (err) {
      const e = err as { code?: string; message?: string };
      port.postMessage({ type: 'failed', id: msg.id, code: e.code ?? 'INTERNAL', message: e.message ?? String(err) } satisfies FromWorker);
    }
  });
}

void main();

// What holds the model: the inference worker thread (model load, warm-up,
// restart after a crash) and the scheduler that feeds it batches, with their
// metrics and logs. A single-process server (server/server.ts) and the
// primary of a clustered one (server/cluster/primary.ts) both start one.

import type { Logger } from 'pino';

import type { ModelSpec } from '../models/spec.ts';
import type { ServingConfig } from './config.ts';
import { InferenceWorker } from './inference/client.ts';
import type { Metrics } from './metrics.ts';
import { Scheduler } from './scheduler.ts';

export interface ModelHost {
  worker: InferenceWorker;
  scheduler: Scheduler;
  spec: ModelSpec;
}

export interface ModelHostHooks {
  /** The worker died (false) or came back (true). */
  onReadyChange?(ready: boolean): void;
}

/** Loads the model on its worker thread (rejects, leaving nothing behind, if it cannot) and builds the scheduler. */
export async function startModelHost(serving: ServingConfig, metrics: Metrics, logger: Logger, hooks: ModelHostHooks = {}): Promise<ModelHost> {
  const workerOptions: ConstructorParameters<typeof InferenceWorker>[0] = { modelDir: serving.modelDir, executionProvider: serving.executionProvider };
  if (serving.intraOpThreads !== undefined) workerOptions.intraOpThreads = serving.intraOpThreads;
  workerOptions.spinWait = serving.spinWait;
  const worker = new InferenceWorker(workerOptions, {
    onExit: ({ exitCode, error, restartInMs }) => {
      metrics.workerUp.set(0);
      logger.error({ exitCode, err: error ?? undefined, restartInMs }, 'inference worker died; in-flight batches failed with 503, restarting');
      hooks.onReadyChange?.(false);
    },
    onRestarted: ({ restarts, downMs }) => {
      metrics.workerRestarts.inc();
      metrics.workerUp.set(1);
      logger.warn({ restarts, downMs: round(downMs) }, 'inference worker restarted');
      hooks.onReadyChange?.(true);
    },
  });
  try {
    await worker.ready;
  } catch (err) {
    await worker.close();
    throw err;
  }
  const spec = worker.spec!;
  metrics.workerUp.set(1);
  metrics.readThreadCpu('inference', () => worker.threadId);
  logger.info({ model: serving.modelDir, family: spec.family, hidden: spec.hiddenSize, layers: spec.numLayers, ep: serving.executionProvider, warmupMs: Math.round(worker.warmupMs) }, 'model loaded');

  const scheduler = new Scheduler(
    worker,
    serving.scheduler,
    {
      onBatch: (b) => {
        metrics.batchRows.observe(b.rows);
        metrics.batchTokens.observe(b.paddedTokens);
        metrics.batchPadding.observe(b.paddedTokens > 0 ? 1 - b.realTokens / b.paddedTokens : 0);
        metrics.batchUniquePrompts.observe(b.uniquePrompts);
        metrics.batchTenants.observe(b.tenants);
        metrics.inferenceTime.observe(b.inferenceMs / 1000);
        logger.debug({ batch: b.id, rows: b.rows, tokens: b.paddedTokens, tenants: b.tenants, prompts: b.uniquePrompts, inferenceMs: round(b.inferenceMs) }, 'batch');
      },
      onAroundRun: (ms) => metrics.inferenceOutsideRun.inc(Math.max(0, ms) / 1000),
      onQueueChange: (rows, tokens) => {
        metrics.queueRows.set(rows);
        metrics.queueTokens.set(tokens);
      },
    },
  );
  return { worker, scheduler, spec };
}

const round = (x: number) => Math.round(x * 1000) / 1000;
